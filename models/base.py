"""What every resource model shares: a server-generated uuid key and UTC timestamps."""
import datetime
import uuid as uuidlib
from typing import Any

from peewee import CharField, DateTimeField, Model

from models.db import database


def utcnow() -> datetime.datetime:
    """Naive UTC: every timestamp column holds UTC, so the zone is not stored."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def rfc3339(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def number(value: float | None) -> float | int | None:
    """Whole numbers go out as integers (70, not 70.0); the column is REAL either way."""
    if value is None or value != int(value):
        return value
    return int(value)


class BaseModel(Model):
    uuid = CharField(primary_key=True, max_length=36, default=new_uuid)

    class Meta:
        database = database
        legacy_table_names = False


class TimestampedModel(BaseModel):
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    def save(self, *args: Any, **kwargs: Any) -> int | bool:
        if kwargs.get("force_insert"):
            # The two defaults are computed apart; a new row is updated when it is created.
            self.updated_at = self.created_at
        elif self.get_id() is not None:
            self.updated_at = utcnow()
        return super().save(*args, **kwargs)
