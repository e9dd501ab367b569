"""Traffic controls in process: per-key rate limits (headers, 429, what is counted) and
Idempotency-Key on POST and PATCH (replay, mismatch, in flight, what is stored)."""
import datetime
import re

import psycopg2
import pytest

from certapi import idempotency, ratelimit
from certapi.app import create_app
from certapi.config import Settings
from models import Account, ApiKey, IdempotencyRecord, Partner, database
from models.db import is_postgres
from tests.conftest import ABSENT_UUID, OPERATIONS, SPEC, expect_error

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "ratelimit-policy", "ratelimit")


def limited_key(tenant, limit: int, permission: str = "write") -> dict:
    _, key = ApiKey.issue(Account.get_by_id(tenant.uuid), permission, rate_limit=limit)
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def clock(monkeypatch):
    """The limiter's clock, moved by hand."""
    now = [ratelimit.clock()]
    monkeypatch.setattr(ratelimit, "clock", lambda: now[0])
    return now


# --- rate limits ------------------------------------------------------------------------

def test_every_counted_answer_carries_the_limit_headers(client, tenant, clock):
    headers = limited_key(tenant, 10)
    answers = [
        client.get("/v1/partners", headers=headers),                       # 200
        client.get(f"/v1/partners/{ABSENT_UUID}", headers=headers),        # 404
        client.post("/v1/partners", json={"colour": "red"}, headers=headers),  # 422
        client.post("/v1/partners", json={"name": "Counted"}, headers=headers),  # 201
    ]
    assert [a.status_code for a in answers] == [200, 404, 422, 201]
    for n, answer in enumerate(answers, start=1):
        assert answer.headers["x-ratelimit-limit"] == "10"
        assert answer.headers["x-ratelimit-remaining"] == str(10 - n)
        assert answer.headers["ratelimit-policy"] == '"default";q=10;w=60'
        match = re.fullmatch(r'"default";r=(\d+);t=(\d+)', answer.headers["ratelimit"])
        assert match and int(match[1]) == 10 - n and 1 <= int(match[2]) <= 60, answer.headers


def test_a_read_key_refused_a_write_is_counted_too(client, tenant, clock):
    headers = limited_key(tenant, 3, "read")
    refused = client.post("/v1/partners", json={"name": "No"}, headers=headers)
    expect_error(refused, 403, "forbidden")
    assert refused.headers["x-ratelimit-remaining"] == "2"
    assert client.get("/v1/partners", headers=headers).headers["x-ratelimit-remaining"] == "1"


def test_health_and_failed_authentication_are_not_counted(client, tenant, clock):
    headers = limited_key(tenant, 2)
    health = client.get("/v1/health", headers=headers)
    assert health.status_code == 200 and "x-ratelimit-limit" not in health.headers
    for bad in ("Bearer cak_unknown", "Basic abc", "Bearer"):
        response = client.get("/v1/partners", headers={"Authorization": bad})
        expect_error(response, 401, "unauthorized")
        assert not set(RATE_HEADERS) & set(response.headers)
    assert client.get("/v1/partners", headers=headers).headers["x-ratelimit-remaining"] == "1"


def test_over_the_limit_429_does_nothing_and_the_key_works_after_retry_after(
        client, tenant, clock):
    headers, other = limited_key(tenant, 3), limited_key(tenant, 3)
    for _ in range(3):
        assert client.get("/v1/partners", headers=headers).status_code == 200
    clock[0] += 20
    refused = client.post("/v1/partners", json={"name": "Never made"}, headers=headers)
    message = expect_error(refused, 429, "rate_limit_exceeded")
    assert "3 requests per minute" in message
    retry_after = int(refused.headers["retry-after"])
    assert retry_after == 40
    assert refused.headers["x-ratelimit-limit"] == "3"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit"] == f'"default";r=0;t={retry_after}'
    assert not Partner.select().where(Partner.name == "Never made").exists()
    # Another key of the same account is unaffected.
    assert client.get("/v1/partners", headers=other).status_code == 200
    clock[0] += retry_after - 1
    expect_error(client.get("/v1/partners", headers=headers), 429, "rate_limit_exceeded")
    clock[0] += 1
    again = client.get("/v1/partners", headers=headers)
    assert again.status_code == 200 and again.headers["x-ratelimit-remaining"] == "2"


