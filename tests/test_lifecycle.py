"""The enrollment state machine, without a database: every allowed move and every refusal."""
import datetime

import pytest

from certapi.errors import Conflict, ValidationFailed
from certapi.lifecycle import (
    TransitionRefused,
    check_enrollment,
    check_may_enroll,
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


# --- enrolling (again): check_may_enroll --------------------------------------------------

DAY = datetime.timedelta(days=1)
ALREADY = "^User is already enrolled in this certification"


def held(status, completed_days_ago=None, expires_in_days=None, uuid=None) -> Enrollment:
    """One enrollment the user holds; completion and expiry relative to NOW."""
    completed = NOW - completed_days_ago * DAY if completed_days_ago is not None else None
    expires = NOW + expires_in_days * DAY if expires_in_days is not None else None
    return enrollment(status=status, completed_at=completed, expires_at=expires,
                      enrolled_at=(completed or NOW) - DAY, **({"uuid": uuid} if uuid else {}))


def renewing(window=30) -> Certification:
    return certification(validity_days=365, renewal_window_days=window)


@pytest.mark.parametrize("existing", [[], ["failed"], ["failed", "failed"]])
def test_enrolling_again_after_failing_is_allowed(existing):
    assert check_may_enroll([held(s) for s in existing], renewing(), NOW) is None


@pytest.mark.parametrize("live", ["enrolled", "in_progress"])
def test_an_open_enrollment_blocks_another(live):
    with pytest.raises(TransitionRefused, match=ALREADY + "$"):
        check_may_enroll([held("failed"), held(live)], renewing(), NOW)


def test_an_open_renewal_blocks_another_even_when_the_completion_expired():
    past = held("completed", completed_days_ago=400, expires_in_days=-35)
    with pytest.raises(TransitionRefused, match=ALREADY + "$"):
        check_may_enroll([past, held("enrolled")], renewing(), NOW)


def test_a_completion_that_never_expires_blocks_another():
    with pytest.raises(TransitionRefused, match=ALREADY + "$"):
        check_may_enroll([held("completed", completed_days_ago=1)], certification(), NOW)


def test_a_valid_completion_outside_the_window_blocks_another_and_says_when():
    done = held("completed", completed_days_ago=10, expires_in_days=355)
    with pytest.raises(TransitionRefused, match=ALREADY) as refused:
        check_may_enroll([done], renewing(30), NOW)
    renewable = (NOW + 325 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"it can be renewed from {renewable}" in refused.value.message


@pytest.mark.parametrize("expires_in_days", [30, 29.99, 1, 0.001])
def test_a_completion_inside_its_window_is_renewed(expires_in_days):
    done = held("completed", completed_days_ago=335, expires_in_days=expires_in_days)
    assert check_may_enroll([done], renewing(30), NOW) is done


def test_the_window_starts_exactly_renewal_window_days_before_expiry():
    done = held("completed", completed_days_ago=300, expires_in_days=30)
    assert check_may_enroll([done], renewing(30), NOW) is done
    with pytest.raises(TransitionRefused):
        check_may_enroll([done], renewing(29), NOW)


@pytest.mark.parametrize("expires_in_days", [0, -1, -1000])
def test_an_expired_completion_is_renewed(expires_in_days):
    done = held("completed", completed_days_ago=400, expires_in_days=expires_in_days)
    assert check_may_enroll([done], renewing(30), NOW) is done


def test_window_zero_renews_only_once_expired():
    done = held("completed", completed_days_ago=364, expires_in_days=0.01)
    with pytest.raises(TransitionRefused):
        check_may_enroll([done], renewing(0), NOW)
    assert check_may_enroll([done], renewing(0), NOW + DAY) is done


def test_only_the_most_recent_completion_counts():
    old = held("completed", completed_days_ago=800, expires_in_days=-435, uuid="old")
    renewal = held("completed", completed_days_ago=20, expires_in_days=345, uuid="new")
    with pytest.raises(TransitionRefused):
        check_may_enroll([renewal, old], renewing(30), NOW)
    expiring = held("completed", completed_days_ago=340, expires_in_days=25, uuid="new")
    assert check_may_enroll([expiring, old], renewing(30), NOW) is expiring
    assert check_may_enroll([old, expiring], renewing(30), NOW) is expiring


def test_failed_then_completed_counts_the_completion():
    done = held("completed", completed_days_ago=2, expires_in_days=363)
    with pytest.raises(TransitionRefused):
        check_may_enroll([held("failed"), done], renewing(30), NOW)
    expired = held("completed", completed_days_ago=370, expires_in_days=-5)
    assert check_may_enroll([held("failed"), expired], renewing(30), NOW) is expired


def test_a_failed_renewal_leaves_the_completion_renewable():
    expired = held("completed", completed_days_ago=370, expires_in_days=-5)
    assert check_may_enroll([expired, held("failed")], renewing(30), NOW) is expired


def test_a_never_expiring_latest_completion_wins_over_an_expired_older_one():
    old = held("completed", completed_days_ago=800, expires_in_days=-435)
    forever = held("completed", completed_days_ago=5)
    with pytest.raises(TransitionRefused, match=ALREADY + "$"):
        check_may_enroll([old, forever], renewing(30), NOW)


def test_refusals_are_409_conflicts():
    assert issubclass(TransitionRefused, Conflict) and TransitionRefused.status == 409
