"""JSON in and out of the service with orjson, which reads and writes certapi's bodies
several times faster than the stdlib's json, falling back to the stdlib wherever the two
would not give the same result.

Where they differ: orjson reads an integer beyond 64 bits as a float (the stdlib keeps it
an int, and the validators word a 422 on the int), refuses NaN/Infinity, lone surrogates,
invalid UTF-8 and deep nesting (the stdlib path then raises, or answers, exactly as
before), and cannot write integers beyond 64 bits.
"""
import datetime
import decimal
import json
import uuid
from typing import Any

import orjson
from connexion.frameworks.flask import FlaskJSONProvider
from connexion.jsonifier import Jsonifier

# 19 digits in a row may be an integer orjson would read as a float (2**63 has 19). Found
# by mapping every digit to "0" and looking for 19 of them: a regex takes ten times longer.
_DIGITS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_DIGITS = b"0" * 19
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
MISS = object()


def _default(value: Any) -> Any:
    """What Connexion's JSON encoder writes for the types JSON lacks."""
    if isinstance(value, datetime.datetime):
        return value.isoformat("T") if value.tzinfo else value.isoformat("T") + "Z"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def fast_loads(raw: bytes | str) -> Any:
    """The document orjson reads, or MISS where the stdlib's reading could differ or fail."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data) >= 19 and _LONG_DIGITS in data.translate(_DIGITS):
        return MISS
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return MISS


def loads(raw: bytes | str) -> Any:
    body = fast_loads(raw)
    return json.loads(raw) if body is MISS else body


def dumps(data: Any) -> str:
    """Compact JSON, as ``json.dumps(data, separators=(",", ":"))`` (non-ASCII text is
    written as UTF-8 rather than escaped)."""
    try:
        return orjson.dumps(data, default=_default, option=_OPTIONS).decode()
    except TypeError:  # an integer beyond 64 bits, or a type neither library knows
        return json.dumps(data, separators=(",", ":"), default=_default)


class _Codec:
    """The json-module shape Connexion's Jsonifier calls (its encoder arguments are ignored:
    ``dumps`` already writes what they ask for)."""

    @staticmethod
    def dumps(data: Any, **_arguments: Any) -> str:
        return dumps(data)

    @staticmethod
    def loads(raw: bytes | str) -> Any:
        return loads(raw)


# Connexion's response serialiser (the handlers' return values).
JSONIFIER = Jsonifier(_Codec)


class OrjsonProvider(FlaskJSONProvider):
    """Flask's JSON (the handler layer's request body, ``jsonify``) through orjson."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return dumps(obj) if not kwargs else super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s) if not kwargs else super().loads(s, **kwargs)
