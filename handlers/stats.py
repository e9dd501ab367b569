"""A certification's numbers, from the enrollment tallies (migration 0009): the counts
and the sums behind the averages are kept as rows change, so the answer costs the same
at any size; only the time-dependent counts read enrollments, as index ranges. Two
prepared statements (models.prepared) answer a request: the ownership check with the
tallies, then the expiry counts."""
import datetime
from typing import Any, cast

from peewee import SQL, Case, Expression, Query, fn

from certapi.errors import NotFound
from models import Enrollment, tally
from models.base import number, utcnow
from models.prepared import Prepared, slot

Json = dict[str, Any]
STATUSES = ("enrolled", "in_progress", "completed", "failed")
EXPIRY_WINDOW = datetime.timedelta(days=30)


def pass_rate(counts: dict[str, int]) -> float | int | None:
    """completed ÷ (completed + failed): open enrollments are not decided yet."""
    decided = counts["completed"] + counts["failed"]
    return number(counts["completed"] / decided) if decided else None


def _current(partnered: bool) -> Query:
    """The completed enrollments not yet expired, counted as the enrollment lists' filters
    define them, to the letter: certified_now is what status=completed&expired=false
    lists (no expiry, or one after now), expiring_within_30_days what
    status=completed&expires_after=now&expires_before=now+30 days lists. Both are ranges
    of the enrollment_expiry index (certification, status, expires_at, partner), which
    holds the certificates still valid or about to lapse, never the certification's
    history: the never-expiring ones (NULL) in a subquery, and one pass over the range
    after now counts both that range and the 30 days at its start."""
    def completed(condition: Expression) -> Expression:
        condition &= ((Enrollment.certification == slot("certification"))
                      & (Enrollment.status == "completed"))
        if partnered:
            condition &= Enrollment.partner == slot("partner")
        return condition

    # The filters' own comparisons, given a slot where they take a moment.
    now, soon = cast(datetime.datetime, slot("now")), cast(datetime.datetime, slot("soon"))
    never = Enrollment.select(fn.COUNT(SQL("*"))).where(completed(Enrollment.expires_at.is_null()))
    return (Enrollment
            .select(never, fn.COUNT(SQL("*")),
                    fn.COUNT(Case(None, [(Enrollment.expires_before(soon), 1)])))
            .where(completed(Enrollment.expires_after(now))))


_CURRENT = Prepared(_current)


def get_certification_stats(uuid: str, user: str, partnership_uuid: str | None = None) -> Json:
    partner = partnership_uuid.lower() if partnership_uuid is not None else None
    sums = tally.certification_sums(uuid, user, partner)
    if sums is None:
        raise NotFound("Certification not found")
    now = utcnow()
    never, after_now, soon = _CURRENT.execute(
        partner is not None, certification=uuid.lower(), partner=partner, now=now,
        soon=now + EXPIRY_WINDOW).fetchone()
    empty = dict.fromkeys(tally.SUMS, 0)
    counts = {status: int(sums.get(status, empty)["enrollments"]) for status in STATUSES}
    scored = sum(int(row["scored"]) for row in sums.values())
    best = sum(float(row["best_score_sum"]) for row in sums.values())
    done = sums.get("completed", empty)
    return {
        "certification_uuid": uuid.lower(),
        "partnership_uuid": partner,
        "enrollments": {"total": sum(int(row["enrollments"]) for row in sums.values()),
                        **counts},
        "pass_rate": pass_rate(counts),
        "average_best_score": number(best / scored) if scored else None,
        "average_days_to_complete": (number(float(done["days_sum"]) / int(done["timed"]))
                                     if done["timed"] else None),
        "certified_now": int(never) + int(after_now),
        "expiring_within_30_days": int(soon),
    }
