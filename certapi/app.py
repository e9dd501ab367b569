"""The application factory: openapi.yaml routed by Connexion (FlaskApp) into the handlers."""
import inspect
import json
import logging
from pathlib import Path

import connexion
import yaml
from connexion.exceptions import ProblemException
from connexion.jsonifier import Jsonifier
from connexion.lifecycle import ConnexionResponse
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from connexion.utils import get_function_from_name
from peewee import IntegrityError
from starlette.exceptions import HTTPException

from certapi import auth, idempotency, ratelimit, swagger_ui
from certapi.config import Settings
from certapi.errors import BY_STATUS, ApiError, envelope, envelope_bytes
from certapi.middleware import (
    AllowedMethods, BodyLimit, MediaTypeCase, PathControlCharacters, RequestLog,
    current_request_id,
)
from certapi.validation import VALIDATOR_MAP
from models.db import database, init_database

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
BASE_PATH = "/v1"
log = logging.getLogger("certapi.error")

# Messages for the statuses Connexion and Starlette raise themselves.
_FRAMEWORK_MESSAGES = {
    401: "Missing Authorization header",
    404: "Not found",
    415: "Content-Type must be application/json",
}


def load_spec() -> dict:
    with SPEC_PATH.open() as fh:
        return yaml.safe_load(fh)


def _response(status: int, code: str, message: str, headers: dict | None = None):
    return ConnexionResponse(
        status_code=status, content_type="application/json",
        body=envelope_bytes(code, message), headers=dict(headers or {}),
    )


def _from_status(status: int, message: str, headers=None):
    if status == 400:  # Connexion's validation problems: the contract calls them 422
        status = 422
    cls = BY_STATUS.get(status)
    if cls is None:
        log.error("unexpected framework status %s: %s", status, message)
        return _response(500, "internal_error", "Internal server error")
    return _response(status, cls.code, message, headers)


# The error handlers are coroutines: Connexion runs a plain function on a worker thread,
# a hop that cost more than the rest of a 404 or 409 answer (bench/PROFILE.md).
async def on_api_error(_request, exc: ApiError):
    return _response(exc.status, exc.code, exc.message, exc.headers)


async def on_problem(_request, exc: ProblemException):
    message = _FRAMEWORK_MESSAGES.get(exc.status) or exc.detail or exc.title or "Error"
    return _from_status(exc.status, message, exc.headers)


async def on_http_exception(_request, exc: HTTPException):
    message = _FRAMEWORK_MESSAGES.get(exc.status_code) or exc.detail
    return _from_status(exc.status_code, message, exc.headers)


async def on_unhandled(_request, exc: Exception):
    log.error("unhandled error request_id=%s", current_request_id.get(), exc_info=exc)
    return _response(500, "internal_error", "Internal server error")


def _install_flask_hooks(flask_app) -> None:
    """Errors raised inside handlers are answered by Flask itself, on the handler's thread."""

    # The first query of a request checks a pooled connection out (autoconnect); the
    # request hands it back when it ends, on the same thread, as Peewee's connections are
    # per thread. Connecting lazily lets /v1/health answer 503 itself while the database
    # is unreachable.
    @flask_app.teardown_request
    def _release(_exc):
        if not database.is_closed():
            database.close()

    def as_flask(status, code, message, headers=None):
        return envelope(code, message), status, headers or {}

    @flask_app.errorhandler(ApiError)
    def _api_error(exc):
        return as_flask(exc.status, exc.code, exc.message, exc.headers)

    @flask_app.errorhandler(IntegrityError)
    def _integrity(exc):
        # A uniqueness or reference rule held by the database; handlers check the common
        # cases first, so this is the race between two requests.
        log.info("integrity conflict: %s", exc)
        return as_flask(409, "conflict", "The change conflicts with the current state; retry")

    @flask_app.errorhandler(Exception)
    def _unhandled(exc):
        log.error("unhandled error request_id=%s", current_request_id.get(), exc_info=exc)
        return as_flask(500, "internal_error", "Internal server error")


def resolve_handler(name: str):
    """The handler for an operationId. Connexion inspects a handler's signature on every
    request; computed once here, inspect returns the stored ``__signature__`` as it is."""
    function = get_function_from_name(name)
    function.__signature__ = inspect.signature(function)
    return function


def configure_logging() -> None:
    """The access and error logs go to stderr unless the host process set up logging."""
    logger = logging.getLogger("certapi")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def create_app(settings: Settings | None = None) -> connexion.FlaskApp:
    settings = settings or Settings()
    configure_logging()
    init_database(settings.database_url)
    auth.configure(settings.key_cache_seconds)
    spec = load_spec()

    app = connexion.FlaskApp(
        __name__,
        resolver=Resolver(function_resolver=resolve_handler),
        specification_dir=str(SPEC_PATH.parent),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=VALIDATOR_MAP,
        jsonifier=Jsonifier(json, separators=(",", ":")),
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/ui"),
        middlewares=list(swagger_ui.MIDDLEWARES),  # add_middleware inserts into the list it gets
    )
    app.add_api(spec, base_path=BASE_PATH)
    _install_flask_hooks(app.app)

    app.add_error_handler(ApiError, on_api_error)
    app.add_error_handler(ProblemException, on_problem)
    app.add_error_handler(HTTPException, on_http_exception)
    app.add_error_handler(Exception, on_unhandled)

    # Added in this order, each lands just before routing/exception handling, so the
    # outermost is RequestLog, then the 405 and size checks inside the error handlers.
    app.add_middleware(RequestLog, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(AllowedMethods, position=MiddlewarePosition.BEFORE_ROUTING,
                       base_path=BASE_PATH, paths=spec["paths"])
    app.add_middleware(PathControlCharacters, position=MiddlewarePosition.BEFORE_ROUTING,
                       base_path=BASE_PATH, paths=spec["paths"])
    app.add_middleware(BodyLimit, position=MiddlewarePosition.BEFORE_ROUTING,
                       max_bytes=settings.max_body_bytes)
    app.add_middleware(MediaTypeCase, position=MiddlewarePosition.BEFORE_ROUTING)
    ratelimit.install(app, settings)
    idempotency.install(app.app, settings)
    return app
