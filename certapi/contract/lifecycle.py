"""The enrollment lifecycle: enrolled → in_progress → completed | failed, through
progress reports and assessment attempts, and every move the rules refuse."""
import datetime

from certapi.contract import expect
from certapi.contract.agent import attempts_path, enrollment_path
from certapi.contract.runner import scenario


def attempt(api, enrollment: dict, score: float) -> dict:
    """Record an attempt; returns the enrollment after it, checking the attempt itself."""
    response = api.attempt(enrollment, score)
    result = expect.shaped(response, 201, "AttemptResult")
    expect.equal(result["score"], score, "attempt score")
    expect.location(response, f"{attempts_path(enrollment)}/{result['uuid']}")
    fetched = expect.shaped(api.get(enrollment_path(enrollment)), 200, "Enrollment")
    expect.equal(fetched, result["enrollment"], f"GET after the {score} attempt vs its result")
    return result


def get(api, enrollment: dict) -> dict:
    return expect.shaped(api.get(enrollment_path(enrollment)), 200, "Enrollment")


@scenario("lifecycle.progress")
def progress(ctx):
    """First progress starts it (started_at once); progress may stay, never go down (409)."""
    api = ctx.write
    enrollment = api.enroll(api.certification(), api.user())
    body = expect.shaped(api.progress(enrollment, 30), 200, "Enrollment")
    expect.equal(body["status"], "in_progress", "status after the first progress report")
    expect.equal(body["progress_percentage"], 30, "progress_percentage")
    started = expect.timestamp(body["started_at"], "started_at after the first progress report")
    body = expect.shaped(api.progress(enrollment, 33.3), 200, "Enrollment")
    expect.equal(body["progress_percentage"], 33.3, "progress_percentage")
    expect.equal(expect.timestamp(body["started_at"], "started_at"), started,
                 "started_at after a second report (set once)")
    expect.status(api.progress(enrollment, 33.3), 200)
    expect.error(api.progress(enrollment, 31), 409, "conflict")
    for bad in (101, -1, "50"):
        expect.error(api.progress(enrollment, bad), 422, "validation_error",
                     place="body/progress_percentage")
    expect.error(api.patch(enrollment_path(enrollment), {}), 422, "validation_error",
                 place="body/progress_percentage")
    after = get(api, enrollment)
    expect.equal(after["progress_percentage"], 33.3, "progress after refused changes")
    expect.equal(after["status"], "in_progress", "status after refused changes")
    # Only a passing attempt completes an enrollment; full progress does not.
    after = expect.shaped(api.progress(enrollment, 100), 200, "Enrollment")
    expect.equal((after["status"], after["completed_at"]), ("in_progress", None),
                 "status and completed_at at 100% progress without a passing attempt")


@scenario("lifecycle.attempts_then_pass")
def attempts_then_pass(ctx):
    """Attempts start it, keep the best score and the latest pass/fail; score ≥ passing_score completes."""
    api = ctx.write
    certification = api.certification(passing_score=80, max_attempts=5)
    enrollment = api.enroll(certification, api.user())
    for bad in (100.5, -1, True, "80", None):
        expect.error(api.attempt(enrollment, bad), 422, "validation_error", place="body/score")
    expect.equal(get(api, enrollment)["assessment_attempts"], 0, "attempts after refused ones")
    first = attempt(api, enrollment, 50)
    expect.equal(first["passed"], False, "passed of a 50 attempt (passing 80)")
    after = first["enrollment"]
    expect.equal(after["status"], "in_progress", "status after a failing attempt on 'enrolled'")
    expect.timestamp(after["started_at"], "started_at after the first attempt")
    expect.equal(after["assessment_attempts"], 1, "assessment_attempts")
    expect.equal(after["assessment_best_score"], 50, "assessment_best_score")
    expect.equal(after["assessment_passed"], False, "assessment_passed after a failing attempt")
    expect.equal(after["completed_at"], None, "completed_at after a failing attempt")
    after = attempt(api, enrollment, 79.3)["enrollment"]
    expect.equal(after["assessment_best_score"], 79.3, "assessment_best_score")
    after = attempt(api, enrollment, 20)["enrollment"]
    expect.equal(after["assessment_best_score"], 79.3, "best score after a lower attempt")
    expect.equal(after["assessment_attempts"], 3, "assessment_attempts")
    expect.equal(after["status"], "in_progress", "status with attempts left")
    final = attempt(api, enrollment, 80)
    expect.equal(final["passed"], True, "passed of an attempt equal to passing_score")
    after = final["enrollment"]
    expect.equal(after["status"], "completed", "status after a passing attempt")
    expect.equal(after["assessment_passed"], True, "assessment_passed after a passing attempt")
    expect.equal(after["assessment_best_score"], 80, "assessment_best_score")
    expect.equal(after["progress_percentage"], 100, "progress_percentage when completed")
    moments = [expect.timestamp(after[name], name)
               for name in ("enrolled_at", "started_at", "completed_at")]
    expect.check(moments == sorted(moments), "enrolled_at ≤ started_at ≤ completed_at does not hold")
    expect.equal(after["expires_at"], None, "expires_at without validity_days")
    listed = expect.shaped(api.get(attempts_path(enrollment)), 200, "AttemptList")
    expect.stable_order(listed["data"], "submitted_at", "attempts")
    made = [(50, False), (79.3, False), (20, False), (80, True)]
    seen = [(a["score"], a["passed"]) for a in listed["data"]]
    if len({a["submitted_at"] for a in listed["data"]}) == len(made):
        expect.equal(seen, made, "attempts, oldest first")
    expect.equal(sorted(seen), sorted(made), "attempts listed")
    one = expect.shaped(api.get(f"{attempts_path(enrollment)}/{final['uuid']}"), 200,
                        "AssessmentAttempt")
    expect.equal(one, {k: final[k] for k in one}, "GET of the passing attempt")


