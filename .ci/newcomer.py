"""CI's newcomer leg: openapi.yaml and a running server as a new user first meets them.

1. Redocly's recommended rules lint the spec, warnings counted as errors.
2. openapi-python-client generates a client from the spec into a temporary directory;
   the seed flow (certification, user, enrollment, progress, attempt) runs through it
   against a real `certapi serve`, and its uuids and timestamps arrive typed.
3. Headless Chromium opens Swagger UI, authorises with the key, runs "Try it out" on
   GET /v1/certifications and must see 200.

The tools are pinned (Redocly below, the Python ones in pyproject's `newcomer` extra) and
installed here. A step whose tool cannot be installed is reported SKIPPED with the
reason; any other problem fails the leg.

Run from the repository root: .venv/bin/python .ci/newcomer.py
"""
import datetime
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
SPEC = ROOT / "openapi.yaml"
REDOCLY = "@redocly/cli@2.77.0"
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling out, which a closed
# network refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sys.path.insert(0, str(ROOT / ".ci"))
from fuzz_server import certapi, free_port, stop, wait_until_up  # noqa: E402


class Skip(Exception):
    """The step's tool could not be installed."""


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, **kwargs)


def tail(result: subprocess.CompletedProcess, lines: int = 40) -> str:
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


# --- the tools -----------------------------------------------------------------------------

def install_python_tools() -> None:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        pins = tomllib.load(fh)["project"]["optional-dependencies"]["newcomer"]
    result = run([BIN / "python", "-m", "pip", "install", "--quiet", *pins])
    if result.returncode:
        raise Skip(f"pip install {' '.join(pins)} failed:\n{tail(result)}")


def install_chromium() -> None:
    if CHROMIUM.exists():
        return
    if shutil.which("apt-get") is None:
        raise Skip(f"{CHROMIUM} is absent and there is no apt-get to install it")
    install = ["apt-get", "install", "-y", "-qq", "chromium"]
    if run(install).returncode == 0:
        return
    run(["apt-get", "update", "-qq"])  # a fresh machine's package lists may be empty
    result = run(install)
    if result.returncode:
        raise Skip(f"apt-get install chromium failed:\n{tail(result)}")


# --- the steps -----------------------------------------------------------------------------

def lint_spec() -> str:
    npx = shutil.which("npx")
    if npx is None:
        raise Skip("npx (Node.js) is not on this machine")
    version = run([npx, "--yes", REDOCLY, "--version"])
    if version.returncode:
        raise Skip(f"npx could not install {REDOCLY}:\n{tail(version)}")
    result = run([npx, "--yes", REDOCLY, "lint", SPEC, "--extends", "recommended-strict",
                  "--format", "stylish"])
    if result.returncode:
        raise AssertionError(f"Redocly lint (recommended-strict) found problems:\n{tail(result, 80)}")
    return f"Redocly {version.stdout.strip().splitlines()[-1]}: recommended rules, 0 errors, 0 warnings"


