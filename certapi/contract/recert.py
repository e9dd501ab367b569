"""Expiry and recertification, as far as a client can see it without moving the server's
clock: a certification whose ``renewal_window_days`` is at least its ``validity_days``
puts a fresh completion inside its renewal window at once, so enrolling again renews it;
with a window of 0 the same completion blocks a new enrollment (409) until it expires,
which a suite cannot wait for (SKIP, with the reason). The expiry events
(``recert.expiry_*``, at the end) need the server's expiry scan running."""
import csv
import datetime
import io
import time

from certapi.contract import expect
from certapi.contract.agent import enrollment_path
from certapi.contract.expect import Skip
from certapi.contract.lifecycle import attempt, get
from certapi.contract.runner import scenario
from certapi.contract.scale import bulk
from certapi.contract.seed import enrollments

SECOND = datetime.timedelta(seconds=1)


def completed(api, certification: dict, user: dict | None = None) -> dict:
    """A new enrollment of ``user`` (a new user by default), completed by a perfect attempt."""
    enrollment = api.enroll(certification, user or api.user())
    done = attempt(api, enrollment, 100)["enrollment"]
    expect.equal(done["status"], "completed", "status after a perfect attempt")
    return done


def enroll_again(api, certification: dict, user_uuid: str):
    return api.post(enrollments(certification), {"user_uuid": user_uuid})


def renewable_at_once(api) -> dict:
    """validity_days 1 and renewal_window_days 1: every completion is inside its window."""
    return api.certification(validity_days=1, renewal_window_days=1)


def iso(moment: datetime.datetime, hours: int = 0) -> str:
    zone = datetime.timezone(datetime.timedelta(hours=hours))
    return moment.astimezone(zone).isoformat()


@scenario("recert.fields")
def fields(ctx):
    """renewal_window_days (default 30, ≥ 0, settable); expired and recertifies_enrollment_uuid
    on enrollments: false and null for a first one, and a fresh completion is not expired."""
    api = ctx.write
    certification = api.certification(validity_days=30)
    expect.shape(certification, "Certification", "POST /certifications")
    expect.equal(certification["renewal_window_days"], 30, "renewal_window_days by default")
    path = f"/certifications/{certification['uuid']}"
    changed = expect.shaped(api.patch(path, {"renewal_window_days": 0}), 200, "Certification")
    expect.equal(changed["renewal_window_days"], 0, "renewal_window_days after PATCH 0")
    expect.equal(api.certification(renewal_window_days=45)["renewal_window_days"], 45,
                 "renewal_window_days given at creation")
    for bad in (-1, "7", None):
        expect.error(api.patch(path, {"renewal_window_days": bad}), 422, "validation_error",
                     place="body/renewal_window_days")
    enrollment = api.enroll(certification, api.user())
    expect.equal((enrollment["expired"], enrollment["recertifies_enrollment_uuid"]),
                 (False, None), "expired and recertifies_enrollment_uuid of a first enrollment")
    done = attempt(api, enrollment, 100)["enrollment"]
    expect.equal(done["expired"], False, "expired of a completion valid for 30 days")


@scenario("recert.renew_in_window")
def renew_in_window(ctx):
    """A completion inside its renewal window may be renewed: 201, linked to it; the earlier
    one stays unchanged; an open renewal blocks another (409); the next renewal links the
    most recent completion."""
    api = ctx.write
    certification = renewable_at_once(api)
    done = completed(api, certification)
    response = enroll_again(api, certification, done["user_uuid"])
    renewal = expect.shaped(response, 201, "Enrollment")
    expect.location(response, f"{enrollments(certification)}/{renewal['uuid']}")
    expect.equal((renewal["status"], renewal["recertifies_enrollment_uuid"], renewal["expired"]),
                 ("enrolled", done["uuid"], False),
                 "status, recertifies_enrollment_uuid and expired of a renewal")
    expect.equal(get(api, done), done, "the renewed completion after its renewal")
    expect.error(enroll_again(api, certification, done["user_uuid"]), 409, "conflict")
    finished = attempt(api, renewal, 100)["enrollment"]
    expect.equal(finished["recertifies_enrollment_uuid"], done["uuid"],
                 "recertifies_enrollment_uuid after the renewal completed")
    response = enroll_again(api, certification, done["user_uuid"])
    next_one = expect.shaped(response, 201, "Enrollment")
    expect.equal(next_one["recertifies_enrollment_uuid"], finished["uuid"],
                 "a second renewal renews the most recent completion")
    listed = expect.shaped(api.get(enrollments(certification),
                                   params={"user_uuid": done["user_uuid"]}), 200, "EnrollmentList")
    expect.equal([(e["uuid"], e["recertifies_enrollment_uuid"]) for e in listed["data"]],
                 [(done["uuid"], None), (finished["uuid"], done["uuid"]),
                  (next_one["uuid"], finished["uuid"])], "the user's enrollments, oldest first")


