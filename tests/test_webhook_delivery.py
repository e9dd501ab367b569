"""Webhook delivery, in process, against a real local HTTP receiver: what is raised by
which change, signatures, retries, Retry-After, 410, five days of failures, timeouts,
redirects, the read cap, secret rotation, test events, manual retries, the delivery log
and its access-log line. A sender (certapi.webhooks.delivery.Sender) is run by hand."""
import datetime
import json
import logging
import time

import pytest
from standardwebhooks import WebhookVerificationError

import handlers.enrollments
from certapi.webhooks.delivery import Sender
from certapi.webhooks.settings import WebhookSettings
from models import Event, WebhookDelivery, WebhookEndpoint, database
from models.base import utcnow
from tests.conftest import expect_error
from tests.webhook_receiver import Answer, Receiver


@pytest.fixture
def webhook_env(monkeypatch):
    """Local receivers allowed, retries in fractions of a second."""
    monkeypatch.setenv("CERTAPI_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("CERTAPI_WEBHOOK_RETRY_SCHEDULE", "0.2,0.2,0.2")
    monkeypatch.setenv("CERTAPI_WEBHOOK_TIMEOUT", "2")




@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def subscribe(client, tenant, url, **fields) -> dict:
    response = client.post("/v1/webhook-endpoints", headers=tenant.headers,
                           json={"url": url, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def drain(sender: Sender, seconds: float = 10.0) -> None:
    """Run the sender until no enabled endpoint has a pending delivery, or fail after
    ``seconds`` (other tenants' endpoints are paused: see ``only_this_tenant``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sender.run_once()
        with database.connection_context():
            pending = (WebhookDelivery.select().join(WebhookEndpoint)
                       .where((WebhookDelivery.status == "pending") & WebhookEndpoint.enabled)
                       .exists())
        if not pending:
            return
        time.sleep(0.05)
    raise AssertionError("deliveries still pending")


def deliveries(client, tenant, endpoint, status=None) -> list[dict]:
    query = f"?status={status}" if status else ""
    response = client.get(f"/v1/webhook-endpoints/{endpoint['uuid']}/deliveries{query}",
                          headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


pytestmark = pytest.mark.usefixtures("webhook_env", "only_this_tenant")


def test_enroll_and_passing_attempt_arrive_signed_in_order(client, tenant, api, receiver):
    endpoint = subscribe(client, tenant, receiver.url)
    user, certification = api.user(), api.certification(passing_score=70)
    enrollment = api.enroll(certification, user)
    result = api.attempt(enrollment, 90)
    drain(Sender())

    # Raised in this order (the events API lists them so); sent concurrently, so they
    # may arrive in any order.
    events = client.get(f"/v1/events?enrollment_uuid={enrollment['uuid']}",
                        headers=tenant.headers).json()["data"]
    assert [e["type"] for e in events] == ["enrollment.created", "enrollment.started",
                                           "assessment_attempt.recorded", "enrollment.completed"]
    by_id = {r.id: r for r in receiver.received}
    assert len(receiver.received) == 4 and set(by_id) == {e["uuid"] for e in events}
    payloads = [by_id[e["uuid"]].verified(endpoint["secret"]) for e in events]
    assert payloads[0]["data"] == enrollment  # the resource as the API answered it
    assert payloads[2]["data"] == {**{k: result[k] for k in ("uuid", "score", "passed", "submitted_at")},
                                   "enrollment_uuid": enrollment["uuid"],
                                   "certification_uuid": certification["uuid"]}
    assert payloads[3]["data"] == result["enrollment"]
    for received in receiver.received:
        assert received.headers["content-type"] == "application/json"
        assert received.headers["webhook-signature"].startswith("v1,")
        assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 60
    # The same payloads as the events API.
    assert [{k: e[k] for k in ("type", "timestamp", "data")} for e in events] == payloads
    assert all(d["status"] == "succeeded" and d["attempts"] == 1 and d["last_status_code"] == 200
               for d in deliveries(client, tenant, endpoint))


def test_a_wrong_secret_does_not_verify(client, tenant, api, receiver):
    """The verification above can fail: the receiver's check is not a rubber stamp."""
    subscribe(client, tenant, receiver.url)
    other = subscribe(client, tenant, receiver.url + "?other")
    api.enroll(api.certification(), api.user())
    drain(Sender())
    assert len(receiver.received) == 2
    first = next(r for r in receiver.received if r.path == "/hook")
    with pytest.raises(Exception, match="signature"):
        first.verified(other["secret"])


def test_progress_raises_started_once_then_progress_updated(client, tenant, api, receiver):
    subscribe(client, tenant, receiver.url, event_types=["enrollment.started",
                                                         "enrollment.progress_updated"])
    enrollment = api.enroll(api.certification(), api.user())
    path = f"/v1/certifications/{enrollment['certification_uuid']}/enrollments/{enrollment['uuid']}"
    for progress in (20, 40):
        assert client.patch(path, json={"progress_percentage": progress},
                            headers=tenant.headers).status_code == 200
    # A refused change (progress going down: 409) raises nothing.
    assert client.patch(path, json={"progress_percentage": 10},
                        headers=tenant.headers).status_code == 409
    drain(Sender())
    received = sorted((json.loads(r.body) for r in receiver.received), key=lambda p: p["timestamp"])
    assert [(p["type"], p["data"]["progress_percentage"]) for p in received] == [
        ("enrollment.started", 20), ("enrollment.progress_updated", 20),
        ("enrollment.progress_updated", 40)]


def test_failing_attempts_raise_failed_and_delete_raises_deleted(client, tenant, api, receiver):
    subscribe(client, tenant, receiver.url, event_types=["enrollment.failed", "enrollment.deleted",
                                                         "enrollment.completed"])
    enrollment = api.enroll(api.certification(passing_score=80, max_attempts=2), api.user())
    api.attempt(enrollment, 10)
    api.attempt(enrollment, 20)
    api.attempt(enrollment, 99, expect=409)  # no attempts left: nothing raised
    path = f"/v1/certifications/{enrollment['certification_uuid']}/enrollments/{enrollment['uuid']}"
    assert client.delete(path, headers=tenant.headers).status_code == 204
    drain(Sender())
    received = sorted((json.loads(r.body) for r in receiver.received), key=lambda p: p["timestamp"])
    assert [p["type"] for p in received] == ["enrollment.failed", "enrollment.deleted"]
    assert received[1]["data"]["status"] == "failed"


def test_a_change_that_rolls_back_raises_nothing(client, tenant, api, receiver, monkeypatch):
    subscribe(client, tenant, receiver.url)
    certification, user = api.certification(), api.user()
    real = handlers.enrollments.webhooks.enrollment_created

    def raise_then_fail(*args):
        real(*args)  # the event is written ...
        raise RuntimeError("boom")  # ... and the transaction fails after it

    monkeypatch.setattr(handlers.enrollments.webhooks, "enrollment_created", raise_then_fail)
    response = client.post(f"/v1/certifications/{certification['uuid']}/enrollments",
                           json={"user_uuid": user["uuid"]}, headers=tenant.headers)
    expect_error(response, 500, "internal_error")
    assert not Event.select().where(Event.account == tenant.uuid).exists()
    assert client.get(f"/v1/certifications/{certification['uuid']}/enrollments",
                      headers=tenant.headers).json()["data"] == []
    drain(Sender())
    assert receiver.received == []


def test_failures_follow_the_retry_schedule_then_fail(client, tenant, api, receiver):
    receiver.respond = lambda r: Answer(500)
    endpoint = subscribe(client, tenant, receiver.url)
    api.enroll(api.certification(), api.user())
    drain(Sender())
    assert len(receiver.received) == 4  # the first attempt and one retry per delay (3)
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:])]
    assert all(0.19 <= gap < 2 for gap in gaps), gaps
    assert len(set(receiver.ids())) == 1  # the same webhook-id on every retry
    [delivery] = deliveries(client, tenant, endpoint, status="failed")
    assert delivery["attempts"] == 4 and delivery["last_status_code"] == 500
    assert delivery["last_error"] == "HTTP 500" and delivery["next_attempt_at"] is None
    assert deliveries(client, tenant, endpoint, status="succeeded") == []
    # Failures alone do not disable an endpoint (five days of them do).
    assert client.get(f"/v1/webhook-endpoints/{endpoint['uuid']}",
                      headers=tenant.headers).json()["enabled"] is True


def test_retry_after_is_a_minimum_wait(client, tenant, api, receiver):
    answers = iter([Answer(503, {"Retry-After": "2"}), Answer(200)])
    receiver.respond = lambda r: next(answers)
    endpoint = subscribe(client, tenant, receiver.url)
    api.enroll(api.certification(), api.user())
    sender = Sender()
    sender.run_once()
    pending = deliveries(client, tenant, endpoint, status="pending")
    assert len(pending) == 1 and pending[0]["last_status_code"] == 503
    drain(sender)
    first, second = receiver.received
    assert second.at - first.at >= 1.9  # not the 0.2 s of the schedule
    assert deliveries(client, tenant, endpoint)[0]["status"] == "succeeded"


def test_410_disables_the_endpoint_at_once(client, tenant, api, receiver):
    receiver.respond = lambda r: Answer(410)
    endpoint = subscribe(client, tenant, receiver.url)
    certification = api.certification()
    api.enroll(certification, api.user())
    drain(Sender())
    assert len(receiver.received) == 1
    got = client.get(f"/v1/webhook-endpoints/{endpoint['uuid']}", headers=tenant.headers).json()
    assert got["enabled"] is False and "410" in got["disabled_reason"]
    assert deliveries(client, tenant, endpoint)[0]["status"] == "failed"
    # A disabled endpoint gets nothing more, and its test and retry say why not.
    api.enroll(certification, api.user())
    drain(Sender())
    assert len(receiver.received) == 1
    expect_error(client.post(f"/v1/webhook-endpoints/{endpoint['uuid']}/test",
                             headers=tenant.headers), 409, "conflict")
    delivery = deliveries(client, tenant, endpoint)[0]
    expect_error(client.post(f"/v1/webhook-endpoints/{endpoint['uuid']}/deliveries/"
                             f"{delivery['uuid']}/retry", headers=tenant.headers), 409, "conflict")
    # Enabling it again clears the reason.
    enabled = client.patch(f"/v1/webhook-endpoints/{endpoint['uuid']}", json={"enabled": True},
                           headers=tenant.headers).json()
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None


