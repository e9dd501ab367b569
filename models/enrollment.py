import datetime

from peewee import (
    BooleanField,
    Case,
    CharField,
    DateTimeField,
    DoubleField,
    Expression,
    ForeignKeyField,
    IntegerField,
)

from models import base
from models.account import Account
from models.base import BaseModel, number, rfc3339, utcnow
from models.certification import Certification
from models.partner import Partner
from models.user import User


class Enrollment(BaseModel):
    account = ForeignKeyField(Account, on_delete="CASCADE")
    certification = ForeignKeyField(Certification, column_name="certification_uuid")
    user = ForeignKeyField(User, column_name="user_uuid")
    partner = ForeignKeyField(Partner, null=True, column_name="partner_uuid")
    # Peewee's raw keys of the foreign keys above, declared for the type checker.
    account_id: str
    certification_uuid: str
    user_uuid: str
    partner_uuid: str | None
    status = CharField(max_length=16, default="enrolled")
    progress_percentage = DoubleField(default=0)
    enrolled_at = DateTimeField(default=utcnow)
    started_at = DateTimeField(null=True)
    completed_at = DateTimeField(null=True)
    assessment_attempts = IntegerField(default=0)
    assessment_best_score = DoubleField(null=True)
    assessment_passed = BooleanField(null=True)
    expires_at = DateTimeField(null=True)
    # When the expiry scan raised enrollment.expiring / enrollment.expired (or decided
    # never to): set in the transaction that writes the event, so each is raised once.
    expiring_raised_at = DateTimeField(null=True)
    expired_raised_at = DateTimeField(null=True)
    # No longer read: concurrent changes queue on the row lock (handlers.enrollments.change).
    # The column stays until a migration drops it.
    version = IntegerField(default=0)
    # The earlier completed enrollment this one renews (migration 0007 says why SET NULL).
    recertifies_enrollment = ForeignKeyField(
        "self", null=True, column_name="recertifies_enrollment_uuid", on_delete="SET NULL",
        backref="renewals",
    )
    recertifies_enrollment_uuid: str | None

    class Meta:
        indexes = (
            (("certification", "enrolled_at", "uuid"), False),
            (("user", "enrolled_at", "uuid"), False),
            (("certification", "expires_at"), False),
            (("user", "expires_at"), False),
        )

    def is_expired(self, now: datetime.datetime | None = None) -> bool:
        """A completion whose ``expires_at`` has come; expiry is not a status."""
        if self.status != "completed" or self.expires_at is None:
            return False
        # Read through the module so a test that sets models.base.utcnow moves it too.
        return bool(self.expires_at <= (now if now is not None else base.utcnow()))

    @classmethod
    def expired_at(cls, now: datetime.datetime) -> Expression:
        """``is_expired`` in SQL: the enrollments expired at ``now``."""
        return (cls.status == "completed") & (cls.expires_at <= now)

    @classmethod
    def not_expired_at(cls, now: datetime.datetime) -> Expression:
        """Its complement, spelled out: NOT of the above is NULL (not true) where
        expires_at is NULL."""
        return (cls.status != "completed") | cls.expires_at.is_null() | (cls.expires_at > now)

    @classmethod
    def expires_before(cls, moment: datetime.datetime) -> Expression:
        return cls.expires_at < moment

    @classmethod
    def expires_after(cls, moment: datetime.datetime) -> Expression:
        return cls.expires_at > moment

    @classmethod
    def expired_column(cls, now: datetime.datetime) -> Case:
        return Case(None, [(cls.expired_at(now), True)], False)

    def as_json(self, user_email: str) -> dict:
        return {
            "uuid": self.uuid,
            "certification_uuid": self.certification_uuid,
            "user_uuid": self.user_uuid,
            "user_email": user_email,
            "partnership_uuid": self.partner_uuid,
            "status": self.status,
            "progress_percentage": number(self.progress_percentage),
            "enrolled_at": rfc3339(self.enrolled_at),
            "started_at": rfc3339(self.started_at),
            "completed_at": rfc3339(self.completed_at),
            "assessment_attempts": self.assessment_attempts,
            "assessment_best_score": number(self.assessment_best_score),
            "assessment_passed": self.assessment_passed,
            "expires_at": rfc3339(self.expires_at),
            "expired": self.is_expired(),
            "recertifies_enrollment_uuid": self.recertifies_enrollment_uuid,
        }
