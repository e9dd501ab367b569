"""Partners, users and certifications: create (201 + Location), read, update, delete,
the uniqueness rules, and deletes refused while something still refers to a resource."""
from certapi.contract import expect
from certapi.contract.agent import enrollment_path
from certapi.contract.runner import scenario
from certapi.contract.seed import absent, enrollments


def create(api, path: str, payload: dict, schema: str) -> dict:
    response = api.post(path, payload)
    body = expect.shaped(response, 201, schema)
    expect.location(response, f"{path}/{body['uuid']}")
    expect.equal(expect.shaped(api.get(f"{path}/{body['uuid']}"), 200, schema), body,
                 f"GET of the new {schema}")
    return body


def update_then_delete(api, path: str, change: dict, schema: str, before: dict) -> None:
    body = expect.shaped(api.patch(path, change), 200, schema)
    for name, value in change.items():
        expect.equal(body[name], value, f"{schema}.{name} after PATCH")
    expect.equal(body["created_at"], before["created_at"], f"{schema}.created_at after PATCH")
    expect.check(expect.timestamp(body["updated_at"], "updated_at")
                 >= expect.timestamp(before["updated_at"], "updated_at"),
                 f"{schema}.updated_at went back on PATCH")
    expect.equal(expect.shaped(api.get(path), 200, schema), body, f"GET after PATCH of {schema}")
    expect.error(api.patch(path, {}), 422, "validation_error", place="body")
    expect.status(api.delete(path), 204)
    expect.error(api.get(path), 404, "not_found", names=schema)
    expect.error(api.delete(path), 404, "not_found", names=schema)
    expect.error(api.patch(path, change), 404, "not_found", names=schema)


@scenario("resources.partners")
def partners(ctx):
    """Partner create/get/update/delete; omitted fields are null; name is required."""
    api = ctx.write
    body = create(api, "/partners", {"name": "Acme Consulting"}, "Partner")
    for name in ("email", "website_url", "description"):
        expect.equal(body[name], None, f"Partner.{name} when omitted")
    full = create(api, "/partners", {"name": "Globex", "email": "p@globex.example",
                                     "website_url": "https://globex.example",
                                     "description": "Gold"}, "Partner")
    expect.equal(full["website_url"], "https://globex.example", "Partner.website_url")
    expect.error(api.post("/partners", {"email": "p@x.example"}), 422, "validation_error",
                 place="body/name")
    update_then_delete(api, f"/partners/{body['uuid']}", {"description": "Silver"}, "Partner", body)


@scenario("resources.users")
def users(ctx):
    """User create/get/update/delete; email unique per account, case-insensitively (409)."""
    api = ctx.write
    email = api.email()
    staff = create(api, "/users", {"email": email, "first_name": "Ada"}, "User")
    expect.equal(staff["partnership_uuid"], None, "partnership_uuid of a staff user")
    expect.equal(staff["last_name"], None, "last_name when omitted")
    expect.error(api.post("/users", {"email": email.upper()}), 409, "conflict")
    partner = api.partner()
    member = create(api, "/users", {"email": api.email(), "partnership_uuid": partner["uuid"]},
                    "User")
    expect.equal(member["partnership_uuid"], partner["uuid"], "partnership_uuid of a partner user")
    expect.error(api.post("/users", {"email": api.email(), "partnership_uuid": absent()}),
                 404, "not_found")
    expect.error(api.post("/users", {"first_name": "Nobody"}), 422, "validation_error",
                 place="body/email")
    expect.error(api.patch(f"/users/{member['uuid']}", {"email": email.title()}), 409, "conflict")
    expect.error(api.patch(f"/users/{member['uuid']}", {"partnership_uuid": absent()}), 404,
                 "not_found")
    update_then_delete(api, f"/users/{staff['uuid']}", {"last_name": "Lovelace"}, "User", staff)