def generate_client(tmp: Path):
    """The spec's Python client as a fresh user generates it, imported from ``tmp``."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # its ruff hooks
    result = run([BIN / "openapi-python-client", "generate", "--path", SPEC, "--meta", "none",
                  "--output-path", tmp / "certapi_client", "--fail-on-warning"], env=env)
    if result.returncode:
        raise AssertionError(f"openapi-python-client failed or warned:\n{tail(result, 80)}")
    sys.path.insert(0, str(tmp))
    return importlib.import_module("certapi_client")


def seed_flow_through_client(tmp: Path, base: str, key: str) -> str:
    client_package = generate_client(tmp)
    from certapi_client.api.certifications import create_certification, list_certifications
    from certapi_client.api.enrollments import (
        create_attempt,
        create_enrollment,
        get_enrollment,
        update_enrollment_progress,
    )
    from certapi_client.api.users import create_user
    from certapi_client.models import (
        AttemptCreate,
        AttemptResult,
        Certification,
        CertificationCreate,
        CertificationCreateStatus,
        CertificationList,
        Enrollment,
        EnrollmentCreate,
        EnrollmentStatus,
        ProgressUpdate,
        User,
        UserCreate,
    )

    def expect(value, cls):
        assert isinstance(value, cls), f"expected {cls.__name__}, got {value!r}"
        return value

    client = client_package.AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)
    certification = expect(create_certification.sync(client=client, body=CertificationCreate(
        name="Cloud Fundamentals", status=CertificationCreateStatus.PUBLISHED, passing_score=80,
        validity_days=365)), Certification)
    user = expect(create_user.sync(client=client, body=UserCreate(
        email=f"ada-{uuid.uuid4().hex[:8]}@acme.example", first_name="Ada")), User)
    enrollment = expect(create_enrollment.sync(
        str(certification.uuid), client=client, body=EnrollmentCreate(user_uuid=str(user.uuid))), Enrollment)
    assert enrollment.status is EnrollmentStatus.ENROLLED, enrollment.status
    # The spec's formats reach the client's types: no more bare strings.
    assert isinstance(enrollment.uuid, uuid.UUID) and enrollment.user_uuid == user.uuid, enrollment
    assert isinstance(enrollment.enrolled_at, datetime.datetime), enrollment.enrolled_at
    assert enrollment.enrolled_at.utcoffset() == datetime.timedelta(0), enrollment.enrolled_at
    progressed = expect(update_enrollment_progress.sync(
        str(certification.uuid), str(enrollment.uuid), client=client,
        body=ProgressUpdate(progress_percentage=40)), Enrollment)
    assert progressed.status is EnrollmentStatus.IN_PROGRESS and progressed.started_at, progressed
    result = expect(create_attempt.sync(str(certification.uuid), str(enrollment.uuid), client=client,
                                        body=AttemptCreate(score=85)), AttemptResult)
    assert result.passed and result.enrollment.status is EnrollmentStatus.COMPLETED, result
    assert isinstance(result.enrollment.expires_at, datetime.datetime), result.enrollment.expires_at
    final = expect(get_enrollment.sync(str(certification.uuid), str(enrollment.uuid), client=client),
                   Enrollment)
    assert final.progress_percentage == 100 and final.completed_at, final
    # The other header form, through the same generated client.
    api_key_client = client_package.AuthenticatedClient(base_url=base, token=key, prefix="Api-Key")
    listed = expect(list_certifications.sync(client=api_key_client), CertificationList)
    assert [c.uuid for c in listed.data] == [certification.uuid], listed
    return "generated client: seed flow create → enroll → progress → attempt → completed, typed uuids and datetimes"


def swagger_ui_try_it_out(root: str, key: str, screenshot: Path) -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{root}/v1/ui/")
            page.locator("button.authorize").first.click()
            bearer = page.locator(".modal-ux .auth-container", has_text="BearerAuth")
            bearer.locator("input").fill(key)
            bearer.locator("button.authorize").click()
            page.locator(".modal-ux button.btn-done").first.click()
            operation = page.locator("#operations-Certifications-listCertifications")
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            with page.expect_request(lambda r: "/v1/certifications" in r.url) as sent:
                operation.locator("button.execute").click()
            authorization, url = sent.value.headers.get("authorization", ""), sent.value.url
            status = operation.locator(".live-responses-table tbody .response-col_status").first
            status.wait_for(timeout=15_000)
            text = status.inner_text().strip()
            page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()
    assert authorization == f"Bearer {key}", f"Swagger UI sent Authorization: {authorization[:12]!r}…"
    assert text.startswith("200"), f"Swagger UI's Try it out answered {text!r}"
    # An example on a filter's schema would pre-fill it and narrow the newcomer's first list.
    assert "?page=1&per_page=25" in url and "status=" not in url, url
    return "Swagger UI in headless Chromium: authorised, Try it out on GET /v1/certifications → 200"


# --- the run -------------------------------------------------------------------------------

def step(name: str, function, *args) -> str:
    started = time.monotonic()
    try:
        detail = function(*args)
    except Skip as skip:
        print(f"SKIPPED {name}: {skip}", flush=True)
        return "skipped"
    except Exception:  # noqa: BLE001 - every other problem is the step failing
        print(f"FAILED {name}:\n{traceback.format_exc()}", flush=True)
        return "failed"
    print(f"passed  {name} ({time.monotonic() - started:.1f}s): {detail}", flush=True)
    return "passed"


def with_server(tmp: Path, steps) -> list[str]:
    database_url = f"sqlite:///{tmp}/newcomer.db"
    certapi("migrate", database_url=database_url)
    account = certapi("accounts", "create", "Newcomer", database_url=database_url)
    key = certapi("keys", "create", account, "--permission", "write", database_url=database_url)
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    log = open(tmp / "server.log", "w")
    server = subprocess.Popen(
        [BIN / "certapi", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--database-url", database_url, "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_until_up(f"{root}/v1", server)
        return [function(root, key) for function in steps]
    finally:
        stop(server, log)


def main() -> int:
    reports = ROOT / "reports" / "newcomer"
    reports.mkdir(parents=True, exist_ok=True)
    outcomes = [step("lint openapi.yaml", lint_spec)]
    try:
        install_python_tools()
        python_tools = None
    except Skip as skip:
        python_tools = skip
    try:
        install_chromium()
        browser = python_tools
    except Skip as skip:
        browser = skip

    def unavailable(reason: Skip):
        def raise_it(*_args):
            raise reason
        return raise_it

    with tempfile.TemporaryDirectory(prefix="certapi-newcomer-") as name:
        tmp = Path(name)
        client_step = unavailable(python_tools) if python_tools else (
            lambda root, key: seed_flow_through_client(tmp, f"{root}/v1", key))
        browser_step = unavailable(browser) if browser else (
            lambda root, key: swagger_ui_try_it_out(root, key, reports / "swagger-ui.png"))
        outcomes += with_server(tmp, [
            lambda root, key: step("generated client", client_step, root, key),
            lambda root, key: step("Swagger UI in a browser", browser_step, root, key),
        ])
        if "failed" in outcomes:
            print("certapi serve's log, last lines:\n" + (tmp / "server.log").read_text()[-3000:],
                  file=sys.stderr)
    print("newcomer leg: " + ", ".join(f"{n} {o}" for n, o in
                                       zip(("lint", "client", "browser"), outcomes, strict=True)))
    return 1 if "failed" in outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
