"""Delivery settings, read from the environment when used, so every process (serve's
workers, `certapi worker`) and every test sees the current ones."""
import os
from dataclasses import dataclass

# The Standard Webhooks schedule: the delay before each retry after the first attempt.
DEFAULT_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
MAX_RESPONSE_BYTES = 64 * 1024
DISABLE_AFTER_SECONDS = 5 * 24 * 3600


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _schedule() -> tuple[float, ...]:
    raw = os.environ.get("CERTAPI_WEBHOOK_RETRY_SCHEDULE", "").strip()
    if not raw:
        return DEFAULT_SCHEDULE
    return tuple(float(part) for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class WebhookSettings:
    timeout: float
    schedule: tuple[float, ...]
    allow_private: bool
    poll_seconds: float
    retention_days: float

    @property
    def longest_send_seconds(self) -> float:
        """The most one send can last: connect, write, first byte and the last body
        read each end within ``timeout``."""
        return 4 * self.timeout

    @property
    def lease_seconds(self) -> float:
        """How long a claimed delivery is left alone: longer than any send can last, so
        only a sender that died loses its claim. A sender starts no send later than
        ``lease_seconds - longest_send_seconds`` after its claim."""
        return self.longest_send_seconds + 5

    @classmethod
    def from_env(cls) -> "WebhookSettings":
        return cls(
            timeout=_float("CERTAPI_WEBHOOK_TIMEOUT", 10.0),
            schedule=_schedule(),
            allow_private=os.environ.get("CERTAPI_WEBHOOK_ALLOW_PRIVATE", "").strip().lower()
            in ("1", "true", "yes", "on"),
            poll_seconds=_float("CERTAPI_WEBHOOK_POLL_SECONDS", 0.5),
            retention_days=_float("CERTAPI_EVENT_RETENTION_DAYS", 30.0),
        )
