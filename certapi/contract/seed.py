"""The seed endpoint, POST /certifications/{uuid}/enrollments, held to the public
reference page field by field and to the contract's rules: one enrollment open per user
and certification, only published certifications, partner users under their own partner."""
import re
import uuid as uuidlib

from certapi.contract import expect
from certapi.contract.agent import attempts_path, enrollment_path
from certapi.contract.runner import scenario

# The seed page's path pattern; server-generated uuids must fit what paths accept.
UUID = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
    r"|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$")
# Field → (JSON types, nullable), exactly as the seed page lists them.
SEED_FIELDS = {
    "uuid": ((str,), False),
    "user_uuid": ((str,), False),
    "user_email": ((str,), False),
    "status": ((str,), False),
    "progress_percentage": ((int, float), False),
    "enrolled_at": ((str,), False),
    "started_at": ((str,), True),
    "completed_at": ((str,), True),
    "assessment_best_score": ((int, float), True),
    "assessment_passed": ((bool,), True),
}
STATUSES = ("enrolled", "in_progress", "completed", "failed")


def enrollments(certification: dict) -> str:
    return f"/certifications/{certification['uuid']}/enrollments"


def absent() -> str:
    return str(uuidlib.uuid4())


def check_seed_fields(body: dict, where: str) -> None:
    for name, (types, nullable) in SEED_FIELDS.items():
        expect.check(name in body, f"{where}: field {name!r} is missing")
        value = body[name]
        ok = (value is None and nullable) or (
            isinstance(value, types) and not (isinstance(value, bool) and bool not in types))
        expect.check(ok, f"{where}: {name} = {value!r} is not "
                     f"{'/'.join(t.__name__ for t in types)}{' or null' if nullable else ''}")
    expect.check(body["status"] in STATUSES, f"{where}: status {body['status']!r} not in {STATUSES}")


@scenario("seed.enroll_shape")
def enroll_shape(ctx):
    """201, Location, and the exact documented shape of a new enrollment."""
    api = ctx.write
    certification = api.certification()
    user = api.user(email=f"Mixed.Case-{api.tag}@Example.com", first_name="Ada")
    response = api.post(enrollments(certification), {"user_uuid": user["uuid"]})
    body = expect.body(expect.status(response, 201))
    check_seed_fields(body, "POST enrollments")
    expect.shape(body, "Enrollment", "POST enrollments")
    expect.location(response, f"{enrollments(certification)}/{body['uuid']}")
    expect.check(UUID.match(body["uuid"]), f"uuid {body['uuid']!r} does not fit the seed's pattern")
    expect.equal(body["user_uuid"], user["uuid"], "user_uuid")
    expect.equal(body["user_email"], user["email"], "user_email (as the user was created)")
    expect.equal(body["certification_uuid"], certification["uuid"], "certification_uuid")
    expect.equal(body["status"], "enrolled", "status of a new enrollment")
    expect.equal(body["progress_percentage"], 0, "progress_percentage of a new enrollment")
    expect.equal(body["assessment_attempts"], 0, "assessment_attempts of a new enrollment")
    expect.timestamp(body["enrolled_at"], "enrolled_at")
    for name in ("started_at", "completed_at", "assessment_best_score", "assessment_passed",
                 "expires_at", "partnership_uuid"):
        expect.equal(body[name], None, f"{name} of a new enrollment")
    fetched = expect.shaped(api.get(enrollment_path(body)), 200, "Enrollment")
    expect.equal(fetched, body, "GET of the new enrollment")


@scenario("seed.partner_user")
def partner_user(ctx):
    """A partner user enrolls with their own partnership_uuid; missing or foreign → 422."""
    api = ctx.write
    certification = api.certification()
    partner, stranger = api.partner(), api.partner(name="Another partner")
    user = api.user(partner)
    path = enrollments(certification)
    missing = api.post(path, {"user_uuid": user["uuid"]})
    expect.error(missing, 422, "validation_error", place="body/partnership_uuid")
    foreign = api.post(path, {"user_uuid": user["uuid"], "partnership_uuid": stranger["uuid"]})
    expect.error(foreign, 422, "validation_error", place="body/partnership_uuid")
    good = api.post(path, {"user_uuid": user["uuid"], "partnership_uuid": partner["uuid"]})
    body = expect.shaped(good, expect.CREATED, "Enrollment")
    expect.equal(body["partnership_uuid"], partner["uuid"], "partnership_uuid")
    staff = api.user()
    expect.error(api.post(path, {"user_uuid": staff["uuid"], "partnership_uuid": partner["uuid"]}),
                 422, "validation_error", place="body/partnership_uuid")
    staff_body = expect.shaped(api.post(path, {"user_uuid": staff["uuid"]}), expect.CREATED,
                               "Enrollment")
    expect.equal(staff_body["partnership_uuid"], None, "partnership_uuid of a staff enrollment")


