"""API-key authentication: the spec's ``x-apikeyInfoFunc`` and the caller's account.

Connexion runs security functions on the event loop, so the database lookup runs in a
worker thread and verified keys are cached for ``key_cache_seconds``: the common case
costs one SHA-256 and a dict lookup.
"""
import asyncio
import contextvars
import inspect
import time

from certapi.errors import Forbidden, Unauthorized
from models.account import ApiKey, hash_key
from models.db import database

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SCHEMES = {"bearer", "api-key"}
_CACHE_LIMIT = 10_000

_cache: dict[str, tuple[float, dict]] = {}
cache_seconds = 5.0
# The verified key of the request being served. Set on the event loop by authenticate();
# the handler's worker thread runs in a copy of the request's context, so it sees it.
_caller: contextvars.ContextVar[dict] = contextvars.ContextVar("certapi_caller")


def configure(key_cache_seconds: float) -> None:
    global cache_seconds
    cache_seconds = key_cache_seconds
    _cache.clear()


def parse_authorization(header: str) -> str | None:
    """``Bearer <key>`` or ``Api-Key <key>`` (scheme case-insensitive) → the key."""
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() not in SCHEMES or not key or " " in key:
        return None
    return key


def _lookup(key: str) -> dict | None:
    # Runs on an executor thread: hand the pooled connection back at once instead of
    # letting the thread keep it between requests.
    with database.connection_context():
        row = ApiKey.find_active(key)
    if row is None:
        return None
    return {"sub": row.account_id, "account_uuid": row.account_id,
            "permission": row.permission, "key_id": row.uuid, "rate_limit": row.rate_limit}


async def _verified(key: str) -> dict | None:
    digest = hash_key(key)
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and hit[0] > now:
        return hit[1]
    info = await asyncio.to_thread(_lookup, key)
    if info is not None and cache_seconds > 0:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[digest] = (now + cache_seconds, info)
    return info


async def authenticate(api_key: str, request) -> dict:
    key = parse_authorization(api_key)
    if key is None:
        raise Unauthorized('Authorization header must be "Bearer <api_key>" or "Api-Key <api_key>"')
    info = await _verified(key)
    if info is None:
        raise Unauthorized("Unknown or revoked API key")
    if request.method not in READ_METHODS and info["permission"] != "write":
        raise Forbidden("This API key is read-only")
    _caller.set(info)
    return info


# Connexion inspects the security function's signature on every request (to decide which
# keyword arguments to pass); inspect.signature returns a __signature__ as it is.
authenticate.__signature__ = inspect.signature(authenticate)


def account_uuid() -> str:
    """The account of the key that authenticated the current request."""
    return _caller.get()["account_uuid"]


async def identify(header: str | None) -> dict | None:
    """The verified key an ``Authorization`` value names (cached as for authenticate), or
    None: for layers that act before security runs, such as the rate limiter."""
    key = parse_authorization(header) if header else None
    return await _verified(key) if key else None
