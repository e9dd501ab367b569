"""ASGI middleware around Connexion's stack: request ids and the access log, body-size
limits, 405s whose ``Allow`` lists every method of the path, and paths that hold control
characters."""
import contextvars
import logging
import re
import time
import traceback
import uuid

from starlette.datastructures import MutableHeaders

from certapi.errors import (
    MethodNotAllowed, NotFound, PayloadTooLarge, ValidationFailed, envelope_bytes,
)

access_log = logging.getLogger("certapi.access")
error_log = logging.getLogger("certapi.error")

# The id of the request being served, for error logs written deeper down (handlers run
# in a copy of the request's context, so they see it too).
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "certapi_request_id", default="-")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def with_header(scope, name: str, value: str) -> dict:
    """A copy of ``scope`` with one header set (the original may be shared upstream)."""
    scope = {**scope, "headers": list(scope["headers"])}
    MutableHeaders(scope=scope)[name] = value
    return scope


class RequestLog:
    """Outermost layer: gives every request an id, logs one line when it ends, and turns
    anything that escaped every error handler into the 500 envelope."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = _header(scope, b"x-request-id")
        given = given.decode("latin-1") if given else ""
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        id_header = (b"x-request-id", request_id.encode())
        current_request_id.set(request_id)
        started = time.perf_counter()
        status = 500
        sent_start = False

        async def send_with_id(message):
            nonlocal status, sent_start
            if message["type"] == "http.response.start":
                sent_start = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.error("unhandled error request_id=%s\n%s", request_id, traceback.format_exc())
            if not sent_start:
                await _send_error(send, 500, "internal_error", "Internal server error", [id_header])
        finally:
            access_log.info(
                "%s %s %s %.1fms request_id=%s",
                scope["method"], scope["path"], status,
                (time.perf_counter() - started) * 1000, request_id,
            )


async def _send_error(send, status, code, message, headers=()):
    body = envelope_bytes(code, message)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses bodies over ``max_bytes`` (413), by Content-Length up front and by counting
    when the body streams without one."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ValidationFailed("header/Content-Length: Must be a whole number of bytes")
            if int(declared) > self.max_bytes:
                raise self.too_large()
        seen = 0

        async def counted_receive():
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

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        value = _header(scope, b"content-type") if scope["type"] == "http" else None
        if value is not None:
            media_type, sep, params = value.partition(b";")
            if media_type != media_type.lower():
                lowered = media_type.lower() + sep + params
                scope = with_header(scope, "content-type", lowered.decode("latin-1"))
        await self.app(scope, receive, send)


def _template_regex(path: str) -> re.Pattern:
    parts = re.split(r"(\{[^}]+\})", path)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


class AllowedMethods:
    """Answers a known path called with a method it lacks: 405 with the full ``Allow``.

    Connexion's router only knows the methods of the first route it matched."""

    def __init__(self, app, base_path: str, paths: dict):
        self.app = app
        verbs = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
        self.routes = [
            (_template_regex(base_path + path), sorted(m.upper() for m in item if m in verbs))
            for path, item in paths.items()
        ]

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            for pattern, methods in self.routes:
                if pattern.match(scope["path"]):
                    if scope["method"] not in methods:
                        allow = ", ".join(methods)
                        raise MethodNotAllowed(
                            f"{scope['method']} is not allowed here; use {allow}",
                            headers={"Allow": allow},
                        )
                    break
        await self.app(scope, receive, send)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PathControlCharacters:
    """A path with a control character (an encoded newline, say) fits a path template but
    no route of Connexion's router, whose mount pattern stops at a newline; on the
    FlaskApp it went on to Flask's router and a handler without Connexion's context: a
    500. No identifier holds one, so answer as validation would: 422 naming the
    parameter, or 404 when no template fits."""

    def __init__(self, app, base_path: str, paths: dict):
        self.app = app
        self.templates = [(base_path + path).split("/") for path in paths]

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and _CONTROL.search(scope["path"]):
            segments = scope["path"].split("/")
            for template in self.templates:
                pairs = list(zip(template, segments))
                if len(template) == len(segments) and all(t == s or t.startswith("{") for t, s in pairs):
                    name = next(t[1:-1] for t, s in pairs if t.startswith("{") and _CONTROL.search(s))
                    raise ValidationFailed(f"path/{name}: Does not match the expected format")
            raise NotFound("Not found")
        await self.app(scope, receive, send)
