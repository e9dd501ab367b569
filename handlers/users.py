from peewee import IntegrityError

from certapi import lifecycle
from certapi.auth import account_uuid
from certapi.errors import Conflict
from certapi.pagination import paginate
from handlers.enrollments import enrollment_page
from handlers.scoping import created, no_content, owned
from models import Enrollment, Partner, User, database

ORDER = (User.created_at, User.uuid)


def _apply(user: User, body: dict) -> None:
    """Copy request fields onto ``user``, resolving the partner and folding the email."""
    for name, value in body.items():
        if name == "partnership_uuid":
            user.partner = owned(Partner, value, "Partner") if value else None
        elif name == "email":
            user.set_email(value)
        else:
            setattr(user, name, value)


def _save(user: User, **kwargs) -> None:
    account = account_uuid()
    taken = User.select().where(
        (User.account == account) & (User.email_key == user.email_key) & (User.uuid != user.uuid)
    )
    if taken.exists():
        raise Conflict("A user with this email already exists")
    try:
        with database.atomic():
            user.save(**kwargs)
    except IntegrityError:
        raise Conflict("A user with this email already exists")


def list_users(page, per_page, email=None, partnership_uuid=None):
    query = User.select().where(User.account == account_uuid())
    if email is not None:
        query = query.where(User.email_key == User.fold_email(email))
    if partnership_uuid is not None:
        query = query.where(User.partner == partnership_uuid.lower())
    return paginate(query, ORDER, page, per_page, User.as_json)


def create_user(body):
    user = User(account=account_uuid())
    _apply(user, body)
    _save(user, force_insert=True)
    return created(user.as_json(), f"/v1/users/{user.uuid}")


def get_user(uuid):
    return owned(User, uuid, "User").as_json()


def update_user(uuid, body):
    with database.atomic():
        user = owned(User, uuid, "User")
        old_partner = user.partner_uuid
        _apply(user, body)
        _check_partner_change(user, old_partner)
        _save(user)
    return user.as_json()


def _check_partner_change(user: User, old_partner: str | None) -> None:
    if user.partner_uuid == old_partner:
        return
    open_enrollments = Enrollment.select().where(
        (Enrollment.user == user) & Enrollment.status.in_(lifecycle.OPEN))
    try:
        lifecycle.check_partner_change(old_partner, user.partner_uuid, open_enrollments.exists())
    except lifecycle.TransitionRefused as refused:
        raise Conflict(str(refused))


def delete_user(uuid):
    with database.atomic():
        user = owned(User, uuid, "User")
        if Enrollment.select().where(Enrollment.user == user).exists():
            raise Conflict("User still has enrollments")
        user.delete_instance()
    return no_content()


def list_user_enrollments(uuid, page, per_page, status=None):
    user = owned(User, uuid, "User")
    return enrollment_page(Enrollment.user == user, page, per_page, status=status)
