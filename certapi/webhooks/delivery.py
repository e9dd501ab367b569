"""Senders: claim due deliveries, send them signed, record the outcome.

Any number of senders (threads of `certapi serve` workers, `certapi worker` processes,
machines) share the queue safely. A sender claims a delivery with one conditional
UPDATE that moves ``next_attempt_at`` to the end of a lease and stamps its claim; a
concurrent claimer's UPDATE no longer matches (SQLite serialises writers, PostgreSQL
re-checks the condition after the row lock), so an attempt is sent by one sender only.
The outcome is written only under that claim. A sender killed mid-send leaves the
claim to expire with the lease, and the delivery is sent again: at least once. Before
it claims, a sender writes the delivery rows of the events committed since
(certapi.webhooks.fanout), claimed by itself in the same transaction."""
import datetime
import email.utils
import logging
import random
import threading
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import urllib3
from peewee import JOIN
from urllib3.exceptions import NewConnectionError

from certapi import metrics
from certapi.webhooks import fanout, signing, ssrf
from certapi.webhooks.settings import DISABLE_AFTER_SECONDS, MAX_RESPONSE_BYTES, WebhookSettings
from models import Event, WebhookDelivery, WebhookEndpoint, database
from models.base import utcnow

log = logging.getLogger("certapi.webhooks")
# Deliveries claimed at once; their outcomes are written in one transaction, which keeps
# the sender's share of SQLite's single write lock small under load. A claim costs three
# queries and an outcome transaction whatever its size: under load, larger claims cost
# the API's cores less per delivery (128 against 32: about an eighth less).
BATCH = 128
# A claim's deliveries to one endpoint go out in at most this many lanes, each a thread
# sending its share one after another on one kept-alive connection. A thread and a
# connection per delivery cost the API's workers, which share the CPU with the sender,
# about twice the CPU per delivery; lanes of different endpoints run side by side, so a
# slow receiver holds up only its own deliveries.
LANES_PER_ENDPOINT = 4
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


@dataclass(slots=True)
class Claimed:
    """A claimed delivery with what sending and recording it need of its endpoint and
    event, read as one flat row: building three models per row was a quarter of the
    sender's time under load."""
    uuid: str
    attempts: int
    endpoint_id: str
    event_id: str
    event_type: str
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime.datetime | None
    failing_since: datetime.datetime | None
    payload: str


_CLAIMED_COLUMNS = (WebhookDelivery.uuid, WebhookDelivery.attempts, WebhookDelivery.endpoint,
                    WebhookDelivery.event, WebhookDelivery.event_type, WebhookEndpoint.url,
                    WebhookEndpoint.secret, WebhookEndpoint.previous_secret,
                    WebhookEndpoint.previous_secret_until, WebhookEndpoint.failing_since,
                    Event.payload)


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


def claim(uuids: list[str], lease: fanout.Claim) -> list[Claimed]:
    """Take the deliveries of ``uuids`` that no one else took, under ``lease``; every
    delivery held under it, those a fan-out created claimed included."""
    now = utcnow()
    if uuids:
        with database.atomic():
            (WebhookDelivery
             .update(claim=lease.token, next_attempt_at=lease.until,
                     attempts=WebhookDelivery.attempts + 1, updated_at=now)
             .where(WebhookDelivery.uuid.in_(uuids) & (WebhookDelivery.status == "pending")
                    & (WebhookDelivery.next_attempt_at <= now))
             .execute())
    claimed = (WebhookDelivery.select(*_CLAIMED_COLUMNS)
               .join(WebhookEndpoint).switch(WebhookDelivery).join(Event, JOIN.INNER)
               .where(WebhookDelivery.claim == lease.token).tuples())
    return [Claimed(*row) for row in claimed.execute()]


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


def _signing_secrets(delivery: Claimed) -> list[str]:
    found = [delivery.secret]
    if delivery.previous_secret and delivery.previous_secret_until \
            and delivery.previous_secret_until > utcnow():
        found.append(delivery.previous_secret)
    return found


