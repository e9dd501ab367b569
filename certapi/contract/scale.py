"""Program scale: bulk enrollment (items judged one by one, in order), a certification's
stats (from the enrollments' states, open ones outside the pass rate) and the lists as
CSV (every matching row, RFC 4180, the formula guard)."""
import csv
import io

from certapi.contract import expect, schemas
from certapi.contract.agent import enrollment_path
from certapi.contract.runner import scenario
from certapi.contract.seed import absent, enrollments

CSV = {"Accept": "text/csv"}


def bulk_path(certification: dict) -> str:
    return f"{enrollments(certification)}/bulk"


def bulk(api, certification: dict, items: list[dict]) -> dict:
    """POST a bulk enrollment expecting 200; created enrollments are noted for cleanup."""
    response = api.post(bulk_path(certification), {"enrollments": items})
    body = expect.body(expect.status(response, 200))
    expect.shape(body, "BulkEnrollmentResponse", expect.what(response)[:80])
    for item in body["data"]:
        if item.get("status") == 201 and isinstance(item.get("enrollment"), dict):
            api.tracker.note("enrollment", enrollment_path(item["enrollment"]), api)
    return body


def listed_total(api, certification: dict) -> int:
    page = expect.shaped(api.get(enrollments(certification)), 200, "EnrollmentList")
    return page["pagination"]["total"]


@scenario("bulk.per_item_results")
def per_item_results(ctx):
    """Each item on its own and in order: a bad item does not stop the ones after it."""
    api = ctx.write
    certification, partner = api.certification(), api.partner()
    first, second, member = api.user(), api.user(), api.user(partner)
    items = [
        {"user_uuid": first["uuid"]},
        {"user_uuid": first["uuid"]},
        {"user_uuid": absent()},
        {"user_uuid": member["uuid"]},
        {"user_uuid": second["uuid"]},
        {"user_uuid": member["uuid"], "partnership_uuid": partner["uuid"]},
    ]
    body = bulk(api, certification, items)
    results = body["data"]
    expect.equal([r["index"] for r in results], list(range(len(items))), "indexes, in the order sent")
    expect.equal([r["status"] for r in results], [201, 409, 404, 422, 201, 201],
                 "item statuses (created, same user again, absent user, partner user without "
                 "partnership, then two good ones after the failures)")
    expect.equal(body["summary"], {"created": 3, "failed": 3}, "summary")
    for result, code in zip(results[1:4], ("conflict", "not_found", "validation_error"), strict=True):
        expect.equal(result["enrollment"], None, f"enrollment of failed item {result['index']}")
        expect.check(isinstance(result["error"], dict) and result["error"].get("code") == code,
                     f"item {result['index']}: error should have code {code!r}: {result['error']!r}")
    for result in (results[0], results[4], results[5]):
        expect.equal(result["error"], None, f"error of created item {result['index']}")
        created = result["enrollment"]
        expect.shape(created, "Enrollment", f"item {result['index']}'s enrollment")
        expect.equal(created["status"], "enrolled", f"item {result['index']}'s status")
        fetched = expect.shaped(api.get(enrollment_path(created)), 200, "Enrollment")
        expect.equal(fetched, created, f"GET of item {result['index']}'s enrollment")
    expect.equal(results[5]["enrollment"]["partnership_uuid"], partner["uuid"], "partnership_uuid")
    expect.equal(listed_total(api, certification), 3, "enrollments stored")


@scenario("bulk.whole_request_errors")
def whole_request_errors(ctx):
    """Absent certification 404, unpublished 409, a body that breaks the schema 422: nothing applied."""
    api = ctx.write
    user = api.user()
    good = {"enrollments": [{"user_uuid": user["uuid"]}]}
    # First a status the route alone gives (a server without it answers 404 here: MISSING).
    draft = api.certification(status="draft")
    expect.error(api.post(bulk_path(draft), good), 409, "conflict")
    expect.equal(listed_total(api, draft), 0, "enrollments of the draft certification")
    expect.error(api.post(f"/certifications/{absent()}/enrollments/bulk", good), 404, "not_found",
                 names="certification")
    certification = api.certification()
    for body, place in (({"enrollments": [{"user_uuid": user["uuid"]}, {}]}, "body/enrollments"),
                        ({"enrollments": []}, "body/enrollments"),
                        ({"enrollments": [{"user_uuid": user["uuid"]}] * 1001}, "body/enrollments"),
                        ({}, "body/enrollments")):
        expect.error(api.post(bulk_path(certification), body), 422, "validation_error", place=place)
    expect.equal(listed_total(api, certification), 0, "enrollments after refused bulk requests")


def stats(api, certification: dict, **params) -> dict:
    path = f"/certifications/{certification['uuid']}/stats"
    return expect.shaped(api.get(path, params=params), 200, "CertificationStats")