def test_a_key_with_limit_0_is_unlimited_and_the_default_applies_otherwise(client, tenant):
    unlimited = limited_key(tenant, 0)
    for _ in range(3):
        response = client.get("/v1/partners", headers=unlimited)
        assert response.status_code == 200 and "x-ratelimit-limit" not in response.headers
    assert client.get("/v1/partners", headers=tenant.headers).headers["x-ratelimit-limit"] == "500"


def test_every_operation_with_a_key_answers_429_over_the_limit(client, tenant, clock):
    headers = limited_key(tenant, 1)
    client.get("/v1/partners", headers=headers)
    secured = [(method, path) for path, item in SPEC["paths"].items()
               for method, op in item.items() if method in ("get", "post", "patch", "delete")
               and op.get("security") != []]
    assert len(secured) == len(OPERATIONS) - 2  # all but the probes, /health and /ready
    for method, path in secured:
        url = "/v1" + re.sub(r"\{[^}]+\}", ABSENT_UUID, path)
        response = client.request(method.upper(), url, json={} if method in ("post", "patch") else None,
                                  headers=headers)
        expect_error(response, 429, "rate_limit_exceeded")
        assert int(response.headers["retry-after"]) >= 1


def test_limiting_off_with_rate_limit_0(app, database_url, tenant, keep_database_binding):
    off = create_app(Settings(database_url=database_url, rate_limit=0, key_cache_seconds=0))
    with off.test_client() as raw:
        response = raw.get("/v1/partners", headers=tenant.headers)
    assert response.status_code == 200 and "x-ratelimit-limit" not in response.headers


