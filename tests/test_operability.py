"""What an operator relies on: one access-log line per request, request ids, and a health
check that tells a live database from a dead one and recovers without a restart."""
import logging
import re

import pytest
from peewee import OperationalError

from certapi.app import create_app
from certapi.config import Settings
from models import database
from tests.conftest import RecordingClient

LINE = re.compile(r"^(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<ms>\d+\.\d)ms "
                  r"request_id=(?P<id>\S+)$")
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def access(caplog):
    """The access-log lines written while the test runs, parsed."""
    caplog.set_level(logging.INFO, logger="certapi.access")

    def lines():
        records = [r for r in caplog.records if r.name == "certapi.access"]
        parsed = [LINE.match(r.getMessage()) for r in records]
        assert all(parsed), [r.getMessage() for r in records]
        return parsed

    return lines


def test_one_access_line_per_request(client, tenant, access):
    requests = [
        ("GET", "/v1/partners", {}, 200),
        ("POST", "/v1/partners", {"json": {"name": "Logged"}}, 201),
        ("GET", "/v1/partners?per_page=0", {}, 422),
        ("GET", "/v1/nowhere", {}, 404),
        ("PUT", "/v1/partners", {}, 405),
        ("POST", "/v1/partners", {"content": b"x", "headers": {"Content-Type": "text/plain"}}, 415),
        ("GET", "/v1/health", {}, 200),
    ]
    responses = []
    for method, url, kwargs, status in requests:
        headers = {**tenant.headers, **kwargs.pop("headers", {})}
        response = client.request(method, url, headers=headers, **kwargs)
        assert response.status_code == status, (url, response.text)
        responses.append(response)
    lines = access()
    assert len(lines) == len(requests)
    for line, (method, url, _, status), response in zip(lines, requests, responses):
        assert line["method"] == method
        assert line["path"] == url.split("?")[0]  # the query string stays out of the log
        assert int(line["status"]) == status
        assert float(line["ms"]) >= 0
        assert line["id"] == response.headers["x-request-id"]
    assert len({line["id"] for line in lines}) == len(lines)


def test_unauthenticated_and_forbidden_requests_are_logged_without_the_key(client, tenant, access):
    client.get("/v1/partners", headers={"Authorization": f"Bearer {tenant.key}x"})
    client.delete("/v1/partners/3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51", headers=tenant.read_headers)
    lines = access()
    assert [int(line["status"]) for line in lines] == [401, 403]
    text = "\n".join(line.string for line in lines)
    assert tenant.key[10:] not in text and tenant.read_key[10:] not in text


@pytest.mark.parametrize("given", ["abc-123", "req.1:2_3", "A" * 128,
                                   "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"])
def test_valid_request_id_is_echoed_and_logged(client, tenant, access, given):
    response = client.get("/v1/partners", headers={**tenant.headers, "X-Request-Id": given})
    assert response.headers["x-request-id"] == given
    assert access()[-1]["id"] == given


@pytest.mark.parametrize("given", ["", "has space", "A" * 129, "semi;colon", "new\\nline",
                                   "<script>"])
def test_invalid_request_id_is_replaced(client, tenant, access, given):
    response = client.get("/v1/partners", headers={**tenant.headers, "X-Request-Id": given})
    assert response.status_code == 200
    generated = response.headers["x-request-id"]
    assert generated != given and GENERATED_ID.match(generated)
    assert access()[-1]["id"] == generated


def test_request_id_is_generated_when_absent_and_on_errors(client, tenant):
    ids = [client.get("/v1/partners", headers=tenant.headers).headers["x-request-id"],
           client.get("/v1/partners").headers["x-request-id"],                 # 401
           client.get("/v1/nowhere").headers["x-request-id"],                  # 404
           client.patch("/v1/partners", headers=tenant.headers).headers["x-request-id"]]  # 405
    assert all(GENERATED_ID.match(i) for i in ids) and len(set(ids)) == len(ids)


def test_health_is_ok_without_a_key(client):
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        response = client.get("/v1/health", headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"status": "ok"}


def test_health_rejects_unknown_parameters(client):
    response = client.get("/v1/health?verbose=1")
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "query/verbose: Unknown parameter"


def test_health_is_503_while_the_database_fails_and_recovers(client, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("unable to open database file")

    monkeypatch.setattr(database.obj, "execute_sql", down)
    for _ in range(2):
        response = client.get("/v1/health")
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"status": "unavailable"}
    monkeypatch.undo()
    response = client.get("/v1/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_health_follows_a_real_outage_without_a_restart(tmp_path, keep_database_binding):
    # A database file whose directory does not exist yet cannot be opened: an outage.
    home = tmp_path / "not-yet"
    app = create_app(Settings(database_url=f"sqlite:///{home / 'health.db'}",
                              validate_responses=True, key_cache_seconds=0))
    with app.test_client() as raw:
        client = RecordingClient(raw)
        response = client.get("/v1/health")
        assert (response.status_code, response.json()) == (503, {"status": "unavailable"})
        home.mkdir()  # the storage comes back
        response = client.get("/v1/health")
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
