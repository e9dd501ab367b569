"""Lists: page/per_page defaults and bounds, totals, and a stable order that never skips
or repeats an item across pages; plus the documented list filters."""
import math

from certapi.contract import expect
from certapi.contract.runner import scenario
from certapi.contract.seed import enrollments

USERS = 7
# A list walked to the end stops here: the suite may run against an account with data.
MAX_PAGES = 20


def page(api, path: str, schema: str, **params) -> dict:
    listed = expect.shaped(api.get(path, params=params), 200, schema)
    meta = listed["pagination"]
    label = f"GET {path} {params}"
    expect.equal(meta["total_pages"], math.ceil(meta["total"] / meta["per_page"]),
                 f"{label}: total_pages for total {meta['total']}")
    expected = max(0, min(meta["per_page"], meta["total"] - (meta["page"] - 1) * meta["per_page"]))
    expect.equal(len(listed["data"]), expected, f"{label}: items on page {meta['page']}")
    return listed


def walk(api, path: str, schema: str, per_page: int, time_field: str, **params) -> list[dict]:
    """Every item of a list, page by page, checking each page and the order across them."""
    items, number, total = [], 1, None
    while number <= MAX_PAGES:
        listed = page(api, path, schema, page=number, per_page=per_page, **params)
        meta = listed["pagination"]
        expect.equal((meta["page"], meta["per_page"]), (number, per_page),
                     f"GET {path}: page and per_page echoed")
        if total is not None:
            expect.equal(meta["total"], total, f"GET {path}: total on page {number}")
        total = meta["total"]
        items += listed["data"]
        if number >= meta["total_pages"]:
            break
        number += 1
    uuids = [item["uuid"] for item in items]
    expect.check(len(uuids) == len(set(uuids)), f"GET {path}: an item repeats across pages")
    if number < MAX_PAGES:
        expect.equal(len(items), total, f"GET {path}: items across all pages vs total")
    expect.stable_order(items, time_field, f"GET {path}")
    return items


@scenario("pagination.pages")
def pages(ctx):
    """Paging a partner's users: totals, sizes, order by created_at then uuid, no skips or repeats."""
    api = ctx.write
    partner = api.partner()
    made = [api.user(partner)["uuid"] for _ in range(USERS)]
    path = f"/partners/{partner['uuid']}/users"
    for per_page in (3, 2, 7, 100):
        items = walk(api, path, "UserList", per_page, "created_at")
        listed = [u["uuid"] for u in items]
        expect.equal(sorted(listed), sorted(made), f"users listed with per_page={per_page}")
        if len({u["created_at"] for u in items}) == USERS:  # no ties: creation order exactly
            expect.equal(listed, made, f"order of users listed with per_page={per_page}")
    beyond = page(api, path, "UserList", page=5, per_page=2)
    expect.equal((beyond["data"], beyond["pagination"]["total"]), ([], USERS), "a page past the end")
    first, again = (page(api, path, "UserList", per_page=3) for _ in range(2))
    expect.equal(first, again, "the same page asked twice")
    filtered = walk(api, "/users", "UserList", 3, "created_at", partnership_uuid=partner["uuid"])
    expect.equal(sorted(u["uuid"] for u in filtered), sorted(made), "users filtered by partner")


@scenario("pagination.defaults_and_bounds")
def defaults_and_bounds(ctx):
    """page defaults to 1 and per_page to 25; per_page 1–100 and page ≥ 1, else 422."""
    api = ctx.write
    api.partner()
    listed = page(api, "/partners", "PartnerList")
    expect.equal((listed["pagination"]["page"], listed["pagination"]["per_page"]), (1, 25),
                 "default page and per_page")
    page(api, "/partners", "PartnerList", per_page=100)
    page(api, "/partners", "PartnerList", per_page=1)
    for name, bad in (("per_page", 0), ("per_page", 101), ("page", 0), ("page", "two"),
                      ("per_page", "ten"), ("page", -1)):
        expect.error(api.get("/partners", params={name: bad}), 422, "validation_error",
                     place=f"query/{name}")
    certification = api.certification()
    empty = page(api, enrollments(certification), "EnrollmentList")
    expect.equal(empty["pagination"]["total"], 0, "total of an empty list")


@scenario("pagination.enrollment_filters")
def enrollment_filters(ctx):
    """A certification's enrollments page in enrollment order; status, user and partner filters."""
    api = ctx.write
    certification, partner = api.certification(), api.partner()
    users = [api.user(partner) if n % 2 else api.user() for n in range(5)]
    made = [api.enroll(certification, user) for user in users]
    expect.status(api.progress(made[2], 50), 200)
    path = enrollments(certification)
    items = walk(api, path, "EnrollmentList", 2, "enrolled_at")
    expect.equal(sorted(e["uuid"] for e in items), sorted(e["uuid"] for e in made),
                 "enrollments across pages")

    def only(label, expected, **params):
        found = walk(api, path, "EnrollmentList", 100, "enrolled_at", **params)
        expect.equal(sorted(e["uuid"] for e in found), sorted(e["uuid"] for e in expected), label)

    only("status=in_progress", [made[2]], status="in_progress")
    only("status=enrolled", [e for n, e in enumerate(made) if n != 2], status="enrolled")
    only("status=completed", [], status="completed")
    only("user_uuid filter", [made[3]], user_uuid=users[3]["uuid"])
    only("partnership_uuid filter", [made[1], made[3]], partnership_uuid=partner["uuid"])


@scenario("pagination.list_filters")
def list_filters(ctx):
    """Users by email (case-insensitive), certifications by status."""
    api = ctx.write
    user = api.user()
    api.user()
    found = page(api, "/users", "UserList", email=user["email"].upper())
    expect.equal([u["uuid"] for u in found["data"]], [user["uuid"]], "users with this email")
    archived = api.certification(status="archived")
    items = walk(api, "/certifications", "CertificationList", 100, "created_at", status="archived")
    expect.check(all(c["status"] == "archived" for c in items),
                 "status=archived returned a certification of another status")
    expect.check(archived["uuid"] in {c["uuid"] for c in items},
                 "status=archived does not list an archived certification")
