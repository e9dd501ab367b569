"""The error envelope, the exceptions that produce it, and the one handler that answers
every error.

Every error leaves the service as ``{"error": {"code": ..., "message": ...}}`` with a
JSON content type; the codes are the contract's, listed in openapi.yaml's Error schema.
Code raises an ``ApiError``; Connexion's, Starlette's and the database's exceptions are
mapped to one in ``as_api_error``, and ``answer`` (registered with Connexion's
ExceptionMiddleware) turns it into the response.
"""
import json
import logging

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from peewee import IntegrityError, InterfaceError, InternalError, OperationalError
from playhouse.pool import MaxConnectionsExceeded
from starlette.exceptions import HTTPException

log = logging.getLogger("certapi.error")


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str = "Internal server error", headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class ValidationFailed(ApiError):
    status, code = 422, "validation_error"


class TooManyRequests(ApiError):
    status, code = 429, "rate_limit_exceeded"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"


# Seconds a client is asked to wait when the database cannot be reached or written.
RETRY_AFTER_SECONDS = 5
# PEP 249's OperationalError is the database's trouble, not the program's: the server gone,
# the disk full or read-only, a lock not granted in time; InterfaceError a connection
# that broke. A pool with no free connection is the same for the caller: come back later.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError, InterfaceError, MaxConnectionsExceeded,
)


BY_STATUS: dict[int, type[ApiError]] = {cls.status: cls for cls in ApiError.__subclasses__()}

# Messages for the statuses Connexion and Starlette raise themselves.
_FRAMEWORK_MESSAGES = {
    401: "Missing Authorization header",
    404: "Not found",
    415: "Content-Type must be application/json",
}


def envelope(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def envelope_bytes(code: str, message: str) -> bytes:
    """The envelope as the bytes of a response body, for layers that answer outside Connexion."""
    return json.dumps(envelope(code, message), separators=(",", ":")).encode()


def _from_status(status: int, message: str, headers: dict | None) -> ApiError:
    if status == 400:  # Connexion's validation problems: the contract calls them 422
        status = 422
    cls = BY_STATUS.get(status)
    if cls is None:
        log.error("unexpected framework status %s: %s", status, message)
        return ApiError()
    return cls(message, headers)


# PostgreSQL's "cannot execute INSERT in a read-only transaction" (a standby after a
# failover, default_transaction_read_only): an InternalError to the driver, an outage here.
_READ_ONLY_SQLSTATE = "25006"


def database_unavailable(exc: Exception) -> bool:
    """Whether ``exc`` says the database cannot be reached or written just now."""
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return True
    return (isinstance(exc, InternalError)
            and getattr(getattr(exc, "orig", None), "pgcode", None) == _READ_ONLY_SQLSTATE)


def unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("The database is unavailable; retry later",
                              {"Retry-After": str(RETRY_AFTER_SECONDS)})


def as_api_error(exc: Exception, request_id: str = "-") -> ApiError:
    """The contract's error for any exception: the one place exceptions are mapped."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ProblemException):
        message = _FRAMEWORK_MESSAGES.get(exc.status) or exc.detail or exc.title or "Error"
        return _from_status(exc.status, message, exc.headers)
    if isinstance(exc, HTTPException):
        message = _FRAMEWORK_MESSAGES.get(exc.status_code) or exc.detail
        return _from_status(exc.status_code, message, dict(exc.headers or {}))
    if isinstance(exc, IntegrityError):
        # A uniqueness or reference rule held by the database; handlers check the common
        # cases first, so this is the race between two requests.
        log.info("integrity conflict: %s", exc)
        return Conflict("The change conflicts with the current state; retry")
    if database_unavailable(exc):
        # An outage, not a bug: one line per request at WARNING, no traceback.
        log.warning("database unavailable request_id=%s: %s: %s", request_id,
                    type(exc).__name__, str(exc).strip(), extra={"request_id": request_id})
        return unavailable()
    log.error("unhandled error request_id=%s", request_id, exc_info=exc,
              extra={"request_id": request_id})
    return ApiError()


# A coroutine: Connexion runs a plain-function error handler on a worker thread, a hop
# that cost more than the rest of a 404 or 409 answer (bench/PROFILE.md).
async def answer(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """Connexion's error handler for every exception: the envelope, with its status."""
    error = as_api_error(exc, request.scope.get("state", {}).get("request_id", "-"))
    return ConnexionResponse(
        status_code=error.status, content_type="application/json", headers=error.headers,
        body=envelope_bytes(error.code, error.message),
    )


# What ``answer`` is registered for: Connexion's ExceptionMiddleware looks a handler up by
# the exception's class, and already has its own for the framework's two.
HANDLED: tuple[type[Exception], ...] = (
    ApiError, ProblemException, HTTPException, IntegrityError, *DATABASE_UNAVAILABLE, Exception,
)
