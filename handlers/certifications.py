from typing import Any

from peewee import fn

from certapi import lifecycle
from certapi.errors import Conflict
from certapi.pagination import paginate
from certapi.spec import url
from handlers.scoping import created, no_content, owned
from models import Certification, Enrollment, database

Json = dict[str, Any]


def list_certifications(page: int, per_page: int, user: str, status: str | None = None) -> Json:
    query = Certification.select().where(Certification.account == user)
    if status is not None:
        query = query.where(Certification.status == status)
    order = (Certification.created_at, Certification.uuid)
    return paginate(query, order, page, per_page, Certification.as_json)


def create_certification(body: Json, user: str) -> tuple[Json, int, dict[str, str]]:
    certification = Certification.create(account=user, **body)
    return created(certification.as_json(), url("certifications", certification.uuid))


def get_certification(uuid: str, user: str) -> Json:
    return owned(Certification, uuid, "Certification", user).as_json()


def update_certification(uuid: str, body: Json, user: str) -> Json:
    with database.atomic():
        certification = owned(Certification, uuid, "Certification", user)
        if "max_attempts" in body:
            lifecycle.check_attempt_limit(body["max_attempts"], _most_attempts_open(certification))
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


def delete_certification(uuid: str, user: str) -> tuple[None, int]:
    with database.atomic():
        certification = owned(Certification, uuid, "Certification", user)
        if Enrollment.select().where(Enrollment.certification == certification).exists():
            raise Conflict("Certification still has enrollments")
        certification.delete_instance()
    return no_content()
