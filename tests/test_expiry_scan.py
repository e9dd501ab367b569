"""The expiry scan (certapi.webhooks.expiry), in process, on a database of its own (this
run's backend): which enrollments get `enrollment.expiring` / `enrollment.expired`, that
each is raised once, in batches, and that a scan failing between its claim and its
commit leaves no marker without its event. Time is controlled by writing `expires_at`
in the past or future and by passing the scan its `now`; nothing sleeps."""
import datetime
import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from certapi import lifecycle
from certapi.webhooks import expiry, fanout
from models import (
    Account,
    Certification,
    Enrollment,
    Event,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    database,
)
from models.base import new_uuid, utcnow
from models.db import init_database
from models.migrate import migrate
from tests.databases import backend, backends, fresh_database

EXPIRING, EXPIRED = lifecycle.EXPIRING, lifecycle.EXPIRED
DAY = datetime.timedelta(days=1)


@pytest.fixture
def db(keep_database_binding, tmp_path):
    """A fresh database bound for the test: the scan is global, so the session's rows
    (other tests' enrollments) stay out of it."""
    with fresh_database(backend(), tmp_path, "expiry") as url:
        init_database(url)
        migrate()
        yield url
        database.obj.close_all()


def certification(window: int = 30, account: Account | None = None) -> Certification:
    account = account or Account.create(name="Expiry")
    return Certification.create(account=account, name="Cloud", status="published",
                                validity_days=365, renewal_window_days=window)


def enrollments(cert: Certification, expires: list[datetime.datetime | None],
                status: str = "completed") -> list[str]:
    """One enrollment per entry of ``expires`` (each of a user of its own), written
    directly with the given ``expires_at``."""
    now = utcnow()
    emails = [f"{new_uuid()[:8]}.{i}@expiry.example" for i in range(len(expires))]
    users = [{"uuid": new_uuid(), "account": cert.account_id, "email": email,
              "email_key": email, "created_at": now, "updated_at": now} for email in emails]
    rows = [{"uuid": new_uuid(), "account": cert.account_id, "certification": cert.uuid,
             "user": user["uuid"], "status": status, "progress_percentage": 100,
             "enrolled_at": now - 400 * DAY, "completed_at": now - 365 * DAY,
             "expires_at": when}
            for user, when in zip(users, expires, strict=True)]
    with database.atomic():
        for start in range(0, len(rows), 400):
            User.insert_many(users[start:start + 400]).execute()
            Enrollment.insert_many(rows[start:start + 400]).execute()
    return [row["uuid"] for row in rows]


def events(event_type: str | None = None) -> list[tuple[str, str]]:
    """(type, enrollment uuid) of every expiry event in the outbox."""
    query = Event.select(Event.type, Event.enrollment_uuid).where(
        Event.type.in_([EXPIRING, EXPIRED]) if event_type is None else Event.type == event_type)
    return [(e.type, e.enrollment_uuid) for e in query]


def markers(uuid: str) -> tuple:
    row = Enrollment.get_by_id(uuid)
    return row.expiring_raised_at, row.expired_raised_at


def test_expiring_then_expired_each_once(db):
    now = utcnow()
    [uuid] = enrollments(certification(window=30), [now + 10 * DAY])
    assert expiry.scan(now) == {EXPIRED: 0, EXPIRING: 1}
    assert expiry.scan(now) == {EXPIRED: 0, EXPIRING: 0}
    assert events() == [(EXPIRING, uuid)]
    later = now + 11 * DAY  # past expires_at
    assert expiry.scan(later) == {EXPIRED: 1, EXPIRING: 0}
    assert expiry.scan(later + DAY) == {EXPIRED: 0, EXPIRING: 0}
    assert sorted(events()) == [(EXPIRED, uuid), (EXPIRING, uuid)]
    assert all(markers(uuid))


