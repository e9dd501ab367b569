from peewee import CharField, ForeignKeyField

from models.account import Account
from models.base import TimestampedModel, rfc3339
from models.partner import Partner


class User(TimestampedModel):
    account = ForeignKeyField(Account, on_delete="CASCADE")
    email = CharField(max_length=254)
    # Uniqueness is case-insensitive; the database enforces it on this folded copy.
    email_key = CharField(max_length=254)
    first_name = CharField(max_length=200, null=True)
    last_name = CharField(max_length=200, null=True)
    partner = ForeignKeyField(Partner, null=True, column_name="partner_uuid")
    partner_uuid: str | None  # Peewee's raw key of `partner`, declared for the type checker

    class Meta:
        indexes = (
            (("account", "email_key"), True),
            (("account", "created_at", "uuid"), False),
            (("partner", "created_at", "uuid"), False),
        )

    @staticmethod
    def fold_email(email: str) -> str:
        return email.casefold()

    def as_json(self) -> dict:
        return {
            "uuid": self.uuid,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "partnership_uuid": self.partner_uuid,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }
