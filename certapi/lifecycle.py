"""The enrollment lifecycle: enrolled → in_progress → completed | failed.

Every rule about who may enroll and how an enrollment moves lives here and nowhere
else. The functions check and change objects in memory and raise an ``ApiError`` for
anything the rules forbid (``TransitionRefused``, a 409, for a state that does not
allow the change); finding rows and storing the result atomically is the caller's job.
"""
import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING

from certapi.errors import Conflict, ValidationFailed

if TYPE_CHECKING:
    from models import Certification, Enrollment, Partner, User

OPEN = ("enrolled", "in_progress")
ALREADY_ENROLLED = "User is already enrolled in this certification"


class TransitionRefused(Conflict):
    """The change is not allowed in the enrollment's current state (a 409)."""


def check_enrollment(certification: "Certification", user: "User",
                     partner: "Partner | None") -> None:
    """May ``user`` enroll in ``certification``, through ``partner`` if given?"""
    if user.partner_uuid is not None and partner is None:
        raise ValidationFailed("body/partnership_uuid: Required for partner users")
    if partner is not None and partner.uuid != user.partner_uuid:
        raise ValidationFailed("body/partnership_uuid: Not the user's partner")
    check_published(certification)


def check_published(certification: "Certification") -> None:
    """Only a published certification takes enrollments."""
    if certification.status != "published":
        raise TransitionRefused(f"Certification is {certification.status}, not published")


def check_may_enroll(held: Iterable["Enrollment"], certification: "Certification",
                     now: datetime.datetime) -> "Enrollment | None":
    """May a user holding ``held`` (their enrollments in ``certification``) enroll in it?

    Returns the completed enrollment the new one renews, or None for a first enrollment
    (none held, or only failed ones: a failure is history). Refused (409) while one is
    open, and while the most recent completion is valid and not yet inside the
    certification's ``renewal_window_days``: it expired, or expires within that many
    days, and the user may recertify. The unique index on open enrollments
    (migration 0007) holds the open-one rule against races, renewals included."""
    held = list(held)
    if any(enrollment.status in OPEN for enrollment in held):
        raise TransitionRefused(ALREADY_ENROLLED)
    completions = [enrollment for enrollment in held if enrollment.status == "completed"]
    if not completions:
        return None
    latest = max(completions, key=lambda e: (e.completed_at or e.enrolled_at, e.enrolled_at, e.uuid))
    if latest.expires_at is None:
        raise TransitionRefused(ALREADY_ENROLLED)
    renewable_from = renewal_opens(latest.expires_at, certification.renewal_window_days)
    if now < renewable_from:
        raise TransitionRefused(
            f"{ALREADY_ENROLLED} (completed, valid until {_stamp(latest.expires_at)}; "
            f"it can be renewed from {_stamp(renewable_from)})"
        )
    return latest


def renewal_opens(expires_at: datetime.datetime, renewal_window_days: int) -> datetime.datetime:
    """When a completion's renewal window opens: from then on its holder may recertify
    (check_may_enroll) and is told it is expiring (expiry_notice)."""
    return expires_at - datetime.timedelta(days=renewal_window_days)


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _start(enrollment: "Enrollment", now: datetime.datetime) -> None:
    if enrollment.status == "enrolled":
        enrollment.status = "in_progress"
        enrollment.started_at = now


def report_progress(enrollment: "Enrollment", progress: float, now: datetime.datetime) -> None:
    if enrollment.status not in OPEN:
        raise TransitionRefused(f"Progress cannot change on a {enrollment.status} enrollment")
    if progress < enrollment.progress_percentage:
        raise TransitionRefused(
            f"Progress cannot go down (from {enrollment.progress_percentage:g} to {progress:g})"
        )
    _start(enrollment, now)
    enrollment.progress_percentage = progress


def record_attempt(enrollment: "Enrollment", certification: "Certification", score: float,
                   now: datetime.datetime) -> bool:
    """Apply one assessment attempt; returns whether it passed."""
    if enrollment.status not in OPEN:
        raise TransitionRefused(f"No attempts are accepted on a {enrollment.status} enrollment")
    limit = certification.max_attempts
    if limit is not None and enrollment.assessment_attempts >= limit:
        # Only reachable when max_attempts was lowered after the attempts were made.
        raise TransitionRefused(f"All {limit} assessment attempts are used")

    _start(enrollment, now)
    passed = score >= certification.passing_score
    enrollment.assessment_attempts += 1
    best = enrollment.assessment_best_score
    enrollment.assessment_best_score = score if best is None else max(best, score)
    enrollment.assessment_passed = passed

    if passed:
        enrollment.status = "completed"
        enrollment.completed_at = now
        enrollment.progress_percentage = 100
        if certification.validity_days is not None:
            enrollment.expires_at = now + datetime.timedelta(days=certification.validity_days)
    elif limit is not None and enrollment.assessment_attempts >= limit:
        enrollment.status = "failed"
    return passed


def check_attempt_limit(new_limit: int | None, most_attempts_on_open: int | None) -> None:
    """A certification's ``max_attempts`` may change at any time, but never to a number
    an open enrollment has already used up: such an enrollment could neither take another
    attempt nor be failed by one, nor be enrolled again, and would stay open for good."""
    if new_limit is None or most_attempts_on_open is None:
        return
    if new_limit <= most_attempts_on_open:
        raise TransitionRefused(
            f"max_attempts cannot be {new_limit}: an open enrollment has already used "
            f"{most_attempts_on_open} attempts (allow more than that, or wait until the "
            "open enrollments are completed or failed)"
        )


def check_partner_change(old_partner: str | None, new_partner: str | None,
                         has_open_enrollments: bool) -> None:
    """An enrollment belongs to the partner its user had when enrolling, and keeps it
    when finished. A user with open enrollments cannot change partner: those enrollments
    would stay with the old partner (listed under it, keeping it from being deleted) while
    the user's progress happens under the new one."""
    if old_partner != new_partner and has_open_enrollments:
        raise TransitionRefused(
            "The user's partner cannot change while the user has open enrollments "
            "(enrolled or in_progress)"
        )


EXPIRING, EXPIRED = "enrollment.expiring", "enrollment.expired"


def expiry_notice(expires_at: datetime.datetime | None, renewal_window_days: int,
                  now: datetime.datetime) -> str | None:
    """The expiry event a completed enrollment is due at ``now``: ``enrollment.expired``
    once ``expires_at`` has passed, ``enrollment.expiring`` inside the renewal window
    (``expires_at`` − ``renewal_window_days`` ≤ now < ``expires_at``), else None. Each is
    raised once: an enrollment first seen already expired gets ``expired`` alone (an
    "about to expire" notice after the fact would only mislead), and a window of 0 days
    has no ``expiring``."""
    if expires_at is None:
        return None
    if expires_at <= now:
        return EXPIRED
    if renewal_opens(expires_at, renewal_window_days) <= now:
        return EXPIRING
    return None


def expiry_notice_silenced(renewed: bool) -> bool:
    """A holder who has already completed the recertification of an enrollment is not
    lapsing: that enrollment's expiry events are not raised (they are marked as handled
    without an event), so subscribers hear only about certificates that really run out."""
    return renewed
