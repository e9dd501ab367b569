"""Webhook endpoints (CRUD, the secret shown once, the destination guard) and the
events API (filters, tenancy, ids and payloads)."""
import datetime
import socket
import threading
import time

import pytest

from certapi.webhooks import ssrf
from tests.conftest import ABSENT_UUID, expect_error

PUBLIC_URL = "https://93.184.215.14/hooks/certapi"


@pytest.fixture
def public_only(monkeypatch):
    monkeypatch.delenv("CERTAPI_WEBHOOK_ALLOW_PRIVATE", raising=False)


def create(client, tenant, **body):
    return client.post("/v1/webhook-endpoints", headers=tenant.headers,
                       json={"url": PUBLIC_URL, **body})


def test_create_shows_the_secret_once(client, tenant, public_only):
    response = create(client, tenant, description="CRM", event_types=["enrollment.completed"])
    assert response.status_code == 201, response.text
    endpoint = response.json()
    assert response.headers["location"] == f"/v1/webhook-endpoints/{endpoint['uuid']}"
    assert endpoint["secret"].startswith("whsec_") and len(endpoint["secret"]) >= 6 + 32
    assert endpoint["enabled"] is True and endpoint["disabled_reason"] is None
    assert endpoint["event_types"] == ["enrollment.completed"]
    got = client.get(f"/v1/webhook-endpoints/{endpoint['uuid']}", headers=tenant.headers)
    assert got.status_code == 200
    assert "secret" not in got.json()
    assert got.json() == {k: v for k, v in endpoint.items() if k != "secret"}
    listed = client.get("/v1/webhook-endpoints", headers=tenant.headers).json()
    assert [e["uuid"] for e in listed["data"]] == [endpoint["uuid"]]
    assert endpoint["secret"] not in str(listed)
    # Two endpoints never share a secret.
    assert create(client, tenant).json()["secret"] != endpoint["secret"]


def test_update_and_delete(client, tenant, public_only):
    endpoint = create(client, tenant).json()
    path = f"/v1/webhook-endpoints/{endpoint['uuid']}"
    changed = client.patch(path, headers=tenant.headers,
                           json={"enabled": False, "event_types": ["enrollment.failed"],
                                 "description": "paused"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["enabled"] is False and body["disabled_reason"]
    assert body["event_types"] == ["enrollment.failed"] and body["description"] == "paused"
    assert client.delete(path, headers=tenant.headers).status_code == 204
    expect_error(client.get(path, headers=tenant.headers), 404, "not_found")
    expect_error(client.delete(path, headers=tenant.headers), 404, "not_found")
    expect_error(client.get(f"/v1/webhook-endpoints/{ABSENT_UUID}/deliveries",
                            headers=tenant.headers), 404, "not_found")


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook",
    "http://127.1/hook",                 # short form
    "http://2130706433/hook",            # decimal
    "http://0177.0.0.1/hook",            # octal
    "http://0x7f.0.0.1/hook",            # hexadecimal
    "http://0/hook",                     # 0.0.0.0
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1:8080/hook",
    "http://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
    "http://100.64.0.1/hook",            # shared address space
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",    # IPv4-mapped IPv6
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://localhost:8080/hook",        # a name that resolves to 127.0.0.1
    "http://224.0.0.1/hook",             # multicast
])
def test_non_public_destinations_are_refused(client, tenant, public_only, url):
    message = expect_error(create(client, tenant, url=url), 422, "validation_error")
    assert message.startswith("body/url: ")
    endpoint = create(client, tenant).json()
    response = client.patch(f"/v1/webhook-endpoints/{endpoint['uuid']}", headers=tenant.headers,
                            json={"url": url})
    expect_error(response, 422, "validation_error")


@pytest.mark.parametrize("url", [
    "http://\u00d4\u00d6]/\u0104%E\u00d56\u00c2",  # a stray bracket: once a 500 (the fuzzer's find)
    "http://[::1/hook",
    "http://hooks.example.com:99999/hook",
    "http://hooks.example.com:port/hook",
])
def test_urls_the_parser_rejects_are_a_422(client, tenant, url):
    message = expect_error(create(client, tenant, url=url), 422, "validation_error")
    assert message.startswith("body/url: Not a usable destination: ")


def test_a_name_resolving_to_loopback_is_refused(monkeypatch, public_only):
    """Any name, not only `localhost`: what counts is the address it resolves to."""
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == "hooks.attacker.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(ssrf.RefusedDestination, match="127.0.0.1"):
        ssrf.check_url("https://hooks.attacker.example/x")
    ssrf.check_url(PUBLIC_URL)  # and a public literal passes


@pytest.fixture
def dns_that_hangs(monkeypatch):
    """getaddrinfo that gives no answer for names under hangs.example (a resolver that
    drops queries) until the test ends."""
    real, released = socket.getaddrinfo, threading.Event()

    def hanging(host, *args, **kwargs):
        if str(host).endswith("hangs.example"):
            released.wait(60)
            raise socket.gaierror(socket.EAI_AGAIN, "released")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    monkeypatch.setattr(ssrf, "CHECK_RESOLVE_SECONDS", 0.2)
    yield
    released.set()


