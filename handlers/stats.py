"""A certification's numbers, from one aggregate query over the enrollment_stats index
(migration 0003): the database does the counting, no enrollment row reaches Python."""
import datetime
from typing import Any

from peewee import SQL, Case, Expression, fn

from handlers.scoping import owned
from models import Certification, Enrollment
from models.base import number, utcnow
from models.db import is_postgres

Json = dict[str, Any]
STATUSES = ("enrolled", "in_progress", "completed", "failed")
EXPIRY_WINDOW = datetime.timedelta(days=30)


def _count(condition: Expression) -> Any:
    return fn.COALESCE(fn.SUM(Case(None, [(condition, 1)], 0)), 0)


def _days_to_complete() -> Any:
    if is_postgres():
        return SQL("EXTRACT(EPOCH FROM (completed_at - enrolled_at)) / 86400.0")
    return fn.julianday(Enrollment.completed_at) - fn.julianday(Enrollment.enrolled_at)


def pass_rate(counts: dict[str, int]) -> float | int | None:
    """completed ÷ (completed + failed): open enrollments are not decided yet."""
    decided = counts["completed"] + counts["failed"]
    return number(counts["completed"] / decided) if decided else None


def get_certification_stats(uuid: str, user: str, partnership_uuid: str | None = None) -> Json:
    certification = owned(Certification, uuid, "Certification", user)
    now = utcnow()
    completed = Enrollment.status == "completed"
    # The enrollment lists' filters, to the letter: certified_now counts what
    # status=completed&expired=false lists, expiring_within_30_days what
    # status=completed&expires_after=now&expires_before=now+30 days lists.
    valid = completed & Enrollment.not_expired_at(now)
    expiring = completed & Enrollment.expires_after(now) & Enrollment.expires_before(
        now + EXPIRY_WINDOW)
    query = Enrollment.select(
        fn.COUNT(SQL("*")),
        *(_count(Enrollment.status == status) for status in STATUSES),
        fn.AVG(Enrollment.assessment_best_score),  # null until the first attempt
        fn.AVG(Case(None, [(completed, _days_to_complete())], None)),
        _count(valid),
        _count(expiring),
    ).where(Enrollment.certification == certification)
    if partnership_uuid is not None:
        query = query.where(Enrollment.partner == partnership_uuid.lower())
    row: Any = query.tuples().get()
    total, *by_status, best, days, certified, soon = row
    counts = dict(zip(STATUSES, (int(n) for n in by_status), strict=True))
    return {
        "certification_uuid": certification.uuid,
        "partnership_uuid": partnership_uuid.lower() if partnership_uuid else None,
        "enrollments": {"total": int(total), **counts},
        "pass_rate": pass_rate(counts),
        "average_best_score": number(float(best)) if best is not None else None,
        "average_days_to_complete": number(float(days)) if days is not None else None,
        "certified_now": int(certified),
        "expiring_within_30_days": int(soon),
    }
