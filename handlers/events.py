"""The events API: what the webhooks carry, for clients that poll instead."""
import datetime
from typing import Any

from peewee import ModelSelect

from certapi.errors import NotFound
from certapi.pagination import paginate
from certapi.webhooks.settings import WebhookSettings
from handlers.timestamps import timestamp
from models import Event
from models.base import utcnow


def _retained(query: "ModelSelect[Event]") -> "ModelSelect[Event]":
    """Events past the retention period are gone, whether or not a purge ran yet."""
    days = WebhookSettings.from_env().retention_days
    return query.where(Event.created_at >= utcnow() - datetime.timedelta(days=days))


def list_events(page: int, per_page: int, user: str, type: str | None = None,
                enrollment_uuid: str | None = None,
                created_after: str | None = None) -> dict[str, Any]:
    query = _retained(Event.select().where(Event.account == user))
    if type is not None:
        query = query.where(Event.type == type)
    if enrollment_uuid is not None:
        query = query.where(Event.enrollment_uuid == enrollment_uuid.lower())
    if created_after is not None:
        query = query.where(Event.created_at > timestamp(created_after, "query/created_after"))
    return paginate(query, (Event.created_at, Event.uuid), page, per_page, Event.as_json)


def get_event(uuid: str, user: str) -> dict[str, Any]:
    event = _retained(Event.select().where(
        (Event.uuid == uuid.lower()) & (Event.account == user))).first()
    if event is None:
        raise NotFound("Event not found")
    return event.as_json()
