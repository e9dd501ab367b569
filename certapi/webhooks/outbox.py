"""Raising events: the transactional outbox.

``emit`` writes the event inside the caller's transaction, so a change and its events
commit or roll back together. Which endpoints each event goes to is decided there too
(the event's ``fanout`` column names them); the delivery rows are written afterwards by
a sender (certapi.webhooks.fanout), outside the change's hold on the write lock."""
import datetime
import json
from typing import Any

from certapi.webhooks import fanout
from models import Event, WebhookEndpoint, database
from models.base import new_uuid, rfc3339, utcnow
from models.bulk import insert_rows

EVENT_TYPES = (
    "enrollment.created", "enrollment.started", "enrollment.progress_updated",
    "assessment_attempt.recorded", "enrollment.completed", "enrollment.failed",
    "enrollment.deleted", "enrollment.expiring", "enrollment.expired", "webhook.test",
)


# What one event is made of: (account, event type, data, enrollment uuid or None).
Emission = tuple[str, str, dict, str | None]


def emit(account: str, event_type: str, data: dict, enrollment_uuid: str | None = None,
         endpoints: list[WebhookEndpoint] | None = None) -> Event:
    """Record an event of ``account`` and queue it for its subscribed endpoints (or for
    ``endpoints`` alone, e.g. a test event). Call it inside the change's transaction."""
    return Event(**_record([(account, event_type, data, enrollment_uuid)], endpoints)[0])


def emit_many(event_type: str, items: list[tuple[str, dict]]) -> None:
    """``emit`` for many enrollments at once: one event of ``event_type`` per (account,
    enrollment JSON) of ``items`` (a bulk enrollment, an expiry scan's batch)."""
    _record([(account, event_type, enrollment, enrollment["uuid"])
             for account, enrollment in items])


def _record(emissions: list[Emission],
            endpoints: list[WebhookEndpoint] | None = None) -> list[dict]:
    """Write the events of ``emissions``, each naming the endpoints it is for: one query
    for the subscriptions and one INSERT, however many events. Inside SQLite's write
    lock, which every other writer waits for, the change writes no delivery rows (a
    table and three indexes): a sender writes them from ``fanout`` (certapi.webhooks.
    fanout). The events are stamped a microsecond apart, in the order given, so lists
    ordered by time show them in the order they happened. Returns the event rows."""
    if not emissions:
        return []
    for _, event_type, _, _ in emissions:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type}")
    given = endpoints is not None
    if endpoints is None:  # those subscribed: the accounts' enabled endpoints that want the type
        accounts = sorted({account for account, _, _, _ in emissions})
        endpoints = list(WebhookEndpoint
                         .select(WebhookEndpoint.uuid, WebhookEndpoint.account,
                                 WebhookEndpoint.event_types)
                         .where(WebhookEndpoint.account.in_(accounts) & WebhookEndpoint.enabled))
    now = utcnow()
    events: list[dict[str, Any]] = []
    for n, (account, event_type, data, enrollment_uuid) in enumerate(emissions):
        at = now + datetime.timedelta(microseconds=n)
        events.append({
            "uuid": new_uuid(), "account": account, "type": event_type,
            "enrollment_uuid": enrollment_uuid, "created_at": at,
            "payload": json.dumps({"type": event_type, "timestamp": rfc3339(at), "data": data},
                                  separators=(",", ":")),
            "fanout": fanout.names([e.uuid for e in endpoints if given or (
                e.account_id == account and e.wants(event_type))])})
    with database.atomic():  # all of them or none, in a transaction of its own or the caller's
        insert_rows(Event, events)
    return events


def enrollment_created(account: str, enrollment: dict) -> None:
    emit(account, "enrollment.created", enrollment, enrollment["uuid"])


def enrollments_created(account: str, enrollments: list[dict]) -> None:
    """``enrollment.created`` for each of ``enrollments`` (a bulk enrollment)."""
    emit_many("enrollment.created", [(account, enrollment) for enrollment in enrollments])


def enrollment_deleted(account: str, enrollment: dict) -> None:
    emit(account, "enrollment.deleted", enrollment, enrollment["uuid"])


def enrollment_changed(account: str, enrollment: dict, started: bool,
                       attempt: dict | None = None) -> None:
    """The events of a progress report (``attempt`` None) or of a recorded attempt, in
    the order they happened: started, then the progress or the attempt, then the
    outcome the attempt decided."""
    uuid = enrollment["uuid"]
    emissions: list[Emission] = []
    if started:
        emissions.append((account, "enrollment.started", enrollment, uuid))
    if attempt is None:
        emissions.append((account, "enrollment.progress_updated", enrollment, uuid))
    else:
        emissions.append((account, "assessment_attempt.recorded",
                          {**attempt, "enrollment_uuid": uuid,
                           "certification_uuid": enrollment["certification_uuid"]}, uuid))
        if enrollment["status"] in ("completed", "failed"):
            emissions.append((account, f"enrollment.{enrollment['status']}", enrollment, uuid))
    _record(emissions)
