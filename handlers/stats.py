"""A certification's numbers, from the enrollment tallies (migration 0009): the counts
and the sums behind the averages are kept as rows change, so the answer costs the same
at any size; only the time-dependent counts read enrollments, as index ranges."""
import datetime
from typing import Any

from peewee import SQL, Expression, fn

from handlers.scoping import owned
from models import Certification, Enrollment, tally
from models.base import number, utcnow

Json = dict[str, Any]
STATUSES = ("enrolled", "in_progress", "completed", "failed")
EXPIRY_WINDOW = datetime.timedelta(days=30)


def pass_rate(counts: dict[str, int]) -> float | int | None:
    """completed ÷ (completed + failed): open enrollments are not decided yet."""
    decided = counts["completed"] + counts["failed"]
    return number(counts["completed"] / decided) if decided else None


def _completed(certification: Certification, partnership_uuid: str | None,
               condition: Expression) -> int:
    """Completed enrollments meeting ``condition`` on expires_at: a range of the
    enrollment_expiry index (certification, status, expires_at, partner), which covers
    the certificates still valid or about to lapse, never the certification's history."""
    query = Enrollment.select(fn.COUNT(SQL("*"))).where(
        (Enrollment.certification == certification) & (Enrollment.status == "completed")
        & condition)
    if partnership_uuid is not None:
        query = query.where(Enrollment.partner == partnership_uuid.lower())
    return int(query.scalar())


def get_certification_stats(uuid: str, user: str, partnership_uuid: str | None = None) -> Json:
    certification = owned(Certification, uuid, "Certification", user)
    now = utcnow()
    sums = tally.enrollment_sums(certification.uuid, partnership_uuid)
    empty = dict.fromkeys(tally.SUMS, 0)
    counts = {status: int(sums.get(status, empty)["enrollments"]) for status in STATUSES}
    scored = sum(int(row["scored"]) for row in sums.values())
    best = sum(float(row["best_score_sum"]) for row in sums.values())
    done = sums.get("completed", empty)
    # The enrollment lists' filters, to the letter: certified_now counts what
    # status=completed&expired=false lists, expiring_within_30_days what
    # status=completed&expires_after=now&expires_before=now+30 days lists. Each is
    # counted as index ranges: the never-expiring ones apart from the rest.
    certified = (_completed(certification, partnership_uuid, Enrollment.expires_at.is_null())
                 + _completed(certification, partnership_uuid, Enrollment.expires_after(now)))
    soon = _completed(certification, partnership_uuid,
                      Enrollment.expires_after(now) & Enrollment.expires_before(now + EXPIRY_WINDOW))
    return {
        "certification_uuid": certification.uuid,
        "partnership_uuid": partnership_uuid.lower() if partnership_uuid else None,
        "enrollments": {"total": sum(int(row["enrollments"]) for row in sums.values()),
                        **counts},
        "pass_rate": pass_rate(counts),
        "average_best_score": number(best / scored) if scored else None,
        "average_days_to_complete": (number(float(done["days_sum"]) / int(done["timed"]))
                                     if done["timed"] else None),
        "certified_now": certified,
        "expiring_within_30_days": soon,
    }
