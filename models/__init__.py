"""Persistence: Peewee models, the database handle and schema migrations."""
from models.account import Account, ApiKey
from models.attempt import AssessmentAttempt
from models.certification import Certification
from models.db import database
from models.enrollment import Enrollment
from models.idempotency import IdempotencyRecord
from models.partner import Partner
from models.user import User
from models.webhook import Event, WebhookDelivery, WebhookEndpoint

__all__ = [
    "Account", "ApiKey", "AssessmentAttempt", "Certification", "Enrollment",
    "Partner", "User", "database", "IdempotencyRecord", "Event", "WebhookDelivery", "WebhookEndpoint",
]

# In dependency order: what migrations and test fixtures create.
MODELS = [Account, ApiKey, Partner, User, Certification, Enrollment, AssessmentAttempt,
          WebhookEndpoint, Event, WebhookDelivery, IdempotencyRecord]
