"""Per-key rate limits, counted where every worker and machine of a deployment sees the
same count.

A fixed window of 60 seconds per API key (``limits``' fixed-window strategy): the window
opens with the key's first counted request and its count resets when it ends. Counters
live in a SQL table (``SqlStorage``, registered with ``limits`` as ``certapi+sql``): on
PostgreSQL in the main database; on SQLite in a file of their own beside it
(``<database>-ratelimit``), so counting a GET never waits for, or holds up, the main
database's single writer. Any other ``limits`` storage (``redis://…``) can be named
with CERTAPI_RATE_LIMIT_STORAGE.

The limiter is an ASGI layer outside Connexion's: every request whose key verifies is
counted whatever its answer (403, 404 and 422 included); requests without a valid key
and ``/v1/health`` are not.
"""
import asyncio
import logging
import math
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from connexion import FlaskApp
from connexion.middleware import MiddlewarePosition
from limits import RateLimitItemPerMinute
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from peewee import DatabaseError, SqliteDatabase
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certapi import auth, metrics
from certapi.config import Settings
from certapi.errors import TooManyRequests, envelope_bytes
from models.db import database, is_sqlite

log = logging.getLogger("certapi.error")
WINDOW_SECONDS = 60
REPLAYED = b"idempotent-replayed"
# Paths the limiter never counts: no key is needed there.
_UNCOUNTED = re.compile(r"^/v1/(health|ready|openapi\.json|ui(/.*)?)$")
_COUNTER_TABLE = """CREATE TABLE IF NOT EXISTS rate_limit_counter (
    name VARCHAR(255) PRIMARY KEY, count INTEGER NOT NULL, expires_at REAL NOT NULL)"""
# One statement counts a hit and starts a new window when the old one has ended; the
# row lock (PostgreSQL) or the write lock (SQLite) makes concurrent hits add up.
_INCREMENT = """
INSERT INTO rate_limit_counter (name, count, expires_at) VALUES ({p}, {p}, {p})
ON CONFLICT (name) DO UPDATE SET
  count = CASE WHEN rate_limit_counter.expires_at <= {p} THEN excluded.count
               ELSE rate_limit_counter.count + excluded.count END,
  expires_at = CASE WHEN rate_limit_counter.expires_at <= {p} THEN excluded.expires_at
                    ELSE rate_limit_counter.expires_at END
RETURNING count, expires_at"""


def clock() -> float:
    """Unix seconds; the one clock of windows and counters (tests move it)."""
    return time.time()


