"""Raising events: the transactional outbox.

``emit`` writes the event and one pending delivery per subscribed endpoint inside the
caller's transaction, so a change and its events commit or roll back together; the
senders (certapi.webhooks.delivery) find the deliveries afterwards."""
import json

from models import Event, WebhookDelivery, WebhookEndpoint, database
from models.base import new_uuid, rfc3339, utcnow
from models.bulk import insert_rows

EVENT_TYPES = (
    "enrollment.created", "enrollment.started", "enrollment.progress_updated",
    "assessment_attempt.recorded", "enrollment.completed", "enrollment.failed",
    "enrollment.deleted", "enrollment.expiring", "enrollment.expired", "webhook.test",
)


def emit(account: str, event_type: str, data: dict, enrollment_uuid: str | None = None,
         endpoints: list[WebhookEndpoint] | None = None) -> Event:
    """Record an event of ``account`` and queue it for its subscribed endpoints (or for
    ``endpoints`` alone, e.g. a test event). Call it inside the change's transaction."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")
    now = utcnow()
    payload = json.dumps({"type": event_type, "timestamp": rfc3339(now), "data": data},
                         separators=(",", ":"))
    with database.atomic():
        event = Event.create(uuid=new_uuid(), account=account, type=event_type,
                             enrollment_uuid=enrollment_uuid, payload=payload, created_at=now)
        if endpoints is None:
            subscribed = (WebhookEndpoint.select(WebhookEndpoint.uuid, WebhookEndpoint.event_types)
                          .where((WebhookEndpoint.account == account) & WebhookEndpoint.enabled))
            endpoints = [endpoint for endpoint in subscribed if endpoint.wants(event_type)]
        if endpoints:
            WebhookDelivery.insert_many([
                {"uuid": new_uuid(), "endpoint": endpoint.uuid, "event": event.uuid,
                 "event_type": event_type, "status": "pending", "attempts": 0,
                 "next_attempt_at": now, "created_at": now, "updated_at": now}
                for endpoint in endpoints
            ]).execute()
    return event


def enrollment_created(account: str, enrollment: dict) -> None:
    emit(account, "enrollment.created", enrollment, enrollment["uuid"])


def enrollments_created(account: str, enrollments: list[dict]) -> None:
    """``enrollment.created`` for each of ``enrollments`` (a bulk enrollment)."""
    emit_many("enrollment.created", [(account, enrollment) for enrollment in enrollments])


def emit_many(event_type: str, items: list[tuple[str, dict]]) -> None:
    """``emit`` for many enrollments at once: one event of ``event_type`` per (account,
    enrollment JSON) of ``items``, written with one query per table rather than
    ``emit``'s four per event, so a 1000-item bulk enrollment or expiry scan stays one
    short transaction. Call it inside the change's transaction."""
    if not items:
        return
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")
    now = utcnow()
    timestamp = rfc3339(now)
    events = [
        {"uuid": new_uuid(), "account": account, "type": event_type,
         "enrollment_uuid": enrollment["uuid"], "created_at": now,
         "payload": json.dumps({"type": event_type, "timestamp": timestamp,
                                "data": enrollment}, separators=(",", ":"))}
        for account, enrollment in items
    ]
    accounts = sorted({account for account, _ in items})
    subscribed = (WebhookEndpoint
                  .select(WebhookEndpoint.uuid, WebhookEndpoint.account, WebhookEndpoint.event_types)
                  .where(WebhookEndpoint.account.in_(accounts) & WebhookEndpoint.enabled))
    endpoints: dict[str, list[str]] = {}
    for endpoint in subscribed:
        if endpoint.wants(event_type):
            endpoints.setdefault(endpoint.account_id, []).append(endpoint.uuid)
    with database.atomic():
        insert_rows(Event, events)
        deliveries = [
            {"uuid": new_uuid(), "endpoint": endpoint, "event": event["uuid"],
             "event_type": event_type, "status": "pending", "attempts": 0,
             "next_attempt_at": now, "created_at": now, "updated_at": now}
            for event in events for endpoint in endpoints.get(event["account"], ())
        ]
        insert_rows(WebhookDelivery, deliveries)


def enrollment_deleted(account: str, enrollment: dict) -> None:
    emit(account, "enrollment.deleted", enrollment, enrollment["uuid"])


def enrollment_changed(account: str, enrollment: dict, started: bool,
                       attempt: dict | None = None) -> None:
    """The events of a progress report (``attempt`` None) or of a recorded attempt, in
    the order they happened: started, then the progress or the attempt, then the
    outcome the attempt decided."""
    uuid = enrollment["uuid"]
    if started:
        emit(account, "enrollment.started", enrollment, uuid)
    if attempt is None:
        emit(account, "enrollment.progress_updated", enrollment, uuid)
        return
    emit(account, "assessment_attempt.recorded",
         {**attempt, "enrollment_uuid": uuid,
          "certification_uuid": enrollment["certification_uuid"]}, uuid)
    if enrollment["status"] in ("completed", "failed"):
        emit(account, f"enrollment.{enrollment['status']}", enrollment, uuid)