@scenario("lifecycle.completed_is_final")
def completed_is_final(ctx):
    """No attempt and no progress change on a completed enrollment (409), nothing moves."""
    api = ctx.write
    enrollment = api.enroll(api.certification(), api.user())
    done = attempt(api, enrollment, 100)["enrollment"]
    expect.equal(done["status"], "completed", "status after a perfect attempt")
    expect.error(api.attempt(enrollment, 100), 409, "conflict")
    expect.error(api.progress(enrollment, 100), 409, "conflict")
    expect.equal(get(api, enrollment), done, "completed enrollment after refused changes")


@scenario("lifecycle.max_attempts_fail")
def max_attempts_fail(ctx):
    """A failing attempt that uses the last of max_attempts fails it; then everything is 409."""
    api = ctx.write
    enrollment = api.enroll(api.certification(max_attempts=2, passing_score=70), api.user())
    expect.status(api.progress(enrollment, 25), 200)
    after = attempt(api, enrollment, 69.9)["enrollment"]
    expect.equal(after["status"], "in_progress", "status with one attempt left")
    after = attempt(api, enrollment, 30)["enrollment"]
    expect.equal(after["status"], "failed", "status after the last allowed attempt failed")
    expect.equal(after["completed_at"], None, "completed_at of a failed enrollment")
    expect.equal(after["assessment_passed"], False, "assessment_passed of a failed enrollment")
    expect.equal(after["assessment_attempts"], 2, "assessment_attempts")
    expect.equal(after["assessment_best_score"], 69.9, "assessment_best_score")
    expect.equal(after["progress_percentage"], 25, "progress of a failed enrollment")
    expect.equal(after["expires_at"], None, "expires_at of a failed enrollment")
    expect.error(api.attempt(enrollment, 100), 409, "conflict")
    expect.error(api.progress(enrollment, 90), 409, "conflict")
    expect.equal(get(api, enrollment), after, "failed enrollment after refused changes")
    single = api.enroll(api.certification(max_attempts=1, passing_score=70), api.user())
    after = attempt(api, single, 70)["enrollment"]
    expect.equal(after["status"], "completed", "status after passing the only allowed attempt")


@scenario("lifecycle.unlimited_attempts")
def unlimited_attempts(ctx):
    """With max_attempts null, failing attempts never fail the enrollment."""
    api = ctx.write
    enrollment = api.enroll(api.certification(max_attempts=None), api.user())
    for number in range(1, 5):
        after = attempt(api, enrollment, 10 * number)["enrollment"]
        expect.equal(after["status"], "in_progress", f"status after failing attempt {number}")
    expect.equal(after["assessment_attempts"], 4, "assessment_attempts")


@scenario("lifecycle.expiry")
def expiry(ctx):
    """Completing in a certification with validity_days sets expires_at = completed_at + days."""
    api = ctx.write
    enrollment = api.enroll(api.certification(validity_days=30), api.user())
    expect.equal(get(api, enrollment)["expires_at"], None, "expires_at before completion")
    after = attempt(api, enrollment, 95)["enrollment"]
    completed = expect.timestamp(after["completed_at"], "completed_at")
    expires = expect.timestamp(after["expires_at"], "expires_at after completion")
    drift = abs((expires - completed) - datetime.timedelta(days=30))
    expect.check(drift <= datetime.timedelta(minutes=1),
                 f"expires_at {after['expires_at']} is not completed_at {after['completed_at']} + 30 days")


@scenario("lifecycle.delete_enrollment")
def delete_enrollment(ctx):
    """DELETE removes the enrollment and its attempts: 204, then 404 everywhere."""
    api = ctx.write
    enrollment = api.enroll(api.certification(), api.user())
    attempt_uuid = attempt(api, enrollment, 10)["uuid"]
    expect.status(api.delete(enrollment_path(enrollment)), 204)
    expect.error(api.get(enrollment_path(enrollment)), 404, "not_found", names="enrollment")
    expect.error(api.get(attempts_path(enrollment)), 404, "not_found")
    expect.error(api.get(f"{attempts_path(enrollment)}/{attempt_uuid}"), 404, "not_found")
    expect.error(api.delete(enrollment_path(enrollment)), 404, "not_found")
    expect.error(api.progress(enrollment, 50), 404, "not_found")
