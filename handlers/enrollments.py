"""Enrollments: the seed endpoint and its siblings. The rules are in certapi.lifecycle;
this module finds rows, applies the rules and stores the result atomically."""
from peewee import IntegrityError

from certapi import lifecycle, webhooks
from certapi.auth import account_uuid
from certapi.errors import Conflict, NotFound, ValidationFailed
from certapi.pagination import paginate
from handlers.scoping import created, no_content, owned
from models import Certification, Enrollment, Partner, User, database
from models.base import utcnow
from models.enrollment import ACTIVE_STATUSES

ORDER = (Enrollment.enrolled_at, Enrollment.uuid)
# A compare-and-set that loses a race re-reads and re-applies the rules; a handful of
# rounds is plenty, since each loss means another request made progress.
CHANGE_ROUNDS = 20


def location(enrollment: Enrollment) -> str:
    return f"/v1/certifications/{enrollment.certification_uuid}/enrollments/{enrollment.uuid}"


def render(enrollment: Enrollment) -> dict:
    return enrollment.as_json(user_email=enrollment.user.email)


def with_user(query):
    """The enrollments of ``query`` with the user fields ``render`` needs."""
    return query.select(Enrollment, User.uuid, User.email).join(User)


def enrollment_page(where, page, per_page, status=None, user_uuid=None, partnership_uuid=None):
    query = Enrollment.select().where(where)
    if status is not None:
        query = query.where(Enrollment.status == status)
    if user_uuid is not None:
        query = query.where(Enrollment.user == user_uuid.lower())
    if partnership_uuid is not None:
        query = query.where(Enrollment.partner == partnership_uuid.lower())
    return paginate(query, ORDER, page, per_page, render, rows=with_user)


def find(certification_uuid: str, enrollment_uuid: str, lock: bool = False) -> Enrollment:
    """The caller's enrollment, with its user and certification loaded; 404 otherwise.

    ``lock`` (inside a transaction) locks the enrollment row until commit where the
    database can (PostgreSQL: FOR UPDATE OF the enrollment alone); SQLite's writers
    already hold the database's write lock from BEGIN IMMEDIATE."""
    account = account_uuid()
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
        owned(Certification, certification_uuid, "Certification")
        raise NotFound("Enrollment not found")
    return enrollment


def change(certification_uuid, enrollment_uuid, apply, after=None):
    """Read, apply a lifecycle rule, and write back unless someone else wrote first.

    Concurrent changes to one enrollment queue on its row lock (see ``find``), so each
    reads what the previous one wrote; the version check is the backstop that turns any
    interleaving the lock did not prevent into a retry, never a lost update."""
    for _ in range(CHANGE_ROUNDS):
        with database.atomic():
            enrollment = find(certification_uuid, enrollment_uuid, lock=True)
            try:
                result = apply(enrollment)
            except lifecycle.TransitionRefused as refused:
                raise Conflict(str(refused))
            if enrollment.save_if_unchanged():
                return enrollment, (after(enrollment, result) if after else result)
    raise Conflict("The enrollment is changing too fast; retry")


def list_enrollments(uuid, page, per_page, status=None, user_uuid=None, partnership_uuid=None):
    certification = owned(Certification, uuid, "Certification")
    return enrollment_page(Enrollment.certification == certification, page, per_page,
                           status=status, user_uuid=user_uuid, partnership_uuid=partnership_uuid)


def create_enrollment(uuid, body):
    certification = owned(Certification, uuid, "Certification")
    user = owned(User, body["user_uuid"], "User")
    given = body.get("partnership_uuid")
    partner = owned(Partner, given, "Partner") if given else None
    if user.partner_uuid is not None and partner is None:
        raise ValidationFailed("body/partnership_uuid: Required for partner users")
    if partner is not None and partner.uuid != user.partner_uuid:
        raise ValidationFailed("body/partnership_uuid: Not the user's partner")
    if certification.status != "published":
        raise Conflict(f"Certification is {certification.status}, not published")

    already = Conflict("User is already enrolled in this certification")
    active = Enrollment.select().where(
        (Enrollment.certification == certification) & (Enrollment.user == user)
        & Enrollment.status.in_(ACTIVE_STATUSES)
    )
    try:
        with database.atomic():
            if active.exists():
                raise already
            enrollment = Enrollment.create(
                account=certification.account_id, certification=certification,
                user=user, partner=partner,
            )
            webhooks.enrollment_created(enrollment.account_id, render(enrollment))
    except IntegrityError:
        # Either the partial unique index caught a concurrent twin, or a foreign key
        # caught the user, certification or partner being deleted meanwhile.
        if active.exists():
            raise already
        raise Conflict("The user, certification or partner changed meanwhile; retry")
    enrollment.user = user
    return created(render(enrollment), location(enrollment))


def get_enrollment(uuid, enrollment_uuid):
    return render(find(uuid, enrollment_uuid))


def update_enrollment_progress(uuid, enrollment_uuid, body):
    now = utcnow()
    progress = body["progress_percentage"]
    enrollment, _ = change(
        uuid, enrollment_uuid, lambda e: lifecycle.report_progress(e, progress, now),
        after=lambda e, _: webhooks.enrollment_changed(e.account_id, render(e), e.started_at == now),
    )
    return render(enrollment)


def delete_enrollment(uuid, enrollment_uuid):
    with database.atomic():
        enrollment = find(uuid, enrollment_uuid)
        webhooks.enrollment_deleted(enrollment.account_id, render(enrollment))
        # Attempts go with it through ON DELETE CASCADE.
        enrollment.delete_instance()
    return no_content()