@scenario("stats.numbers")
def numbers(ctx):
    """Counts by status; pass rate over decided enrollments only; certified and expiring."""
    api = ctx.write
    certification = api.certification(passing_score=60, max_attempts=1, validity_days=10)
    partner = api.partner()
    passed = api.enroll(certification, api.user(partner))
    failed = api.enroll(certification, api.user())
    api.enroll(certification, api.user())
    started = api.enroll(certification, api.user())
    expect.status(api.attempt(passed, 80), 201)
    expect.status(api.attempt(failed, 10), 201)
    expect.status(api.progress(started, 10), 200)
    body = stats(api, certification)
    expect.equal(body["certification_uuid"], certification["uuid"], "certification_uuid")
    expect.equal(body["partnership_uuid"], None, "partnership_uuid without a filter")
    expect.equal(body["enrollments"], {"total": 4, "enrolled": 1, "in_progress": 1, "completed": 1,
                                       "failed": 1}, "enrollments by status")
    expect.equal(body["pass_rate"], 0.5, "pass_rate (1 completed, 1 failed; open ones do not count)")
    expect.equal(body["average_best_score"], 45, "average_best_score over enrollments with an attempt")
    days = body["average_days_to_complete"]
    expect.check(isinstance(days, (int, float)) and 0 <= days < 1,
                 f"average_days_to_complete of a completion made just now: {days!r}")
    expect.equal((body["certified_now"], body["expiring_within_30_days"]), (1, 1),
                 "certified_now and expiring_within_30_days (valid 10 days)")
    theirs = stats(api, certification, partnership_uuid=partner["uuid"])
    expect.equal(theirs["partnership_uuid"], partner["uuid"], "partnership_uuid filter, echoed")
    expect.equal((theirs["enrollments"]["total"], theirs["enrollments"]["completed"],
                  theirs["pass_rate"]), (1, 1, 1), "total, completed and pass_rate of one partnership")


@scenario("stats.empty_and_absent")
def empty_and_absent(ctx):
    """No enrollments: zeros and nulls; an unknown partnership filters to zeros; absent certification 404."""
    api = ctx.write
    certification = api.certification()
    body = stats(api, certification)
    expect.equal(body["enrollments"]["total"], 0, "total")
    expect.equal((body["pass_rate"], body["average_best_score"], body["average_days_to_complete"]),
                 (None, None, None), "pass_rate, average_best_score, average_days_to_complete")
    api.enroll(certification, api.user())
    expect.equal(stats(api, certification, partnership_uuid=absent())["enrollments"]["total"], 0,
                 "total for an unknown partnership")
    expect.error(api.get(f"/certifications/{absent()}/stats"), 404, "not_found")


def read_csv(response, label: str) -> list[list[str]]:
    expect.status(response, 200)
    kind = response.headers.get("content-type", "")
    expect.check(kind.startswith("text/csv"), f"{label}: Content-Type is {kind!r}, not text/csv",
                 response)
    disposition = response.headers.get("content-disposition", "")
    expect.check(disposition.startswith("attachment") and '.csv"' in disposition,
                 f"{label}: Content-Disposition {disposition!r} is not an attachment named …csv")
    text = response.content.decode("utf-8")
    expect.check(text.endswith("\r\n") and "\n" not in text.replace("\r\n", ""),
                 f"{label}: lines must end with CRLF (RFC 4180)")
    return list(csv.reader(io.StringIO(text, newline="")))


def fields(schema: str) -> list[str]:
    return list(schemas.spec()["components"]["schemas"][schema]["properties"])


@scenario("export.enrollments_csv")
def enrollments_csv(ctx):
    """Every matching row (no paging), a header of the JSON names in order, filters honoured."""
    api = ctx.write
    certification = api.certification(passing_score=50)
    made = [api.enroll(certification, api.user()) for _ in range(3)]
    expect.status(api.attempt(made[0], 75.5), 201)
    rows = read_csv(api.get(enrollments(certification), params={"per_page": 1}, headers=CSV),
                    "enrollments CSV")
    expect.equal(rows[0], fields("Enrollment"), "header row")
    page = expect.shaped(api.get(enrollments(certification)), 200, "EnrollmentList")
    expect.equal([row[0] for row in rows[1:]], [e["uuid"] for e in page["data"]],
                 "uuids of the CSV rows (all of them, in the list's order)")
    first = dict(zip(rows[0], rows[1], strict=False))
    expect.equal((first["status"], first["assessment_best_score"], first["assessment_passed"],
                  first["started_at"] != "", first["expires_at"]),
                 ("completed", "75.5", "true", True, ""), "values of a completed enrollment's row")
    done = read_csv(api.get(enrollments(certification), params={"format": "csv", "status": "completed"}),
                    "enrollments CSV with format=csv&status=completed")
    expect.equal([row[0] for row in done[1:]], [made[0]["uuid"]], "rows with status=completed")


@scenario("export.formula_guard")
def formula_guard(ctx):
    """Text cells starting with = + - @ get a leading ' ; quoting as RFC 4180 needs."""
    api = ctx.write
    names = ["=1+2", "+SUM(A1)", "-3", "@cmd", 'Quote "and", comma']
    users = [api.user(first_name=name) for name in names]
    for user, name in zip(users, names, strict=True):
        rows = read_csv(api.get("/users", params={"email": user["email"]}, headers=CSV), "users CSV")
        expect.equal(rows[0], fields("User"), "header row of the users CSV")
        expect.equal(len(rows), 2, f"rows for email={user['email']} (header and one user)")
        row = dict(zip(rows[0], rows[1], strict=False))
        wanted = name if name[0] not in "=+-@" else "'" + name
        expect.equal(row["first_name"], wanted, f"first_name cell of {name!r}")
        expect.equal(row["last_name"], "", "null as an empty cell")