def test_payload_is_the_enrollment(db):
    now = utcnow()
    cert = certification()
    [uuid] = enrollments(cert, [now - DAY])
    expiry.scan(now)
    event = Event.get(Event.enrollment_uuid == uuid)
    body = json.loads(event.payload)
    assert body["type"] == EXPIRED and event.account_id == cert.account_id
    data = body["data"]
    assert data["uuid"] == uuid and data["status"] == "completed"
    holder = User.get_by_id(Enrollment.get_by_id(uuid).user_uuid)
    assert data["user_email"] == holder.email
    assert data["certification_uuid"] == cert.uuid
    assert data["expired"] is True and data["expires_at"].endswith("Z")


def test_renewal_window_edges(db):
    now = utcnow()
    cert = certification(window=30)
    outside, inside, edge = enrollments(cert, [now + 31 * DAY, now + 29 * DAY, now + 30 * DAY])
    expiry.scan(now)
    assert sorted(events()) == sorted([(EXPIRING, inside), (EXPIRING, edge)])
    assert markers(outside) == (None, None)
    expiry.scan(now + 1.5 * DAY)  # the 31-day one is now inside its window
    assert (EXPIRING, outside) in events()


def test_window_per_certification(db):
    now = utcnow()
    account = Account.create(name="Windows")
    [short] = enrollments(certification(window=5, account=account), [now + 10 * DAY])
    [long] = enrollments(certification(window=60, account=account), [now + 50 * DAY])
    [none] = enrollments(certification(window=0, account=account), [now + DAY])
    expiry.scan(now)
    assert events() == [(EXPIRING, long)]
    expiry.scan(now + 6 * DAY)
    assert sorted(events()) == sorted([(EXPIRING, long), (EXPIRING, short), (EXPIRED, none)])
    # A window of 0 days: no "expiring" ever, "expired" once.
    assert [t for t, u in events() if u == none] == [EXPIRED]


def test_already_expired_when_first_scanned_gets_expired_only(db):
    now = utcnow()
    [uuid] = enrollments(certification(), [now - 3 * DAY])
    expiry.scan(now)
    assert events() == [(EXPIRED, uuid)]
    assert all(markers(uuid))  # and never "expiring" afterwards
    expiry.scan(now)
    assert events() == [(EXPIRED, uuid)]


@pytest.mark.parametrize("status", ["enrolled", "in_progress", "failed"])
def test_only_completed_enrollments(db, status):
    now = utcnow()
    enrollments(certification(), [now - DAY, now + DAY], status=status)
    assert expiry.scan(now) == {EXPIRED: 0, EXPIRING: 0}


def test_no_expiry_date_no_event(db):
    enrollments(certification(), [None])
    assert expiry.scan(utcnow() + 10_000 * DAY) == {EXPIRED: 0, EXPIRING: 0}
    assert events() == []


def test_a_completed_recertification_silences_the_old_enrollments_expiry(db):
    now = utcnow()
    cert = certification()
    old, open_renewal_old = enrollments(cert, [now + 10 * DAY, now + 10 * DAY])
    expiry.scan(now)  # both in their window: both get "expiring"
    holder = Enrollment.get_by_id(old)
    renewal = Enrollment.create(account=cert.account_id, certification=cert, user=holder.user,
                                status="completed", completed_at=now,
                                expires_at=now + 365 * DAY, recertifies_enrollment=old)
    other = Enrollment.get_by_id(open_renewal_old)
    Enrollment.create(account=cert.account_id, certification=cert, user=other.user,
                      status="in_progress", recertifies_enrollment=open_renewal_old)
    expiry.scan(now + 11 * DAY)
    # The renewed holder's old certificate lapses silently (marked all the same); the
    # holder whose renewal is still open does lapse.
    assert sorted(events()) == sorted([(EXPIRING, old), (EXPIRING, open_renewal_old),
                                       (EXPIRED, open_renewal_old)])
    assert all(markers(old))
    assert markers(renewal.uuid) == (None, None)


