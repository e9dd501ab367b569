"""The delivery rows written after the change (certapi.webhooks.fanout): a change's
transaction writes its events naming their endpoints (``event.fanout``), and a fan-out
turns that into the delivery rows the change once wrote itself: the same endpoints,
types and order, once each, whoever fans out. The API shows them from the commit on."""
import threading

import pytest

from certapi.webhooks import emit, fanout
from certapi.webhooks.delivery import Sender
from certapi.webhooks.settings import WebhookSettings
from models import Event, WebhookDelivery, WebhookEndpoint, database
from models.base import utcnow
from tests.webhook_receiver import Receiver


@pytest.fixture(autouse=True)
def webhook_env(monkeypatch):
    monkeypatch.setenv("CERTAPI_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("CERTAPI_WEBHOOK_RETRY_SCHEDULE", "0.2,0.2,0.2")
    monkeypatch.setenv("CERTAPI_WEBHOOK_TIMEOUT", "2")


def subscribe(client, tenant, url="http://127.0.0.1:9/hook", **fields) -> dict:
    response = client.post("/v1/webhook-endpoints", headers=tenant.headers,
                           json={"url": url, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def fan_out_all() -> None:
    while fanout.fan_out()[0]:
        pass


def events_of(enrollment_uuid: str) -> list[Event]:
    return list(Event.select().where(Event.enrollment_uuid == enrollment_uuid)
                .order_by(Event.created_at))


def rows_of(event_uuids: list[str]) -> list[WebhookDelivery]:
    return list(WebhookDelivery.select().where(WebhookDelivery.event.in_(event_uuids))
                .order_by(WebhookDelivery.created_at, WebhookDelivery.uuid))


def test_the_change_writes_its_events_naming_their_endpoints_and_no_delivery(client, tenant, api):
    every = subscribe(client, tenant)
    completions = subscribe(client, tenant, event_types=["enrollment.completed"])
    subscribe(client, tenant, enabled=False)  # disabled when the events are raised: not named
    enrollment = api.enroll(api.certification(passing_score=50), api.user())
    api.attempt(enrollment, 90)
    found = {event.type: event.fanout for event in events_of(enrollment["uuid"])}
    assert found == {"enrollment.created": every["uuid"], "enrollment.started": every["uuid"],
                     "assessment_attempt.recorded": every["uuid"],
                     "enrollment.completed": f"{every['uuid']},{completions['uuid']}"}
    assert not WebhookDelivery.select().where(
        WebhookDelivery.endpoint.in_([every["uuid"], completions["uuid"]])).exists()
    # An account without endpoints raises its events with nothing to fan out.
    WebhookEndpoint.delete().where(WebhookEndpoint.account == tenant.uuid).execute()
    later = api.enroll(api.certification(), api.user())
    assert [e.fanout for e in events_of(later["uuid"])] == [None]


def test_the_column_rolls_back_with_the_change(client, tenant):
    endpoint = subscribe(client, tenant)
    with pytest.raises(RuntimeError), database.atomic():
        event = emit(tenant.uuid, "webhook.test", {"webhook_endpoint_uuid": endpoint["uuid"]})
        assert Event.get_by_id(event.uuid).fanout == endpoint["uuid"]  # written ...
        raise RuntimeError("the change fails")  # ... and rolled back with it
    assert not Event.select().where(Event.uuid == event.uuid).exists()
    fan_out_all()
    assert not WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint["uuid"]).exists()


def test_fan_out_writes_the_rows_the_change_used_to(client, tenant, api):
    every = subscribe(client, tenant)
    some = subscribe(client, tenant, event_types=["enrollment.started", "enrollment.completed"])
    enrollment = api.enroll(api.certification(passing_score=50), api.user())
    api.attempt(enrollment, 90)
    events = events_of(enrollment["uuid"])
    assert [e.type for e in events] == ["enrollment.created", "enrollment.started",
                                        "assessment_attempt.recorded", "enrollment.completed"]
    fan_out_all()
    # One pending delivery, due, per event and endpoint it was for: what the change's
    # transaction wrote before, in the order the events were raised.
    expected = [(e.uuid, e.type, endpoint) for e in events
                for endpoint in (every["uuid"], some["uuid"])
                if endpoint == every["uuid"] or e.type in ("enrollment.started",
                                                           "enrollment.completed")]
    rows = rows_of([e.uuid for e in events])
    assert sorted((r.event_id, r.event_type, r.endpoint_id) for r in rows) == sorted(expected)
    by_event = {e.uuid: e for e in events}
    assert all(r.status == "pending" and r.attempts == 0 and r.claim is None
               and r.created_at == by_event[r.event_id].created_at
               and r.next_attempt_at <= utcnow() for r in rows)
    for endpoint in (every, some):
        listed = client.get(f"/v1/webhook-endpoints/{endpoint['uuid']}/deliveries",
                            headers=tenant.headers).json()["data"]
        assert [d["event_id"] for d in listed] == [e for e, _, n in expected if n == endpoint["uuid"]]
    assert all(Event.get_by_id(e.uuid).fanout is None for e in events)
    fan_out_all()  # nothing waits now: no second row
    assert len(rows_of([e.uuid for e in events])) == len(expected)


def test_an_endpoint_deleted_before_the_fan_out_is_skipped(client, tenant, api):
    kept, deleted = subscribe(client, tenant), subscribe(client, tenant)
    enrollment = api.enroll(api.certification(), api.user())
    assert client.delete(f"/v1/webhook-endpoints/{deleted['uuid']}",
                         headers=tenant.headers).status_code == 204
    [event] = events_of(enrollment["uuid"])
    assert event.fanout == f"{kept['uuid']},{deleted['uuid']}"
    fan_out_all()
    assert [r.endpoint_id for r in rows_of([event.uuid])] == [kept["uuid"]]
    assert Event.get_by_id(event.uuid).fanout is None


def test_a_sender_claims_fresh_deliveries_as_it_writes_them_except_a_disabled_endpoints(
        client, tenant, api):
    on, off = subscribe(client, tenant), subscribe(client, tenant)
    certification = api.certification()
    enrollments = [api.enroll(certification, api.user()) for _ in range(3)]
    assert client.patch(f"/v1/webhook-endpoints/{off['uuid']}", json={"enabled": False},
                        headers=tenant.headers).status_code == 200
    until = utcnow()
    claim = fanout.Claim("a-claim", until, limit=2)
    waiting = Event.select().where(Event.fanout.is_null(False)).count()
    fanned, claimed = fanout.fan_out(limit=waiting, claim=claim)
    assert fanned == waiting
    events = [e.uuid for enrollment in enrollments for e in events_of(enrollment["uuid"])]
    rows = {r.uuid: r for r in rows_of(events)}
    assert len(rows) == 6 and len(claimed) == 2
    for uuid in claimed:  # as the claim's UPDATE would leave them
        assert rows[uuid].endpoint_id == on["uuid"] and rows[uuid].claim == "a-claim"
        assert rows[uuid].attempts == 1 and rows[uuid].next_attempt_at == until
    rest = [r for uuid, r in rows.items() if uuid not in claimed]
    assert all(r.claim is None and r.attempts == 0 for r in rest)
    # The disabled endpoint's stay pending, as they did when the change wrote them.
    assert sorted(r.endpoint_id for r in rest) == sorted([on["uuid"]] + [off["uuid"]] * 3)
    # No sender holds "a-claim": its rows go, lest other tests see claims nobody ends.
    WebhookEndpoint.delete().where(WebhookEndpoint.uuid.in_([on["uuid"], off["uuid"]])).execute()


def test_concurrent_fan_outs_write_each_delivery_once(client, tenant, api):
    fan_out_all()  # other tests' events first: the small batches below are for these
    endpoints = [subscribe(client, tenant)["uuid"] for _ in range(2)]
    certification = api.certification()
    enrollments = [api.enroll(certification, api.user()) for _ in range(40)]
    events = [e.uuid for enrollment in enrollments for e in events_of(enrollment["uuid"])]
    start, failures = threading.Barrier(4), []

    def fan_out_in_small_batches() -> None:
        try:
            with database.connection_context():
                start.wait()
                while fanout.fan_out(limit=3)[0]:
                    pass
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            failures.append(exc)

    threads = [threading.Thread(target=fan_out_in_small_batches) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    pairs = [(r.event_id, r.endpoint_id) for r in rows_of(events)]
    assert sorted(pairs) == sorted((e, n) for e in events for n in endpoints)


def test_the_log_shows_a_delivery_from_the_commit_on_with_no_sender(client, tenant, api):
    endpoint = subscribe(client, tenant)
    api.enroll(api.certification(), api.user())
    base = f"/v1/webhook-endpoints/{endpoint['uuid']}/deliveries"
    [pending] = client.get(f"{base}?status=pending", headers=tenant.headers).json()["data"]
    assert pending["event_type"] == "enrollment.created" and pending["attempts"] == 0
    # A retry names a delivery the log showed: it is there to retry.
    retried = client.post(f"{base}/{pending['uuid']}/retry", headers=tenant.headers)
    assert retried.status_code == 202 and retried.json()["uuid"] == pending["uuid"]


def test_the_queue_metrics_count_deliveries_not_yet_written(client, tenant, api, only_this_tenant):
    from tests.test_metrics import scrape, value

    subscribe(client, tenant)
    subscribe(client, tenant)
    for _ in range(2):
        api.enroll(api.certification(), api.user())
    waiting = scrape(client)
    assert value(waiting, "certapi_webhook_outbox_pending") == 4
    Event.update(created_at=utcnow().replace(year=2000)).where(
        (Event.account == tenant.uuid) & Event.fanout.is_null(False)).execute()
    assert value(scrape(client), "certapi_webhook_delivery_lag_seconds") > 86400
    fan_out_all()
    assert value(scrape(client), "certapi_webhook_outbox_pending") == 4  # the same, as rows


def test_retention_purges_events_still_waiting(client, tenant, api):
    from certapi.webhooks.delivery import purge

    subscribe(client, tenant)
    enrollment = api.enroll(api.certification(), api.user())
    [event] = events_of(enrollment["uuid"])
    Event.update(created_at=utcnow().replace(year=2000)).where(Event.uuid == event.uuid).execute()
    assert purge(WebhookSettings.from_env()) >= 1
    assert not Event.select().where(Event.uuid == event.uuid).exists()


def test_a_sender_fans_out_then_sends_each_fresh_event_once(client, tenant, api, only_this_tenant):
    with Receiver() as receiver:
        subscribe(client, tenant, receiver.url)
        certification = api.certification()
        for _ in range(3):
            api.enroll(certification, api.user())
        sender = Sender()
        assert sender.run_once() == 3
        assert sorted(r.status for r in WebhookDelivery.select().where(
            WebhookDelivery.endpoint.in_(WebhookEndpoint.select(WebhookEndpoint.uuid).where(
                WebhookEndpoint.account == tenant.uuid)))) == ["succeeded"] * 3
        assert sender.run_once() == 0
        assert len(receiver.received) == 3 and len(set(receiver.ids())) == 3
