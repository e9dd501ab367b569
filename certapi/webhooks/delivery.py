"""Senders: claim due deliveries, send them signed, record the outcome.

Any number of senders (threads of `certapi serve` workers, `certapi worker` processes,
machines) share the queue safely. A sender claims a delivery with one conditional
UPDATE that moves ``next_attempt_at`` to the end of a lease and stamps its claim; a
concurrent claimer's UPDATE no longer matches (SQLite serialises writers, PostgreSQL
re-checks the condition after the row lock), so an attempt is sent by one sender only.
The outcome is written only under that claim. A sender killed mid-send leaves the
claim to expire with the lease, and the delivery is sent again: at least once."""
import datetime
import email.utils
import logging
import random
import threading
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from peewee import JOIN

from certapi import metrics
from certapi.webhooks import signing, ssrf
from certapi.webhooks.settings import DISABLE_AFTER_SECONDS, MAX_RESPONSE_BYTES, WebhookSettings
from models import Event, WebhookDelivery, WebhookEndpoint, database
from models.base import utcnow

log = logging.getLogger("certapi.webhooks")
# Deliveries claimed at once, each sent on a thread of its own (so a claim never waits
# for a free thread while its lease runs); their outcomes are written in one transaction,
# which keeps the sender's share of SQLite's single write lock small under load.
BATCH = 32
PURGE_EVERY_SECONDS = 60
# Woken when a delivery is queued for "now" in this process (test event, manual retry).
_wake = threading.Event()


@dataclass
class Outcome:
    status_code: int | None
    error: str | None
    retry_after: float | None
    seconds: float

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def wake() -> None:
    _wake.set()


def _due(limit: int) -> list[str]:
    now = utcnow()
    query = (WebhookDelivery.select(WebhookDelivery.uuid)
             .join(WebhookEndpoint)
             .where((WebhookDelivery.status == "pending")
                    & (WebhookDelivery.next_attempt_at <= now) & WebhookEndpoint.enabled)
             .order_by(WebhookDelivery.next_attempt_at).limit(limit))
    return [row.uuid for row in query]


def claim(uuids: list[str], settings: WebhookSettings) -> tuple[str, list[WebhookDelivery]]:
    """Take the deliveries of ``uuids`` that no one else took; (claim, deliveries)."""
    token, now = str(uuidlib.uuid4()), utcnow()
    until = now + datetime.timedelta(seconds=settings.lease_seconds)
    with database.atomic():
        (WebhookDelivery
         .update(claim=token, next_attempt_at=until, attempts=WebhookDelivery.attempts + 1,
                 updated_at=now)
         .where(WebhookDelivery.uuid.in_(uuids) & (WebhookDelivery.status == "pending")
                & (WebhookDelivery.next_attempt_at <= now))
         .execute())
    claimed = (WebhookDelivery.select(WebhookDelivery, WebhookEndpoint, Event)
               .join(WebhookEndpoint).switch(WebhookDelivery).join(Event, JOIN.INNER)
               .where(WebhookDelivery.claim == token))
    return token, list(claimed)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def _signing_secrets(endpoint: WebhookEndpoint) -> list[str]:
    found = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_until \
            and endpoint.previous_secret_until > utcnow():
        found.append(endpoint.previous_secret)
    return found


def send(delivery: WebhookDelivery, client: httpx.Client, settings: WebhookSettings) -> Outcome:
    """One signed attempt. Redirects are not followed; at most 64 KiB of the answer is
    read, and reading stops at the timeout."""
    endpoint, event = delivery.endpoint, delivery.event
    headers = signing.headers(event.uuid, event.payload, _signing_secrets(endpoint))
    started = time.monotonic()
    deadline = started + settings.timeout
    status, error, retry_after = None, None, None
    try:
        with client.stream("POST", endpoint.url, content=event.payload.encode(),
                           headers=headers) as response:
            status = response.status_code
            retry_after = _retry_after(response.headers.get("retry-after"))
            read = 0
            for chunk in response.iter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES or time.monotonic() > deadline:
                    break
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except httpx.TimeoutException:
        error = f"timeout after {settings.timeout:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    if status is not None and 200 <= status < 300 and time.monotonic() > deadline:
        status, error = None, f"timeout after {settings.timeout:g} s"
    return Outcome(status, error, retry_after, time.monotonic() - started)


def _next_delay(attempts: int, settings: WebhookSettings, retry_after: float | None) -> float | None:
    """Seconds until the next attempt, or None when none is left."""
    if attempts > len(settings.schedule):
        return None
    delay = settings.schedule[attempts - 1]
    delay *= 1 + random.uniform(0, 0.1)  # jitter: retries of one outage do not come in step
    return max(delay, retry_after or 0.0)


