"""Traffic controls: Idempotency-Key replays and mismatches, rate-limit headers, and the
429 of a key over its limit (with a key whose limit the suite can reach quickly)."""
import json
import re

from certapi.contract import expect
from certapi.contract.expect import Skip
from certapi.contract.runner import scenario
from certapi.contract.seed import enrollments

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "ratelimit-policy", "ratelimit")
RATELIMIT = re.compile(r'^"default";r=(\d+);t=(\d+)$')
# A limited key is exhausted with at most this many requests; a higher limit is skipped.
REACHABLE = 100


def _limit_headers(response) -> tuple[int, int]:
    """The counted response's limit and remaining, checked for agreement; (limit, remaining)."""
    for name in RATE_HEADERS:
        expect.check(name in response.headers,
                     f"no {name} header on a counted response: {expect.what(response)}")
    limit, remaining = response.headers["x-ratelimit-limit"], response.headers["x-ratelimit-remaining"]
    expect.check(limit.isdigit() and int(limit) >= 1, f"X-RateLimit-Limit {limit!r} is not a positive integer")
    expect.check(remaining.isdigit() and int(remaining) <= int(limit),
                 f"X-RateLimit-Remaining {remaining!r} is not an integer from 0 to {limit}")
    expect.equal(response.headers["ratelimit-policy"], f'"default";q={limit};w=60', "RateLimit-Policy")
    match = RATELIMIT.match(response.headers["ratelimit"])
    expect.check(match, f"RateLimit {response.headers['ratelimit']!r} is not '\"default\";r=<n>;t=<s>'")
    expect.equal(match[1], remaining, "RateLimit r= against X-RateLimit-Remaining")
    expect.check(1 <= int(match[2]) <= 60, f"RateLimit t={match[2]} is not 1–60 seconds")
    return int(limit), int(remaining)


@scenario("traffic.idempotent_replay")
def idempotent_replay(ctx):
    """The same Idempotency-Key with the same request (bare or quoted, body compared as
    JSON) replays the first answer with Idempotent-Replayed: true and enrolls once."""
    api = ctx.write
    certification, user = api.certification(), api.user()
    key = f"contract-{api.tag}-enroll"
    path = enrollments(certification)
    first = api.post(path, {"user_uuid": user["uuid"]}, headers={"Idempotency-Key": key})
    created = expect.shaped(first, 201, "Enrollment")
    expect.check("idempotent-replayed" not in first.headers,
                 f"a first answer says it was replayed: {expect.what(first)}")
    spaced = json.dumps({"user_uuid": user["uuid"]}, indent=2).encode()
    for header, extra in ((key, {}), (f'"{key}"', {"content": spaced})):
        kwargs = extra or {"json": {"user_uuid": user["uuid"]}}
        again = api.request("POST", path, headers={"Idempotency-Key": header,
                                                   "Content-Type": "application/json"}, **kwargs)
        expect.equal(again.status_code, 201, f"status of the replay with key {header}")
        expect.equal(again.headers.get("idempotent-replayed"), "true",
                     "Idempotent-Replayed header of the replay")
        expect.equal(expect.body(again), created, "body of the replay")
        expect.equal(again.headers.get("location"), first.headers.get("location"),
                     "Location of the replay")
    listed = expect.shaped(api.get(path, params={"user_uuid": user["uuid"]}), 200, "EnrollmentList")
    expect.equal(listed["pagination"]["total"], 1, "enrollments after three keyed enrolls")


@scenario("traffic.idempotency_mismatch")
def idempotency_mismatch(ctx):
    """The same key with another body is 422 naming Idempotency-Key and changes nothing;
    an empty key is a 422 naming the header."""
    api = ctx.write
    key = f"contract-{api.tag}-partner"
    first = expect.shaped(api.post("/partners", {"name": "Keyed once"},
                                   headers={"Idempotency-Key": key}), 201, "Partner")
    other = api.post("/partners", {"name": "Keyed twice"}, headers={"Idempotency-Key": key})
    expect.error(other, 422, "validation_error", names="Idempotency-Key")
    again = api.post("/partners", {"name": "Keyed once"}, headers={"Idempotency-Key": key})
    expect.equal(expect.body(again), first, "the key's answer after a mismatch")
    empty = api.post("/partners", {"name": "Never"}, headers={"Idempotency-Key": ""})
    expect.error(empty, 422, "validation_error", place="header/Idempotency-Key")


@scenario("traffic.rate_limit_headers")
def rate_limit_headers(ctx):
    """Every counted response carries X-RateLimit-Limit/-Remaining, RateLimit-Policy and
    RateLimit, which agree; /health is not counted."""
    api = ctx.write
    limit, before = _limit_headers(expect.status(api.get("/partners"), 200))
    _limit_headers(expect.status(  # a 404 counts too
        api.get("/partners/00000000-0000-0000-0000-000000000000"), 404))
    health = api.get("/health", scheme=None)
    expect.status(health, 200)
    _, after = _limit_headers(expect.status(api.get("/partners"), 200))
    # Two counted requests since ``before`` (unless a new window began meanwhile).
    expect.check(after == before - 2 or after > before,
                 f"X-RateLimit-Remaining went {before} → {after} over two counted requests "
                 "and one /health")


@scenario("traffic.rate_limit_exceeded", needs=("limited",))
def rate_limit_exceeded(ctx):
    """A key over its limit gets 429 rate_limit_exceeded with Retry-After and the limit
    headers (remaining 0); another key is unaffected."""
    limited = ctx.limited
    # Raw requests on the agent's client: this scenario counts every one it sends.
    def send():
        return limited.client.request("GET", limited.prefix + "/partners",
                                      headers={"Authorization": f"Bearer {limited.key}"})
    first = expect.status(send(), 200, 429)  # 429: an earlier run used this minute up
    limit, remaining = _limit_headers(first)
    if remaining > REACHABLE:
        raise Skip(f"the limited key has {remaining} requests left this minute, too many to "
                   f"use up quickly; give one with a limit of at most {REACHABLE} "
                   "(certapi keys create ACCOUNT --rate-limit 5)")
    refused = None
    for _ in range(remaining + 1):
        response = send()
        if response.status_code == 429:
            refused = response
            break
        expect.status(response, 200)
    expect.check(refused is not None, f"no 429 after {remaining + 1} requests over a limit of {limit}")
    expect.error(refused, 429, "rate_limit_exceeded")
    retry_after = refused.headers.get("retry-after", "")
    expect.check(retry_after.isdigit() and int(retry_after) >= 1,
                 f"Retry-After {retry_after!r} is not whole seconds ≥ 1: {expect.what(refused)}")
    _, left = _limit_headers(refused)
    expect.equal(left, 0, "X-RateLimit-Remaining of the 429")
    expect.status(ctx.write.get("/partners"), 200)
