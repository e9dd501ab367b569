"""Counts kept beside the rows they count (migration 0009's triggers keep them exact).

Read-only here: the database changes a tally in the transaction that changes a counted
row, so every total read from these tables equals the COUNT it stands for."""
from typing import Any

from peewee import BigIntegerField, CharField, CompositeKey, DoubleField, Model, fn

from models.db import database


class _Tally(Model):
    class Meta:
        database = database


class EnrollmentTally(_Tally):
    certification_uuid = CharField(max_length=36)
    partner_key = CharField(max_length=36)
    status = CharField(max_length=16)
    enrollments = BigIntegerField()
    scored = BigIntegerField()  # enrollments with a best score
    best_score_sum = DoubleField()
    timed = BigIntegerField()  # enrollments with a completion time
    days_sum = DoubleField()  # days from enrollment to completion, summed

    class Meta:
        table_name = "enrollment_tally"
        primary_key = CompositeKey("certification_uuid", "partner_key", "status")


class UserTally(_Tally):
    account_id = CharField(max_length=36)
    partner_key = CharField(max_length=36)
    users = BigIntegerField()

    class Meta:
        table_name = "user_tally"
        primary_key = CompositeKey("account_id", "partner_key")


SUMS = ("enrollments", "scored", "best_score_sum", "timed", "days_sum")


def _partner(partnership_uuid: str) -> str:
    return partnership_uuid.lower()


def enrollment_total(certification_uuid: str, status: str | None = None,
                     partnership_uuid: str | None = None, **others: Any) -> int | None:
    """How many of the certification's enrollments match; None when a filter the tally
    does not cover (``others``) is set, so the caller counts rows instead."""
    if any(value is not None for value in others.values()):
        return None
    query = EnrollmentTally.select(fn.COALESCE(fn.SUM(EnrollmentTally.enrollments), 0)).where(
        EnrollmentTally.certification_uuid == certification_uuid)
    if status is not None:
        query = query.where(EnrollmentTally.status == status)
    if partnership_uuid is not None:
        query = query.where(EnrollmentTally.partner_key == _partner(partnership_uuid))
    return int(query.scalar())


def user_total(account: str, partnership_uuid: str | None = None, **others: Any) -> int | None:
    """How many of the account's users match; None for a filter the tally does not cover."""
    if any(value is not None for value in others.values()):
        return None
    query = UserTally.select(fn.COALESCE(fn.SUM(UserTally.users), 0)).where(
        UserTally.account_id == account)
    if partnership_uuid is not None:
        query = query.where(UserTally.partner_key == _partner(partnership_uuid))
    return int(query.scalar())


def enrollment_sums(certification_uuid: str, partnership_uuid: str | None) -> dict[str, dict]:
    """Per status: the enrollments and the sums the stats average."""
    query = (EnrollmentTally
             .select(EnrollmentTally.status, *(fn.SUM(getattr(EnrollmentTally, name)).alias(name)
                                               for name in SUMS))
             .where(EnrollmentTally.certification_uuid == certification_uuid)
             .group_by(EnrollmentTally.status))
    if partnership_uuid is not None:
        query = query.where(EnrollmentTally.partner_key == _partner(partnership_uuid))
    rows: Any = query.dicts()
    return {row["status"]: {name: row[name] or 0 for name in SUMS} for row in rows}


