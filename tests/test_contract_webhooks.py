"""The contract suite's webhooks.* scenarios: they pass against this service (a sender
running, the suite's own receiver), say SKIP with the reason when they cannot run, and
report each deliberately broken variant as a failure."""
import threading

import pytest

import certapi.webhooks.outbox
from certapi.contract import format_table, run_suite
from certapi.contract import webhooks as contract_webhooks
from certapi.webhooks import signing
from certapi.webhooks.delivery import Sender
from models import WebhookEndpoint
from tests import test_contract
from tests.test_contract import outcomes

keys = test_contract.keys  # the fixture, shared with the other contract tests

SCENARIOS = {"webhooks.enroll_to_completion", "webhooks.test_event"}


def chosen(name: str) -> bool:
    return name.startswith("webhooks.")


@pytest.fixture
def delivering(app, monkeypatch):
    """A sender thread for this test, the suite's receiver on loopback (allowed), and
    every endpoint older than the test paused so only the suite's get deliveries."""
    monkeypatch.setenv("CERTAPI_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("CERTAPI_WEBHOOK_POLL_SECONDS", "0.05")
    monkeypatch.setenv("CERTAPI_WEBHOOK_TIMEOUT", "2")
    monkeypatch.setattr(contract_webhooks, "WAIT_SECONDS", 4.0)
    paused = [e.uuid for e in WebhookEndpoint.select().where(WebhookEndpoint.enabled)]
    WebhookEndpoint.update(enabled=False).where(WebhookEndpoint.uuid.in_(paused)).execute()
    sender = Sender()
    thread = threading.Thread(target=sender.run, daemon=True)
    thread.start()
    contract_webhooks.configure("auto")
    yield
    contract_webhooks.configure(None)
    sender.stop()
    thread.join(10)
    WebhookEndpoint.update(enabled=True).where(WebhookEndpoint.uuid.in_(paused)).execute()


def run(app, keys):
    with app.test_client() as client:
        return run_suite(client, keys, select=chosen)


def test_webhook_scenarios_pass(app, keys, delivering):
    results = run(app, keys)
    assert {r.name for r in results} == SCENARIOS
    assert outcomes(results)["PASS"] == SCENARIOS, format_table(results)


def test_without_a_receiver_they_skip_saying_why(app, keys):
    contract_webhooks.configure(None)
    results = run(app, keys)
    assert outcomes(results)["SKIP"] == SCENARIOS
    assert all(r.reason == contract_webhooks.NO_RECEIVER for r in results)


def test_a_server_refusing_the_receiver_url_is_a_skip_not_a_pass(app, keys, monkeypatch):
    monkeypatch.delenv("CERTAPI_WEBHOOK_ALLOW_PRIVATE", raising=False)
    contract_webhooks.configure("auto")
    try:
        results = run(app, keys)
    finally:
        contract_webhooks.configure(None)
    assert outcomes(results)["SKIP"] == SCENARIOS, format_table(results)
    assert all("CERTAPI_WEBHOOK_ALLOW_PRIVATE" in r.reason for r in results)


def test_wrong_signatures_fail_both(app, keys, delivering, monkeypatch):
    real = signing.headers
    monkeypatch.setattr(signing, "headers",
                        lambda event_id, body, secrets: real(event_id, body, [signing.new_secret()]))
    results = run(app, keys)
    failed = {r.name: r.reason for r in results if r.outcome == "FAIL"}
    assert set(failed) == SCENARIOS, format_table(results)
    assert all("verification" in reason for reason in failed.values())


def test_a_missing_completed_event_fails(app, keys, delivering, monkeypatch):
    real = certapi.webhooks.outbox._record  # the one place every event is written

    def record(emissions, *args, **kwargs):
        return real([e for e in emissions if e[1] != "enrollment.completed"], *args, **kwargs)

    monkeypatch.setattr(certapi.webhooks.outbox, "_record", record)
    results = run(app, keys)
    failed = {r.name: r.reason for r in results if r.outcome == "FAIL"}
    assert set(failed) == {"webhooks.enroll_to_completion"}, format_table(results)
    assert "enrollment.completed" in failed["webhooks.enroll_to_completion"]


def test_a_webhook_id_that_is_not_the_event_id_fails(app, keys, delivering, monkeypatch):
    real = signing.headers
    monkeypatch.setattr(signing, "headers",
                        lambda event_id, body, secrets: real(event_id[::-1], body, secrets))
    results = run(app, keys)
    failed = {r.name: r.reason for r in results if r.outcome == "FAIL"}
    assert set(failed) == SCENARIOS, format_table(results)
    assert "not in GET /events" in failed["webhooks.enroll_to_completion"]
    assert "webhook-id" in failed["webhooks.test_event"]
