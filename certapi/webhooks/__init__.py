"""Webhooks: events raised inside the changes' transactions (outbox), signed with the
Standard Webhooks scheme and delivered at least once by background senders.

Handlers call the functions exported here and know nothing else about delivery."""
from certapi.webhooks.outbox import (
    EVENT_TYPES,
    emit,
    enrollment_changed,
    enrollment_created,
    enrollment_deleted,
    enrollments_created,
)

__all__ = ["EVENT_TYPES", "emit", "enrollment_changed", "enrollment_created",
           "enrollment_deleted", "enrollments_created"]
