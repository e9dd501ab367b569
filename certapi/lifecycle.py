"""The enrollment lifecycle: enrolled → in_progress → completed | failed.

Every rule about how an enrollment moves lives here and nowhere else. The functions
change an enrollment in memory and raise ``TransitionRefused`` for anything the rules
forbid; storing the result (atomically) is the caller's job.
"""
import datetime

OPEN = ("enrolled", "in_progress")
FINAL = ("completed", "failed")


class TransitionRefused(Exception):
    """The change is not allowed in the enrollment's current state (a 409)."""


def _start(enrollment, now: datetime.datetime) -> None:
    if enrollment.status == "enrolled":
        enrollment.status = "in_progress"
        enrollment.started_at = now


def report_progress(enrollment, progress: float, now: datetime.datetime) -> None:
    if enrollment.status not in OPEN:
        raise TransitionRefused(f"Progress cannot change on a {enrollment.status} enrollment")
    if progress < enrollment.progress_percentage:
        raise TransitionRefused(
            f"Progress cannot go down (from {enrollment.progress_percentage:g} to {progress:g})"
        )
    _start(enrollment, now)
    enrollment.progress_percentage = progress


def record_attempt(enrollment, certification, score: float, now: datetime.datetime) -> bool:
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
