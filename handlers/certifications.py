from peewee import fn

from certapi import lifecycle
from certapi.auth import account_uuid
from certapi.errors import Conflict
from certapi.pagination import paginate
from handlers.scoping import created, no_content, owned
from models import Certification, Enrollment, database


def list_certifications(page, per_page, status=None):
    query = Certification.select().where(Certification.account == account_uuid())
    if status is not None:
        query = query.where(Certification.status == status)
    order = (Certification.created_at, Certification.uuid)
    return paginate(query, order, page, per_page, Certification.as_json)


def create_certification(body):
    certification = Certification.create(account=account_uuid(), **body)
    return created(certification.as_json(), f"/v1/certifications/{certification.uuid}")


def get_certification(uuid):
    return owned(Certification, uuid, "Certification").as_json()


def update_certification(uuid, body):
    with database.atomic():
        certification = owned(Certification, uuid, "Certification")
        if "max_attempts" in body:
            try:
                lifecycle.check_attempt_limit(body["max_attempts"], _most_attempts_open(certification))
            except lifecycle.TransitionRefused as refused:
                raise Conflict(str(refused))
        for name, value in body.items():
            setattr(certification, name, value)
        certification.save()
    return certification.as_json()


def _most_attempts_open(certification: Certification) -> int | None:
    """The most attempts any open enrollment of ``certification`` has used; the open
    enrollments stay locked until commit where the database can, so an attempt being
    recorded right now is counted (SQLite writers are serialised already)."""
    open_enrollments = Enrollment.select(Enrollment.assessment_attempts).where(
        (Enrollment.certification == certification) & Enrollment.status.in_(lifecycle.OPEN)
    )
    if database.for_update:
        return max((row.assessment_attempts for row in open_enrollments.for_update()), default=None)
    return open_enrollments.select(fn.MAX(Enrollment.assessment_attempts)).scalar()


def delete_certification(uuid):
    with database.atomic():
        certification = owned(Certification, uuid, "Certification")
        if Enrollment.select().where(Enrollment.certification == certification).exists():
            raise Conflict("Certification still has enrollments")
        certification.delete_instance()
    return no_content()
