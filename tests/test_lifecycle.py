"""The enrollment state machine, without a database: every allowed move and every refusal."""
import datetime

import pytest

from certapi.errors import Conflict, ValidationFailed
from certapi.lifecycle import (
    TransitionRefused,
    check_enrollment,
    check_not_enrolled,
    record_attempt,
    report_progress,
)
from models import Certification, Enrollment, Partner, User

NOW = datetime.datetime(2026, 11, 26, 12, 0, 0)
LATER = NOW + datetime.timedelta(hours=1)


def enrollment(**fields) -> Enrollment:
    base = dict(status="enrolled", progress_percentage=0, assessment_attempts=0,
                assessment_best_score=None, assessment_passed=None, started_at=None,
                completed_at=None, expires_at=None)
    return Enrollment(**{**base, **fields})


def certification(**fields) -> Certification:
    return Certification(**{"passing_score": 70, "max_attempts": None, "validity_days": None, **fields})


# --- progress ---------------------------------------------------------------------------

def test_first_progress_starts_the_enrollment():
    e = enrollment()
    report_progress(e, 25, NOW)
    assert (e.status, e.progress_percentage, e.started_at) == ("in_progress", 25, NOW)


def test_started_at_is_set_once():
    e = enrollment()
    report_progress(e, 10, NOW)
    report_progress(e, 20, LATER)
    assert (e.status, e.progress_percentage, e.started_at) == ("in_progress", 20, NOW)


def test_progress_may_stay_equal():
    e = enrollment(status="in_progress", progress_percentage=40, started_at=NOW)
    report_progress(e, 40, LATER)
    assert e.progress_percentage == 40


def test_progress_zero_still_starts():
    e = enrollment()
    report_progress(e, 0, NOW)
    assert e.status == "in_progress" and e.started_at == NOW


def test_progress_never_goes_down():
    e = enrollment(status="in_progress", progress_percentage=50, started_at=NOW)
    with pytest.raises(TransitionRefused, match="cannot go down"):
        report_progress(e, 49.5, LATER)
    assert e.progress_percentage == 50


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_progress_refused_when_final(status):
    e = enrollment(status=status, progress_percentage=60)
    with pytest.raises(TransitionRefused, match=status):
        report_progress(e, 80, NOW)
    assert e.status == status and e.progress_percentage == 60


# --- attempts ---------------------------------------------------------------------------

def test_passing_attempt_completes():
    e = enrollment(progress_percentage=30)
    passed = record_attempt(e, certification(passing_score=80), 80, NOW)
    assert passed is True
    assert e.status == "completed"
    assert e.completed_at == NOW and e.started_at == NOW
    assert e.progress_percentage == 100
    assert (e.assessment_attempts, e.assessment_best_score, e.assessment_passed) == (1, 80, True)
    assert e.expires_at is None


def test_completion_sets_expiry_from_validity_days():
    e = enrollment()
    record_attempt(e, certification(validity_days=30), 90, NOW)
    assert e.expires_at == NOW + datetime.timedelta(days=30)


def test_failing_attempt_starts_and_keeps_open():
    e = enrollment()
    passed = record_attempt(e, certification(), 69.9, NOW)
    assert passed is False
    assert (e.status, e.started_at, e.completed_at) == ("in_progress", NOW, None)
    assert (e.assessment_attempts, e.assessment_best_score, e.assessment_passed) == (1, 69.9, False)
    assert e.progress_percentage == 0


def test_attempt_does_not_reset_started_at():
    e = enrollment(status="in_progress", started_at=NOW)
    record_attempt(e, certification(), 10, LATER)
    assert e.started_at == NOW


def test_best_score_is_the_highest():
    e = enrollment()
    cert = certification(passing_score=90)
    for score in (40, 70, 55):
        record_attempt(e, cert, score, NOW)
    assert (e.assessment_attempts, e.assessment_best_score, e.assessment_passed) == (3, 70, False)


