"""Persistence: Peewee models, the database handle and schema migrations."""
from models.account import Account, ApiKey
from models.attempt import AssessmentAttempt
from models.certification import Certification
from models.db import database
from models.enrollment import Enrollment
from models.idempotency import IdempotencyRecord
from models.partner import Partner
from models.user import User

__all__ = [
    "Account", "ApiKey", "AssessmentAttempt", "Certification", "Enrollment",
    "IdempotencyRecord", "Partner", "User", "database",
]

# In dependency order: what migrations and test fixtures create.
MODELS = [Account, ApiKey, Partner, User, Certification, Enrollment, AssessmentAttempt,
          IdempotencyRecord]
