"""Tenants and their API keys. Keys are stored only as a SHA-256 hash: they carry 256
random bits, so a fast hash is enough to make a stolen table useless."""
import hashlib
import secrets

from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField

from models.base import BaseModel, utcnow

PERMISSIONS = ("read", "write")
KEY_PREFIX = "cak_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class Account(BaseModel):
    name = CharField(max_length=200)
    created_at = DateTimeField(default=utcnow)


class ApiKey(BaseModel):
    account = ForeignKeyField(Account, backref="api_keys", on_delete="CASCADE")
    account_id: str  # Peewee's raw key of `account`, declared for the type checker
    key_hash = CharField(max_length=64, unique=True)
    # The first characters of the key, so an operator can tell keys apart in `keys list`.
    hint = CharField(max_length=16)
    permission = CharField(max_length=8, choices=[(p, p) for p in PERMISSIONS])
    created_at = DateTimeField(default=utcnow)
    revoked_at = DateTimeField(null=True)
    # Requests per minute for this key; null: the server's default (CERTAPI_RATE_LIMIT).
    rate_limit = IntegerField(null=True)

    @classmethod
    def issue(cls, account: Account, permission: str = "write",
              rate_limit: int | None = None) -> tuple["ApiKey", str]:
        """Create a key; the plain key is returned once and never stored."""
        if permission not in PERMISSIONS:
            raise ValueError(f"permission must be one of {', '.join(PERMISSIONS)}")
        if rate_limit is not None and rate_limit < 0:
            raise ValueError("rate limit must be 0 (unlimited) or more requests per minute")
        plain = KEY_PREFIX + secrets.token_urlsafe(32)
        row = cls.create(
            account=account, key_hash=hash_key(plain), hint=plain[:10], permission=permission,
            rate_limit=rate_limit,
        )
        return row, plain

    @classmethod
    def find_active(cls, plain: str) -> "ApiKey | None":
        return cls.get_or_none((cls.key_hash == hash_key(plain)) & cls.revoked_at.is_null())