@scenario("seed.not_found")
def not_found(ctx):
    """Absent certification, user or partnership → 404 naming what is missing."""
    api = ctx.write
    certification, user = api.certification(), api.user()
    response = api.post(f"/certifications/{absent()}/enrollments", {"user_uuid": user["uuid"]})
    expect.error(response, 404, "not_found", names="certification")
    response = api.post(enrollments(certification), {"user_uuid": absent()})
    expect.error(response, 404, "not_found", names="user")
    response = api.post(enrollments(certification),
                        {"user_uuid": user["uuid"], "partnership_uuid": absent()})
    expect.error(response, 404, "not_found")


@scenario("seed.invalid_input")
def invalid_input(ctx):
    """422 with the place named: missing or malformed user_uuid, unknown fields, bad path uuid."""
    api = ctx.write
    certification, user = api.certification(), api.user()
    path = enrollments(certification)
    expect.error(api.post(path, {}), 422, "validation_error", place="body/user_uuid")
    expect.error(api.post(path, {"partnership_uuid": absent()}), 422, "validation_error",
                 place="body/user_uuid")
    expect.error(api.post(path, {"user_uuid": "not-a-uuid"}), 422, "validation_error",
                 place="body/user_uuid")
    expect.error(api.post(path, {"user_uuid": 42}), 422, "validation_error", place="body/user_uuid")
    expect.error(api.post(path, {"user_uuid": user["uuid"], "extra": 1}), 422,
                 "validation_error", place="body")
    expect.error(api.post("/certifications/not-a-uuid/enrollments", {"user_uuid": user["uuid"]}),
                 422, "validation_error", place="path/uuid")
    # The pattern's two special values are well-formed: absent, not invalid.
    expect.error(api.post(f"/certifications/{'0' * 8}-0000-0000-0000-{'0' * 12}/enrollments",
                          {"user_uuid": user["uuid"]}), 404, "not_found")


@scenario("seed.not_published")
def not_published(ctx):
    """Enrolling in a draft or archived certification → 409; published again → 201."""
    api = ctx.write
    user = api.user()
    for state in ("draft", "archived"):
        certification = api.certification(status=state)
        response = api.post(enrollments(certification), {"user_uuid": user["uuid"]})
        expect.error(response, 409, "conflict")
    expect.shaped(api.patch(f"/certifications/{certification['uuid']}", {"status": "published"}),
                  200, "Certification")
    expect.shaped(api.post(enrollments(certification), {"user_uuid": user["uuid"]}), expect.CREATED,
                  "Enrollment")


@scenario("seed.duplicate_enrollment")
def duplicate_enrollment(ctx):
    """A second enrollment while one is enrolled, in_progress or completed → 409."""
    api = ctx.write
    certification, user = api.certification(passing_score=50), api.user()
    first = api.enroll(certification, user)
    again = {"user_uuid": user["uuid"]}
    expect.error(api.post(enrollments(certification), again), 409, "conflict")
    expect.status(api.progress(first, 10), 200)
    expect.error(api.post(enrollments(certification), again), 409, "conflict")
    expect.status(api.attempt(first, 90), 201)
    expect.error(api.post(enrollments(certification), again), 409, "conflict")
    listed = expect.shaped(api.get(enrollments(certification), params={"user_uuid": user["uuid"]}),
                           200, "EnrollmentList")
    expect.equal(listed["pagination"]["total"], 1, "enrollments of the user after refused repeats")


@scenario("seed.reenroll_after_failed")
def reenroll_after_failed(ctx):
    """After failed the user may enroll again (the failed one stays); after a delete too."""
    api = ctx.write
    certification, user = api.certification(max_attempts=1, passing_score=60), api.user()
    first = api.enroll(certification, user)
    result = expect.shaped(api.attempt(first, 10), 201, "AttemptResult")
    expect.equal(result["enrollment"]["status"], "failed", "status after the only attempt failed")
    second = expect.shaped(api.post(enrollments(certification), {"user_uuid": user["uuid"]}),
                           expect.CREATED, "Enrollment")
    expect.check(second["uuid"] != first["uuid"], "re-enrolling returned the failed enrollment")
    expect.equal((second["status"], second["assessment_attempts"], second["assessment_best_score"],
                  second["assessment_passed"]), ("enrolled", 0, None, None),
                 "status and assessment of the new enrollment")
    old = expect.shaped(api.get(enrollment_path(first)), 200, "Enrollment")
    expect.equal(old["status"], "failed", "status of the failed enrollment, kept in history")
    history = expect.shaped(api.get(f"/users/{user['uuid']}/enrollments"), 200, "EnrollmentList")
    expect.equal(sorted(e["status"] for e in history["data"]), ["enrolled", "failed"],
                 "the user's enrollments")
    expect.status(api.delete(enrollment_path(second)), 204)
    expect.status(api.get(attempts_path(second)), 404)
    expect.shaped(api.post(enrollments(certification), {"user_uuid": user["uuid"]}),
                  expect.CREATED, "Enrollment")
