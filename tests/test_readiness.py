"""GET /v1/ready: every check passing (200) and each check failing alone (503 naming it),
as an orchestrator's readiness probe reads it."""
import threading
import time

import pytest
from peewee import OperationalError

from certapi import readiness
from certapi.webhooks import delivery
from certapi.webhooks.delivery import Sender
from tests.conftest import expect_error


def ready(client, expected: int) -> dict:
    response = client.get("/v1/ready")
    assert response.status_code == expected, response.text
    if expected == 503:
        assert int(response.headers["retry-after"]) >= 1
    return response.json()


@pytest.fixture
def sender_thread(monkeypatch):
    """A registered background sender whose thread the test controls (no deliveries)."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    sender = Sender()
    monkeypatch.setattr(delivery, "_background", (sender, thread))
    yield sender, stop
    stop.set()


def test_ready_without_a_background_sender(client):
    # The test app starts no sender, as `serve` with CERTAPI_WEBHOOK_BACKGROUND=0.
    assert ready(client, 200) == {
        "status": "ready", "failing": [],
        "checks": {"database": "ok", "migrations": "ok", "webhook_sender": "off"}}


def test_ready_with_a_running_sender(client, sender_thread):
    assert ready(client, 200)["checks"]["webhook_sender"] == "ok"


def test_a_stopped_sender_is_not_ready(client, sender_thread):
    _, stop = sender_thread
    stop.set()
    delivery._background[1].join(5)
    body = ready(client, 503)
    assert body["status"] == "not_ready" and body["failing"] == ["webhook_sender"]
    assert body["checks"]["webhook_sender"] == "stopped"


def test_a_stalled_sender_is_not_ready(client, sender_thread):
    sender, _ = sender_thread
    sender.beat = time.monotonic() - 3600  # its loop has not gone round for an hour
    assert ready(client, 503)["failing"] == ["webhook_sender"]


def test_pending_migrations_are_not_ready(client, monkeypatch):
    monkeypatch.setattr(readiness, "pending", lambda: ["0099_from_a_newer_release"])
    body = ready(client, 503)
    assert body["failing"] == ["migrations"]
    assert body["checks"] == {"database": "ok", "migrations": "pending", "webhook_sender": "off"}


def test_an_unavailable_database_is_not_ready(client, monkeypatch):
    def fail():
        raise OperationalError("disk I/O error")

    monkeypatch.setattr(readiness, "check_writable", fail)
    body = ready(client, 503)
    assert body["failing"] == ["database", "migrations"]
    assert body["checks"] == {"database": "unavailable", "migrations": "unknown", "webhook_sender": "off"}
    monkeypatch.undo()
    ready(client, 200)  # back without a restart


def test_ready_rejects_unknown_parameters(client):
    expect_error(client.get("/v1/ready?detail=1"), 422, "validation_error")
