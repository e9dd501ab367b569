from typing import Any

from peewee import Field, IntegrityError

from certapi import csv_export, lifecycle
from certapi.errors import Conflict
from certapi.pagination import paginate
from certapi.spec import url
from handlers.enrollments import enrollment_list
from handlers.scoping import created, no_content, owned
from models import Enrollment, Partner, User, database, tally

Json = dict[str, Any]
ORDER = (User.created_at, User.uuid)
# The CSV export's columns: each JSON field of ``User.as_json`` and the column it comes from.
CSV_FIELDS: dict[str, Field] = {
    "uuid": User.uuid, "email": User.email, "first_name": User.first_name,
    "last_name": User.last_name, "partnership_uuid": User.partner,
    "created_at": User.created_at, "updated_at": User.updated_at,
}


def _apply(member: User, body: Json, account: str) -> None:
    """Copy request fields onto ``member``, resolving the partner and folding the email."""
    for name, value in body.items():
        if name == "partnership_uuid":
            member.partner = owned(Partner, value, "Partner", account) if value else None
        elif name == "email":
            member.set_email(value)
        else:
            setattr(member, name, value)


def _save(member: User, account: str, **kwargs: Any) -> None:
    taken = User.select().where(
        (User.account == account) & (User.email_key == member.email_key)
        & (User.uuid != member.uuid)
    )
    if taken.exists():
        raise Conflict("A user with this email already exists")
    try:
        with database.atomic():
            member.save(**kwargs)
    except IntegrityError:
        raise Conflict("A user with this email already exists") from None


def list_users(page: int, per_page: int, user: str, email: str | None = None,
               partnership_uuid: str | None = None, format: str | None = None) -> Any:
    query = User.select().where(User.account == user)
    if email is not None:
        query = query.where(User.email_key == User.fold_email(email))
    if partnership_uuid is not None:
        query = query.where(User.partner == partnership_uuid.lower())
    if csv_export.wants_csv(format):
        return csv_export.csv_answer(query, ORDER, CSV_FIELDS, "users.csv")
    total = tally.user_total(user, partnership_uuid, email=email)
    return csv_export.json_answer(paginate(query, ORDER, page, per_page, User.as_json,
                                           total=total))


def create_user(body: Json, user: str) -> tuple[Json, int, dict[str, str]]:
    member = User(account=user)
    _apply(member, body, user)
    _save(member, user, force_insert=True)
    return created(member.as_json(), url("users", member.uuid))


def get_user(uuid: str, user: str) -> Json:
    return owned(User, uuid, "User", user).as_json()


def update_user(uuid: str, body: Json, user: str) -> Json:
    with database.atomic():
        member = owned(User, uuid, "User", user)
        old_partner = member.partner_uuid
        _apply(member, body, user)
        _check_partner_change(member, old_partner)
        _save(member, user)
    return member.as_json()


def _check_partner_change(member: User, old_partner: str | None) -> None:
    if member.partner_uuid == old_partner:
        return
    open_enrollments = Enrollment.select().where(
        (Enrollment.user == member) & Enrollment.status.in_(lifecycle.OPEN))
    lifecycle.check_partner_change(old_partner, member.partner_uuid, open_enrollments.exists())


def delete_user(uuid: str, user: str) -> tuple[None, int]:
    with database.atomic():
        member = owned(User, uuid, "User", user)
        if Enrollment.select().where(Enrollment.user == member).exists():
            raise Conflict("User still has enrollments")
        member.delete_instance()
    return no_content()


def list_user_enrollments(uuid: str, page: int, per_page: int, user: str,
                          status: str | None = None, expired: bool | None = None,
                          expires_before: str | None = None, expires_after: str | None = None,
                          format: str | None = None) -> Any:
    member = owned(User, uuid, "User", user)
    return enrollment_list(Enrollment.user == member, page, per_page, format,
                           f"user-{member.uuid}-enrollments.csv", status=status, expired=expired,
                           expires_before=expires_before, expires_after=expires_after)