@scenario("recert.outside_window")
def outside_window(ctx):
    """A valid completion outside its window is still a 409 (renewal_window_days 0, the
    default 30 against a year's validity, and a completion that never expires), and
    nothing is made."""
    api = ctx.write
    for label, settings in (("renewal_window_days 0", {"validity_days": 1,
                                                       "renewal_window_days": 0}),
                            ("the default window, 365 days valid", {"validity_days": 365}),
                            ("no validity_days", {})):
        certification = api.certification(**settings)
        done = completed(api, certification)
        message = expect.error(enroll_again(api, certification, done["user_uuid"]), 409,
                               "conflict")
        expect.check("already enrolled" in message,
                     f"{label}: the 409 should say the user is already enrolled: {message!r}")
        page = expect.shaped(api.get(enrollments(certification)), 200, "EnrollmentList")
        expect.equal([e["uuid"] for e in page["data"]], [done["uuid"]],
                     f"{label}: enrollments after the refused renewal")


@scenario("recert.bulk")
def bulk_renewal(ctx):
    """Bulk enrollment judges renewals by the same rule: a renewable holder → 201 linked,
    the same holder again in the request → 409, a holder outside the window → 409."""
    api = ctx.write
    renewable, strict = renewable_at_once(api), api.certification(validity_days=1,
                                                                  renewal_window_days=0)
    done = completed(api, renewable)
    body = bulk(api, renewable, [{"user_uuid": done["user_uuid"]}] * 2)
    expect.equal([item["status"] for item in body["data"]], [201, 409],
                 "bulk statuses: a renewal, then the same user again")
    created = body["data"][0]["enrollment"]
    expect.shape(created, "Enrollment", "bulk item 0")
    expect.equal(created["recertifies_enrollment_uuid"], done["uuid"],
                 "recertifies_enrollment_uuid of a bulk renewal")
    held = completed(api, strict)
    body = bulk(api, strict, [{"user_uuid": held["user_uuid"]}])
    expect.equal(body["data"][0]["status"], 409, "bulk status of a holder outside the window")


@scenario("recert.filters")
def filters(ctx):
    """expired, expires_before and expires_after on both enrollment lists and their CSV:
    bounds are exclusive, offsets count, enrollments without expires_at are never in a
    range; malformed values are 422."""
    api = ctx.write
    certification = api.certification(validity_days=30)
    user = api.user()
    done = completed(api, certification, user)
    other = api.enroll(certification, api.user())
    expires = expect.timestamp(done["expires_at"], "expires_at")
    lists = (enrollments(certification), f"/users/{user['uuid']}/enrollments")

    def found(path: str, **params) -> list[str]:
        page = expect.shaped(api.get(path, params={"per_page": 100, **params}), 200,
                             "EnrollmentList")
        uuids = [e["uuid"] for e in page["data"]]
        response = expect.status(api.get(path, params={**params, "format": "csv"}), 200)
        rows = list(csv.DictReader(io.StringIO(response.text)))
        expect.equal([r.get("uuid") for r in rows], uuids, f"CSV of {path} with {params}")
        return uuids

    every = [done["uuid"], other["uuid"]]
    for path, mine in zip(lists, (every, [done["uuid"]]), strict=True):
        expect.equal(found(path, expired="false"), mine, f"{path}?expired=false")
        expect.equal(found(path, expired="true"), [], f"{path}?expired=true (nothing expired)")
        checks = [("expires_before", expires + SECOND, 0, [done["uuid"]]),
                  ("expires_before", expires, 0, []),
                  ("expires_after", expires - SECOND, 0, [done["uuid"]]),
                  ("expires_after", expires, 0, []),
                  # the same instants in other zones
                  ("expires_before", expires + SECOND, 5, [done["uuid"]]),
                  ("expires_before", expires - datetime.timedelta(hours=1), 2, []),
                  ("expires_after", expires - SECOND, -7, [done["uuid"]]),
                  ("expires_after", expires + datetime.timedelta(hours=1), -2, [])]
        for name, moment, hours, wanted in checks:
            expect.equal(found(path, **{name: iso(moment, hours)}), wanted,
                         f"{path}?{name}={iso(moment, hours)}")
        for name, bad in (("expired", "maybe"), ("expires_before", "yesterday"),
                          ("expires_after", "2026-11-30T10:00:00"),
                          ("expires_before", "2026-13-01T00:00:00Z")):
            expect.error(api.get(path, params={name: bad}), 422, "validation_error",
                         names=name)


