"""Secrets and Standard Webhooks signatures (the ``standardwebhooks`` package signs)."""
import base64
import datetime
import secrets

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def headers(event_id: str, body: str, secrets_: list[str],
            now: datetime.datetime | None = None) -> dict[str, str]:
    """The webhook-* headers of one attempt: one ``v1,`` signature per secret (two during
    the 24 hours after a rotation), space-separated."""
    now = now or datetime.datetime.now(datetime.UTC)
    stamp = int(now.timestamp())
    signed_at = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    signatures = " ".join(Webhook(secret).sign(event_id, signed_at, body) for secret in secrets_)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
