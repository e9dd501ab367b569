"""API keys: both header forms, 401 for anything but a live key, 403 for a read key on any
write, and keys that are random, stored only as a hash and never logged. The operation
lists come from tests.conftest.OPERATIONS, so new operations are covered as they appear."""
import hashlib
import logging
import re
import string
from pathlib import Path

import pytest

from models import MODELS, Account, ApiKey, database
from models.account import hash_key
from models.base import utcnow
from tests.conftest import ABSENT_UUID, OPERATIONS, SPEC, expect_error, make_tenant

WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}
WRITES = [pytest.param(method, regex, id=op_id)
          for method, regex, op_id, _ in OPERATIONS if method in WRITE_METHODS]
READS = [pytest.param(method, regex, id=op_id)
         for method, regex, op_id, _ in OPERATIONS if method == "GET"]
SECURED = [pytest.param(method, regex, id=op_id)
           for method, regex, op_id, statuses in OPERATIONS if "401" in statuses]
PARAM = "[^/]+"


def url_of(regex: re.Pattern, ids: dict | None = None) -> str:
    """The operation's path with each parameter filled from ``ids``, keyed by the
    collection it follows (``partners``, ``enrollments``...), or with an absent uuid."""
    *literals, last = regex.pattern.strip("^$").split(PARAM)
    filled = [literal + (ids or {}).get(literal.rstrip("/").rsplit("/", 1)[1], ABSENT_UUID)
              for literal in literals]
    return "".join(filled) + last


def revoke(plain: str) -> None:
    assert ApiKey.update(revoked_at=utcnow()).where(ApiKey.key_hash == hash_key(plain)).execute() == 1


@pytest.fixture
def world(api):
    """One resource of every kind in the tenant's account, keyed by its collection."""
    partner = api.partner()
    user = api.user(partnership_uuid=partner["uuid"])
    cert = api.certification()
    enrollment = api.enroll(cert, user, partnership_uuid=partner["uuid"])
    attempt = api.attempt(enrollment, 10)
    endpoint = api.post("/v1/webhook-endpoints", {"url": "https://93.184.215.14/hook"})
    delivery = api.post(f"/v1/webhook-endpoints/{endpoint['uuid']}/test", None, expect=202)
    return {"partners": partner["uuid"], "users": user["uuid"], "certifications": cert["uuid"],
            "enrollments": enrollment["uuid"], "assessment-attempts": attempt["uuid"],
            "webhook-endpoints": endpoint["uuid"], "deliveries": delivery["uuid"],
            "events": delivery["event_id"]}


# --- the two header forms ------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "Api-Key", "api-key", "API-KEY"])
def test_both_forms_any_case_on_read_and_write(client, tenant, scheme):
    headers = {"Authorization": f"{scheme} {tenant.key}"}
    assert client.get("/v1/partners", headers=headers).status_code == 200
    created = client.post("/v1/partners", json={"name": scheme}, headers=headers)
    assert created.status_code == 201, created.text
    assert client.get(created.headers["location"], headers=headers).json()["name"] == scheme


@pytest.mark.parametrize("value", ["", "Bearer", "Bearer ", "Api-Key", "Basic x", "Basic dXNlcjpwdw==",
                                   "Bearer a b", "Token abc", "Bearer\tabc", "abc"])
def test_malformed_header_is_401(client, tenant, value):
    for method, url in (("GET", "/v1/partners"), ("POST", "/v1/partners")):
        response = client.request(method, url, json={"name": "x"}, headers={"Authorization": value})
        expect_error(response, 401, "unauthorized")


def test_swagger_ui_and_generated_clients_send_bearer():
    """Swagger UI sends an apiKey scheme's value bare; an http bearer scheme as `Bearer <key>`."""
    schemes = SPEC["components"]["securitySchemes"]
    first = next(iter(SPEC["security"][0]))
    assert schemes[first]["type"] == "http" and schemes[first]["scheme"] == "bearer"
    assert {"type": "apiKey", "in": "header", "name": "Authorization"}.items() <= schemes["ApiKeyAuth"].items()
    assert [set(alternative) for alternative in SPEC["security"]] == [{"BearerAuth"}, {"ApiKeyAuth"}]


@pytest.mark.parametrize("value, message", [
    ("Bearer cak_nosuchkey", "Unknown or revoked API key"),
    ("Api-Key cak_nosuchkey", "Unknown or revoked API key"),
    ("Token abc", 'Authorization header must be "Bearer <api_key>" or "Api-Key <api_key>"'),
    ("Bearer a b", 'Authorization header must be "Bearer <api_key>" or "Api-Key <api_key>"'),
])
def test_401_says_what_was_wrong_whichever_scheme_judged_it(client, value, message):
    assert expect_error(client.get("/v1/partners", headers={"Authorization": value}),
                        401, "unauthorized") == message


def test_key_in_the_wrong_scheme_is_401(client, tenant):
    response = client.get("/v1/partners", headers={"Authorization": f"Basic {tenant.key}"})
    expect_error(response, 401, "unauthorized")


@pytest.mark.parametrize("method, regex", SECURED)
def test_every_secured_operation_without_a_key_is_401(client, method, regex):
    response = client.request(method, url_of(regex), json={})
    assert "Missing" in expect_error(response, 401, "unauthorized")