@scenario("recert.expired")
def expired(ctx):
    """A completion is not expired before its expires_at (checked). That it turns expired,
    and may then be renewed, once expires_at passes needs the server's clock to move a day:
    SKIP over HTTP."""
    api = ctx.write
    certification = api.certification(validity_days=1, renewal_window_days=0)
    done = completed(api, certification)
    expect.equal(get(api, done)["expired"], False, "expired before expires_at")
    raise expect.Skip("an enrollment expires at the earliest a day after it completes "
                      "(validity_days ≥ 1) and the suite cannot move the server's clock: "
                      "expired=true and the renewal of an expired completion are not checked")

# --- expiry events (recert.expiry_*) -----------------------------------------------------
# The suite cannot move the server's clock, so it uses what a client can do now. A
# completion of a certification valid for 1 day with a renewal window of 2 is inside its
# window at once, so the server's expiry scan must raise enrollment.expiring for it within
# its scan interval (CERTAPI_EXPIRY_SCAN_SECONDS, 60 by default) — and for a twin with a
# window of 0 days, nothing. enrollment.expired needs a day to pass (validity_days is at
# least 1): that scenario says SKIP and why.

# How long to wait for the scan: its default interval and a margin.
EXPIRY_WAIT_SECONDS = 75.0
# After the event shows up, how long to watch for a second one.
EXPIRY_SETTLE_SECONDS = 2.0


def _expiry_events(api, enrollment: dict, event_type: str) -> list[dict]:
    response = api.get("/events", params={"enrollment_uuid": enrollment["uuid"],
                                          "type": event_type, "per_page": 100})
    return expect.body(expect.status(response, 200))["data"]


def _completed(api, **certification_fields) -> dict:
    certification = api.certification(passing_score=50, **certification_fields)
    enrollment = api.enroll(certification, api.user())
    expect.status(api.attempt(enrollment, 90), 201)
    done = expect.shaped(api.get(enrollment_path(enrollment)), 200, "Enrollment")
    expect.equal(done["status"], "completed", "status after a passing attempt")
    expect.check(done["expires_at"] is not None, "a completion of a 1-day certification "
                                                 f"has no expires_at: {done}")
    return done


@scenario("recert.expiry_expiring_once")
def expiring_once(ctx):
    """A completion inside its renewal window at once (valid 1 day, window 2): one
    enrollment.expiring within the scan interval, its data the enrollment as GET shows it;
    a twin whose window is 0 days gets none."""
    api = ctx.write
    # The twin completes first: the scan that raises the event has seen it too.
    outside = _completed(api, validity_days=1, renewal_window_days=0)
    inside = _completed(api, validity_days=1, renewal_window_days=2)
    deadline = time.monotonic() + EXPIRY_WAIT_SECONDS
    while True:
        raised = _expiry_events(api, inside, "enrollment.expiring")
        if raised or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    expect.check(raised, f"no enrollment.expiring for an enrollment inside its renewal window "
                         f"within {EXPIRY_WAIT_SECONDS:g} s (the scan runs every "
                         "CERTAPI_EXPIRY_SCAN_SECONDS, 60 by default)")
    time.sleep(EXPIRY_SETTLE_SECONDS)
    raised = _expiry_events(api, inside, "enrollment.expiring")
    expect.equal(len(raised), 1, "enrollment.expiring events of one enrollment (exactly once)")
    now = expect.shaped(api.get(enrollment_path(inside)), 200, "Enrollment")
    expect.equal(raised[0]["data"], now, "enrollment.expiring data vs GET of the enrollment")
    expect.equal(raised[0]["data"]["expired"], False, "expired in the enrollment.expiring data")
    early = _expiry_events(api, outside, "enrollment.expiring")
    expect.check(not early, "enrollment.expiring raised for an enrollment whose renewal window "
                            f"(0 days) has not opened: {early}")
    expect.check(not _expiry_events(api, inside, "enrollment.expired"),
                 "enrollment.expired raised for an enrollment that expires tomorrow")


@scenario("recert.expiry_expired_once")
def expired_once(ctx):
    """enrollment.expired once when expires_at passes — not checkable over HTTP."""
    raise Skip("an enrollment expires a day after its completion at the earliest "
               "(validity_days ≥ 1) and the suite cannot move the server's clock: "
               "enrollment.expired not checked")