def test_a_name_without_a_dns_answer_does_not_hold_up_the_request(client, tenant, public_only,
                                                                  dns_that_hangs):
    """A resolver that never answers once made a create wait past the client's timeout;
    the name passes like one that does not resolve, and is checked again at send time."""
    started = time.monotonic()
    response = create(client, tenant, url="https://crm.hangs.example/hook")
    assert response.status_code == 201, response.text
    path = f"/v1/webhook-endpoints/{response.json()['uuid']}"
    assert client.patch(path, headers=tenant.headers,
                        json={"url": "https://other.hangs.example/hook"}).status_code == 200
    assert time.monotonic() - started < 5


def test_send_time_lookup_without_an_answer_fails_the_connection(dns_that_hangs):
    from urllib3.exceptions import NewConnectionError

    client = ssrf.client(timeout=0.3, allow_private=False)
    started = time.monotonic()
    with pytest.raises(NewConnectionError, match="no DNS answer"):
        client.request("POST", "https://crm.hangs.example/hook", body=b"{}")
    assert time.monotonic() - started < 5


def test_private_destinations_allowed_when_configured(client, tenant, monkeypatch):
    monkeypatch.setenv("CERTAPI_WEBHOOK_ALLOW_PRIVATE", "1")
    assert create(client, tenant, url="http://127.0.0.1:9/hook").status_code == 201
    # A URL without a host is refused whatever the setting.
    expect_error(create(client, tenant, url="http://:80/hook"), 422, "validation_error")


def test_send_time_guard_refuses_what_dns_now_says(monkeypatch):
    """The check is repeated on every connection, on the address connected to."""
    from urllib3.exceptions import NewConnectionError

    from tests.webhook_receiver import Receiver

    with Receiver() as receiver:
        client = ssrf.client(timeout=2, allow_private=False)
        with pytest.raises(NewConnectionError, match="not a public address"):
            client.request("POST", receiver.url, body=b"{}")
        assert receiver.received == []
        allowed = ssrf.client(timeout=2, allow_private=True)
        assert allowed.request("POST", receiver.url, body=b"{}").status == 200
        assert len(receiver.received) == 1


def test_events_api_filters_and_tenancy(client, tenant, other_tenant, api):
    certification = api.certification()
    first = api.enroll(certification, api.user())
    second = api.enroll(certification, api.user())
    api.attempt(second, 90)
    events = client.get("/v1/events", headers=tenant.headers).json()
    assert [e["type"] for e in events["data"]] == [
        "enrollment.created", "enrollment.created", "enrollment.started",
        "assessment_attempt.recorded", "enrollment.completed"]
    assert events["pagination"]["total"] == 5
    only = client.get("/v1/events?type=enrollment.created", headers=tenant.headers).json()["data"]
    assert [e["data"]["uuid"] for e in only] == [first["uuid"], second["uuid"]]
    assert only[0]["data"] == first
    mine = client.get(f"/v1/events?enrollment_uuid={first['uuid']}", headers=tenant.headers)
    assert [e["uuid"] for e in mine.json()["data"]] == [events["data"][0]["uuid"]]
    after = events["data"][1]["timestamp"]
    later = client.get("/v1/events", params={"created_after": after}, headers=tenant.headers)
    assert [e["uuid"] for e in later.json()["data"]] == [e["uuid"] for e in events["data"][2:]]
    future = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1))
    assert client.get("/v1/events", params={"created_after": future.isoformat()},
                      headers=tenant.headers).json()["data"] == []
    paged = client.get("/v1/events?per_page=2&page=2", headers=tenant.headers).json()
    assert [e["uuid"] for e in paged["data"]] == [e["uuid"] for e in events["data"][2:4]]

    one = client.get(f"/v1/events/{events['data'][3]['uuid']}", headers=tenant.headers)
    assert one.status_code == 200 and one.json() == events["data"][3]
    assert one.json()["data"]["enrollment_uuid"] == second["uuid"]
    # Another account sees none of it.
    assert client.get("/v1/events", headers=other_tenant.headers).json()["data"] == []
    expect_error(client.get(f"/v1/events/{events['data'][3]['uuid']}",
                            headers=other_tenant.headers), 404, "not_found")
    expect_error(client.get(f"/v1/events/{ABSENT_UUID}", headers=tenant.headers),
                 404, "not_found")


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-30T10:00:00"])
def test_created_after_must_be_an_rfc3339_time(client, tenant, value):
    response = client.get("/v1/events", params={"created_after": value}, headers=tenant.headers)
    assert "created_after" in expect_error(response, 422, "validation_error")


@pytest.mark.parametrize("edge", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"])
def test_created_after_past_the_ends_of_the_calendar_in_utc(api, client, tenant, edge):
    """A time the spec admits but Python cannot move to UTC bounds everything (was a 500)."""
    api.enroll(api.certification(), api.user())
    response = client.get("/v1/events", params={"created_after": edge}, headers=tenant.headers)
    assert response.status_code == 200
    assert len(response.json()["data"]) == (0 if edge.startswith("9") else 1)
