"""Enrollments: the seed endpoint and its siblings. The rules are in certapi.lifecycle;
this module finds rows, applies the rules and stores the result atomically."""
import datetime
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from peewee import Expression, IntegrityError, ModelSelect

from certapi import csv_export, lifecycle, webhooks
from certapi.errors import Conflict, NotFound
from certapi.pagination import paginate
from certapi.spec import url
from handlers.scoping import created, no_content, owned
from handlers.timestamps import timestamp
from models import Certification, Enrollment, Partner, User, base, database, tally
from models.base import utcnow

Json = dict[str, Any]
Result = TypeVar("Result")
ORDER = (Enrollment.enrolled_at, Enrollment.uuid)


def location(enrollment: Enrollment) -> str:
    return url("certifications", enrollment.certification_uuid, "enrollments", enrollment.uuid)


def render(enrollment: Enrollment) -> Json:
    return enrollment.as_json(user_email=enrollment.user.email)


def csv_fields(now: datetime.datetime) -> dict[str, csv_export.Column]:
    """The CSV export's columns: each JSON field of ``render`` and the column it comes from."""
    return {
        "uuid": Enrollment.uuid, "certification_uuid": Enrollment.certification,
        "user_uuid": Enrollment.user, "user_email": User.email,
        "partnership_uuid": Enrollment.partner, "status": Enrollment.status,
        "progress_percentage": Enrollment.progress_percentage,
        "enrolled_at": Enrollment.enrolled_at, "started_at": Enrollment.started_at,
        "completed_at": Enrollment.completed_at,
        "assessment_attempts": Enrollment.assessment_attempts,
        "assessment_best_score": Enrollment.assessment_best_score,
        "assessment_passed": Enrollment.assessment_passed, "expires_at": Enrollment.expires_at,
        "expired": csv_export.boolean(Enrollment.expired_column(now)),
        "recertifies_enrollment_uuid": Enrollment.recertifies_enrollment,
    }


def with_user(query: ModelSelect) -> ModelSelect:
    """The enrollments of ``query`` with the user fields ``render`` needs."""
    return query.select(Enrollment, User.uuid, User.email).join(User)


def filtered(where: Expression, status: str | None = None, user_uuid: str | None = None,
             partnership_uuid: str | None = None, expired: bool | None = None,
             expires_before: str | None = None,
             expires_after: str | None = None) -> "ModelSelect[Any]":
    query: ModelSelect[Any] = Enrollment.select().where(where)
    if status is not None:
        query = query.where(Enrollment.status == status)
    if user_uuid is not None:
        query = query.where(Enrollment.user == user_uuid.lower())
    if partnership_uuid is not None:
        query = query.where(Enrollment.partner == partnership_uuid.lower())
    if expired is not None:
        now = base.utcnow()
        query = query.where(Enrollment.expired_at(now) if expired
                            else Enrollment.not_expired_at(now))
    if expires_before is not None:
        query = query.where(Enrollment.expires_before(
            timestamp(expires_before, "query/expires_before")))
    if expires_after is not None:
        query = query.where(Enrollment.expires_after(
            timestamp(expires_after, "query/expires_after")))
    return query


Tallied = Callable[..., int | None]


def enrollment_page(where: Expression, page: int, per_page: int, tallied: Tallied | None = None,
                    **filters: Any) -> Json:
    """``tallied(**filters)`` is the exact total from a tally, or None (then it is counted)."""
    query = filtered(where, **filters)
    total = tallied(**filters) if tallied else None
    return paginate(query, ORDER, page, per_page, render, rows=with_user, total=total)


def enrollment_list(where: Expression, page: int, per_page: int, format: str | None,
                    filename: str, tallied: Tallied | None = None, **filters: Any) -> Any:
    """A page as JSON, or every matching enrollment as CSV (csv_export)."""
    if csv_export.wants_csv(format):
        return csv_export.csv_answer(with_user(filtered(where, **filters)), ORDER,
                                     csv_fields(base.utcnow()), filename)
    return csv_export.json_answer(enrollment_page(where, page, per_page, tallied, **filters))