def test_five_days_of_failures_disable_the_endpoint(client, tenant, api, receiver):
    receiver.respond = lambda r: Answer(500)
    endpoint = subscribe(client, tenant, receiver.url)
    certification = api.certification()
    api.enroll(certification, api.user())
    Sender().run_once()
    row = WebhookEndpoint.get_by_id(endpoint["uuid"])
    assert row.failing_since is not None and row.enabled  # failing, not for long yet
    WebhookEndpoint.update(failing_since=utcnow() - datetime.timedelta(days=5, minutes=1)) \
        .where(WebhookEndpoint.uuid == endpoint["uuid"]).execute()
    drain(Sender())
    got = client.get(f"/v1/webhook-endpoints/{endpoint['uuid']}", headers=tenant.headers).json()
    assert got["enabled"] is False and "5 days" in got["disabled_reason"]


def test_a_success_resets_the_failing_clock(client, tenant, api, receiver):
    answers = iter([Answer(500), Answer(200)])
    receiver.respond = lambda r: next(answers)
    endpoint = subscribe(client, tenant, receiver.url)
    api.enroll(api.certification(), api.user())
    drain(Sender())
    assert WebhookEndpoint.get_by_id(endpoint["uuid"]).failing_since is None


def test_a_slow_receiver_times_out_and_is_retried(client, tenant, api, receiver, monkeypatch):
    monkeypatch.setenv("CERTAPI_WEBHOOK_TIMEOUT", "0.5")
    receiver.respond = lambda r: Answer(200, delay=2 if len(receiver.received) == 1 else 0)
    endpoint = subscribe(client, tenant, receiver.url)
    api.enroll(api.certification(), api.user())
    sender = Sender()
    started = time.monotonic()
    sender.run_once()
    assert time.monotonic() - started < 1.9
    [pending] = deliveries(client, tenant, endpoint, status="pending")
    assert pending["last_error"].startswith("timeout") and pending["last_status_code"] is None
    drain(sender)
    assert deliveries(client, tenant, endpoint)[0]["status"] == "succeeded"


