from peewee import CharField, DoubleField, ForeignKeyField, IntegerField, TextField

from models.account import Account
from models.base import TimestampedModel, number, rfc3339


class Certification(TimestampedModel):
    account = ForeignKeyField(Account, on_delete="CASCADE")
    account_id: str  # Peewee's raw key of `account`, declared for the type checker
    name = CharField(max_length=200)
    description = TextField(null=True)
    status = CharField(max_length=16, default="draft")
    passing_score = DoubleField(default=70)
    max_attempts = IntegerField(null=True)
    validity_days = IntegerField(null=True)
    # Days before expiry from which a holder may enroll again (certapi.lifecycle).
    renewal_window_days = IntegerField(default=30)

    class Meta:
        indexes = ((("account", "created_at", "uuid"), False),)

    def as_json(self) -> dict:
        return {
            "uuid": self.uuid,
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "passing_score": number(self.passing_score),
            "max_attempts": self.max_attempts,
            "validity_days": self.validity_days,
            "renewal_window_days": self.renewal_window_days,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }
