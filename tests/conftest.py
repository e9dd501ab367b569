"""Shared fixtures: one app on a temporary SQLite file for the whole session, and a
fresh account per test, so tests never see each other's data (tenancy does the rest)."""
import datetime
import re
from dataclasses import dataclass

import pytest

from certapi.app import create_app, load_spec
from certapi.config import Settings
from models import Account, ApiKey, WebhookEndpoint, database
from models.migrate import migrate
from tests.databases import backend, fresh_database

SPEC = load_spec()
METHODS = ("get", "post", "patch", "put", "delete")


def _operations():
    """(method, compiled path regex, operationId, documented statuses) for every operation."""
    ops = []
    for path, item in SPEC["paths"].items():
        regex = re.compile("^/v1" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        for method, op in item.items():
            if method in METHODS:
                ops.append((method.upper(), regex, op["operationId"], set(op["responses"])))
    return ops


OPERATIONS = _operations()
# (operationId, status) pairs some test produced; checked against the spec at the end.
PRODUCED: set[tuple[str, str]] = set()
# Well-formed (matches the path pattern) but never issued: a 404 wherever a uuid goes.
ABSENT_UUID = "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"


def expect_error(response, status: int, code: str) -> str:
    """Assert ``response`` is the error envelope with this status and code; its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]["message"]


def operation_for(method: str, path: str) -> str | None:
    for op_method, regex, op_id, _ in OPERATIONS:
        if op_method == method and regex.match(path):
            return op_id
    return None


class RecordingClient:
    """The Starlette test client, noting which documented status each call produced."""

    def __init__(self, client):
        self._client = client

    def request(self, method, url, **kwargs):
        response = self._client.request(method, url, **kwargs)
        op_id = operation_for(method.upper(), url.split("?")[0])
        if op_id:
            PRODUCED.add((op_id, str(response.status_code)))
        return response

    def __getattr__(self, name):
        if name in ("get", "post", "patch", "put", "delete", "head", "options"):
            return lambda url, **kw: self.request(name.upper(), url, **kw)
        return getattr(self._client, name)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """A new empty database for this run: SQLite, or PostgreSQL when
    $CERTAPI_TEST_DATABASE_URL names a server (see tests/databases.py)."""
    with fresh_database(backend(), tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def app(database_url):
    application = create_app(Settings(
        database_url=database_url, validate_responses=True, key_cache_seconds=0,
    ))
    migrate()
    return application


@pytest.fixture(scope="session")
def client(app):
    with app.test_client() as raw:
        yield RecordingClient(raw)


@pytest.fixture
def keep_database_binding(app):
    """For tests that bind the global database handle elsewhere (the CLI, a second app):
    the session's binding is put back afterwards."""
    bound = database.obj
    yield
    if database.obj is not bound:
        getattr(database.obj, "close_all", database.obj.close)()
        database.initialize(bound)


@dataclass
class Tenant:
    uuid: str
    key: str
    read_key: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def read_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.read_key}"}


def make_tenant(name: str = "Tenant") -> Tenant:
    account = Account.create(name=name)
    _, key = ApiKey.issue(account, "write")
    _, read_key = ApiKey.issue(account, "read")
    return Tenant(account.uuid, key, read_key)


@pytest.fixture
def tenant(app) -> Tenant:
    return make_tenant()


@pytest.fixture
def other_tenant(app) -> Tenant:
    return make_tenant("Other")


class Api:
    """Shortcuts that create resources through the HTTP API and insist on success."""

    def __init__(self, client, tenant: Tenant):
        self.client, self.tenant = client, tenant

    def post(self, path, body, expect=201):
        response = self.client.post(path, json=body, headers=self.tenant.headers)
        assert response.status_code == expect, response.text
        return response.json()

    def partner(self, **fields):
        return self.post("/v1/partners", {"name": "Acme", **fields})

    def user(self, email=None, **fields):
        self._n = getattr(self, "_n", 0) + 1
        return self.post("/v1/users", {"email": email or f"user{self._n}@example.com", **fields})

    def certification(self, **fields):
        return self.post("/v1/certifications", {"name": "Cloud", "status": "published", **fields})

    def enroll(self, certification, user, **fields):
        return self.post(f"/v1/certifications/{certification['uuid']}/enrollments",
                         {"user_uuid": user["uuid"], **fields})

    def attempt(self, enrollment, score, expect=201):
        path = (f"/v1/certifications/{enrollment['certification_uuid']}/enrollments/"
                f"{enrollment['uuid']}/assessment-attempts")
        return self.post(path, {"score": score}, expect=expect)


@pytest.fixture
def api(client, tenant) -> Api:
    return Api(client, tenant)


class Clock:
    """The process's wall clock (every ``datetime.now``, so models.base.utcnow, the row
    defaults and the handlers alike), moved by the test: it starts at the real time and
    keeps ticking; ``advance(days=400)`` jumps ahead. Time never goes back mid-test."""

    def __init__(self, machine):
        self._machine = machine
        machine.move_to(datetime.datetime.now(datetime.UTC), tick=True)

    def advance(self, **delta: float) -> None:
        self._machine.shift(datetime.timedelta(**delta))

    def freeze(self) -> datetime.datetime:
        """Stop the clock (every request then sees the same now); returns that now, naive UTC."""
        now = datetime.datetime.now(datetime.UTC)
        self._machine.move_to(now, tick=False)
        return now.replace(tzinfo=None)


@pytest.fixture
def clock(time_machine) -> Clock:
    return Clock(time_machine)


@pytest.fixture
def only_this_tenant(tenant):
    """Other tests' endpoints (the fuzzers' random URLs among them) are paused while a
    test runs a sender or reads the queue, so what it sees is this tenant's alone."""
    paused = [e.uuid for e in WebhookEndpoint.select().where(
        (WebhookEndpoint.account != tenant.uuid) & WebhookEndpoint.enabled)]
    if paused:
        WebhookEndpoint.update(enabled=False).where(WebhookEndpoint.uuid.in_(paused)).execute()
    yield
    if paused:
        WebhookEndpoint.update(enabled=True).where(WebhookEndpoint.uuid.in_(paused)).execute()


def pytest_sessionfinish(session, exitstatus):
    """Every status code the spec documents must be produced by some test. Checked only
    when the whole suite ran (a -k or single-file run cannot cover everything)."""
    if exitstatus != 0 or session.config.option.keyword or session.config.args != session.config.getini("testpaths"):
        return
    documented = {(op_id, status) for _, _, op_id, statuses in OPERATIONS for status in statuses}
    missing = sorted(documented - PRODUCED)
    if missing:
        lines = "\n".join(f"  {op} → {status}" for op, status in missing)
        session.config.get_terminal_writer().line(
            f"\nDocumented status codes no test produced:\n{lines}", red=True)
        session.exitstatus = 1
