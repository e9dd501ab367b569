"""API-key authentication: the spec's ``x-bearerInfoFunc`` and ``x-apikeyInfoFunc``.

``authenticate`` returns the key's token info; Connexion passes its ``sub`` (the key's
account) to every handler that takes a ``user`` argument, as in Connexion's
``examples/apikey``. Connexion runs security functions on the event loop, so the
database lookup runs in a worker thread and verified keys are cached for
``key_cache_seconds``: the common case costs one SHA-256 and a dict lookup.
"""
import asyncio
import inspect
import time
from typing import Any

from connexion.security import NO_VALUE
from starlette.requests import Request

from certapi.errors import Forbidden, Unauthorized
from models.account import ApiKey, hash_key
from models.db import database

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SCHEMES = {"bearer", "api-key"}
_CACHE_LIMIT = 10_000

_cache: dict[str, tuple[float, dict[str, Any]]] = {}
cache_seconds = 5.0


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


def _lookup(key: str) -> dict[str, Any] | None:
    # Runs on an executor thread: hand the pooled connection back at once instead of
    # letting the thread keep it between requests.
    with database.connection_context():
        row = ApiKey.find_active(key)
    if row is None:
        return None
    return {"sub": row.account_id, "permission": row.permission, "key_id": row.uuid,
            "rate_limit": row.rate_limit}


async def _verified(key: str) -> dict[str, Any] | None:
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


async def authenticate(api_key: str, request: Request) -> dict[str, Any]:
    """The token info of a valid key allowed this request's method; 401/403 otherwise."""
    key = parse_authorization(api_key)
    if key is None:
        raise Unauthorized('Authorization header must be "Bearer <api_key>" or "Api-Key <api_key>"')
    info = await _verified(key)
    if info is None:
        raise Unauthorized("Unknown or revoked API key")
    request.state.account = info["sub"]  # for the access log
    if request.method not in READ_METHODS and info["permission"] != "write":
        raise Forbidden("This API key is read-only")
    return info


async def authenticate_bearer(token: str, request: Request) -> dict[str, Any]:
    """``Authorization: Bearer <key>``, the scheme Swagger UI and generated clients send;
    Connexion has taken the scheme off."""
    return await authenticate(f"Bearer {token}", request)


async def authenticate_header(header: str, request: Request) -> Any:
    """The whole ``Authorization`` header: ``Api-Key <key>``, or a malformed value to
    explain. A well-formed Bearer header was the bearer scheme's to judge, so it is left
    alone here (Connexion tries the spec's security alternatives in turn)."""
    if header.strip().lower().startswith("bearer ") and parse_authorization(header):
        return NO_VALUE
    return await authenticate(header, request)


# Connexion inspects the security functions' signatures on every request (to decide which
# keyword arguments to pass); inspect.signature returns a __signature__ as it is.
for _function in (authenticate, authenticate_bearer, authenticate_header):
    _function.__signature__ = inspect.signature(_function)  # type: ignore[union-attr]


async def identify(header: str | None) -> dict[str, Any] | None:
    """The verified key an ``Authorization`` value names (cached as for authenticate), or
    None: for layers that act before security runs, such as the rate limiter."""
    key = parse_authorization(header) if header else None
    return await _verified(key) if key else None
