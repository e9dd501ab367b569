from typing import Any

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
        for name, value in body.items():
            setattr(certification, name, value)
        certification.save()
    return certification.as_json()


def delete_certification(uuid: str, user: str) -> tuple[None, int]:
    with database.atomic():
        certification = owned(Certification, uuid, "Certification", user)
        if Enrollment.select().where(Enrollment.certification == certification).exists():
            raise Conflict("Certification still has enrollments")
        certification.delete_instance()
    return no_content()