def test_deliveries_go_to_subscribed_endpoints(db):
    now = utcnow()
    cert = certification()
    everything = WebhookEndpoint.create(account=cert.account_id, url="https://a.example/hook",
                                        secret="whsec_x", event_types="[]")
    WebhookEndpoint.create(account=cert.account_id, url="https://b.example/hook",
                           secret="whsec_x", event_types=json.dumps(["enrollment.created"]))
    foreign = certification()  # another account: its endpoint never hears of ours
    WebhookEndpoint.create(account=foreign.account_id, url="https://c.example/hook",
                           secret="whsec_x", event_types="[]")
    uuids = enrollments(cert, [now - DAY, now + DAY])
    expiry.scan(now)
    assert not WebhookDelivery.select().exists()  # written by a sender, after the commit
    assert fanout.fan_out() == (2, [])
    deliveries = list(WebhookDelivery.select())
    assert len(deliveries) == 2
    assert {d.endpoint_id for d in deliveries} == {everything.uuid}
    assert {d.event_type for d in deliveries} == {EXPIRED, EXPIRING}
    assert {Event.get_by_id(d.event_id).enrollment_uuid for d in deliveries} == set(uuids)


def test_batched_a_thousand_expiries_take_a_few_statements(db, monkeypatch):
    now = utcnow()
    uuids = enrollments(certification(), [now - DAY - i * datetime.timedelta(seconds=1)
                                          for i in range(1200)])
    WebhookEndpoint.create(account=Enrollment.get_by_id(uuids[0]).account_id,
                           url="https://a.example/hook", secret="whsec_x", event_types="[]")
    statements = []
    real = type(database.obj).execute_sql

    def counting(self, sql, *args, **kwargs):
        statements.append(sql)
        return real(self, sql, *args, **kwargs)

    monkeypatch.setattr(type(database.obj), "execute_sql", counting)
    assert expiry.scan(now) == {EXPIRED: 1200, EXPIRING: 0}
    monkeypatch.undo()
    # Per batch of 500: select, update, endpoints, events, deliveries (+ transaction
    # statements); 1,200 enrollments one by one would be thousands.
    assert len(statements) < 60, len(statements)
    assert sorted(u for _, u in events(EXPIRED)) == sorted(uuids)
    while fanout.fan_out()[0]:
        pass
    assert WebhookDelivery.select().count() == 1200


def test_a_failing_scan_rolls_back_markers_and_events_together(db, monkeypatch):
    now = utcnow()
    uuids = enrollments(certification(), [now - DAY, now + DAY])

    def broken(event_type, items):
        expiry_emit(event_type, items)  # the events are written, then the scan dies
        raise RuntimeError("the database went away")

    expiry_emit = expiry.emit_many
    monkeypatch.setattr(expiry, "emit_many", broken)
    with pytest.raises(RuntimeError):
        expiry.scan(now)
    assert events() == [] and all(markers(u) == (None, None) for u in uuids)
    monkeypatch.undo()
    expiry.scan(now)
    assert sorted(events()) == sorted([(EXPIRED, uuids[0]), (EXPIRING, uuids[1])])


def test_scanner_logs_one_line_per_failure_and_scans_again(db, monkeypatch, caplog):
    calls = []

    def failing(now=None):
        calls.append(now)
        if len(calls) >= 3:
            scanner.stop()
        raise RuntimeError("database is locked")

    monkeypatch.setattr(expiry, "scan", failing)
    scanner = expiry.ExpiryScanner(interval=0.01)
    with caplog.at_level(logging.ERROR, logger="certapi.expiry"):
        scanner.run()
    assert len(calls) == 3
    lines = [r for r in caplog.records if r.name == "certapi.expiry"]
    assert len(lines) == 3 and all(r.exc_info is None for r in lines)
    assert "database is locked" in lines[0].getMessage()


