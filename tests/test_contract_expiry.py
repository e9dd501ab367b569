"""The contract suite's recert.expiry_* scenarios: with an expiry scan running they pass
(or, for `enrollment.expired`, say SKIP and why: the suite cannot move the server's
clock), and each deliberately broken variant of the scan is reported as a failure."""
import threading

import pytest

from certapi import lifecycle
from certapi.contract import format_table, run_suite
from certapi.contract import recert as contract_recert
from certapi.webhooks import expiry
from models import ApiKey, Enrollment
from models.account import hash_key
from tests import test_contract
from tests.test_contract import outcomes

keys = test_contract.keys  # the fixture, shared with the other contract tests

RUNS = "recert.expiry_expiring_once"
SKIPS = "recert.expiry_expired_once"


def chosen(name: str) -> bool:
    return name.startswith("recert.expiry_")


def shorten_the_waits(monkeypatch) -> None:
    monkeypatch.setattr(contract_recert, "EXPIRY_WAIT_SECONDS", 5.0)
    monkeypatch.setattr(contract_recert, "EXPIRY_SETTLE_SECONDS", 0.5)


@pytest.fixture
def quick(monkeypatch):
    shorten_the_waits(monkeypatch)


@pytest.fixture
def scanning(app, monkeypatch):
    with scanning_now(app, monkeypatch):
        yield


def run(app, keys):
    with app.test_client() as client:
        return run_suite(client, keys, select=chosen)


def failed(results) -> dict[str, str]:
    return {r.name: r.reason for r in results if r.outcome == "FAIL"}


def test_expiry_scenarios_pass_or_say_why_not(app, keys, scanning):
    results = run(app, keys)
    assert [r.name for r in results] == [RUNS, SKIPS]
    assert outcomes(results)["PASS"] == {RUNS}, format_table(results)
    assert outcomes(results)["SKIP"] == {SKIPS}
    assert "clock" in results[1].reason


def test_no_scan_running_fails(app, keys, quick):
    results = run(app, keys)
    assert set(failed(results)) == {RUNS}, format_table(results)
    assert "no enrollment.expiring" in failed(results)[RUNS]


def test_a_scan_raising_again_and_again_fails(app, keys, monkeypatch):
    """The markers are forgotten after every scan: each one raises the event anew."""
    account = ApiKey.get(ApiKey.key_hash == hash_key(keys.write)).account_id
    real = expiry.scan

    def forgetful(now=None):
        done = real(now)
        Enrollment.update(expiring_raised_at=None, expired_raised_at=None).where(
            Enrollment.account == account).execute()
        return done

    monkeypatch.setattr(expiry, "scan", forgetful)
    with scanning_now(app, monkeypatch):
        results = run(app, keys)
    assert set(failed(results)) == {RUNS}, format_table(results)
    assert "exactly once" in failed(results)[RUNS]


def test_a_scan_ignoring_the_renewal_window_fails(app, keys, monkeypatch):
    """Every completion is "expiring" at once, whatever its window."""
    real_notice = lifecycle.expiry_notice
    monkeypatch.setattr(lifecycle, "expiry_notice",
                        lambda expires_at, window, now: real_notice(expires_at, 36500, now))
    real_due = expiry._due

    def due(event_type, now):
        if event_type != lifecycle.EXPIRING:
            return real_due(event_type, now)
        return ((Enrollment.status == "completed") & Enrollment.expiring_raised_at.is_null()
                & (Enrollment.expires_at > now))

    monkeypatch.setattr(expiry, "_due", due)
    with scanning_now(app, monkeypatch):
        results = run(app, keys)
    assert set(failed(results)) == {RUNS}, format_table(results)
    assert "has not opened" in failed(results)[RUNS]


def test_a_payload_that_is_not_the_enrollment_fails(app, keys, monkeypatch):
    real = expiry.emit_many
    monkeypatch.setattr(expiry, "emit_many", lambda event_type, items: real(
        event_type, [(account, {**data, "expires_at": data["completed_at"]})
                            for account, data in items]))
    with scanning_now(app, monkeypatch):
        results = run(app, keys)
    assert set(failed(results)) == {RUNS}, format_table(results)
    assert "data vs GET" in failed(results)[RUNS]


class scanning_now:  # noqa: N801 - the ``scanning`` fixture, for use after monkeypatching
    """An expiry scan every 50 ms while the block runs, and the scenarios' waits cut short."""

    def __init__(self, app, monkeypatch):
        shorten_the_waits(monkeypatch)
        self.scanner = expiry.ExpiryScanner(interval=0.05)
        self.thread = threading.Thread(target=self.scanner.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.scanner.stop()
        self.thread.join(10)
