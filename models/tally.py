"""Counts kept beside the rows they count (migration 0009's triggers keep them exact).

Read-only here: the database changes a tally in the transaction that changes a counted
row, so every total read from these tables equals the COUNT it stands for."""
from typing import Any

from peewee import JOIN, BigIntegerField, CharField, CompositeKey, DoubleField, Model, Query, fn

from models.certification import Certification
from models.db import database
from models.prepared import Prepared, slot


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


def _enrollment_total(variant: tuple[bool, bool]) -> Query:
    by_status, by_partner = variant
    query = EnrollmentTally.select(fn.COALESCE(fn.SUM(EnrollmentTally.enrollments), 0)).where(
        EnrollmentTally.certification_uuid == slot("certification"))
    if by_status:
        query = query.where(EnrollmentTally.status == slot("status"))
    if by_partner:
        query = query.where(EnrollmentTally.partner_key == slot("partner"))
    return query


def _user_total(by_partner: bool) -> Query:
    query = UserTally.select(fn.COALESCE(fn.SUM(UserTally.users), 0)).where(
        UserTally.account_id == slot("account"))
    if by_partner:
        query = query.where(UserTally.partner_key == slot("partner"))
    return query


# Prepared (models.prepared): every list page reads one of these.
_ENROLLMENT_TOTAL = Prepared(_enrollment_total)
_USER_TOTAL = Prepared(_user_total)


def enrollment_total(certification_uuid: str, status: str | None = None,
                     partnership_uuid: str | None = None, **others: Any) -> int | None:
    """How many of the certification's enrollments match; None when a filter the tally
    does not cover (``others``) is set, so the caller counts rows instead."""
    if any(value is not None for value in others.values()):
        return None
    cursor = _ENROLLMENT_TOTAL.execute(
        (status is not None, partnership_uuid is not None), certification=certification_uuid,
        status=status, partner=_partner(partnership_uuid) if partnership_uuid is not None else None)
    return int(cursor.fetchone()[0])


def user_total(account: str, partnership_uuid: str | None = None, **others: Any) -> int | None:
    """How many of the account's users match; None for a filter the tally does not cover."""
    if any(value is not None for value in others.values()):
        return None
    cursor = _USER_TOTAL.execute(partnership_uuid is not None, account=account,
                                 partner=_partner(partnership_uuid) if partnership_uuid is not None else None)
    return int(cursor.fetchone()[0])


def _certification_sums(partnered: bool) -> Query:
    tally = EnrollmentTally
    joined = tally.certification_uuid == Certification.uuid
    if partnered:
        joined &= tally.partner_key == slot("partner")
    return (Certification
            .select(tally.status, *(fn.SUM(getattr(tally, name)).alias(name) for name in SUMS))
            .join(tally, JOIN.LEFT_OUTER, on=joined)
            .where((Certification.uuid == slot("uuid")) & (Certification.account == slot("account")))
            .group_by(tally.status))


_CERTIFICATION_SUMS = Prepared(_certification_sums)


def certification_sums(certification_uuid: str, account: str,
                       partnership_uuid: str | None) -> dict[str, dict] | None:
    """Per status: the enrollments and the sums the stats average; None when the
    account has no such certification. One statement answers both (the stats' hot path:
    see models.prepared)."""
    cursor = _CERTIFICATION_SUMS.execute(
        partnership_uuid is not None, uuid=certification_uuid.lower(), account=account,
        partner=_partner(partnership_uuid) if partnership_uuid is not None else None)
    rows = cursor.fetchall()
    if not rows:
        return None
    return {status: {name: value or 0 for name, value in zip(SUMS, sums, strict=True)}
            for status, *sums in rows if status is not None}
