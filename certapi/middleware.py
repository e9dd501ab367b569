"""ASGI middleware around Connexion's stack, each for one thing the contract needs that
Connexion does not do: request ids and the access log, body-size limits, 405s whose
``Allow`` lists every method of the path, case-insensitive media types, paths that
hold control characters, empty segments or a trailing slash, and malformed Host headers.
Errors are raised as ``ApiError``s; Connexion's exception layer answers them
(``certapi.errors.answer``)."""
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certapi import spec
from certapi.errors import MethodNotAllowed, NotFound, PayloadTooLarge, ValidationFailed
from certapi.logs import escape_field

access_log = logging.getLogger("certapi.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def with_header(scope: Scope, name: str, value: str) -> dict[str, Any]:
    """A copy of ``scope`` with one header set (the original may be shared upstream)."""
    scope = {**scope, "headers": list(scope["headers"])}
    MutableHeaders(scope=scope)[name] = value
    return scope


class RequestLog:
    """Outermost layer: gives every request an id (in ``X-Request-Id`` and in the scope's
    state, where the error handler finds it for its log line) and logs one line when
    the request ends. The line's values come from the client, so each is escaped to one
    field of visible ASCII (certapi.logs); in JSON mode they are the record's fields,
    with the operationId and the caller's account (put in the state by certapi.auth).
    ``record`` (certapi.metrics) counts and times the request from the same figures."""

    def __init__(self, app: ASGIApp,
                 record: Callable[[str | None, int, float], None] | None = None):
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = _header(scope, b"x-request-id")
        text = given.decode("latin-1") if given else ""
        request_id = text if _REQUEST_ID.match(text) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            method, path = scope["method"], scope["path"]
            seconds = time.perf_counter() - started
            milliseconds = seconds * 1000
            operation_id = spec.operation_id(method, path)
            access_log.info(
                "%s %s %s %.1fms request_id=%s",
                escape_field(method), escape_field(path), status, milliseconds, request_id,
                extra={
                    "request_id": request_id, "method": method, "path": path, "status": status,
                    "duration_ms": round(milliseconds, 1),
                    "operation_id": operation_id,
                    "account": scope["state"].get("account"),
                },
            )
            if self.record is not None:
                self.record(operation_id, status, seconds)


class BodyLimit:
    """Refuses bodies over ``max_bytes`` (413) before they are parsed, by Content-Length
    up front and by counting when the body streams without one."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ValidationFailed("header/Content-Length: Must be a whole number of bytes")
            if int(declared) > self.max_bytes:
                raise self.too_large()
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise self.too_large()
            return message

        await self.app(scope, counted_receive, send)

    def too_large(self) -> PayloadTooLarge:
        # Built only when raised: an exception per request showed in profiles (bench/).
        return PayloadTooLarge(f"Request body is larger than {self.max_bytes} bytes")


class MediaTypeCase:
    """Lower-cases the media type of ``Content-Type``: it is case-insensitive (RFC 9110
    §8.3.1) but Connexion matches it as sent, and an ``APPLICATION/JSON`` body would skip
    validation and reach the handler as raw bytes."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        value = _header(scope, b"content-type") if scope["type"] == "http" else None
        if value is not None:
            media_type, sep, params = value.partition(b";")
            if media_type != media_type.lower():
                lowered = media_type.lower() + sep + params
                scope = with_header(scope, "content-type", lowered.decode("latin-1"))
        await self.app(scope, receive, send)


class AllowedMethods:
    """Answers a known path called with a method it lacks: 405 with the full ``Allow``,
    as Connexion's router only knows the methods of the first route it matched."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = spec.route_for(scope["path"])
            if route is not None and scope["method"] not in route.methods:
                allow = ", ".join(route.methods)
                raise MethodNotAllowed(f"{scope['method']} is not allowed here; use {allow}",
                                       headers={"Allow": allow})
        await self.app(scope, receive, send)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PathControlCharacters:
    """A path with a control character (an encoded newline, say) fits a path template but
    no route of Connexion's router, whose mount pattern stops at a newline; on the
    FlaskApp it went on to Flask's router and a handler without Connexion's context: a
    500. No identifier holds one, so answer as validation would: 422 naming the
    parameter, or 404 when no template fits."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _CONTROL.search(scope["path"]):
            for route in spec.ROUTES:
                found = route.parameter_segments(scope["path"])
                if found is not None:
                    name = next(name for name, value in found if _CONTROL.search(value))
                    raise ValidationFailed(f"path/{name}: Does not match the expected format")
            raise NotFound("Not found")
        await self.app(scope, receive, send)


class PathShape:
    """No documented path has an empty segment or ends in ``/``, and the base path alone
    is no resource, so such a path is a 404 here, outside Swagger UI's and Connexion's
    routers. Left to the frameworks, Flask answered ``//`` with a slash-merging redirect
    that came out as a 500, and Starlette's routers redirected a trailing slash (or
    ``/v1`` to ``/v1/``) to a ``Location`` built from the client's Host header: an open
    redirect. ``keep`` are the paths with a slash that are pages (Swagger UI's ``/v1/ui/``)."""

    def __init__(self, app: ASGIApp, base_path: str, keep: frozenset[str] = frozenset()):
        self.app = app
        self.base_path = base_path
        self.keep = keep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if ("//" in path or path == self.base_path
                    or (path.endswith("/") and path != "/" and path not in self.keep)):
                raise NotFound("Not found")
        await self.app(scope, receive, send)


# RFC 9110 §7.2: host [":" port]; a name is dot-separated labels of at most 63 characters
# (RFC 1035; the underscore of container service names is let through), at most 255 in
# all, or an IP literal in brackets.
_HOST = re.compile(r"(?:[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?|\[[0-9A-Fa-f:.]+\])"
                   r"(?::[0-9]{1,5})?")
_HOST_MAX = 255


class HostHeader:
    """A ``Host`` that is no host name (too long, a label over 63 characters, spaces,
    an empty label) made Werkzeug answer its generic "The browser (or proxy) sent a
    request that this server could not understand"; it is refused here, saying why."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = _header(scope, b"host") if scope["type"] == "http" else None
        if host and (len(host) > _HOST_MAX or not _HOST.fullmatch(host.decode("latin-1"))):
            raise ValidationFailed(
                f"header/Host: Must be a host name (dot-separated labels of 1-63 letters, digits, "
                f"hyphens; {_HOST_MAX} characters at most) or a bracketed IP address, with an "
                f"optional port")
        await self.app(scope, receive, send)
