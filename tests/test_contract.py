"""The portable contract suite (certapi.contract): every scenario passes against this
service in-process and over the network, and each deliberately broken variant of the
service is reported as a failure of the scenario that owns the broken rule."""
import datetime
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from starlette.datastructures import MutableHeaders
from starlette.routing import Route, Router
from starlette.testclient import TestClient

from certapi import lifecycle
from certapi.contract import Keys, exit_code, format_table, run_suite, write_json, write_junit
from certapi.contract.command import find_api_root, split_base_url
from certapi.contract.runner import MISSING, scenarios
from certapi.contract.schemas import path_methods
from models import Account, ApiKey
from tests.conftest import PRODUCED, make_tenant, operation_for

CERTAPI = str(Path(sys.executable).with_name("certapi"))
ENROLL = "/v1/certifications/{}/enrollments"
SUITE_RATE_LIMIT = 100_000


@pytest.fixture
def keys(app) -> Keys:
    first, second = make_tenant("Contract"), make_tenant("Contract other")
    # One suite run makes more than the default 500 requests a minute per key; the agent
    # would wait out each 429. The suite's keys get a limit it does not reach (still
    # counted, so the rate-limit headers are there to check); the limited key is the 429's.
    ApiKey.update(rate_limit=SUITE_RATE_LIMIT).where(
        ApiKey.account.in_([first.uuid, second.uuid])).execute()
    _, limited = ApiKey.issue(Account.get_by_id(first.uuid), "read", rate_limit=5)
    return Keys(first.key, first.read_key, second.key, limited)


def _record(response: httpx.Response) -> None:
    """Note the documented statuses the suite produced, for conftest's coverage gate."""
    op_id = operation_for(response.request.method, response.request.url.path)
    if op_id:
        PRODUCED.add((op_id, str(response.status_code)))


def outcomes(results) -> dict[str, set[str]]:
    found = {"PASS": set(), "FAIL": set(), "MISSING": set(), "SKIP": set()}
    for result in results:
        found[result.outcome].add(result.name)
    return found


def without_webhooks(name: str) -> bool:
    """webhooks.* need a receiver and a running sender: tests/test_contract_webhooks.py;
    recert.expiry_* a running expiry scan: tests/test_contract_expiry.py."""
    return not name.startswith(("webhooks.", "recert.expiry_"))


# What a whole run in process (no webhook receiver) consists of.
IN_PROCESS = {s.name for s in scenarios() if without_webhooks(s.name)}
# Scenarios that need the server's clock to move (an enrollment expiring): over HTTP they
# say SKIP with the reason, by design.
CLOCK_BOUND = {"recert.expired"}


def test_every_scenario_passes_in_process(app, keys):
    with app.test_client() as client:
        client.event_hooks["response"].append(_record)
        results = run_suite(client, keys, select=without_webhooks)
    assert [r.name for r in results] == [s.name for s in scenarios() if without_webhooks(s.name)]
    assert len(results) >= 30
    assert outcomes(results)["PASS"] == {r.name for r in results} - CLOCK_BOUND, format_table(results)
    assert outcomes(results)["SKIP"] == CLOCK_BOUND, format_table(results)
    assert all("clock" in r.reason for r in results if r.outcome == "SKIP")
    assert exit_code(results) == 0


def test_scenarios_needing_a_key_are_skipped_visibly(app, keys):
    with app.test_client() as client:
        results = run_suite(client, Keys(keys.write), select=lambda n: n.startswith(("auth.", "tenancy.")))
    table = format_table(results)
    skipped = outcomes(results)["SKIP"]
    assert skipped == {"auth.read_only_key", "tenancy.reads", "tenancy.writes",
                       "tenancy.email_per_account"}, table
    assert MISSING["read"] in table and MISSING["other"] in table
    assert exit_code(results) == 0  # nothing failed; the skips are in the report


# --- broken variants -------------------------------------------------------------------

