from certapi.auth import account_uuid
from certapi.errors import Conflict
from certapi.pagination import paginate
from handlers.scoping import created, no_content, owned
from models import Enrollment, Partner, User, database


def list_partners(page, per_page):
    query = Partner.select().where(Partner.account == account_uuid())
    return paginate(query, (Partner.created_at, Partner.uuid), page, per_page, Partner.as_json)


def create_partner(body):
    partner = Partner.create(account=account_uuid(), **body)
    return created(partner.as_json(), f"/v1/partners/{partner.uuid}")


def get_partner(uuid):
    return owned(Partner, uuid, "Partner").as_json()


def update_partner(uuid, body):
    with database.atomic():
        partner = owned(Partner, uuid, "Partner")
        for name, value in body.items():
            setattr(partner, name, value)
        partner.save()
    return partner.as_json()


def delete_partner(uuid):
    with database.atomic():
        partner = owned(Partner, uuid, "Partner")
        if User.select().where(User.partner == partner).exists():
            raise Conflict("Partner still has users")
        if Enrollment.select().where(Enrollment.partner == partner).exists():
            raise Conflict("Partner still has enrollments")
        partner.delete_instance()
    return no_content()


def list_partner_users(uuid, page, per_page):
    partner = owned(Partner, uuid, "Partner")
    query = User.select().where(User.partner == partner)
    return paginate(query, (User.created_at, User.uuid), page, per_page, User.as_json)
