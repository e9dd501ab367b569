"""Bulk enrollment: many createEnrollment bodies in one request.

Each item is judged by the seed endpoint's rules (certapi.lifecycle) on its own and in
the order sent; what the rules need is read up front in a few batched queries instead
of three lookups per item. The whole request is one transaction, so a crash leaves none
of the items made; the accepted items go in with one INSERT, and if the database refuses
any of them (a race the rules could not see), each goes in its own savepoint, so an item
is either fully created or absent."""
import datetime
from typing import Any

from peewee import Field, IntegrityError

from certapi import lifecycle, webhooks
from certapi.errors import ApiError, Conflict, NotFound
from handlers.enrollments import HELD_FIELDS, held, render
from handlers.scoping import owned
from models import Certification, Enrollment, Partner, User, database
from models.base import BaseModel, utcnow
from models.bulk import among, insert_rows, unindexed
from models.db import is_postgres

Json = dict[str, Any]
# Rows per INSERT: well under SQLite's limit on bound values (32766) at 14 columns a row.
INSERT_BATCH = 500


def _by_uuid(model: type[BaseModel], uuids: set[str], account: str,
             *columns: Field) -> dict[str, Any]:
    """The account's rows of ``model`` among ``uuids``, each with ``columns`` (what the
    rules and the rendering read) besides its uuid: found by primary key, the account
    checked on the rows found (see unindexed)."""
    if not uuids:
        return {}
    owner = model.account  # type: ignore[attr-defined]
    rows = model.select(model.uuid, *columns).where(
        among(model.uuid, uuids) & (unindexed(owner) == account))
    return {row.uuid: row for row in rows}


def _held(certification: Certification, users: set[str]) -> dict[str, list[Enrollment]]:
    """Each user's enrollments in ``certification`` (what the lifecycle reads), one query
    for all: found by user, the certification checked on the rows found (see unindexed)."""
    held: dict[str, list[Enrollment]] = {uuid: [] for uuid in users}
    if users:
        rows = Enrollment.select(*HELD_FIELDS).where(
            among(Enrollment.user, users) & (unindexed(Enrollment.certification) == certification.uuid))
        for row in rows:
            held[row.user_uuid].append(row)
    return held


def _judge(item: Json, certification: Certification, members: dict[str, User],
           partners: dict[str, Partner], held: dict[str, list[Enrollment]],
           now: datetime.datetime) -> Enrollment:
    """One item, as createEnrollment judges it: the same 404s, then the lifecycle's rules.
    Returns the enrollment to store (not yet stored)."""
    member = members.get(item["user_uuid"].lower())
    if member is None:
        raise NotFound("User not found")
    given = item.get("partnership_uuid")
    partner = partners.get(given.lower()) if given else None
    if given and partner is None:
        raise NotFound("Partner not found")
    lifecycle.check_enrollment(certification, member, partner)
    renews = lifecycle.check_may_enroll(held[member.uuid], certification, now)
    enrollment = Enrollment(account=certification.account_id, certification=certification,
                            user=member, partner=partner, recertifies_enrollment=renews)
    held[member.uuid].append(enrollment)  # the same user again in this request: it is open
    return enrollment


def _store_one(enrollment: Enrollment, certification: Certification) -> ApiError | None:
    """Insert one enrollment in a savepoint of its own; the seed endpoint's answer when
    the database refuses it."""
    try:
        with database.atomic():
            enrollment.save(force_insert=True)
    except IntegrityError:
        # A single enrollment committed since the enrollments were read (PostgreSQL), or a
        # foreign key caught a row deleted meanwhile.
        try:
            lifecycle.check_may_enroll(held(certification, enrollment.user), certification,
                                       utcnow())
        except ApiError as error:
            return error
        return Conflict("The user, certification or partner changed meanwhile; retry")
    return None


def _store(batch: list[Enrollment], certification: Certification) -> list[ApiError | None]:
    """Insert the judged enrollments: all in one statement (a savepoint), which is what
    makes a thousand items fast, or, when the database refuses one of them, one savepoint
    each so the others still go in."""
    try:
        with database.atomic():
            insert_rows(Enrollment, [e.__data__ for e in batch])
        return [None] * len(batch)
    except IntegrityError:
        return [_store_one(enrollment, certification) for enrollment in batch]


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
        members = _by_uuid(User, user_keys, user, User.partner, User.email)
        partners = _by_uuid(Partner, partner_keys, user)
        now = utcnow()
        holdings = _held(certification, set(members))
        judged: list[Enrollment | ApiError] = []
        for item in items:
            try:
                judged.append(_judge(item, certification, members, partners, holdings, now))
            except ApiError as error:
                judged.append(error)
        accepted = [e for e in judged if isinstance(e, Enrollment)]
        refused: dict[int, ApiError] = {}
        for start in range(0, len(accepted), INSERT_BATCH):
            batch = accepted[start:start + INSERT_BATCH]
            for enrollment, refusal in zip(batch, _store(batch, certification), strict=True):
                if refusal is not None:
                    refused[id(enrollment)] = refusal
        for index, outcome in enumerate(judged):
            if isinstance(outcome, ApiError):
                results.append(_result(index, None, outcome))
            elif id(outcome) in refused:
                results.append(_result(index, None, refused[id(outcome)]))
            else:
                results.append(_result(index, outcome, None))
        # In the same transaction as the rows: an item's event commits with it.
        webhooks.enrollments_created(user, [r["enrollment"] for r in results if r["status"] == 201])
    created = sum(1 for result in results if result["status"] == 201)
    return {"data": results, "summary": {"created": created, "failed": len(results) - created}}
