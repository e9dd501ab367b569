from peewee import CharField, ForeignKeyField, TextField

from models.account import Account
from models.base import TimestampedModel, rfc3339


class Partner(TimestampedModel):
    account = ForeignKeyField(Account, on_delete="CASCADE")
    name = CharField(max_length=200)
    email = CharField(max_length=254, null=True)
    website_url = TextField(null=True)
    description = TextField(null=True)

    class Meta:
        indexes = ((("account", "created_at", "uuid"), False),)

    def as_json(self) -> dict:
        return {
            "uuid": self.uuid,
            "name": self.name,
            "email": self.email,
            "website_url": self.website_url,
            "description": self.description,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }
