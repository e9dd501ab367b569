"""The expiry scan run by real processes at once — four `certapi worker`s, and
`certapi serve --workers 4` — on both backends: 1,000 enrollments crossing expiry while
they scan become exactly 1,000 `enrollment.expired` events, none twice in the outbox."""
import collections
import datetime
import subprocess
import time

import pytest

from models import database
from models.base import utcnow
from models.db import init_database
from models.migrate import migrate
from tests.databases import backends, fresh_database, query
from tests.live_server import CERTAPI, LiveServer
from tests.test_expiry_scan import certification, enrollments
from tests.test_webhook_processes import kill_9

COUNT = 1000
WAIT_SECONDS = 90


@pytest.fixture(autouse=True)
def fast_scan(monkeypatch):
    monkeypatch.setenv("CERTAPI_EXPIRY_SCAN_SECONDS", "0.2")


def crossing_expiry(url: str) -> set[str]:
    """COUNT completed enrollments expiring 2 to 5 seconds from now (inside their
    renewal window, so some may be told "expiring" first)."""
    init_database(url)
    migrate()
    start = utcnow() + datetime.timedelta(seconds=2)
    spread = [start + datetime.timedelta(seconds=3 * i / COUNT) for i in range(COUNT)]
    uuids = set(enrollments(certification(), spread))
    database.obj.close_all()
    return uuids


def expiry_events(url: str) -> list[tuple[str, str]]:
    return query(url, "SELECT type, enrollment_uuid FROM event "
                      "WHERE type IN ('enrollment.expiring', 'enrollment.expired')")


def wait_for_expired(url: str, count: int) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        done = query(url, "SELECT COUNT(*) FROM event WHERE type = 'enrollment.expired'")
        if done[0][0] >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"only {done[0][0]} of {count} expired events after {WAIT_SECONDS} s")


def assert_exactly_once(url: str, expected: set[str]) -> None:
    found = expiry_events(url)
    counts = collections.Counter(found)
    duplicates = [key for key, n in counts.items() if n > 1]
    assert not duplicates, duplicates[:5]
    expired = {uuid for kind, uuid in found if kind == "enrollment.expired"}
    assert expired == expected
    assert {uuid for _, uuid in found} <= expected
    marked = query(url, "SELECT COUNT(*) FROM enrollment WHERE expired_raised_at IS NOT NULL "
                        "AND expiring_raised_at IS NOT NULL")
    assert marked[0][0] == len(expected)


@pytest.mark.parametrize("kind", backends())
def test_four_workers_raise_each_expiry_once(kind, tmp_path, keep_database_binding):
    with fresh_database(kind, tmp_path, "expiry") as url:
        expected = crossing_expiry(url)
        workers = []
        try:
            for n in range(4):
                with (tmp_path / f"worker{n}.log").open("ab") as log:
                    workers.append(subprocess.Popen(
                        [CERTAPI, "worker", "--database-url", url], stdout=log,
                        stderr=subprocess.STDOUT, start_new_session=True))
            wait_for_expired(url, len(expected))
            time.sleep(1)  # a few more scans: time for a duplicate to show up
        finally:
            for worker in workers:
                kill_9(worker)
        assert_exactly_once(url, expected)
        logs = "".join((tmp_path / f"worker{n}.log").read_text() for n in range(4))
        assert "expiry scan failed" not in logs


@pytest.mark.parametrize("kind", backends())
def test_serve_with_four_workers_raises_each_expiry_once(kind, tmp_path, keep_database_binding):
    with fresh_database(kind, tmp_path, "expiry") as url:
        expected = crossing_expiry(url)
        server = LiveServer(url, tmp_path / "serve.log", workers=4).start()
        try:
            assert len(server.worker_pids()) == 4
            wait_for_expired(url, len(expected))
            time.sleep(1)
        finally:
            server.kill()
        assert_exactly_once(url, expected)
        assert "expiry scan failed" not in server.log()