def test_redirects_are_not_followed(client, tenant, api, receiver):
    receiver.respond = lambda r: Answer(302, {"Location": "/elsewhere"}) \
        if r.path == "/hook" else Answer(200)
    endpoint = subscribe(client, tenant, receiver.url)
    api.enroll(api.certification(), api.user())
    Sender().run_once()
    assert [r.path for r in receiver.received] == ["/hook"]
    [delivery] = deliveries(client, tenant, endpoint)
    assert delivery["last_status_code"] == 302 and delivery["status"] == "pending"


def test_at_most_64_kib_of_an_answer_is_read(client, tenant, api, receiver):
    receiver.respond = lambda r: Answer(200, stream_bytes=50 * 1024 * 1024)
    endpoint = subscribe(client, tenant, receiver.url)
    api.enroll(api.certification(), api.user())
    started = time.monotonic()
    Sender().run_once()
    assert time.monotonic() - started < 5
    assert deliveries(client, tenant, endpoint)[0]["status"] == "succeeded"
    time.sleep(0.2)
    # What the receiver managed to write before the sender hung up (socket buffers
    # included) is nowhere near the 50 MiB it offered.
    assert receiver.bytes_written < 20 * 1024 * 1024


def test_rotation_signs_with_both_secrets_for_24_hours(client, tenant, api, receiver):
    endpoint = subscribe(client, tenant, receiver.url)
    old = endpoint["secret"]
    rotated = client.post(f"/v1/webhook-endpoints/{endpoint['uuid']}/secret",
                          headers=tenant.headers)
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != old and new.startswith("whsec_")
    certification = api.certification()
    api.enroll(certification, api.user())
    drain(Sender())
    [received] = receiver.received
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    received.verified(old), received.verified(new)
    # After the 24 hours only the new secret signs.
    WebhookEndpoint.update(previous_secret_until=utcnow() - datetime.timedelta(seconds=1)) \
        .where(WebhookEndpoint.uuid == endpoint["uuid"]).execute()
    api.enroll(certification, api.user())
    drain(Sender())
    latest = receiver.received[-1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    latest.verified(new)
    with pytest.raises(WebhookVerificationError):
        latest.verified(old)


def test_test_event_and_manual_retry(client, tenant, receiver, caplog):
    endpoint = subscribe(client, tenant, receiver.url)
    queued = client.post(f"/v1/webhook-endpoints/{endpoint['uuid']}/test", headers=tenant.headers)
    assert queued.status_code == 202
    assert queued.json()["status"] == "pending" and queued.json()["event_type"] == "webhook.test"
    with caplog.at_level(logging.INFO, logger="certapi.webhooks"):
        drain(Sender())
    [received] = receiver.received
    payload = received.verified(endpoint["secret"])
    assert payload["type"] == "webhook.test"
    assert payload["data"] == {"webhook_endpoint_uuid": endpoint["uuid"]}
    assert received.id == queued.json()["event_id"]

    retried = client.post(f"/v1/webhook-endpoints/{endpoint['uuid']}/deliveries/"
                          f"{queued.json()['uuid']}/retry", headers=tenant.headers)
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    drain(Sender())
    assert receiver.ids() == [received.id, received.id]
    [delivery] = deliveries(client, tenant, endpoint)
    assert delivery["attempts"] == 2 and delivery["status"] == "succeeded"

    # One access-log line per attempt: endpoint, event type, status, duration; never the
    # secret, the signature or the body.
    lines = [r.getMessage() for r in caplog.records if r.name == "certapi.webhooks"]
    mine = [line for line in lines if endpoint["uuid"] in line]
    assert len(mine) == 2  # two attempts
    line = mine[0]
    assert "event_type=webhook.test" in line and "status=200" in line and "duration_ms=" in line
    assert endpoint["secret"] not in line and endpoint["secret"][6:] not in line
    assert received.body.decode() not in line
    assert endpoint["secret"][6:] not in json.dumps(deliveries(client, tenant, endpoint))


def test_unknown_delivery_or_endpoint_is_404(client, tenant, other_tenant, receiver):
    from tests.conftest import ABSENT_UUID

    endpoint = subscribe(client, tenant, receiver.url)
    base = f"/v1/webhook-endpoints/{endpoint['uuid']}"
    expect_error(client.post(f"{base}/deliveries/{ABSENT_UUID}/retry", headers=tenant.headers),
                 404, "not_found")
    queued = client.post(f"{base}/test", headers=tenant.headers).json()
    # Another account sees neither the endpoint nor its deliveries.
    for method, path in [("GET", base), ("PATCH", base), ("DELETE", base),
                         ("POST", f"{base}/secret"), ("POST", f"{base}/test"),
                         ("GET", f"{base}/deliveries"),
                         ("POST", f"{base}/deliveries/{queued['uuid']}/retry")]:
        kwargs = {"json": {"enabled": False}} if method == "PATCH" else {}
        response = client.request(method, path, headers=other_tenant.headers, **kwargs)
        assert expect_error(response, 404, "not_found") == "Webhook endpoint not found"
    WebhookDelivery.delete().where(WebhookDelivery.uuid == queued["uuid"]).execute()


def test_event_retention(client, tenant, api, monkeypatch):
    enrollment = api.enroll(api.certification(), api.user())
    [event] = client.get(f"/v1/events?enrollment_uuid={enrollment['uuid']}",
                         headers=tenant.headers).json()["data"]
    Event.update(created_at=utcnow() - datetime.timedelta(days=31)) \
        .where(Event.uuid == event["uuid"]).execute()
    listed = client.get(f"/v1/events?enrollment_uuid={enrollment['uuid']}", headers=tenant.headers)
    assert listed.json()["data"] == []
    expect_error(client.get(f"/v1/events/{event['uuid']}", headers=tenant.headers), 404, "not_found")
    monkeypatch.setenv("CERTAPI_EVENT_RETENTION_DAYS", "60")
    assert client.get(f"/v1/events/{event['uuid']}", headers=tenant.headers).status_code == 200
    monkeypatch.setenv("CERTAPI_EVENT_RETENTION_DAYS", "30")
    from certapi.webhooks.delivery import purge

    assert purge(WebhookSettings.from_env()) >= 1
    assert not Event.select().where(Event.uuid == event["uuid"]).exists()


def test_deliveries_a_lane_cannot_start_within_the_lease_go_back_unsent(
        client, tenant, api, receiver, monkeypatch):
    """A lane sends its deliveries one after another; one it could not start early enough
    to end within the lease is handed back due, its attempt not counted, and sent later."""
    import certapi.webhooks.delivery as delivery_module

    monkeypatch.setattr(delivery_module, "LANES_PER_ENDPOINT", 1)
    # The last start 0.2 s after the claim instead of 5 s.
    monkeypatch.setattr(WebhookSettings, "lease_seconds",
                        property(lambda self: self.longest_send_seconds + 0.2))
    receiver.respond = lambda r: Answer(200, delay=0.3)
    endpoint = subscribe(client, tenant, receiver.url)
    certification = api.certification()
    for _ in range(3):
        api.enroll(certification, api.user())
    sender = Sender()
    assert sender.run_once() == 3
    assert len(receiver.received) == 1
    pending = deliveries(client, tenant, endpoint, status="pending")
    assert len(pending) == 2 and all(d["attempts"] == 0 for d in pending)
    assert WebhookDelivery.select().where(WebhookDelivery.claim.is_null(False)).count() == 0
    drain(sender)
    assert len(set(receiver.ids())) == 3 and len(receiver.received) == 3
    assert all(d["status"] == "succeeded" and d["attempts"] == 1
               for d in deliveries(client, tenant, endpoint))


def test_lanes_deal_each_endpoints_deliveries_out_in_turn(monkeypatch):
    from types import SimpleNamespace

    from certapi.webhooks import delivery
    from certapi.webhooks.delivery import lanes

    monkeypatch.setattr(delivery, "LANES_PER_ENDPOINT", 4)
    claimed = [SimpleNamespace(endpoint_id=e) for e in "aababaaaaac"]
    found = lanes(claimed)  # type: ignore[arg-type]
    assert sorted(i for lane in found for i in lane) == list(range(len(claimed)))
    assert found == [[0, 6], [1, 7], [3, 8], [5, 9], [2], [4], [10]]