def test_health_needs_no_key(client):
    assert client.get("/v1/health").status_code == 200


def test_unknown_key_is_401(client, tenant):
    forged = tenant.key[:-4] + ("AAAA" if not tenant.key.endswith("AAAA") else "BBBB")
    for value in (f"Bearer {forged}", "Bearer cak_nosuchkey", f"Api-Key {tenant.key.upper()}"):
        expect_error(client.get("/v1/partners", headers={"Authorization": value}), 401, "unauthorized")


def test_revoked_key_is_401_at_once(client):
    tenant = make_tenant()  # the test app trusts no cached key (key_cache_seconds=0)
    assert client.get("/v1/partners", headers=tenant.headers).status_code == 200
    revoke(tenant.key)
    expect_error(client.get("/v1/partners", headers=tenant.headers), 401, "unauthorized")
    response = client.post("/v1/partners", json={"name": "x"}, headers=tenant.headers)
    expect_error(response, 401, "unauthorized")
    # Other keys of the account keep working.
    assert client.get("/v1/partners", headers=tenant.read_headers).status_code == 200


# --- read vs write ----------------------------------------------------------------------------

def test_there_are_write_operations():
    assert len(WRITES) >= 10 and {m for m, *_ in (p.values for p in WRITES)} >= {"POST", "PATCH", "DELETE"}


@pytest.mark.parametrize("method, regex", WRITES)
def test_read_key_is_forbidden_on_every_write(client, world, tenant, method, regex):
    # Both on the tenant's real resources and on absent ones: permission comes first.
    for ids in (world, None):
        response = client.request(method, url_of(regex, ids), json={}, headers=tenant.read_headers)
        assert expect_error(response, 403, "forbidden") == "This API key is read-only"
    # Nothing changed: every resource is still there.
    for collection, uuid in world.items():
        if collection in ("partners", "users", "certifications"):
            assert client.get(f"/v1/{collection}/{uuid}", headers=tenant.headers).status_code == 200


@pytest.mark.parametrize("method, regex", READS)
def test_read_key_reads_everything(client, world, tenant, method, regex):
    response = client.request(method, url_of(regex, world), headers=tenant.read_headers)
    assert response.status_code == 200, response.text


# --- how keys are made and kept -------------------------------------------------------------

def test_keys_carry_at_least_128_random_bits():
    account = Account.create(name="Entropy")
    keys = [ApiKey.issue(account, "read")[1] for _ in range(200)]
    assert len(set(keys)) == len(keys)
    prefix = re.match(r"^[a-z]+_", keys[0])[0]
    alphabet = set(string.ascii_letters + string.digits + "-_")
    bodies = [key[len(prefix):] for key in keys]
    for body in bodies:
        assert set(body) <= alphabet and len(body) * 6 >= 128, body
    # Every position varies across keys: no fixed or counter-like part.
    for position in range(len(bodies[0])):
        assert len({body[position] for body in bodies}) > 10, position


def table_text() -> str:
    """Every row of every table, as text (works on any backend)."""
    rows = []
    for model in MODELS:
        cursor = database.execute_sql(f'SELECT * FROM "{model._meta.table_name}"')
        rows.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(rows)


def test_key_is_stored_only_as_its_sha256(client, database_url):
    tenant = make_tenant()
    row = ApiKey.get(ApiKey.key_hash == hash_key(tenant.key))
    assert row.key_hash == hashlib.sha256(tenant.key.encode()).hexdigest()
    assert tenant.key.startswith(row.hint) and len(row.hint) < len(tenant.key) / 2
    assert client.get("/v1/partners", headers=tenant.headers).status_code == 200
    text = table_text()
    assert row.key_hash in text  # the dump does see the key table
    assert tenant.key not in text and tenant.key[len(row.hint):] not in text
    if database_url.startswith("sqlite"):
        database.execute_sql("PRAGMA wal_checkpoint(FULL)")
        path = Path(database_url.split(":///", 1)[1].split("?", 1)[0])
        files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
        raw = b"".join(p.read_bytes() for p in files)
        assert row.key_hash.encode() in raw
        assert tenant.key.encode() not in raw


def test_key_is_never_logged(client, caplog, capfd):
    tenant = make_tenant()
    forged = tenant.key[:-1] + ("x" if tenant.key[-1] != "x" else "y")
    with caplog.at_level(logging.DEBUG):
        client.get("/v1/partners", headers=tenant.headers)
        client.post("/v1/partners", json={"name": "Logged"}, headers=tenant.headers)
        client.post("/v1/partners", json={"name": "No"}, headers=tenant.read_headers)
        client.get("/v1/partners", headers={"Authorization": f"Api-Key {forged}"})
        client.get("/v1/partners?page=0", headers=tenant.headers)
        client.get("/v1/nope", headers=tenant.headers)
        client.put("/v1/partners", headers=tenant.headers)
    assert "POST /v1/partners 403" in caplog.text  # the log did see these requests
    captured = capfd.readouterr()
    for secret in (tenant.key, tenant.read_key, forged):
        body = secret[10:]
        assert body not in caplog.text
        assert body not in captured.out and body not in captured.err