def find(certification_uuid: str, enrollment_uuid: str, account: str,
         lock: bool = False) -> Enrollment:
    """``account``'s enrollment, with its user and certification loaded; 404 otherwise.

    ``lock`` (inside a transaction) locks the enrollment row until commit where the
    database can (PostgreSQL: FOR UPDATE OF the enrollment alone); SQLite's writers
    already hold the database's write lock from BEGIN IMMEDIATE."""
    query = (
        Enrollment.select(Enrollment, User, Certification)
        .join(User).switch(Enrollment).join(Certification)
        .where(
            (Enrollment.uuid == enrollment_uuid.lower())
            & (Enrollment.certification == certification_uuid.lower())
            & (Enrollment.account == account)
        )
    )
    if lock and database.for_update:
        query = query.for_update(of=Enrollment)
    enrollment = query.first()
    if enrollment is None:
        owned(Certification, certification_uuid, "Certification", account)
        raise NotFound("Enrollment not found")
    return enrollment


def change(certification_uuid: str, enrollment_uuid: str, account: str,
           apply: Callable[[Enrollment], Result]) -> tuple[Enrollment, Result]:
    """Read, apply a lifecycle rule and write back, in one transaction holding the
    enrollment's row lock (see ``find``): concurrent changes to one enrollment queue on
    it, so each reads what the previous one wrote. ``apply`` may store more rows."""
    with database.atomic():
        enrollment = find(certification_uuid, enrollment_uuid, account, lock=True)
        result = apply(enrollment)
        enrollment.save()
    return enrollment, result


def list_enrollments(uuid: str, page: int, per_page: int, user: str, status: str | None = None,
                     user_uuid: str | None = None, partnership_uuid: str | None = None,
                     expired: bool | None = None, expires_before: str | None = None,
                     expires_after: str | None = None, format: str | None = None) -> Any:
    certification = owned(Certification, uuid, "Certification", user)
    return enrollment_list(Enrollment.certification == certification, page, per_page, format,
                           f"certification-{certification.uuid}-enrollments.csv",
                           partial(tally.enrollment_total, certification.uuid),
                           status=status, user_uuid=user_uuid, partnership_uuid=partnership_uuid,
                           expired=expired, expires_before=expires_before,
                           expires_after=expires_after)


# What certapi.lifecycle.check_may_enroll reads of a user's enrollments.
HELD_FIELDS = (Enrollment.uuid, Enrollment.user, Enrollment.status, Enrollment.enrolled_at,
               Enrollment.completed_at, Enrollment.expires_at)


def held(certification: Certification, member: User) -> list[Enrollment]:
    """``member``'s enrollments in ``certification``, read afresh (a query caches its rows)."""
    return list(Enrollment.select(*HELD_FIELDS).where(
        (Enrollment.certification == certification) & (Enrollment.user == member)))


def create_enrollment(uuid: str, body: Json, user: str) -> tuple[Json, int, dict[str, str]]:
    certification = owned(Certification, uuid, "Certification", user)
    member = owned(User, body["user_uuid"], "User", user)
    given = body.get("partnership_uuid")
    partner = owned(Partner, given, "Partner", user) if given else None
    lifecycle.check_enrollment(certification, member, partner)

    try:
        with database.atomic():
            renews = lifecycle.check_may_enroll(held(certification, member), certification,
                                                utcnow())
            enrollment = Enrollment.create(
                account=certification.account_id, certification=certification,
                user=member, partner=partner, recertifies_enrollment=renews,
            )
            webhooks.enrollment_created(enrollment.account_id, render(enrollment))
    except IntegrityError:
        # Either the unique index on open enrollments caught a concurrent twin (a renewal
        # of the same completion too), or a foreign key caught the user, certification,
        # partner or renewed enrollment being deleted meanwhile.
        lifecycle.check_may_enroll(held(certification, member), certification, utcnow())
        raise Conflict("The user, certification or partner changed meanwhile; retry") from None
    enrollment.user = member
    return created(render(enrollment), location(enrollment))


def get_enrollment(uuid: str, enrollment_uuid: str, user: str) -> Json:
    return render(find(uuid, enrollment_uuid, user))


def update_enrollment_progress(uuid: str, enrollment_uuid: str, body: Json, user: str) -> Json:
    now = utcnow()
    progress = body["progress_percentage"]

    def report(enrollment: Enrollment) -> None:
        lifecycle.report_progress(enrollment, progress, now)
        webhooks.enrollment_changed(enrollment.account_id, render(enrollment),
                                    enrollment.started_at == now)

    enrollment, _ = change(uuid, enrollment_uuid, user, report)
    return render(enrollment)


def delete_enrollment(uuid: str, enrollment_uuid: str, user: str) -> tuple[None, int]:
    with database.atomic():
        enrollment = find(uuid, enrollment_uuid, user)
        webhooks.enrollment_deleted(enrollment.account_id, render(enrollment))
        # Attempts go with it through ON DELETE CASCADE.
        enrollment.delete_instance()
    return no_content()