def send(delivery: Claimed, client: urllib3.PoolManager,
         settings: WebhookSettings) -> Outcome:
    """One signed attempt. Redirects are not followed; at most 64 KiB of the answer is
    read, and reading stops at the timeout."""
    headers = signing.headers(delivery.event_id, delivery.payload, _signing_secrets(delivery))
    started = time.monotonic()
    deadline = started + settings.timeout
    status, error, retry_after = None, None, None
    try:
        response = client.request("POST", delivery.url, body=delivery.payload.encode(),
                                  headers=headers, redirect=False, preload_content=False)
        try:
            status = response.status
            retry_after = _retry_after(response.headers.get("retry-after"))
            read, whole = 0, True
            for chunk in response.stream(8192, decode_content=False):
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES or time.monotonic() > deadline:
                    whole = False
                    break
            if not whole:
                response.close()  # the rest is left unread: the connection is not reused
        finally:
            response.release_conn()
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except NewConnectionError as exc:  # before TimeoutError, of which urllib3 makes it a kind
        error = f"ConnectError: {exc}"[:500]
    except (urllib3.exceptions.TimeoutError, TimeoutError):
        error = f"timeout after {settings.timeout:g} s"
    except (urllib3.exceptions.HTTPError, OSError) as exc:
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


def record(delivery: Claimed, token: str, outcome: Outcome,
           settings: WebhookSettings) -> None:
    now = utcnow()
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
        elif delivery.failing_since is not None and \
                (now - delivery.failing_since).total_seconds() >= DISABLE_AFTER_SECONDS:
            disable_reason = "Every delivery failed for 5 days"
    with database.atomic():
        written = (WebhookDelivery.update(fields)
                   .where((WebhookDelivery.uuid == delivery.uuid)
                          & (WebhookDelivery.claim == token))
                   .execute())
        if not written:
            return  # the lease ran out and another sender owns the delivery now
        this = WebhookEndpoint.uuid == delivery.endpoint_id
        if outcome.succeeded:
            WebhookEndpoint.update(failing_since=None).where(
                this & WebhookEndpoint.failing_since.is_null(False)).execute()
        else:
            WebhookEndpoint.update(failing_since=now).where(
                this & WebhookEndpoint.failing_since.is_null()).execute()
        if disable_reason:
            WebhookEndpoint.update(enabled=False, disabled_reason=disable_reason,
                                   updated_at=now).where(this).execute()
    _log_attempt(delivery, outcome, str(fields.get("status", "retry")))


def _log_attempt(delivery: Claimed, outcome: Outcome, result: str) -> None:
    metrics.DELIVERIES.labels(result).inc()
    duration_ms = round(outcome.seconds * 1000, 1)
    # In JSON mode (certapi.logs) the extra fields are the record's: never the endpoint's
    # URL, secret or the payload.
    log.info("webhook delivery endpoint=%s event_type=%s event_id=%s attempt=%d status=%s "
             "duration_ms=%.1f outcome=%s%s", delivery.endpoint_id, delivery.event_type, delivery.event_id,
             delivery.attempts, outcome.status_code if outcome.status_code else "-",
             duration_ms, result, f" error={outcome.error!r}" if outcome.error else "",
             extra={"endpoint_uuid": delivery.endpoint_id, "event_type": delivery.event_type,
                    "event_uuid": delivery.event_id, "attempt": delivery.attempts,
                    "status": outcome.status_code, "duration_ms": duration_ms,
                    "outcome": result, "error": outcome.error})


def record_batch(claimed: list[Claimed], token: str, outcomes: list[Outcome | None],
                 settings: WebhookSettings) -> None:
    """Write the outcomes of one claim in one transaction. Successes, the usual case,
    take one UPDATE per status code and one for their endpoints' failing clocks, however
    many there are: the batch holds SQLite's write lock, which the API's writes wait
    for, about as long as a single write. Failures (retry delays, disabling) go one by
    one through ``record``. A delivery without an outcome was not sent: it is handed
    back, due now, its attempt not counted."""
    now = utcnow()
    succeeded: dict[int, list[str]] = {}
    endpoints: set[str] = set()
    failed = []
    unsent = []
    for delivery, outcome in zip(claimed, outcomes, strict=True):
        if outcome is None:
            unsent.append(delivery.uuid)
        elif outcome.succeeded and outcome.status_code is not None:
            succeeded.setdefault(outcome.status_code, []).append(delivery.uuid)
            endpoints.add(delivery.endpoint_id)
        else:
            failed.append((delivery, outcome))
    with database.atomic():
        for status_code, uuids in succeeded.items():
            # Only under this claim: a delivery whose lease ran out belongs to another
            # sender now, and its outcome is that sender's to write.
            (WebhookDelivery
             .update(status="succeeded", next_attempt_at=None, last_status_code=status_code,
                     last_error=None, claim=None, updated_at=now)
             .where(WebhookDelivery.uuid.in_(uuids) & (WebhookDelivery.claim == token))
             .execute())
        if endpoints:
            WebhookEndpoint.update(failing_since=None).where(
                WebhookEndpoint.uuid.in_(sorted(endpoints))
                & WebhookEndpoint.failing_since.is_null(False)).execute()
        if unsent:
            (WebhookDelivery
             .update(claim=None, next_attempt_at=now, attempts=WebhookDelivery.attempts - 1,
                     updated_at=now)
             .where(WebhookDelivery.uuid.in_(unsent) & (WebhookDelivery.claim == token))
             .execute())
        for delivery, outcome in failed:
            record(delivery, token, outcome, settings)
    for delivery, outcome in zip(claimed, outcomes, strict=True):
        if outcome is not None and outcome.succeeded:
            _log_attempt(delivery, outcome, "succeeded")


