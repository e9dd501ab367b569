"""Webhook endpoints, the events the changes raised (the outbox) and their deliveries.

An event row is written in the transaction of the change that raised it, naming the
endpoints subscribed to it then (``fanout``); a sender turns that into one delivery row
per endpoint (certapi.webhooks.fanout). The delivery rows are the queue the senders
work through and, kept afterwards, the delivery log."""
import json

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField, TextField

from models.account import Account
from models.base import BaseModel, TimestampedModel, rfc3339, utcnow

DELIVERY_STATUSES = ("pending", "succeeded", "failed")


class WebhookEndpoint(TimestampedModel):
    account = ForeignKeyField(Account, on_delete="CASCADE")
    account_id: str  # Peewee's raw key of `account`, declared for the type checker
    url = TextField()
    description = TextField(null=True)
    # A JSON array of type names; empty means every type.
    event_types = TextField(default="[]")
    enabled = BooleanField(default=True)
    disabled_reason = TextField(null=True)
    secret = CharField(max_length=100)
    # After a rotation the old secret signs too, until previous_secret_until.
    previous_secret = CharField(max_length=100, null=True)
    previous_secret_until = DateTimeField(null=True)
    # Since when every delivery attempt failed (null after a success): five days of it
    # disable the endpoint.
    failing_since = DateTimeField(null=True)

    class Meta:
        indexes = ((("account", "created_at", "uuid"), False),)

    @property
    def types(self) -> list[str]:
        return json.loads(self.event_types)

    def wants(self, event_type: str) -> bool:
        types = self.types
        return not types or event_type in types

    def as_json(self) -> dict:
        return {
            "uuid": self.uuid,
            "url": self.url,
            "description": self.description,
            "event_types": self.types,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }


class Event(BaseModel):
    """One raised event; its uuid is the ``webhook-id`` of every delivery of it."""
    account = ForeignKeyField(Account, on_delete="CASCADE")
    account_id: str  # Peewee's raw key of `account`, declared for the type checker
    type = CharField(max_length=64)
    enrollment_uuid = CharField(max_length=36, null=True)
    # The exact body every delivery sends, so retries carry the same bytes.
    payload = TextField()
    created_at = DateTimeField(default=utcnow)
    # The endpoint uuids (comma-separated) whose delivery rows are still to be written;
    # NULL once they are, or when no endpoint was subscribed. Migration 0010 indexes the
    # events where it is set.
    fanout = TextField(null=True)

    class Meta:
        indexes = (
            (("account", "created_at", "uuid"), False),
            (("created_at",), False),
        )

    def as_json(self) -> dict:
        return {"uuid": self.uuid, **json.loads(self.payload)}


class WebhookDelivery(TimestampedModel):
    endpoint = ForeignKeyField(WebhookEndpoint, on_delete="CASCADE")
    event = ForeignKeyField(Event, on_delete="CASCADE")
    # Peewee's raw keys of the foreign keys above, declared for the type checker.
    endpoint_id: str
    event_id: str
    event_type = CharField(max_length=64)
    status = CharField(max_length=16, default="pending")
    attempts = IntegerField(default=0)
    last_status_code = IntegerField(null=True)
    last_error = TextField(null=True)
    # For a pending delivery: when it is due. A sender that claims it moves this to the
    # end of its lease, so no other sender takes it meanwhile.
    next_attempt_at = DateTimeField(null=True, default=utcnow)
    # The claim of the sender working on it; its result is written only under that claim.
    claim = CharField(max_length=36, null=True)

    class Meta:
        indexes = (
            (("endpoint", "created_at", "uuid"), False),
            (("status", "next_attempt_at"), False),
        )

    def as_json(self) -> dict:
        return {
            "uuid": self.uuid,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "next_attempt_at": rfc3339(self.next_attempt_at) if self.status == "pending" else None,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }
