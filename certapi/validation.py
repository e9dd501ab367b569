"""Request validators plugged into Connexion through its ``validator_map``.

They keep Connexion's validation but (1) name the place of every error the way the
contract wants (``body/user_uuid: Required``), (2) turn bodies that are not UTF-8 or
not JSON into 422s instead of 500s, (3) build each JSON-schema validator once per
schema instead of once per request, and (4) make the handler layer see the body they
checked: read chunked bodies Connexion would drop, refuse a body with no Content-Type
(415).
"""
import functools
import json
import re
import sys
import typing as t

import regress
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem
from connexion.json_schema import Draft4RequestValidator
from connexion.lifecycle import ConnexionRequest
from connexion.validators import JSONRequestBodyValidator, ParameterValidator
from connexion.validators.parameter import draft4_format_checker
from jsonschema import ValidationError, validators
from jsonschema.protocols import Validator
from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.types import Receive, Scope

from certapi import jsoncodec, schema_check
from certapi.errors import UnsupportedMediaType, ValidationFailed
from certapi.middleware import with_header


@functools.cache
def _ecma_regex(pattern: str) -> regress.Regex:
    return regress.Regex(pattern)


def _ecma_matches(pattern: str, text: str) -> bool:
    try:
        return _ecma_regex(pattern).find(text) is not None
    except UnicodeEncodeError:  # a lone surrogate is no text any pattern can match
        return False


def _ecma_pattern(validator: Validator, pattern: str, instance: t.Any,
                  schema: dict) -> t.Iterator[ValidationError]:
    """``pattern`` as JSON Schema defines it, an ECMA-262 regex. Python's ``re`` reads
    some differently (``$`` also matches before a final newline, ``\\s`` also takes
    \\x1c-\\x1f and \\x85), so the service would accept values the spec rules out and
    that every other implementation, and Schemathesis, refuse."""
    if not validator.is_type(instance, "string"):
        return
    if not _ecma_matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


RequestValidator = validators.extend(Draft4RequestValidator, {"pattern": _ecma_pattern})
_validators: dict[int, tuple[dict, Validator, schema_check.Check | None]] = {}


def _compiled(schema: dict) -> tuple[dict, Validator, schema_check.Check | None]:
    """One compiled validator (and fast check) per schema object; the spec's schemas live
    as long as the app."""
    hit = _validators.get(id(schema))
    if hit is None or hit[0] is not schema:
        hit = (schema, RequestValidator(schema, format_checker=draft4_format_checker),
               schema_check.compile_check(schema, RequestValidator.VALIDATORS, _ecma_matches,
                                          draft4_format_checker))
        _validators[id(schema)] = hit
    return hit


def first_error(schema: dict, instance: t.Any) -> ValidationError | None:
    """The first error the request validator finds in ``instance``, or None; an instance
    the schema's fast check accepts is not walked again (certapi.schema_check)."""
    _, validator, check = _compiled(schema)
    if check is not None and check(instance):
        return None
    return next(iter(validator.iter_errors(instance)), None)


def _short(value: t.Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(error: ValidationError) -> tuple[list, str]:
    """(extra path parts, human message) for one jsonschema error."""
    kind, arg, schema = error.validator, error.validator_value, error.schema
    if kind == "required":
        missing = next((name for name in arg if name not in error.instance), arg[0])
        return [missing], "Required"
    if kind == "additionalProperties":
        known = set(schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        return extra[:1], "Unknown field"
    if kind == "type":
        wanted = arg if isinstance(arg, str) else " or ".join(arg)
        return [], f"Expected {wanted}"
    if kind == "enum":
        return [], "Must be one of: " + ", ".join(str(v) for v in arg)
    if kind == "pattern":
        return [], "Does not match the expected format"
    if kind == "minimum":
        return [], f"Must be at least {arg}"
    if kind == "maximum":
        return [], f"Must be at most {arg}"
    if kind == "minLength":
        return [], "Must not be empty" if arg == 1 else f"Must be at least {arg} characters"
    if kind == "maxLength":
        return [], f"Must be at most {arg} characters"
    if kind == "minProperties":
        return [], "At least one field is required"
    return [], f"{_short(error.instance)} is not valid ({kind})"


def place(prefix: str, path: t.Iterable) -> str:
    return "/".join([prefix, *(str(p) for p in path)])


def raise_for(prefix: str, error: ValidationError) -> t.NoReturn:
    extra, message = describe(error)
    raise ValidationFailed(f"{place(prefix, [*error.absolute_path, *extra])}: {message}")


class BodyValidator(JSONRequestBodyValidator):
    async def _parse(self, stream: t.AsyncIterator[bytes], scope: Scope) -> t.Any:
        raw = b"".join([message async for message in stream])
        if not raw:
            return None
        body = jsoncodec.fast_loads(raw)
        if body is not jsoncodec.MISS:
            return body  # valid UTF-8, no NaN, no lone surrogate, no integer beyond 64 bits
        try:
            # JSON is UTF-8 (RFC 8259 §8.1): a charset parameter is ignored, so this parser
            # and the handler layer's (which reads the same bytes after us) always agree.
            body = json.loads(raw.decode("utf-8"), parse_constant=_not_json, parse_int=_json_int)
        except UnicodeDecodeError:
            raise ValidationFailed("body: Not valid UTF-8 text") from None
        except (json.JSONDecodeError, RecursionError) as exc:
            detail = getattr(exc, "msg", "nested too deeply")
            raise ValidationFailed(f"body: Invalid JSON ({detail})") from None
        # Only a \u escape can produce a lone surrogate, which no UTF-8 column or response
        # can hold; refuse it here rather than fail later with a 500.
        if b"\\u" in raw:
            try:
                bad = _unencodable_place(body)
            except RecursionError:
                raise ValidationFailed("body: Invalid JSON (nested too deeply)") from None
            if bad is not None:
                raise ValidationFailed(f"{place('body', bad)}: Not valid Unicode text")
        if len(raw) > sys.get_int_max_str_digits() > 0:  # only a body this long can hold one
            huge = _huge_int_place(body)
            if huge is not None:
                raise ValidationFailed(f"{place('body', huge)}: Number too large")
        return body

    def _validate(self, body: t.Any) -> t.Any:
        if body is None:
            raise ValidationFailed("body: Required")
        error = first_error(self._schema, body)
        if error is not None:
            raise_for("body", error)
        return body

    async def wrap_receive(self, receive: Receive, *, scope: Scope) -> tuple[Receive, Scope]:
        if "content-length" not in Headers(scope=scope):
            # Connexion takes a request without Content-Length (a chunked upload) for one
            # without a body: read it here (BodyLimit counts it) and pass it on sized.
            receive, scope = await self._sized(receive, scope)
        headers = Headers(scope=scope)
        if "content-type" not in headers and int(headers["content-length"]) > 0:
            # Connexion would guess JSON, but then hands the handler raw bytes.
            raise UnsupportedMediaType("Content-Type must be application/json")
        try:
            receive, scope = await super().wrap_receive(receive, scope=scope)
        except BadRequestProblem:
            # Raised by Connexion for an absent body on an operation that requires one.
            raise ValidationFailed("body: Required") from None
        # The handler layer parses the body again, as JSON only for a JSON media type;
        # the body is now known to be UTF-8 JSON, so say just that.
        return receive, with_header(scope, "content-type", "application/json")

    async def _sized(self, receive: Receive, scope: Scope) -> tuple[Receive, Scope]:
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        receive = self._insert_messages(
            receive, messages=[{"type": "http.request", "body": body, "more_body": False}])
        # The body is now sized: say so, as a body without Content-Length counts as empty.
        scope = with_header(scope, "content-length", str(len(body)))
        del MutableHeaders(scope=scope)["transfer-encoding"]
        return receive, scope


def _not_json(constant: str) -> t.NoReturn:
    # Python's parser takes NaN and Infinity, which JSON lacks; NaN even passes minimum and
    # maximum (every comparison is false) and then fails in the database.
    raise json.JSONDecodeError(f"{constant} is not a JSON value", constant, 0)


class _HugeInt:
    """Stands in for a JSON integer with more digits than Python converts (4300 by default,
    sys.get_int_max_str_digits: a guard against quadratic-time conversion); it is found
    after parsing, so the 422 can name the field."""


def _json_int(text: str) -> int | _HugeInt:
    try:
        return int(text)
    except ValueError:
        return _HugeInt()


def _huge_int_place(body: t.Any) -> tuple | None:
    """Path to the first integer in ``body`` too long to convert, if any. A loop, not
    recursion: JSON nested as deep as the parser allows must not overflow the stack here."""
    pending: list[tuple[tuple, t.Any]] = [((), body)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, _HugeInt):
            return path
        if isinstance(value, dict):
            items: t.Iterable[tuple[t.Any, t.Any]] = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        pending.extend(reversed([((*path, key), item) for key, item in items]))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unencodable_place(value: t.Any, path: tuple = ()) -> tuple | None:
    """Path to the first string (value or key) in ``value`` that UTF-8 cannot encode."""
    if isinstance(value, str):
        return None if _encodable(value) else path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and not _encodable(key):
            return (*path, key.encode("utf-8", "backslashreplace").decode())
        found = _unencodable_place(item, (*path, key))
        if found is not None:
            return found
    return None


_ASCII_INTEGER = re.compile(r"-?[0-9]+")


class ParamValidator(ParameterValidator):
    def validate(self, scope: Scope) -> None:
        self.check_integers(QueryParams(scope.get("query_string", b"")))
        self.validate_request(ConnexionRequest(scope, uri_parser=self.uri_parser))

    def check_integers(self, query: QueryParams) -> None:
        """Query integers are plain ASCII digits: Python's ``int``, which Connexion converts
        them with, also reads other scripts' digits (``page=١`` as 1), spaces, ``+`` and
        ``_`` (``1_0``), which no other implementation of the spec would."""
        for param in self.parameters.get("query", ()):
            if param.get("schema", {}).get("type") != "integer":
                continue
            for value in query.getlist(param["name"]):
                if not _ASCII_INTEGER.fullmatch(value):
                    raise ValidationFailed(f"query/{param['name']}: Expected integer")

    def validate_request(self, request: ConnexionRequest) -> None:
        if self.strict_validation:
            unknown = self.validate_query_parameter_list(request, self.security_query_params)
            if unknown:
                raise ValidationFailed(f"query/{sorted(unknown)[0]}: Unknown parameter")
        sources = {
            "query": request.query_params,
            "path": request.path_params,
            "header": request.headers,
        }
        for location, params in self.parameters.items():
            values = sources.get(location)
            if values is None:
                continue
            for param in params:
                name = param["name"]
                value = values.get(name if location != "path" else name.replace("-", "_"))
                if value is None:
                    if param.get("required"):
                        raise ValidationFailed(f"{location}/{name}: Required")
                    continue
                error = first_error(param["schema"], value)
                if error is not None:
                    raise_for(f"{location}/{name}", error)


VALIDATOR_MAP = {
    "parameter": ParamValidator,
    "body": MediaTypeDict({"*/*json": BodyValidator}),
}