def purge(settings: WebhookSettings) -> int:
    """Forget events older than the retention period (their deliveries go with them)."""
    cutoff = utcnow() - datetime.timedelta(days=settings.retention_days)
    with database.atomic():
        old = Event.select(Event.uuid).where(Event.created_at < cutoff)
        WebhookDelivery.delete().where(WebhookDelivery.event.in_(old)).execute()
        return Event.delete().where(Event.created_at < cutoff).execute()


def lanes(claimed: list[Claimed]) -> list[list[int]]:
    """The indexes of ``claimed`` split into lanes: per endpoint, up to
    LANES_PER_ENDPOINT of them, the deliveries dealt out in turn."""
    by_endpoint: dict[str, list[int]] = {}
    for index, delivery in enumerate(claimed):
        by_endpoint.setdefault(delivery.endpoint_id, []).append(index)
    found = []
    for indexes in by_endpoint.values():
        count = min(LANES_PER_ENDPOINT, len(indexes))
        found += [indexes[lane::count] for lane in range(count)]
    return found


class Sender:
    """A delivery loop: the leading worker's of `certapi serve`, or `certapi worker`'s."""

    def __init__(self, settings: WebhookSettings | None = None):
        self.settings = settings or WebhookSettings.from_env()
        self.client = ssrf.client(self.settings.timeout, self.settings.allow_private)
        self.pool = ThreadPoolExecutor(BATCH, thread_name_prefix="webhook-send")
        self.stopping = threading.Event()
        self._purged_at = 0.0
        self.behind = False  # the last fan-out left events waiting
        self.beat = time.monotonic()  # when the loop last went round (readiness)

    def run_once(self) -> int:
        """Fan out the events waiting, then send what is due now (one batch); how many
        deliveries were claimed. The fan-out creates its deliveries claimed by this
        sender already (as many as the batch holds), so a fresh event's delivery costs
        no claim transaction of its own: only retries and the rest are claimed after."""
        claimed_at = time.monotonic()
        with database.connection_context():
            lease = fanout.Claim(str(uuidlib.uuid4()),
                                 utcnow() + datetime.timedelta(seconds=self.settings.lease_seconds),
                                 BATCH)
            fanned, fresh = fanout.fan_out(claim=lease)
            self.behind = fanned >= fanout.EVENTS_PER_FAN_OUT
            due = _due(BATCH - len(fresh)) if len(fresh) < BATCH else []
            if not due and not fresh:
                return 0
            claimed = claim(due, lease)
        # A send started after this ends before the lease does, so no other sender
        # takes the delivery while it is on its way; what a slow lane did not start by
        # then is handed back unsent.
        last_start = claimed_at + self.settings.lease_seconds - self.settings.longest_send_seconds
        outcomes: list[Outcome | None] = [None] * len(claimed)

        def run_lane(indexes: list[int]) -> None:
            for index in indexes:
                if time.monotonic() > last_start:
                    return
                outcomes[index] = send(claimed[index], self.client, self.settings)

        list(self.pool.map(run_lane, lanes(claimed)))
        with database.connection_context():
            record_batch(claimed, lease.token, outcomes, self.settings)
        return len(claimed)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.beat = started = time.monotonic()
            try:
                if time.monotonic() - self._purged_at > PURGE_EVERY_SECONDS:
                    with database.connection_context():
                        purge(self.settings)
                    self._purged_at = time.monotonic()
                # A full batch (or fan-out) means a backlog: go on at once. Otherwise let
                # the next deliveries gather for a poll interval, so that under load each
                # claim and outcome transaction covers many of them.
                if self.run_once() >= BATCH or self.behind:
                    continue
            except Exception:  # the database is away, a bug: log it, keep the loop alive
                log.exception("webhook sender error")
            # Claims start at most a poll interval apart, not a poll interval after the
            # last one was sent: one sender per serve keeps pace with the API's writes.
            _wake.wait(max(0.0, self.settings.poll_seconds - (time.monotonic() - started)))
            _wake.clear()
        self.pool.shutdown(wait=False)

    def stop(self) -> None:
        self.stopping.set()
        _wake.set()
