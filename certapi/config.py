"""Settings, read from the environment so every worker process sees the same ones."""
import os
from dataclasses import dataclass, field

from certapi.metrics_dir import metrics_enabled
from models.db import database_url


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _bool_env(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=database_url)
    # Bodies above this many bytes are refused with 413 before anything parses them.
    max_body_bytes: int = field(default_factory=lambda: _int_env("CERTAPI_MAX_BODY_BYTES", 1 << 20))
    # The request line and headers together; more is refused with 431 as it arrives
    # (certapi.http_protocol), before anything parses or stores it.
    max_header_bytes: int = field(
        default_factory=lambda: _int_env("CERTAPI_MAX_HEADER_BYTES", 64 * 1024)
    )
    # Slow clients: a request head must arrive within this many seconds of the
    # connection opening, a body within this many seconds of its head (408 otherwise).
    header_timeout_seconds: float = field(
        default_factory=lambda: _float_env("CERTAPI_HEADER_TIMEOUT_SECONDS", 10)
    )
    body_timeout_seconds: float = field(
        default_factory=lambda: _float_env("CERTAPI_BODY_TIMEOUT_SECONDS", 30)
    )
    # An idle kept-alive connection is closed after this many seconds. Longer than the
    # idle timeouts of the proxies and load balancers in front (nginx upstream and AWS
    # ALB: 60 s), so it is always they that close first: a server closing a connection
    # just as the other side sends on it resets that request (a 502 at the proxy).
    keepalive_seconds: int = field(default_factory=lambda: _int_env("CERTAPI_KEEPALIVE_SECONDS", 75))
    # How long a verified key is trusted without asking the database again; a revoked
    # key stops working within this many seconds in every worker.
    key_cache_seconds: int = field(default_factory=lambda: _int_env("CERTAPI_KEY_CACHE_SECONDS", 5))
    # Checking every response against the spec costs time; on in tests, off by default.
    validate_responses: bool = field(
        default_factory=lambda: _bool_env("CERTAPI_VALIDATE_RESPONSES", False)
    )
    # Requests per minute per API key unless the key has its own limit; 0 turns limiting off.
    rate_limit: int = field(default_factory=lambda: _int_env("CERTAPI_RATE_LIMIT", 500))
    # Where the counters live: empty for the database (see certapi.ratelimit), or any
    # storage URI of the `limits` library (redis://host:6379, memory:// for one process).
    rate_limit_storage: str = field(
        default_factory=lambda: os.environ.get("CERTAPI_RATE_LIMIT_STORAGE", ""))
    # How long an Idempotency-Key's answer is kept.
    idempotency_ttl_hours: int = field(
        default_factory=lambda: _int_env("CERTAPI_IDEMPOTENCY_TTL_HOURS", 24))
    # GET /metrics and the recording behind it; CERTAPI_METRICS=off leaves both out.
    metrics: bool = field(default_factory=metrics_enabled)