def test_scan_interval_setting(monkeypatch):
    monkeypatch.delenv("CERTAPI_EXPIRY_SCAN_SECONDS", raising=False)
    assert expiry.scan_seconds() == 60
    monkeypatch.setenv("CERTAPI_EXPIRY_SCAN_SECONDS", "0.5")
    assert expiry.ExpiryScanner().interval == 0.5


KILLED_MID_SCAN = textwrap.dedent("""
    import os, sys
    from certapi.webhooks import expiry
    from models.db import init_database

    init_database(sys.argv[1])
    emit = expiry.emit_many

    def die_before_commit(event_type, items):
        emit(event_type, items)  # markers and events written, not committed
        os._exit(9)

    expiry.emit_many = die_before_commit
    expiry.scan()
""")


@pytest.mark.parametrize("kind", backends())
def test_a_process_killed_between_claim_and_commit_leaves_nothing_half_done(
        kind, tmp_path, keep_database_binding):
    with fresh_database(kind, tmp_path, "killed") as url:
        init_database(url)
        migrate()
        now = utcnow()
        uuids = enrollments(certification(), [now - DAY, now + DAY])
        database.obj.close_all()
        died = subprocess.run([sys.executable, "-c", KILLED_MID_SCAN, url],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert died.returncode == 9, died.stderr
        assert events() == []
        assert all(markers(u) == (None, None) for u in uuids)
        expiry.scan()
        assert sorted(events()) == sorted([(EXPIRED, uuids[0]), (EXPIRING, uuids[1])])
        database.obj.close_all()


NOW = datetime.datetime(2026, 6, 1, 12, 0)


@pytest.mark.parametrize(("expires_at", "window", "due"), [
    (None, 30, None),                              # never expires
    (NOW + 31 * DAY, 30, None),                    # before its window
    (NOW + 30 * DAY, 30, EXPIRING),                # the window opens now
    (NOW + DAY, 30, EXPIRING),                     # inside it
    (NOW + datetime.timedelta(microseconds=1), 0, None),  # a window of 0: no "expiring"
    (NOW, 30, EXPIRED),                            # expires now
    (NOW, 0, EXPIRED),
    (NOW - 400 * DAY, 30, EXPIRED),                # long expired: "expired" only
])
def test_lifecycle_expiry_notice(expires_at, window, due):
    assert lifecycle.expiry_notice(expires_at, window, NOW) == due


def test_lifecycle_a_renewed_enrollment_lapses_silently():
    assert lifecycle.expiry_notice_silenced(renewed=True)
    assert not lifecycle.expiry_notice_silenced(renewed=False)


def test_the_scanner_refreshes_the_planners_statistics_first_then_hourly(db, monkeypatch):
    """The serve leader's (and `certapi worker`'s) loop keeps SQLite's statistics fresh
    (models/statistics.py); a refresh that fails is logged and tried again next round."""
    import types

    from models import statistics

    refreshes, rounds = [], []
    # The loop's clock at each round: 0, 10 s, 20 s, then past the hour.
    times = [0.0, 10.0, 20.0, statistics.REFRESH_SECONDS + 15.0]

    def refresh():
        refreshes.append(len(rounds))
        if len(refreshes) == 1:
            raise RuntimeError("database is locked")

    def counted(now=None):
        rounds.append(now)
        if len(rounds) == len(times):
            scanner.stop()
        return {lifecycle.EXPIRING: 0, lifecycle.EXPIRED: 0}

    monkeypatch.setattr(statistics, "refresh", refresh)
    monkeypatch.setattr(expiry, "scan", counted)
    monkeypatch.setattr(expiry, "time", types.SimpleNamespace(
        monotonic=lambda: times[min(len(rounds), len(times) - 1)]))
    scanner = expiry.ExpiryScanner(interval=0.001)
    scanner.run()
    # Round 0 fails and is retried at round 1 (10 s); the next is due an hour after that.
    assert refreshes == [0, 1, 3], refreshes