def record(delivery: WebhookDelivery, token: str, outcome: Outcome,
           settings: WebhookSettings) -> None:
    now = utcnow()
    endpoint = delivery.endpoint
    fields = {"last_status_code": outcome.status_code, "last_error": outcome.error,
              "claim": None, "updated_at": now}
    disable_reason = None
    if outcome.succeeded:
        fields.update(status="succeeded", next_attempt_at=None)
    else:
        delay = None if outcome.status_code == 410 else \
            _next_delay(delivery.attempts, settings, outcome.retry_after)
        if delay is None:
            fields.update(status="failed", next_attempt_at=None)
        else:
            fields.update(next_attempt_at=now + datetime.timedelta(seconds=delay))
        if outcome.status_code == 410:
            disable_reason = "The endpoint answered 410 Gone"
        elif endpoint.failing_since is not None and \
                (now - endpoint.failing_since).total_seconds() >= DISABLE_AFTER_SECONDS:
            disable_reason = "Every delivery failed for 5 days"
    with database.atomic():
        written = (WebhookDelivery.update(fields)
                   .where((WebhookDelivery.uuid == delivery.uuid)
                          & (WebhookDelivery.claim == token))
                   .execute())
        if not written:
            return  # the lease ran out and another sender owns the delivery now
        this = WebhookEndpoint.uuid == endpoint.uuid
        if outcome.succeeded:
            WebhookEndpoint.update(failing_since=None).where(
                this & WebhookEndpoint.failing_since.is_null(False)).execute()
        else:
            WebhookEndpoint.update(failing_since=now).where(
                this & WebhookEndpoint.failing_since.is_null()).execute()
        if disable_reason:
            WebhookEndpoint.update(enabled=False, disabled_reason=disable_reason,
                                   updated_at=now).where(this).execute()
    result = fields.get("status", "retry")
    metrics.DELIVERIES.labels(result).inc()
    duration_ms = round(outcome.seconds * 1000, 1)
    # In JSON mode (certapi.logs) the extra fields are the record's: never the endpoint's
    # URL, secret or the payload.
    log.info("webhook delivery endpoint=%s event_type=%s event_id=%s attempt=%d status=%s "
             "duration_ms=%.1f outcome=%s%s", endpoint.uuid, delivery.event_type, delivery.event_id,
             delivery.attempts, outcome.status_code if outcome.status_code else "-",
             duration_ms, result, f" error={outcome.error!r}" if outcome.error else "",
             extra={"endpoint_uuid": endpoint.uuid, "event_type": delivery.event_type,
                    "event_uuid": delivery.event_id, "attempt": delivery.attempts,
                    "status": outcome.status_code, "duration_ms": duration_ms,
                    "outcome": result, "error": outcome.error})


def purge(settings: WebhookSettings) -> int:
    """Forget events older than the retention period (their deliveries go with them)."""
    cutoff = utcnow() - datetime.timedelta(days=settings.retention_days)
    with database.atomic():
        old = Event.select(Event.uuid).where(Event.created_at < cutoff)
        WebhookDelivery.delete().where(WebhookDelivery.event.in_(old)).execute()
        return Event.delete().where(Event.created_at < cutoff).execute()


class Sender:
    """A delivery loop: one per `certapi serve` worker process, or `certapi worker`."""

    def __init__(self, settings: WebhookSettings | None = None):
        self.settings = settings or WebhookSettings.from_env()
        self.client = ssrf.client(self.settings.timeout, self.settings.allow_private)
        self.pool = ThreadPoolExecutor(BATCH, thread_name_prefix="webhook-send")
        self.stopping = threading.Event()
        self._purged_at = 0.0
        self.beat = time.monotonic()  # when the loop last went round (readiness)

    def run_once(self) -> int:
        """Send what is due now (one batch); how many deliveries were sent."""
        with database.connection_context():
            due = _due(BATCH)
            if not due:
                return 0
            token, claimed = claim(due, self.settings)
        outcomes = list(self.pool.map(lambda d: send(d, self.client, self.settings), claimed))
        with database.connection_context(), database.atomic():
            for delivery, outcome in zip(claimed, outcomes, strict=True):
                record(delivery, token, outcome, self.settings)
        return len(claimed)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.beat = time.monotonic()
            try:
                if time.monotonic() - self._purged_at > PURGE_EVERY_SECONDS:
                    with database.connection_context():
                        purge(self.settings)
                    self._purged_at = time.monotonic()
                # A full batch means a backlog: go on at once. Otherwise let the next
                # deliveries gather for a poll interval, so that under load each claim and
                # outcome transaction covers many of them.
                if self.run_once() >= BATCH:
                    continue
            except Exception:  # the database is away, a bug: log it, keep the loop alive
                log.exception("webhook sender error")
            _wake.wait(self.settings.poll_seconds)
            _wake.clear()

    def stop(self) -> None:
        self.stopping.set()
        _wake.set()


def start_background() -> Sender:
    """Run a sender in a daemon thread of this process (what `certapi serve` does)."""
    global _background
    sender = Sender()
    thread = threading.Thread(target=sender.run, name="webhook-sender", daemon=True)
    thread.start()
    _background = (sender, thread)
    return sender


_background: tuple[Sender, threading.Thread] | None = None


def background_state() -> str:
    """The background sender of this process, for readiness: ``off`` (none started here:
    CERTAPI_WEBHOOK_BACKGROUND=0 or not `certapi serve`), ``ok``, or ``stopped`` (its
    thread ended, or its loop has not gone round for longer than any batch can take)."""
    if _background is None:
        return "off"
    sender, thread = _background
    longest = sender.settings.lease_seconds + sender.settings.poll_seconds + 30
    if not thread.is_alive() or time.monotonic() - sender.beat > longest:
        return "stopped"
    return "ok"
