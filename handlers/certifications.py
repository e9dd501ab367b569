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
        for name, value in body.items():
            setattr(certification, name, value)
        certification.save()
    return certification.as_json()


def delete_certification(uuid):
    with database.atomic():
        certification = owned(Certification, uuid, "Certification")
        if Enrollment.select().where(Enrollment.certification == certification).exists():
            raise Conflict("Certification still has enrollments")
        certification.delete_instance()
    return no_content()