@scenario("resources.certifications")
def certifications(ctx):
    """Certification create/get/update/delete, with the documented defaults and bounds."""
    api = ctx.write
    body = create(api, "/certifications", {"name": "Cloud Fundamentals"}, "Certification")
    expect.equal({k: body[k] for k in ("status", "passing_score", "max_attempts", "validity_days",
                                       "description")},
                 {"status": "draft", "passing_score": 70, "max_attempts": None,
                  "validity_days": None, "description": None}, "Certification defaults")
    given = {"name": "Advanced", "status": "published", "passing_score": 85.5,
             "max_attempts": 3, "validity_days": 365}
    full = create(api, "/certifications", given, "Certification")
    expect.equal({k: full[k] for k in given}, given, "Certification as created")
    for field, bad in (("passing_score", 101), ("status", "retired"), ("max_attempts", 0),
                       ("validity_days", "30")):
        expect.error(api.post("/certifications", {"name": "X", field: bad}), 422,
                     "validation_error", place=f"body/{field}")
    update_then_delete(api, f"/certifications/{body['uuid']}", {"status": "archived"},
                       "Certification", body)


@scenario("resources.in_use")
def in_use(ctx):
    """Deletes refused (409) while referred to: partner with users, user or certification with enrollments."""
    api = ctx.write
    partner = api.partner()
    user = api.user(partner)
    certification = api.certification(passing_score=50)
    enrollment = api.enroll(certification, user)
    expect.error(api.delete(f"/partners/{partner['uuid']}"), 409, "conflict")
    expect.error(api.delete(f"/users/{user['uuid']}"), 409, "conflict")
    expect.error(api.delete(f"/certifications/{certification['uuid']}"), 409, "conflict")
    expect.shaped(api.get(f"/users/{user['uuid']}"), 200, "User")
    # No change of partner while an enrollment is open; once it is finished, the user may.
    expect.error(api.patch(f"/users/{user['uuid']}", {"partnership_uuid": None}), 409, "conflict")
    expect.status(api.attempt(enrollment, 90), 201)
    moved = expect.shaped(api.patch(f"/users/{user['uuid']}", {"partnership_uuid": None}), 200, "User")
    expect.equal(moved["partnership_uuid"], None, "partnership_uuid after moving to staff")
    expect.error(api.delete(f"/partners/{partner['uuid']}"), 409, "conflict")  # its enrollment
    # Now nothing refers to them, so each delete is allowed.
    expect.status(api.delete(enrollment_path(enrollment)), 204)
    expect.status(api.delete(f"/certifications/{certification['uuid']}"), 204)
    expect.status(api.delete(f"/users/{user['uuid']}"), 204)
    expect.status(api.delete(f"/partners/{partner['uuid']}"), 204)


@scenario("resources.user_enrollments")
def user_enrollments(ctx):
    """GET /users/{uuid}/enrollments lists one user's enrollments across certifications."""
    api = ctx.write
    user, bystander = api.user(), api.user()
    first, second = api.certification(), api.certification()
    mine = [api.enroll(first, user), api.enroll(second, user)]
    api.enroll(first, bystander)
    expect.status(api.progress(mine[1], 10), 200)
    listed = expect.shaped(api.get(f"/users/{user['uuid']}/enrollments"), 200, "EnrollmentList")
    expect.equal(sorted(e["uuid"] for e in listed["data"]), sorted(e["uuid"] for e in mine),
                 "the user's enrollments")
    expect.equal({e["certification_uuid"] for e in listed["data"]},
                 {first["uuid"], second["uuid"]}, "certifications of the user's enrollments")
    started = expect.shaped(api.get(f"/users/{user['uuid']}/enrollments",
                                    params={"status": "in_progress"}), 200, "EnrollmentList")
    expect.equal([e["uuid"] for e in started["data"]], [mine[1]["uuid"]],
                 "the user's in_progress enrollments")
    expect.error(api.get(f"/users/{absent()}/enrollments"), 404, "not_found", names="user")
    expect.shaped(api.get(enrollments(first)), 200, "EnrollmentList")
