from typing import Any

from certapi.errors import Conflict
from certapi.pagination import paginate
from certapi.spec import url
from handlers.scoping import created, no_content, owned
from models import Enrollment, Partner, User, database

Json = dict[str, Any]


def list_partners(page: int, per_page: int, user: str) -> Json:
    query = Partner.select().where(Partner.account == user)
    return paginate(query, (Partner.created_at, Partner.uuid), page, per_page, Partner.as_json)


def create_partner(body: Json, user: str) -> tuple[Json, int, dict[str, str]]:
    partner = Partner.create(account=user, **body)
    return created(partner.as_json(), url("partners", partner.uuid))


def get_partner(uuid: str, user: str) -> Json:
    return owned(Partner, uuid, "Partner", user).as_json()


def update_partner(uuid: str, body: Json, user: str) -> Json:
    with database.atomic():
        partner = owned(Partner, uuid, "Partner", user)
        for name, value in body.items():
            setattr(partner, name, value)
        partner.save()
    return partner.as_json()


def delete_partner(uuid: str, user: str) -> tuple[None, int]:
    with database.atomic():
        partner = owned(Partner, uuid, "Partner", user)
        if User.select().where(User.partner == partner).exists():
            raise Conflict("Partner still has users")
        if Enrollment.select().where(Enrollment.partner == partner).exists():
            raise Conflict("Partner still has enrollments")
        partner.delete_instance()
    return no_content()


def list_partner_users(uuid: str, page: int, per_page: int, user: str) -> Json:
    partner = owned(Partner, uuid, "Partner", user)
    query = User.select().where(User.partner == partner)
    return paginate(query, (User.created_at, User.uuid), page, per_page, User.as_json)
