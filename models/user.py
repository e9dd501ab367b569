import unicodedata

from peewee import CharField, ForeignKeyField

from models.account import Account
from models.base import TimestampedModel, rfc3339
from models.partner import Partner


class User(TimestampedModel):
    account = ForeignKeyField(Account, on_delete="CASCADE")
    email = CharField(max_length=254)
    # Uniqueness ignores case and Unicode forms; the database enforces it on this folded
    # copy. (Which characters an email may hold at all is openapi.yaml's Email pattern.)
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
        """The comparison key: two addresses that read the same (fullwidth or plain,
        composed or decomposed, any case) fold alike. NFKC again after case-folding,
        which can undo it. Folding can lengthen an address (ß → ss); the key keeps the
        column's 254 characters, the limit of the address itself."""
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email).casefold())
        return folded[:254]

    def set_email(self, email: str) -> None:
        # NFC: one spelling of each letter, and nothing a reader would see differently.
        self.email = unicodedata.normalize("NFC", email)
        self.email_key = self.fold_email(email)

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
