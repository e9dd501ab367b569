"""Tenant isolation: nothing of one account is visible or changeable with another
account's key; it answers 404, as if absent."""
from certapi.contract import expect
from certapi.contract.agent import attempts_path, enrollment_path
from certapi.contract.pagination import walk
from certapi.contract.runner import scenario
from certapi.contract.seed import enrollments


def first_account_world(api) -> dict:
    """A partner, its user, a certification, an enrollment and an attempt, with their paths."""
    partner = api.partner()
    user = api.user(partner)
    certification = api.certification()
    enrollment = api.enroll(certification, user)
    result = expect.shaped(api.attempt(enrollment, 10), 201, "AttemptResult")
    return {
        "partner": partner, "user": user, "certification": certification,
        "enrollment": result["enrollment"], "attempt_uuid": result["uuid"],
        "paths": {
            f"/partners/{partner['uuid']}": partner,
            f"/users/{user['uuid']}": user,
            f"/certifications/{certification['uuid']}": certification,
            enrollment_path(enrollment): result["enrollment"],
        },
        "changes": {
            f"/partners/{partner['uuid']}": {"name": "Taken over"},
            f"/users/{user['uuid']}": {"first_name": "Taken"},
            f"/certifications/{certification['uuid']}": {"status": "archived"},
            enrollment_path(enrollment): {"progress_percentage": 99},
        },
    }


def second_account(ctx):
    """The other account's agent, which must be able to write."""
    response = ctx.other.post("/partners", {"name": "Second account probe"})
    if response.status_code == 403:
        raise expect.Skip("the second account's key is read-only; tenancy needs a write key")
    expect.shaped(response, 201, "Partner")
    return ctx.other


@scenario("tenancy.reads", needs=("other",))
def reads(ctx):
    """Another account's key gets 404 for every one of this account's resources and lists."""
    world, other = first_account_world(ctx.write), second_account(ctx)
    enrollment = world["enrollment"]
    paths = [*world["paths"], f"/partners/{world['partner']['uuid']}/users",
             f"/users/{world['user']['uuid']}/enrollments", enrollments(world["certification"]),
             attempts_path(enrollment), f"{attempts_path(enrollment)}/{world['attempt_uuid']}"]
    for path in paths:
        expect.error(other.get(path), 404, "not_found")
    found = expect.shaped(other.get("/users", params={"email": world["user"]["email"]}), 200,
                          "UserList")
    expect.equal(found["pagination"]["total"], 0, "another account's user found by email")
    by_partner = expect.shaped(other.get("/users", params={"partnership_uuid": world["partner"]["uuid"]}),
                               200, "UserList")
    expect.equal(by_partner["pagination"]["total"], 0, "another account's users by partner")
    mine = {item["uuid"] for item in world["paths"].values()}
    for path, schema in (("/partners", "PartnerList"), ("/users", "UserList"),
                         ("/certifications", "CertificationList")):
        seen = {item["uuid"] for item in walk(other, path, schema, 100, "created_at")}
        expect.check(not seen & mine, f"GET {path} with another account's key lists this account's data")


@scenario("tenancy.writes", needs=("other",))
def writes(ctx):
    """Another account cannot change, delete, enroll into or refer to this account's resources."""
    world, other = first_account_world(ctx.write), second_account(ctx)
    user, certification, enrollment = world["user"], world["certification"], world["enrollment"]
    for path, payload in world["changes"].items():
        expect.error(other.patch(path, payload), 404, "not_found")
        expect.error(other.delete(path), 404, "not_found")
    expect.error(other.attempt(enrollment, 100), 404, "not_found")
    expect.error(other.post(enrollments(certification), {"user_uuid": user["uuid"]}), 404,
                 "not_found")
    own = other.certification()
    expect.error(other.post(enrollments(own), {"user_uuid": user["uuid"],
                                               "partnership_uuid": world["partner"]["uuid"]}),
                 404, "not_found")
    expect.error(other.post("/users", {"email": other.email(),
                                       "partnership_uuid": world["partner"]["uuid"]}),
                 404, "not_found", names="partner")
    for path, before in world["paths"].items():
        expect.equal(ctx.write.get(path).json(), before, f"{path} after another account's writes")


@scenario("tenancy.email_per_account", needs=("other",))
def email_per_account(ctx):
    """Email uniqueness is per account: another account may hold the same address."""
    user = ctx.write.user()
    other = second_account(ctx)
    twin = expect.shaped(other.post("/users", {"email": user["email"]}), 201, "User")
    expect.check(twin["uuid"] != user["uuid"], "the second account got the first account's user")