class Broken:
    """The real app behind an ASGI wrapper that can rewrite the request's headers
    (``rewrite(method, path, headers)``) and the response (``change(...)``)."""

    def __init__(self, app, change=None, rewrite=None):
        self.app, self.change, self.rewrite = app, change, rewrite

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.rewrite:
            headers = MutableHeaders(scope=scope)  # edits scope["headers"] in place
            self.rewrite(scope["method"], scope["path"], headers)
        sent, request_body, start, chunks = send, [], {}, []

        async def read():
            message = await receive()
            request_body.append(message.get("body", b""))
            return message

        async def hold(message):
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, body = start["status"], b"".join(chunks)
            headers = MutableHeaders(raw=list(start.get("headers", [])))
            if self.change:
                status, body = self.change(scope["method"], scope["path"], b"".join(request_body),
                                           status, headers, body)
            headers["content-length"] = str(len(body))
            await sent({"type": "http.response.start", "status": status, "headers": headers.raw})
            await sent({"type": "http.response.body", "body": body})

        await self.app(scope, read, hold)


def on_json(edit):
    """A response change that edits JSON bodies: ``edit(method, path, request, status, data)``
    returns the new (status, data)."""
    def change(method, path, request, status, headers, body):
        if not headers.get("content-type", "").startswith("application/json") or not body:
            return status, body
        status, data = edit(method, path, request, status, json.loads(body))
        return status, json.dumps(data).encode()
    return change


def drop_everywhere(name: str, value=...):
    """Remove ``name`` (or set it to ``value``) in every object of a JSON document."""
    def walk(node):
        if isinstance(node, dict):
            if name in node:
                if value is ...:
                    del node[name]
                else:
                    node[name] = value
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)
        return node
    return on_json(lambda method, path, request, status, data: (status, walk(data)))


def is_enroll(method: str, path: str) -> bool:
    parts = path.strip("/").split("/")
    return method == "POST" and len(parts) == 4 and parts[1] == "certifications" \
        and parts[3] == "enrollments"


def enroll_answers_200(method, path, request, status, headers, body):
    return (200 if is_enroll(method, path) and status == 201 else status), body


def second_enrollment_accepted(method, path, request, status, data):
    if not (is_enroll(method, path) and status == 409):
        return status, data
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fake = {
        "uuid": str(uuid.uuid4()), "certification_uuid": path.split("/")[3],
        "user_uuid": json.loads(request)["user_uuid"], "user_email": "twin@example.com",
        "partnership_uuid": None, "status": "enrolled", "progress_percentage": 0,
        "enrolled_at": now, "started_at": None, "completed_at": None, "assessment_attempts": 0,
        "assessment_best_score": None, "assessment_passed": None, "expires_at": None,
    }
    return 201, fake


def allow_lists_one_method(method, path, request, status, headers, body):
    if status == 405:
        headers["allow"] = headers["allow"].split(",")[0]
    return status, body


def swap_key(keys: Keys, given: str, used: str, methods=("GET",)):
    """Requests made with key ``given`` (one of keys' fields) reach the app with ``used``."""
    source, target = getattr(keys, given), getattr(keys, used)

    def rewrite(method, path, headers):
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if key == source and method in methods:
            headers["authorization"] = f"{scheme} {target}"
    return rewrite


def progress_may_go_down(enrollment, progress, now):
    """lifecycle.report_progress without its never-goes-down rule."""
    if enrollment.status not in lifecycle.OPEN:
        raise lifecycle.TransitionRefused("closed")
    if enrollment.status == "enrolled":
        enrollment.status, enrollment.started_at = "in_progress", now
    enrollment.progress_percentage = progress


def run_broken(app, keys, change=None, rewrite=None, select=None):
    with TestClient(Broken(app, change, rewrite)) as client:
        return run_suite(client, keys, select=select or without_webhooks)


