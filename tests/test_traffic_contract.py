"""The contract suite's traffic.* scenarios: each passes against this service and fails
against a variant that breaks the rule it owns."""
import pytest

from certapi.contract import Keys, exit_code, format_table
from certapi.contract.runner import MISSING
from tests.test_contract import keys, outcomes, run_broken  # noqa: F401 (keys: a fixture)

TRAFFIC = lambda name: name.startswith("traffic.")  # noqa: E731
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "ratelimit-policy", "ratelimit")


def drop_idempotency_key(method, path, headers):
    if "idempotency-key" in headers:
        del headers["idempotency-key"]


def drop_headers(*names, status=None):
    def change(method, path, request, got, headers, body):
        if status is None or got == status:
            for name in names:
                if name in headers:
                    del headers[name]
        return got, body
    return change


def never_limited(method, path, request, status, headers, body):
    if status == 429:
        headers["x-ratelimit-remaining"] = "1"
        headers["ratelimit"] = headers["ratelimit"].replace("r=0", "r=1")
        return 200, b'{"data":[],"pagination":{"page":1,"per_page":25,"total":0,"total_pages":0}}'
    return status, body


VARIANTS = {
    # name: (how it breaks, the traffic scenarios that must fail, text their reasons hold)
    "Idempotency-Key ignored": (
        dict(rewrite=drop_idempotency_key),
        {"traffic.idempotent_replay", "traffic.idempotency_mismatch"}, "expected"),
    "replay not marked": (
        dict(change=drop_headers("idempotent-replayed")), {"traffic.idempotent_replay"},
        "Idempotent-Replayed"),
    "no rate-limit headers": (
        dict(change=drop_headers(*RATE_HEADERS)),
        {"traffic.rate_limit_headers", "traffic.rate_limit_exceeded"}, "header on a counted response"),
    "429 without Retry-After": (
        dict(change=drop_headers("retry-after", status=429)), {"traffic.rate_limit_exceeded"},
        "Retry-After"),
    "limit never enforced": (
        dict(change=never_limited), {"traffic.rate_limit_exceeded"}, "no 429 after"),
}


def test_traffic_scenarios_pass(app, keys):  # noqa: F811
    results = run_broken(app, keys, select=TRAFFIC)
    assert {r.name for r in results} == {"traffic.idempotent_replay", "traffic.idempotency_mismatch",
                                         "traffic.rate_limit_headers", "traffic.rate_limit_exceeded"}
    assert outcomes(results)["PASS"] == {r.name for r in results}, format_table(results)


@pytest.mark.parametrize("variant", VARIANTS)
def test_broken_traffic_variant_is_reported(app, keys, variant):  # noqa: F811
    breaks, must_fail, reason = VARIANTS[variant]
    results = run_broken(app, keys, select=TRAFFIC, **breaks)
    failed = {r.name: r.reason for r in results if r.outcome == "FAIL"}
    table = format_table(results)
    assert set(failed) == must_fail, table
    assert all(reason in why for why in failed.values()), table
    assert exit_code(results) == 1


def test_the_429_check_is_skipped_with_its_reason(app, keys):  # noqa: F811
    without = run_broken(app, Keys(keys.write), select=TRAFFIC)
    skipped = {r.name: r.reason for r in without if r.outcome == "SKIP"}
    assert skipped == {"traffic.rate_limit_exceeded": MISSING["limited"]}
    # A key whose limit is too high to use up quickly (the default 500) is not hammered.
    high = run_broken(app, Keys(keys.write, limited=keys.write),
                      select=lambda n: n == "traffic.rate_limit_exceeded")
    assert [r.outcome for r in high] == ["SKIP"] and "--rate-limit" in high[0].reason