def test_the_sql_storage_counts_windows_and_purges_ended_ones(tmp_path, monkeypatch):
    storage = ratelimit.storage_for(f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(storage, ratelimit.SqlStorage)
    assert (tmp_path / "x.db-ratelimit").exists() or storage.check()
    now = [1000.0]
    monkeypatch.setattr(ratelimit, "clock", lambda: now[0])
    assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.get("k") == 3 and storage.get_expiry("k") == 1060.0
    now[0] = 1060.0  # the window has ended: the next hit opens a new one
    assert storage.get("k") == 0
    assert storage.incr("k", 60) == 1 and storage.get_expiry("k") == 1120.0
    storage.incr("gone", 10)
    now[0] = 1075.0
    storage.purge()
    assert storage.get("k") == 1 and storage._execute(
        "SELECT count(*) FROM rate_limit_counter WHERE name = {p}", ("gone",))[0][0] == 0
    storage.clear("k")
    assert storage.get("k") == 0 and storage.reset() == 0


# --- idempotency keys -------------------------------------------------------------------

def post(client, tenant, path, body, key, headers=None):
    return client.post(path, json=body, headers={**(headers or tenant.headers),
                                                 "Idempotency-Key": key})


def test_a_replay_answers_the_first_answer_and_changes_nothing(client, tenant, api):
    certification, user = api.certification(), api.user()
    path = f"/v1/certifications/{certification['uuid']}/enrollments"
    first = post(client, tenant, path, {"user_uuid": user["uuid"]}, "enroll-1")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    # The quoted form is the same key; the body is compared as parsed JSON.
    again = client.post(path, content=b'{ "user_uuid" :\n"%s" }' % user["uuid"].encode(),
                        headers={**tenant.headers, "Idempotency-Key": '"enroll-1"',
                                 "Content-Type": "application/json"})
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    listed = client.get(path, headers=tenant.headers).json()
    assert listed["pagination"]["total"] == 1


def test_a_replay_is_not_counted_against_the_rate_limit(client, tenant, clock):
    headers = limited_key(tenant, 5)
    first = post(client, tenant, "/v1/partners", {"name": "Once"}, "p-1", headers)
    assert first.headers["x-ratelimit-remaining"] == "4"
    replayed = post(client, tenant, "/v1/partners", {"name": "Once"}, "p-1", headers)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert client.get("/v1/partners", headers=headers).headers["x-ratelimit-remaining"] == "3"


@pytest.mark.parametrize("change", ["body", "path", "method", "query"])
def test_the_same_key_with_another_request_is_422(client, tenant, api, change):
    partner = api.partner(name="Keyed")
    first = client.patch(f"/v1/partners/{partner['uuid']}", json={"name": "A"},
                         headers={**tenant.headers, "Idempotency-Key": "k"})
    assert first.status_code == 200
    other = api.partner(name="Other")
    method, path, body = "PATCH", f"/v1/partners/{partner['uuid']}", {"name": "A"}
    if change == "body":
        body = {"name": "B"}
    elif change == "path":
        path = f"/v1/partners/{other['uuid']}"
    elif change == "method":
        method, path = "POST", "/v1/partners"
    else:
        path += "?x=1"
    response = client.request(method, path, json=body,
                              headers={**tenant.headers, "Idempotency-Key": "k"})
    if change == "query":  # strict validation refuses the unknown parameter first
        assert "query/x" in expect_error(response, 422, "validation_error")
        return
    message = expect_error(response, 422, "validation_error")
    assert message.startswith("header/Idempotency-Key: ")
    assert client.get(f"/v1/partners/{other['uuid']}", headers=tenant.headers).json()["name"] == "Other"


def test_the_path_compared_includes_the_query_string():
    base = idempotency.fingerprint("POST", "/v1/partners", b'{"a": 1, "b": [1, 2]}')
    assert base == idempotency.fingerprint("POST", "/v1/partners", b'{"b":[1,2],"a":1}')
    assert base != idempotency.fingerprint("POST", "/v1/partners?page=2", b'{"a":1,"b":[1,2]}')
    assert base != idempotency.fingerprint("PATCH", "/v1/partners", b'{"a":1,"b":[1,2]}')
    assert base != idempotency.fingerprint("POST", "/v1/partners", b'{"a":1,"b":[2,1]}')


def test_keys_are_scoped_to_the_account(client, tenant, other_tenant):
    mine = post(client, tenant, "/v1/partners", {"name": "Mine"}, "shared-key")
    theirs = post(client, other_tenant, "/v1/partners", {"name": "Mine"}, "shared-key")
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers and mine.json() != theirs.json()


@pytest.mark.parametrize("value", ["", "a b", "é", "x" * 256, '""', '"a"b"'])
def test_a_malformed_key_is_422_naming_the_header(client, tenant, value):
    response = client.post("/v1/partners", json={"name": "Never"},
                           headers={**tenant.headers, "Idempotency-Key": value.encode()})
    assert expect_error(response, 422, "validation_error").startswith("header/Idempotency-Key: ")


def test_get_and_delete_ignore_the_header(client, tenant, api):
    partner = api.partner()
    headers = {**tenant.headers, "Idempotency-Key": ""}
    assert client.get(f"/v1/partners/{partner['uuid']}", headers=headers).status_code == 200
    assert client.delete(f"/v1/partners/{partner['uuid']}", headers=headers).status_code == 204
    assert client.delete(f"/v1/partners/{partner['uuid']}", headers=headers).status_code == 404


def test_answers_before_the_operation_are_not_stored(client, tenant, clock):
    # 403 (a read key), 422 of validation, 429: the same key then runs for real.
    read = {"Authorization": f"Bearer {tenant.read_key}"}
    expect_error(post(client, tenant, "/v1/partners", {"name": "Later"}, "pre", read), 403, "forbidden")
    expect_error(post(client, tenant, "/v1/partners", {"nom": "Later"}, "pre"), 422, "validation_error")
    limited = limited_key(tenant, 1)
    client.get("/v1/partners", headers=limited)
    expect_error(post(client, tenant, "/v1/partners", {"name": "Later"}, "pre", limited),
                 429, "rate_limit_exceeded")
    ran = post(client, tenant, "/v1/partners", {"name": "Later"}, "pre")
    assert ran.status_code == 201 and "idempotent-replayed" not in ran.headers, ran.text


def test_a_business_answer_is_stored_and_replayed(client, tenant, api):
    certification = api.certification()
    path = f"/v1/certifications/{certification['uuid']}/enrollments"
    body = {"user_uuid": ABSENT_UUID}
    first = post(client, tenant, path, body, "biz")
    expect_error(first, 404, "not_found")
    again = post(client, tenant, path, body, "biz")
    assert again.status_code == 404 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


def test_a_5xx_is_not_stored_and_the_change_rolls_back_with_its_answer(
        client, tenant, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the disk is full")

    # Storing the answer fails after the partner was written: both or neither.
    with monkeypatch.context() as patch:
        patch.setattr(IdempotencyRecord, "create", broken)
        failed = post(client, tenant, "/v1/partners", {"name": "All or nothing"}, "tx")
    expect_error(failed, 500, "internal_error")
    assert not Partner.select().where(Partner.name == "All or nothing").exists()
    # The handler itself fails: nothing is stored, so the retry runs.
    with monkeypatch.context() as patch:
        patch.setattr(Partner, "as_json", broken)
        expect_error(post(client, tenant, "/v1/partners", {"name": "All or nothing"}, "tx"),
                     500, "internal_error")
    ran = post(client, tenant, "/v1/partners", {"name": "All or nothing"}, "tx")
    assert ran.status_code == 201 and "idempotent-replayed" not in ran.headers, ran.text
    assert Partner.select().where(Partner.name == "All or nothing").count() == 1


def test_expired_answers_run_again_and_are_purged(client, tenant, app):
    first = post(client, tenant, "/v1/partners", {"name": "Old"}, "old")
    stale = datetime.datetime.utcnow() - datetime.timedelta(hours=24, minutes=1)
    IdempotencyRecord.update(created_at=stale).where(
        IdempotencyRecord.account == tenant.uuid).execute()
    again = post(client, tenant, "/v1/partners", {"name": "Old"}, "old")
    assert again.status_code == 201 and again.json()["uuid"] != first.json()["uuid"]
    post(client, tenant, "/v1/partners", {"name": "Older"}, "older")
    IdempotencyRecord.update(created_at=stale).where(IdempotencyRecord.key == "older").execute()
    layer = app.app.extensions["certapi_idempotency"]
    assert layer.purge() >= 1
    assert not IdempotencyRecord.select().where(IdempotencyRecord.key == "older").exists()


class Held:
    """Holds a key's latch the way a running request of another process would."""

    def __init__(self, app, tenant, key):
        self.layer = app.app.extensions["certapi_idempotency"]
        self.name = f"{tenant.uuid}:{key}"

    def __enter__(self):
        if is_postgres():
            params = database.obj.connect_params
            self.conn = psycopg2.connect(dbname=database.obj.database, **params)
            self.conn.cursor().execute(
                "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (self.name,))
        else:
            self.offset = self.layer._file_latch_for().acquire(self.name)
            assert self.offset is not None
        return self

    def __exit__(self, *exc):
        if is_postgres():
            self.conn.close()
        else:
            self.layer._file_latch.release(self.offset)


def bodies(api) -> dict:
    """A valid body for every POST and PATCH operation."""
    return {
        "createPartner": {"name": "P"},
        "updatePartner": {"name": "P"},
        "createUser": {"email": "held@example.com"},
        "updateUser": {"first_name": "H"},
        "createCertification": {"name": "C"},
        "updateCertification": {"name": "C"},
        "createEnrollment": {"user_uuid": ABSENT_UUID},
        "createEnrollmentsBulk": {"enrollments": [{"user_uuid": ABSENT_UUID}]},
        "updateEnrollmentProgress": {"progress_percentage": 10},
        "createAttempt": {"score": 50},
        "createWebhookEndpoint": {"url": "https://hooks.example.com/certapi"},
        "updateWebhookEndpoint": {"enabled": True},
        # These three take no body: the key alone names the request.
        "rotateWebhookSecret": None,
        "sendTestEvent": None,
        "retryWebhookDelivery": None,
    }


def test_the_same_key_in_flight_is_409_with_retry_after_on_every_write(client, app, tenant, api):
    writes = [(method, path, op["operationId"]) for path, item in SPEC["paths"].items()
              for method, op in item.items() if method in ("post", "patch")]
    known = bodies(api)
    assert {op_id for _, _, op_id in writes} == set(known)
    for method, path, op_id in writes:
        url = "/v1" + re.sub(r"\{[^}]+\}", ABSENT_UUID, path)
        with Held(app, tenant, "busy"):
            response = client.request(method.upper(), url, json=known[op_id],
                                      headers={**tenant.headers, "Idempotency-Key": "busy"})
        message = expect_error(response, 409, "conflict")
        assert "Idempotency-Key" in message and response.headers["retry-after"] == "1"
    # Released, the key runs (and nothing of the refused attempts was stored).
    ran = post(client, tenant, "/v1/partners", {"name": "P"}, "busy")
    assert ran.status_code == 201 and "idempotent-replayed" not in ran.headers, ran.text
