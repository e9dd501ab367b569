"""The portable contract suite (certapi.contract): every scenario passes against this
service in-process and over the network, and each deliberately broken variant of the
service is reported as a failure of the scenario that owns the broken rule."""
import datetime
import json
import os
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
from starlette.testclient import TestClient

from certapi import lifecycle
from certapi.contract import Keys, exit_code, format_table, run_suite, write_junit
from certapi.contract.runner import MISSING, scenarios
from models import Account, ApiKey
from tests.conftest import PRODUCED, make_tenant, operation_for

CERTAPI = str(Path(sys.executable).with_name("certapi"))
ENROLL = "/v1/certifications/{}/enrollments"


@pytest.fixture
def keys(app) -> Keys:
    first, second = make_tenant("Contract"), make_tenant("Contract other")
    _, limited = ApiKey.issue(Account.get_by_id(first.uuid), "read", rate_limit=5)
    return Keys(first.key, first.read_key, second.key, limited)


def _record(response: httpx.Response) -> None:
    """Note the documented statuses the suite produced, for conftest's coverage gate."""
    op_id = operation_for(response.request.method, response.request.url.path)
    if op_id:
        PRODUCED.add((op_id, str(response.status_code)))


def outcomes(results) -> dict[str, set[str]]:
    found = {"PASS": set(), "FAIL": set(), "SKIP": set()}
    for result in results:
        found[result.outcome].add(result.name)
    return found


def test_every_scenario_passes_in_process(app, keys):
    with app.test_client() as client:
        client.event_hooks["response"].append(_record)
        results = run_suite(client, keys)
    assert [r.name for r in results] == [s.name for s in scenarios()]
    assert len(results) >= 30
    assert outcomes(results)["PASS"] == {r.name for r in results}, format_table(results)
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
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
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
        return run_suite(client, keys, select=select)


VARIANTS = {
    # name: (how it breaks, scenarios that must fail, text every failure must contain,
    #        whether only those scenarios may fail)
    "enroll answers 200, not 201": (
        dict(change=enroll_answers_200), {"seed.enroll_shape"}, "expected 201", False),
    "user_email missing": (
        dict(change=drop_everywhere("user_email")), {"seed.enroll_shape"}, "user_email", False),
    "assessment_passed never set": (
        dict(change=drop_everywhere("assessment_passed", None)),
        {"lifecycle.attempts_then_pass", "lifecycle.max_attempts_fail"}, "assessment_passed",
        False),
    "second enrollment accepted": (
        dict(change=on_json(second_enrollment_accepted)),
        {"seed.duplicate_enrollment", "seed.not_published"}, "expected 409", True),
    "another account's data visible": (
        dict(rewrite=lambda keys: swap_key(keys, "other", "write")), {"tenancy.reads"},
        "expected 404", True),
    "read key may write": (
        dict(rewrite=lambda keys: swap_key(keys, "read", "write", ("POST", "PATCH", "DELETE"))),
        {"auth.read_only_key"}, "expected 403", True),
    "Allow names one method": (
        dict(change=allow_lists_one_method), {"errors.method_not_allowed"}, "Allow header", True),
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
        results = run_suite(client, keys)
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


# --- over the network ---------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(*args, env) -> str:
    done = subprocess.run([CERTAPI, *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_cli_against_a_real_server(tmp_path):
    """`certapi serve` on a temporary database, accounts and keys made with the CLI, then
    `certapi contract` over loopback: all pass with every key, and a wrong key fails."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'contract.db'}"}
    _cli("migrate", env=env)
    first, second = _cli("accounts", "create", "First", env=env), _cli("accounts", "create", "Second", env=env)
    write = _cli("keys", "create", first, env=env)
    read = _cli("keys", "create", first, "--permission", "read", env=env)
    other = _cli("keys", "create", second, env=env)
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
        report = tmp_path / "junit.xml"
        done = subprocess.run(
            [CERTAPI, "contract", "--base-url", base, "--api-key", write, "--read-key", read,
             "--second-account-key", other, "--limited-key", limited, "--junit", str(report)],
            env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        suite = ET.parse(report).getroot().find("testsuite")
        assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
            str(len(scenarios())), "0", "0"), done.stdout
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