VARIANTS = {
    # name: (how it breaks, scenarios that must fail, text every failure must contain,
    #        whether only those scenarios may fail)
    "enroll answers 200, not 201": (
        dict(change=enroll_answers_200), {"seed.enroll_shape", "traffic.idempotent_replay",
                                          "recert.renew_in_window"},
        "expected 201", True),
    "user_email missing": (
        dict(change=drop_everywhere("user_email")), {"seed.enroll_shape"}, "user_email", False),
    "assessment_passed never set": (
        dict(change=drop_everywhere("assessment_passed", None)),
        {"lifecycle.attempts_then_pass", "lifecycle.max_attempts_fail"}, "assessment_passed",
        False),
    "second enrollment accepted": (
        dict(change=on_json(second_enrollment_accepted)),
        {"seed.duplicate_enrollment", "seed.not_published", "recert.renew_in_window",
         "recert.outside_window"}, "expected 409", True),
    "another account's data visible": (
        dict(rewrite=lambda keys: swap_key(keys, "other", "write")), {"tenancy.reads"},
        "expected 404", True),
    "read key may write": (
        dict(rewrite=lambda keys: swap_key(keys, "read", "write", ("POST", "PATCH", "DELETE"))),
        {"auth.read_only_key"}, "expected 403", True),
    "Allow names one method": (
        dict(change=allow_lists_one_method), {"errors.method_not_allowed"}, "Allow header", True),
    "renewal not linked": (
        dict(change=drop_everywhere("recertifies_enrollment_uuid", None)),
        {"recert.renew_in_window", "recert.bulk"}, "recertifies_enrollment_uuid", True),
    "renewal_window_days always 30": (
        dict(change=drop_everywhere("renewal_window_days", 30)), {"recert.fields"},
        "renewal_window_days", True),
    "every enrollment expired": (
        dict(change=drop_everywhere("expired", True)),
        {"recert.fields", "recert.renew_in_window", "recert.expired"}, "expired", True),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_broken_variant_is_reported(app, keys, variant):
    breaks, must_fail, reason, only = VARIANTS[variant]
    if "rewrite" in breaks:
        breaks = {"rewrite": breaks["rewrite"](keys)}
    results = run_broken(app, keys, **breaks)
    failed = outcomes(results)["FAIL"]
    table = format_table(results)
    assert must_fail <= failed, table
    if only:
        assert failed == must_fail, table
    for result in results:
        if result.outcome == "FAIL":
            assert reason in result.reason, table
    assert exit_code(results) == 1


def test_rule_removed_from_the_service_is_reported(app, keys, monkeypatch):
    """Not a response rewrite: the lifecycle itself loses a rule (progress may go down)."""
    monkeypatch.setattr(lifecycle, "report_progress", progress_may_go_down)
    with app.test_client() as client:
        results = run_suite(client, keys, select=without_webhooks)
    failed = {r.name: r.reason for r in results if r.outcome == "FAIL"}
    assert set(failed) == {"lifecycle.progress"}, format_table(results)
    assert "expected 409" in failed["lifecycle.progress"]


def test_junit_report(app, keys, tmp_path):
    results = run_broken(app, keys, change=enroll_answers_200,
                         select=lambda name: name.startswith(("seed.", "auth.")))
    report = tmp_path / "contract.xml"
    write_junit(results, str(report))
    suite = ET.parse(report).getroot().find("testsuite")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {r.name for r in results}
    assert suite.get("tests") == str(len(results))
    failures = {name for name, case in cases.items() if case.find("failure") is not None}
    assert failures == outcomes(results)["FAIL"] and "seed.enroll_shape" in failures
    assert int(suite.get("failures")) == len(failures)
    assert "expected 201" in cases["seed.enroll_shape"].find("failure").get("message")


# --- partial implementations ----------------------------------------------------------------

def partial(app, routes: dict[str, set[str]], enveloped: bool = False):
    """A small Starlette server that has only ``routes`` (template → methods) and hands
    those to the real app: anything else gets Starlette's own answers, as a foreign
    implementation lacking the feature would give (a plain 404, or 405 with its Allow).
    ``enveloped``: a careful implementation, whose router answers in the contract's error
    envelope."""
    router = Router([Route(f"/v1{template}", app, methods=sorted(methods))
                     for template, methods in routes.items()])
    return Broken(router, change=envelope_router_answers) if enveloped else router


def envelope_router_answers(method, path, request, status, headers, body):
    if status not in (404, 405) or not headers.get("content-type", "").startswith("text/plain"):
        return status, body
    code = "not_found" if status == 404 else "method_not_allowed"
    headers["content-type"] = "application/json"
    return status, json.dumps({"error": {"code": code, "message": f"{method} {path}: {code}"}}).encode()


ENROLLMENT = "/certifications/{uuid}/enrollments/{enrollment_uuid}"


def without_enrollment_delete():
    routes = path_methods()
    routes[ENROLLMENT] = routes[ENROLLMENT] - {"DELETE"}
    return routes


def seed_users_and_certifications_only():
    keep = ("/health", "/users", "/users/{uuid}", "/certifications", "/certifications/{uuid}")
    routes = {template: methods for template, methods in path_methods().items() if template in keep}
    routes["/certifications/{uuid}/enrollments"] = {"POST"}  # the seed endpoint, nothing more
    return routes


# Scenarios that cannot run without the enrollment DELETE: each deletes one on purpose,
# or checks how a DELETE is refused (read-only key, another account, another parent, Allow).
NEED_ENROLLMENT_DELETE = {"seed.reenroll_after_failed", "lifecycle.delete_enrollment",
                          "resources.in_use", "errors.not_found", "errors.method_not_allowed",
                          "auth.read_only_key", "tenancy.writes"}
# What a server with the seed endpoint, users and certifications (and /health) can pass.
SEED_USERS_CERTIFICATIONS = {"seed.not_found", "seed.invalid_input", "seed.not_published",
                             "resources.certifications", "pagination.list_filters", "auth.health",
                             "export.formula_guard"}
# Its router's own answers are plain text, so these rules really are broken there.
PLAIN_ROUTER_ANSWERS = {"errors.not_found", "errors.method_not_allowed"}


def test_no_enrollment_delete_is_missing_and_nothing_cascades(app, keys, tmp_path):
    server = partial(app, without_enrollment_delete(), enveloped=True)
    with TestClient(server) as client:
        first = run_suite(client, keys, select=without_webhooks)
        # the first run's leftovers must not disturb this one
        again = run_suite(client, keys, select=without_webhooks)
    table = format_table(first)
    for results in (first, again):
        found = outcomes(results)
        assert found["FAIL"] == set(), format_table(results)
        assert found["MISSING"] == NEED_ENROLLMENT_DELETE, format_table(results)
        assert found["PASS"] == IN_PROCESS - NEED_ENROLLMENT_DELETE - CLOCK_BOUND
        assert exit_code(results) == 0 and exit_code(results, strict=True) == 1
    reasons = {r.name: r.reason for r in first}
    assert reasons["lifecycle.delete_enrollment"].startswith(
        f"no route DELETE /v1{ENROLLMENT} (405, Allow: "), table
    # Leftovers: every enrollment a scenario made, listed once after the table, with its path;
    # the users and certifications they hold on to stay too.
    left = [item for r in first for item in r.leftovers]
    enrollments = [item for item in left if "/enrollments/" in item.path]
    assert enrollments and all("DELETE → 405" in item.reason for item in enrollments), table
    assert len({item.path for item in left}) == len(left)
    assert table.count("Left behind") == 1
    for item in left:
        assert table.count(f"  {item.path}  ") == 1, item.path
    body, leftovers = table.split("Left behind")
    assert "DELETE → 405" not in body, "a cleanup problem leaked into a verdict"
    summary = body.strip().splitlines()[-2:]
    assert summary[0].startswith(
        f"{len(found['PASS'])} passed, 0 failed, 7 missing, {len(CLOCK_BOUND)} skipped"), summary
    assert "seed 6/7" in summary[1] and "lifecycle 6/7" in summary[1] and "pagination 4/4" in summary[1]


def test_seed_users_and_certifications_only(app, keys, tmp_path):
    with TestClient(partial(app, seed_users_and_certifications_only())) as client:
        results = run_suite(client, keys, select=without_webhooks)
    found, table = outcomes(results), format_table(results)
    assert found["FAIL"] == PLAIN_ROUTER_ANSWERS, table
    for name in PLAIN_ROUTER_ANSWERS:
        assert "Content-Type is 'text/plain" in next(r.reason for r in results if r.name == name)
    assert found["PASS"] == SEED_USERS_CERTIFICATIONS, table
    assert found["MISSING"] == (IN_PROCESS - SEED_USERS_CERTIFICATIONS
                                - PLAIN_ROUTER_ANSWERS), table
    for result in results:
        if result.outcome == "MISSING":
            assert result.reason.startswith("no route ") and "/v1/" in result.reason, table
    reasons = {r.name: r.reason for r in results}
    assert reasons["resources.partners"].startswith("no route POST /v1/partners (404"), table
    assert reasons["seed.enroll_shape"].startswith(
        f"no route GET /v1{ENROLLMENT} (404"), table
    report = tmp_path / "contract.json"
    write_json(results, str(report))
    data = json.loads(report.read_text())
    assert [s["name"] for s in data["scenarios"]] == [r.name for r in results]
    shaped = {s["name"]: s for s in data["scenarios"]}
    assert shaped["seed.enroll_shape"]["outcome"] == "MISSING"
    assert shaped["seed.enroll_shape"]["area"] == "seed"
    assert any(r.startswith("POST /v1/certifications/") and r.endswith("→ 201")
               for r in shaped["seed.enroll_shape"]["requests"])
    assert (data["summary"]["pass"], data["summary"]["fail"], data["summary"]["missing"]) == (
        len(SEED_USERS_CERTIFICATIONS), 2, len(found["MISSING"]))
    assert data["summary"]["areas"]["seed"] == "3/7"
    junit = tmp_path / "contract.xml"
    write_junit(results, str(junit))
    suite = ET.parse(junit).getroot().find("testsuite")
    skipped = {case.get("name"): case.find("skipped") for case in suite.iter("testcase")}
    assert skipped["seed.enroll_shape"].get("message").startswith("MISSING: no route GET")
    assert (suite.get("failures"), suite.get("skipped")) == ("2", str(len(found["MISSING"])))


def serve_at_root(app):
    """The API at the server root, as a mock of openapi.yaml serves it (no /v1)."""
    async def asgi(scope, receive, send):
        if scope["type"] == "http":
            scope = {**scope, "path": "/v1" + scope["path"], "raw_path": b"/v1" + scope["raw_path"]}
        await app(scope, receive, send)
    return asgi


def test_api_root_with_or_without_v1(app, keys):
    with app.test_client() as client:
        assert find_api_root(client, None) == "/v1"
    with TestClient(serve_at_root(app)) as client:
        assert find_api_root(client, None) == ""
        results = run_suite(client, keys, prefix="", select=lambda name: name.startswith("seed."))
    assert outcomes(results)["PASS"] == {r.name for r in results}, format_table(results)


@pytest.mark.parametrize("base_url, api_root, expected", [
    ("http://h:8080", None, ("http://h:8080", None)),  # found by asking /health
    ("http://h:8080/", None, ("http://h:8080", None)),
    ("http://h:8080/v1", None, ("http://h:8080", "/v1")),
    ("http://h:8080/api/v2/", None, ("http://h:8080", "/api/v2")),
    ("http://h:4010/v1", "/", ("http://h:4010", "")),
    ("http://h:4010", "v1", ("http://h:4010", "/v1")),
])
def test_base_url_and_api_root(base_url, api_root, expected):
    assert split_base_url(base_url, api_root) == expected


def test_a_timeout_names_the_request(app, keys):
    with app.test_client() as inner:
        def answer(request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path == "/v1/partners":
                raise httpx.ReadTimeout("timed out", request=request)
            relayed = inner.request(request.method, request.url.path, params=request.url.params,
                                    headers=request.headers, content=request.content)
            return httpx.Response(relayed.status_code, headers=relayed.headers,
                                  content=relayed.content)

        with httpx.Client(transport=httpx.MockTransport(answer), base_url="http://api") as client:
            results = run_suite(client, keys, select=lambda name: name in (
                "resources.partners", "resources.certifications"))
    reasons = {r.name: (r.outcome, r.reason) for r in results}
    assert reasons["resources.partners"] == (
        "FAIL", "POST /v1/partners: no answer in time (ReadTimeout: timed out)")
    assert reasons["resources.certifications"][0] == "PASS"


def test_every_failure_names_a_request(app, keys):
    """A failure found by comparing values (no status in the message) still says which
    request it was about."""
    results = run_broken(app, keys, change=drop_everywhere("assessment_passed", None),
                         select=lambda name: name == "lifecycle.attempts_then_pass")
    (result,) = results
    assert result.outcome == "FAIL"
    assert re.search(r"\(last request: (GET|POST) /v1/certifications/\S+ → 20[01]\)$",
                     result.reason), result.reason


# --- over the network ---------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(*args, env) -> str:
    done = subprocess.run([CERTAPI, *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# Over HTTP, with an expiry scan running, the scenarios that still cannot run (the suite
# cannot move the server's clock): each a SKIP saying why.
NEEDS_THE_SERVERS_CLOCK = CLOCK_BOUND | {"recert.expiry_expired_once"}


def test_cli_against_a_real_server(tmp_path):
    """`certapi serve` on a temporary database, accounts and keys made with the CLI, then
    `certapi contract` over loopback: all pass with every key, and a wrong key fails."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'contract.db'}",
           "CERTAPI_WEBHOOK_ALLOW_PRIVATE": "1",  # the suite's webhook receiver is on loopback
           "CERTAPI_EXPIRY_SCAN_SECONDS": "0.5"}  # recert.expiry_* wait for a scan
    _cli("migrate", env=env)
    first, second = _cli("accounts", "create", "First", env=env), _cli("accounts", "create", "Second", env=env)
    suite_limit = ("--rate-limit", str(SUITE_RATE_LIMIT))
    write = _cli("keys", "create", first, *suite_limit, env=env)
    read = _cli("keys", "create", first, "--permission", "read", *suite_limit, env=env)
    other = _cli("keys", "create", second, *suite_limit, env=env)
    limited = _cli("keys", "create", first, "--rate-limit", "5", env=env)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen([CERTAPI, "serve", "--port", str(port), "--log-level", "warning"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("server did not start: " + (tmp_path / "server.log").read_text())
        report, as_json = tmp_path / "junit.xml", tmp_path / "contract.json"
        done = subprocess.run(
            [CERTAPI, "contract", "--base-url", base, "--api-key", write, "--read-key", read,
             "--second-account-key", other, "--limited-key", limited, "--junit", str(report),
             "--json", str(as_json), "--strict", "--webhook-receiver", "auto"],
            env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"API root: {base}/v1" in done.stderr
        suite = ET.parse(report).getroot().find("testsuite")
        assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
            str(len(scenarios())), "0", str(len(NEEDS_THE_SERVERS_CLOCK))), done.stdout
        data = json.loads(as_json.read_text())
        assert {s["name"] for s in data["scenarios"] if s["outcome"] != "PASS"} == \
            NEEDS_THE_SERVERS_CLOCK
        assert data["summary"]["pass"] == len(scenarios()) - len(NEEDS_THE_SERVERS_CLOCK)
        assert data["leftovers"] == []
        assert "Left behind" not in done.stdout
        wrong = subprocess.run(
            [CERTAPI, "contract", "--base-url", f"{base}/v1", "--api-key", "ck_wrong", "-k", "seed."],
            env=env, capture_output=True, text=True, timeout=120)
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr
        assert "FAIL" in wrong.stdout and "401" in wrong.stdout
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_cli_stops_early_when_nothing_answers():
    port = _free_port()  # nothing listens on it
    done = subprocess.run(
        [CERTAPI, "contract", "--base-url", f"http://127.0.0.1:{port}/v1", "--api-key", "ck_x"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"certapi contract: nothing answers at http://127.0.0.1:{port} "
        f"(GET /v1/health: ConnectError: [Errno 111] Connection refused); is the server running?"]


# --- program scale: bulk, stats, CSV, each broken where its rule lives -------------------

def bulk_stopping_at_the_first_error(monkeypatch):
    """handlers.bulk judging items until one fails, refusing every item after it."""
    import handlers.bulk
    from certapi.errors import ApiError, Conflict
    judge, stopped = handlers.bulk._judge, []

    def until_first_error(*args, **kwargs):
        if stopped:
            raise Conflict("Stopped at an earlier error")
        try:
            return judge(*args, **kwargs)
        except ApiError:
            stopped.append(True)
            raise

    monkeypatch.setattr(handlers.bulk, "_judge", until_first_error)


def pass_rate_over_all_enrollments(monkeypatch):
    """The stats' pass rate counting open enrollments: completed ÷ all of them."""
    import handlers.stats

    def counting_open(counts):
        total = sum(counts.values())
        return counts["completed"] / total if total else None

    monkeypatch.setattr(handlers.stats, "pass_rate", counting_open)


def csv_without_the_guard(monkeypatch):
    from certapi import csv_export
    monkeypatch.setattr(csv_export, "FORMULA_STARTS", ())


def csv_one_page_only(monkeypatch):
    """An export that stops after the first chunk of rows (as a paged one would)."""
    from certapi import csv_export
    chunks = csv_export.keyset_chunks
    monkeypatch.setattr(csv_export, "keyset_chunks",
                        lambda query, order, positions, size=None:
                        iter([next(chunks(query, order, positions, 1), [])]))


SCALE_VARIANTS = {
    "bulk stops at the first error": (bulk_stopping_at_the_first_error, "bulk.per_item_results",
                                      "item statuses"),
    "pass rate counts open enrollments": (pass_rate_over_all_enrollments, "stats.numbers",
                                          "pass_rate"),
    "CSV without the formula guard": (csv_without_the_guard, "export.formula_guard", "first_name cell"),
    "CSV holds one row only": (csv_one_page_only, "export.enrollments_csv", "uuids of the CSV rows"),
}


@pytest.mark.parametrize("variant", SCALE_VARIANTS)
def test_broken_program_scale_is_reported(app, keys, monkeypatch, variant):
    """The service itself loses a rule of bulk, stats or CSV; the scenario that owns it fails."""
    breaks, owner, reason = SCALE_VARIANTS[variant]
    breaks(monkeypatch)
    with app.test_client() as client:
        results = run_suite(client, keys, select=lambda name: name.startswith(("bulk.", "stats.", "export.")))
    failed = {r.name: r.reason for r in results if r.outcome == "FAIL"}
    assert set(failed) == {owner}, format_table(results)
    assert reason in failed[owner], failed[owner]


# --- recertification rules broken in the service ------------------------------------------

def renewal_refused(held, certification, now):
    """The rule before recertification: any completed or open enrollment blocks another."""
    if any(e.status in ("enrolled", "in_progress", "completed") for e in held):
        raise lifecycle.TransitionRefused(lifecycle.ALREADY_ENROLLED)


def window_ignored(held, certification, now):
    """Every completion that expires is renewable at once, whatever renewal_window_days says."""
    wide = type(certification)(**{**certification.__data__, "renewal_window_days": 36500})
    return REAL_CHECK(held, wide, now)


REAL_CHECK = lifecycle.check_may_enroll


def filters_ignored(monkeypatch):
    import handlers.enrollments
    real = handlers.enrollments.filtered

    def without_expiry(where, expired=None, expires_before=None, expires_after=None, **rest):
        return real(where, **rest)
    monkeypatch.setattr(handlers.enrollments, "filtered", without_expiry)


def before_inclusive(monkeypatch):
    from models import Enrollment
    monkeypatch.setattr(Enrollment, "expires_before",
                        classmethod(lambda cls, moment: cls.expires_at <= moment))


RECERT_VARIANTS = {
    # name: (how the service breaks, {scenario that must fail: text of its reason})
    "renewal refused": (
        lambda mp: mp.setattr(lifecycle, "check_may_enroll", renewal_refused),
        {"recert.renew_in_window": "expected 201", "recert.bulk": "bulk statuses"}),
    "renewal window ignored": (
        lambda mp: mp.setattr(lifecycle, "check_may_enroll", window_ignored),
        {"recert.outside_window": "expected 409", "recert.bulk": "holder outside the window"}),
    "expiry filters ignored": (filters_ignored, {"recert.filters": "expired=true"}),
    "expires_before includes its bound": (before_inclusive, {"recert.filters": "expires_before"}),
}


@pytest.mark.parametrize("variant", RECERT_VARIANTS)
def test_broken_recertification_is_reported(app, keys, monkeypatch, variant):
    """The service itself loses a recertification rule; the scenario that owns it fails and
    the seed's scenarios (the enroll rule's other half) still pass."""
    breaks, owners = RECERT_VARIANTS[variant]
    breaks(monkeypatch)
    with app.test_client() as client:
        results = run_suite(client, keys, select=lambda name: name.startswith(("recert.", "seed."))
                            and without_webhooks(name))
    failed = {r.name: r.reason for r in results if r.outcome == "FAIL"}
    assert set(failed) == set(owners), format_table(results)
    for owner, reason in owners.items():
        assert reason in failed[owner], failed[owner]
