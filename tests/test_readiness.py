"""GET /v1/ready: every check passing (200) and each check failing alone (503 naming it),
as an orchestrator's readiness probe reads it."""
import threading
import time

import pytest
from peewee import OperationalError

from certapi import readiness
from certapi.webhooks import background
from certapi.webhooks.settings import WebhookSettings
from tests.conftest import expect_error


def ready(client, expected: int) -> dict:
    response = client.get("/v1/ready")
    assert response.status_code == expected, response.text
    if expected == 503:
        assert int(response.headers["retry-after"]) >= 1
    return response.json()


class HeldElsewhere:
    """A leader's lock held by another worker, whose last beat the test sets."""

    def __init__(self):
        self.silent_for: float | None = 0.5

    def acquire(self) -> bool:
        return False

    def beat(self) -> None:
        pass

    def release(self) -> None:
        pass

    def leader_silent_for(self) -> float | None:
        return self.silent_for


class Leading:
    """The sender this worker runs while it leads, as readiness sees it: its beat."""

    def __init__(self):
        self.settings = WebhookSettings.from_env()
        self.beat = time.monotonic()


@pytest.fixture
def standby(monkeypatch):
    """This worker's registered background part, whose standby thread the test controls
    (no deliveries): a follower until the test makes it lead."""
    stop = threading.Event()
    part = background.Background(HeldElsewhere())
    part.thread = threading.Thread(target=stop.wait, daemon=True)
    part.thread.start()
    monkeypatch.setattr(background, "_background", part)
    yield part, stop
    stop.set()


def test_ready_without_a_background_sender(client):
    # The test app starts no sender, as `serve` with CERTAPI_WEBHOOK_BACKGROUND=0.
    assert ready(client, 200) == {
        "status": "ready", "failing": [],
        "checks": {"database": "ok", "migrations": "ok", "webhook_sender": "off"}}


def test_ready_while_this_worker_leads(client, standby):
    part, _ = standby
    part.work = Leading()
    assert ready(client, 200)["checks"]["webhook_sender"] == "ok"


def test_ready_while_another_worker_leads_and_beats(client, standby):
    assert ready(client, 200)["checks"]["webhook_sender"] == "ok"


def test_a_silent_leader_elsewhere_is_not_ready(client, standby):
    part, _ = standby
    part.lock.silent_for = 3600  # the leading worker's loop has not gone round for an hour
    assert ready(client, 503)["failing"] == ["webhook_sender"]


def test_a_short_vacancy_is_ready_a_long_one_is_not(client, standby):
    part, _ = standby
    part.lock.silent_for = None  # the leader died; a standby worker takes over in seconds
    assert ready(client, 200)["checks"]["webhook_sender"] == "ok"
    part._leader_seen = time.monotonic() - 3600
    assert ready(client, 503)["failing"] == ["webhook_sender"]


def test_an_unreadable_leader_beat_is_not_ready(client, standby):
    part, _ = standby

    def unreadable():
        raise OperationalError("server closed the connection unexpectedly")

    part.lock.leader_silent_for = unreadable
    body = ready(client, 503)
    assert body["failing"] == ["webhook_sender"]
    assert body["checks"]["webhook_sender"] == "stopped"


def test_a_stopped_standby_thread_is_not_ready(client, standby):
    part, stop = standby
    stop.set()
    part.thread.join(5)
    body = ready(client, 503)
    assert body["status"] == "not_ready" and body["failing"] == ["webhook_sender"]
    assert body["checks"]["webhook_sender"] == "stopped"


def test_a_stalled_sender_is_not_ready(client, standby):
    part, _ = standby
    part.work = Leading()
    part.work.beat = time.monotonic() - 3600  # its loop has not gone round for an hour
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