def test_last_allowed_failing_attempt_fails():
    e = enrollment()
    cert = certification(max_attempts=2)
    record_attempt(e, cert, 10, NOW)
    assert e.status == "in_progress"
    record_attempt(e, cert, 20, LATER)
    assert e.status == "failed"
    assert e.completed_at is None and e.expires_at is None
    assert (e.assessment_attempts, e.assessment_best_score) == (2, 20)


def test_passing_on_the_last_attempt_completes():
    e = enrollment(status="in_progress", started_at=NOW, assessment_attempts=2,
                   assessment_best_score=50, assessment_passed=False)
    assert record_attempt(e, certification(max_attempts=3), 75, LATER) is True
    assert e.status == "completed" and e.assessment_attempts == 3


def test_unlimited_attempts_never_fail():
    e = enrollment()
    cert = certification(max_attempts=None)
    for _ in range(50):
        record_attempt(e, cert, 0, NOW)
    assert e.status == "in_progress" and e.assessment_attempts == 50


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_attempts_refused_when_final(status):
    e = enrollment(status=status, assessment_attempts=1, assessment_best_score=90)
    with pytest.raises(TransitionRefused, match=status):
        record_attempt(e, certification(), 95, NOW)
    assert e.assessment_attempts == 1 and e.status == status


def test_attempts_refused_when_limit_lowered_below_use():
    e = enrollment(status="in_progress", started_at=NOW, assessment_attempts=3,
                   assessment_best_score=10, assessment_passed=False)
    with pytest.raises(TransitionRefused, match="attempts are used"):
        record_attempt(e, certification(max_attempts=2), 100, LATER)
    assert e.assessment_attempts == 3 and e.status == "in_progress"


def test_score_exactly_at_passing_passes_and_just_below_fails():
    assert record_attempt(enrollment(), certification(passing_score=70), 70, NOW) is True
    assert record_attempt(enrollment(), certification(passing_score=70), 69.99, NOW) is False


# --- enrolling --------------------------------------------------------------------------

def _user(partner_uuid=None) -> User:
    return User(uuid="u-1", partner=partner_uuid)


def test_direct_user_enrolls_without_partner():
    check_enrollment(certification(status="published"), _user(), None)


def test_partner_user_enrolls_through_their_partner():
    check_enrollment(certification(status="published"), _user("p-1"), Partner(uuid="p-1"))


def test_partner_user_must_name_their_partner():
    with pytest.raises(ValidationFailed, match="^body/partnership_uuid: Required for partner users$"):
        check_enrollment(certification(status="published"), _user("p-1"), None)


@pytest.mark.parametrize("user_partner", [None, "p-2"])
def test_partner_must_be_the_users(user_partner):
    with pytest.raises(ValidationFailed, match="^body/partnership_uuid: Not the user's partner$"):
        check_enrollment(certification(status="published"), _user(user_partner), Partner(uuid="p-1"))


@pytest.mark.parametrize("status", ["draft", "archived"])
def test_only_published_certifications_take_enrollments(status):
    with pytest.raises(TransitionRefused, match=f"^Certification is {status}, not published$"):
        check_enrollment(certification(status=status), _user(), None)


def test_partner_rules_come_before_the_status_rule():
    with pytest.raises(ValidationFailed):
        check_enrollment(certification(status="draft"), _user("p-1"), None)


@pytest.mark.parametrize("existing", [[], ["failed"], ["failed", "failed"]])
def test_enrolling_again_after_failing_is_allowed(existing):
    check_not_enrolled(existing)


@pytest.mark.parametrize("live", ["enrolled", "in_progress", "completed"])
def test_a_live_enrollment_blocks_another(live):
    with pytest.raises(TransitionRefused, match="^User is already enrolled in this certification$"):
        check_not_enrolled(["failed", live])


def test_refusals_are_409_conflicts():
    assert issubclass(TransitionRefused, Conflict) and TransitionRefused.status == 409