class SqlStorage(Storage):
    """A ``limits`` storage on a SQL table. ``certapi+sql://`` uses the application's
    database; ``certapi+sql:///path/counters.db`` a SQLite file of its own."""

    STORAGE_SCHEME = ["certapi+sql"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 **options: Any) -> None:
        super().__init__(uri, wrap_exceptions, **options)
        path = urlsplit(uri or "").path
        self._own = bool(path)
        self.db: Any = SqliteDatabase(path, pragmas={
            "journal_mode": "wal",
            # Counters need no durability: after a power cut a window starts afresh.
            "synchronous": "off",
            "busy_timeout": 10000,
        }, check_same_thread=False) if self._own else database
        self._created = threading.Event()

    @property
    def base_exceptions(self) -> type[Exception]:
        return DatabaseError

    def _execute(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        sql = sql.format(p=self.db.param)
        if not self._own:
            # A pooled connection of the app's database: hand it back at once.
            with self.db.connection_context():
                return self.db.execute_sql(sql, params).fetchall()
        if not self._created.is_set():
            self.db.execute_sql(_COUNTER_TABLE)
            self._created.set()
        return self.db.execute_sql(sql, params).fetchall()

    def incr_with_expiry(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
        """Count ``amount`` hits; the count and the end of the window (Unix seconds)."""
        now = clock()
        ((count, expires_at),) = self._execute(_INCREMENT, (key, amount, now + expiry, now, now))
        return count, expires_at

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.incr_with_expiry(key, expiry, amount)[0]

    def _row(self, key: str) -> tuple[int, float]:
        rows = self._execute(
            "SELECT count, expires_at FROM rate_limit_counter WHERE name = {p} AND expires_at > {p}",
            (key, clock()))
        return rows[0] if rows else (0, clock())

    def get(self, key: str) -> int:
        return self._row(key)[0]

    def get_expiry(self, key: str) -> float:
        return self._row(key)[1]

    def check(self) -> bool:
        try:
            self._execute("SELECT 1", ())
        except DatabaseError:
            return False
        return True

    def reset(self) -> int | None:
        return len(self._execute("DELETE FROM rate_limit_counter RETURNING name", ()))

    def clear(self, key: str) -> None:
        self._execute("DELETE FROM rate_limit_counter WHERE name = {p}", (key,))

    def purge(self) -> None:
        """Drop the rows of windows that have ended."""
        self._execute("DELETE FROM rate_limit_counter WHERE expires_at <= {p}", (clock(),))


def storage_for(database_url: str, uri: str = "") -> Storage:
    """The configured storage, or the default for this database (see the module doc)."""
    if not uri:
        if is_sqlite(database_url):
            uri = f"certapi+sql://{urlsplit(database_url).path}-ratelimit"
        else:
            uri = "certapi+sql://"
    storage = storage_from_string(uri)
    if not isinstance(storage, Storage):
        raise ValueError(f"rate-limit storage {uri!r} is an asyncio one; certapi counts "
                         "from worker threads and needs a synchronous storage")
    return storage


class Limiter:
    """Counts hits per key and says whether one is admitted, with the numbers the
    response headers need."""

    def __init__(self, storage: Storage, default_limit: int) -> None:
        self.storage, self.default_limit = storage, default_limit
        self.strategy = FixedWindowRateLimiter(storage)

    def limit_for(self, caller: dict[str, Any]) -> int:
        own = caller.get("rate_limit")
        return self.default_limit if own is None else own

    def hit(self, key_id: str, limit: int) -> tuple[bool, int, float]:
        """(admitted, remaining, seconds until the window resets)."""
        item = RateLimitItemPerMinute(limit)
        if isinstance(self.storage, SqlStorage):  # one statement instead of three
            count, reset_at = self.storage.incr_with_expiry(
                item.key_for(key_id), item.get_expiry())
            admitted, remaining = count <= limit, max(0, limit - count)
        else:
            admitted = self.strategy.hit(item, key_id)
            reset_at, remaining = self.strategy.get_window_stats(item, key_id)
        return admitted, remaining, max(0.0, reset_at - clock())

    def refund(self, key_id: str, limit: int) -> None:
        """Take one hit back: a replayed idempotent answer is not counted twice."""
        item = RateLimitItemPerMinute(limit)
        self.storage.incr(item.key_for(key_id), item.get_expiry(), amount=-1)


def headers(limit: int, remaining: int, reset_seconds: float) -> list[tuple[bytes, bytes]]:
    seconds = max(1, math.ceil(reset_seconds))
    return [
        (b"x-ratelimit-limit", str(limit).encode()),
        (b"x-ratelimit-remaining", str(remaining).encode()),
        (b"ratelimit-policy", f'"default";q={limit};w={WINDOW_SECONDS}'.encode()),
        (b"ratelimit", f'"default";r={remaining};t={seconds}'.encode()),
    ]


class RateLimit:
    """ASGI layer: counts the request against its key before anything else runs, answers
    429 over the limit, and adds the rate-limit headers to every counted response."""

    def __init__(self, app: ASGIApp, limiter: Limiter) -> None:
        self.app, self.limiter = app, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _UNCOUNTED.match(scope["path"]):
            return await self.app(scope, receive, send)
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            caller = await auth.identify(authorization.decode("latin-1")) if authorization else None
        except Exception:
            # This layer sits outside the error handler. The security layer repeats the
            # lookup and answers its failure (503 for an outage, 500 otherwise) and logs it.
            caller = None
        limit = self.limiter.limit_for(caller) if caller else 0
        if caller is None or not limit:
            return await self.app(scope, receive, send)
        key_id = caller["key_id"]
        try:
            admitted, remaining, reset = await asyncio.to_thread(self.limiter.hit, key_id, limit)
        except Exception as exc:
            # Counting is a safeguard, not the service: if the counters cannot be
            # reached or written (an outage, a read-only database), serve the request
            # uncounted rather than fail it. An outage is not a bug: one line, no traceback.
            log.warning("rate-limit counters unavailable; request not counted (%s: %s)",
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            return await self.app(scope, receive, send)
        extra = headers(limit, remaining, reset)
        if not admitted:
            metrics.RATE_LIMITED.inc()
            body = envelope_bytes(TooManyRequests.code,
                                  f"Rate limit of {limit} requests per minute exceeded; "
                                  f"retry after {max(1, math.ceil(reset))} seconds")
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(max(1, math.ceil(reset))).encode()), *extra]})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent = message.get("headers", [])
                if any(k.lower() == REPLAYED for k, _ in sent):
                    try:
                        await asyncio.to_thread(self.limiter.refund, key_id, limit)
                    except Exception:
                        log.exception("rate-limit refund of a replay failed")
                else:
                    message["headers"] = [*sent, *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FlaskApp, settings: Settings) -> None:
    """Put the limiter in front of ``app``'s stack; CERTAPI_RATE_LIMIT=0 leaves it out."""
    if settings.rate_limit <= 0:
        return
    storage = storage_for(settings.database_url, settings.rate_limit_storage)
    limiter = Limiter(storage, settings.rate_limit)
    app.add_middleware(RateLimit, position=MiddlewarePosition.BEFORE_EXCEPTION, limiter=limiter)
    app.app.extensions["certapi_ratelimit"] = limiter
