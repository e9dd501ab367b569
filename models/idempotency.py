"""Stored answers of requests that carried an ``Idempotency-Key`` (certapi.idempotency)."""
from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField, TextField

from models.account import Account
from models.base import BaseModel, utcnow


class IdempotencyRecord(BaseModel):
    account = ForeignKeyField(Account, on_delete="CASCADE")
    key = CharField(max_length=255)
    # SHA-256 of method, path with query string and the body as parsed JSON.
    fingerprint = CharField(max_length=64)
    status = IntegerField()
    body = TextField()
    content_type = CharField(max_length=100, null=True)
    location = TextField(null=True)
    created_at = DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("account", "key"), True),)
