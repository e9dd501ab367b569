"""The expiry scan: ``enrollment.expiring`` when a completed enrollment enters its
renewal window, ``enrollment.expired`` when it expires — each raised exactly once.

Beside each sender (the leading `certapi serve` worker's: certapi.webhooks.background;
each `certapi worker`'s) a scan runs every CERTAPI_EXPIRY_SCAN_SECONDS (default 60), in
a thread of its own so that a long scan never holds up deliveries. Any number may scan
at once: a batch of due enrollments is claimed by setting their marker column
(``expiring_raised_at`` / ``expired_raised_at``) in the same transaction that writes
their events to the outbox, so a marker is never set without its event, nor an event
written twice. On PostgreSQL the batch is read ``FOR UPDATE SKIP LOCKED`` (concurrent
scanners take disjoint rows, and a row another scanner just marked is re-checked and
left out); on SQLite the transaction holds the single write lock from its start, so
the rows read are the rows updated. Which event is due is certapi.lifecycle's rule."""
import datetime
import logging
import os
import threading
import time
from typing import Any

from peewee import JOIN, ColumnBase, Value, fn

from certapi import lifecycle
from certapi.webhooks.outbox import emit_many
from models import Certification, Enrollment, User, base, database, statistics
from models.db import is_postgres

log = logging.getLogger("certapi.expiry")
DEFAULT_SCAN_SECONDS = 60.0
# Enrollments claimed per transaction: large enough that 1,000 expiries cost a couple of
# round trips, small enough that a transaction stays short and under SQLite's limit of
# bound variables.
BATCH = 500
_MILLISECOND = datetime.timedelta(milliseconds=1)


def scan_seconds() -> float:
    raw = os.environ.get("CERTAPI_EXPIRY_SCAN_SECONDS", "").strip()
    return float(raw) if raw else DEFAULT_SCAN_SECONDS


def _window_opens() -> ColumnBase:
    """``expires_at`` − ``renewal_window_days`` days, in the bound database's SQL."""
    if is_postgres():
        return Enrollment.expires_at - fn.make_interval(0, 0, 0, Certification.renewal_window_days)
    # SQLite keeps timestamps as text; '%f' gives seconds with milliseconds (rounded), so
    # the bound is within a millisecond: _due widens it by one, lifecycle decides exactly.
    return fn.strftime("%Y-%m-%d %H:%M:%f", Enrollment.expires_at,
                       fn.printf("-%d days", Certification.renewal_window_days))


def _due(event_type: str, now: datetime.datetime) -> ColumnBase:
    """The unmarked completed enrollments ``event_type`` may be due for (each index-backed
    by a partial index of migration 0008); certapi.lifecycle decides on each row."""
    due = (Enrollment.status == "completed") & Enrollment.expires_at.is_null(False)
    if event_type == lifecycle.EXPIRED:
        return due & Enrollment.expired_raised_at.is_null() & (Enrollment.expires_at <= now)
    return (due & Enrollment.expiring_raised_at.is_null() & (Enrollment.expires_at > now)
            & (_window_opens() <= now + _MILLISECOND))


def _renewed() -> ColumnBase:
    """Whether a completed recertification of the enrollment exists."""
    renewal = Enrollment.alias("renewal")
    return fn.EXISTS(renewal.select(Value(1)).where(
        (renewal.recertifies_enrollment == Enrollment.uuid) & (renewal.status == "completed")))


def claim_batch(event_type: str, now: datetime.datetime, limit: int = BATCH) -> int:
    """Raise ``event_type`` for up to ``limit`` enrollments due for it; how many were
    handled (raised, or marked without an event: see lifecycle.expiry_notice_silenced).
    One transaction: the markers and the events commit together or not at all."""
    marker = (Enrollment.expired_raised_at if event_type == lifecycle.EXPIRED
              else Enrollment.expiring_raised_at)
    with database.atomic():
        query = (Enrollment
                 .select(Enrollment, User.email, Certification.renewal_window_days,
                         _renewed().alias("renewed"))
                 .join(User, JOIN.INNER, on=Enrollment.user == User.uuid)
                 .switch(Enrollment)
                 .join(Certification, JOIN.INNER, on=Enrollment.certification == Certification.uuid)
                 .where(_due(event_type, now))
                 .order_by(Enrollment.expires_at)
                 .limit(limit))
        if is_postgres():
            query = query.for_update(of=Enrollment, skip_locked=True)
        # Enrollments carrying the selected email, renewal_window_days and renewed.
        rows: list[Any] = list(query.objects())
        handled, raise_for = [], []
        for row in rows:
            if lifecycle.expiry_notice(row.expires_at, row.renewal_window_days, now) != event_type:
                continue  # not due yet: the SQL bound is a millisecond wide
            handled.append(row.uuid)
            if not lifecycle.expiry_notice_silenced(bool(row.renewed)):
                raise_for.append(row)
        if not handled:
            return 0
        fields: dict[Any, Any] = {marker: now}
        if event_type == lifecycle.EXPIRED:
            # Past its expiry, an enrollment is never "about to expire" any more.
            fields[Enrollment.expiring_raised_at] = fn.COALESCE(Enrollment.expiring_raised_at, now)
        marked = (Enrollment.update(fields)
                  .where(Enrollment.uuid.in_(handled) & marker.is_null())
                  .execute())
        if marked != len(handled):
            # Cannot happen under the locks above; if it ever does, roll back rather
            # than raise an event another scanner has raised.
            raise RuntimeError(f"expiry scan: {len(handled) - marked} rows claimed elsewhere")
        emit_many(event_type, [(row.account_id, row.as_json(row.email)) for row in raise_for])
    return len(handled)


def scan(now: datetime.datetime | None = None) -> dict[str, int]:
    """One full scan: every due ``expired``, then every due ``expiring``, batch by batch.
    Returns how many enrollments each event type handled."""
    now = now or base.utcnow()
    done: dict[str, int] = {}
    for event_type in (lifecycle.EXPIRED, lifecycle.EXPIRING):
        done[event_type] = 0
        while True:
            with database.connection_context():
                handled = claim_batch(event_type, now)
            done[event_type] += handled
            if handled < BATCH:
                break
    return done


class ExpiryScanner:
    """The periodic scan of one process, beside its webhook sender (started by
    `certapi worker`, or by the leading serve worker, which stops it on losing the lead)."""

    def __init__(self, interval: float | None = None):
        self.interval = scan_seconds() if interval is None else interval
        self.stopping = threading.Event()

    def run(self) -> None:
        refreshed = -float(statistics.REFRESH_SECONDS)  # at the first round, then hourly
        while not self.stopping.is_set():
            if time.monotonic() - refreshed >= statistics.REFRESH_SECONDS:
                # The planner's statistics ride on this loop: it is the one periodic job
                # every deployment runs exactly where the database is written (the serve
                # leader, or `certapi worker`).
                try:
                    with database.connection_context():
                        statistics.refresh()
                    refreshed = time.monotonic()
                except Exception as exc:  # e.g. the database is away: next round tries again
                    log.error("statistics refresh failed: %s: %s", type(exc).__name__, exc)
            try:
                done = scan()
                if any(done.values()):
                    log.info("expiry scan expiring=%d expired=%d",
                             done[lifecycle.EXPIRING], done[lifecycle.EXPIRED])
            except Exception as exc:  # the database is away, a bug: one line, next scan runs
                log.error("expiry scan failed: %s: %s", type(exc).__name__, exc)
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()


def start_background() -> ExpiryScanner:
    """Run the scan in a daemon thread of this process."""
    scanner = ExpiryScanner()
    threading.Thread(target=scanner.run, name="expiry-scan", daemon=True).start()
    return scanner
