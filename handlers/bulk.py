"""Bulk enrollment: many createEnrollment bodies in one request.

Each item is judged by the seed endpoint's rules (certapi.lifecycle) on its own and in
the order sent; what the rules need is read up front in a few batched queries instead
of three lookups per item. The whole request is one transaction and each item a
savepoint in it, so an item is either fully created or absent, and a crash leaves none
of them half-made."""
from typing import Any

from peewee import IntegrityError

from certapi import lifecycle
from certapi.errors import ApiError, Conflict, NotFound
from handlers.enrollments import render
from handlers.scoping import owned
from models import Certification, Enrollment, Partner, User, database
from models.base import BaseModel
from models.db import is_postgres

Json = dict[str, Any]


def _by_uuid(model: type[BaseModel], uuids: set[str], account: str) -> dict[str, Any]:
    if not uuids:
        return {}
    rows = model.select().where(
        model.uuid.in_(list(uuids)) & (model.account == account)  # type: ignore[attr-defined]
    )
    return {row.uuid: row for row in rows}


def _statuses(certification: Certification, users: set[str]) -> dict[str, list[str]]:
    """Each user's enrollment statuses in ``certification``, one query for all."""
    held: dict[str, list[str]] = {uuid: [] for uuid in users}
    rows: Any = Enrollment.select(Enrollment.user, Enrollment.status).where(
        (Enrollment.certification == certification) & Enrollment.user.in_(list(users))
    ).tuples()
    for user_uuid, status in rows:
        held[user_uuid].append(status)
    return held


def _statuses_now(certification: Certification, member: User) -> list[str]:
    return [row.status for row in Enrollment.select(Enrollment.status).where(
        (Enrollment.certification == certification) & (Enrollment.user == member))]


def _enroll(item: Json, certification: Certification, members: dict[str, User],
            partners: dict[str, Partner], held: dict[str, list[str]]) -> Enrollment:
    """One item, as createEnrollment would do it: the same 404s, then the lifecycle's rules."""
    member = members.get(item["user_uuid"].lower())
    if member is None:
        raise NotFound("User not found")
    given = item.get("partnership_uuid")
    partner = partners.get(given.lower()) if given else None
    if given and partner is None:
        raise NotFound("Partner not found")
    lifecycle.check_enrollment(certification, member, partner)
    statuses = held[member.uuid]
    lifecycle.check_not_enrolled(statuses)
    try:
        with database.atomic():  # nested: a savepoint, undone alone if the insert fails
            enrollment = Enrollment.create(
                account=certification.account_id, certification=certification,
                user=member, partner=partner,
            )
    except IntegrityError:
        # A single enrollment committed since the statuses were read (PostgreSQL), or a
        # foreign key caught a row deleted meanwhile: the seed endpoint's answers.
        lifecycle.check_not_enrolled(_statuses_now(certification, member))
        raise Conflict("The user, certification or partner changed meanwhile; retry") from None
    statuses.append(enrollment.status)
    enrollment.user = member
    return enrollment


def _result(index: int, enrollment: Enrollment | None, error: ApiError | None) -> Json:
    if error is not None:
        return {"index": index, "status": error.status, "enrollment": None,
                "error": {"code": error.code, "message": error.message}}
    assert enrollment is not None
    return {"index": index, "status": 201, "enrollment": render(enrollment), "error": None}


def create_enrollments_bulk(uuid: str, body: Json, user: str) -> Json:
    certification = owned(Certification, uuid, "Certification", user)
    lifecycle.check_published(certification)
    items = body["enrollments"]
    user_keys = {item["user_uuid"].lower() for item in items}
    partner_keys = {item["partnership_uuid"].lower() for item in items
                    if item.get("partnership_uuid")}
    results = []
    with database.atomic():
        if is_postgres():
            # Two bulk requests for one certification queue here: inserting overlapping
            # users in different orders could otherwise deadlock on the unique index.
            # (SQLite's writers already run one at a time.)
            database.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))",
                                 (f"bulk-enroll:{certification.uuid}",))
        members = _by_uuid(User, user_keys, user)
        partners = _by_uuid(Partner, partner_keys, user)
        held = _statuses(certification, set(members))
        for index, item in enumerate(items):
            try:
                enrollment = _enroll(item, certification, members, partners, held)
            except ApiError as error:
                results.append(_result(index, None, error))
            else:
                # enrollment.created is raised here per created item once the webhooks
                # (certapi.webhooks.emit) are on this branch.
                results.append(_result(index, enrollment, None))
    created = sum(1 for result in results if result["status"] == 201)
    return {"data": results, "summary": {"created": created, "failed": len(results) - created}}
