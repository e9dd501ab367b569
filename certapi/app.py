"""The application factory: openapi.yaml routed by Connexion into the handlers.

Connexion's AsyncApp serves it: its middleware validates and authenticates, and each
(synchronous) handler runs on a handler thread (``handler``). Its FlaskApp would add Flask and a WSGI
bridge (a2wsgi) that hops between threads several times per request; the benchmark in
bench/ measured that layer alone at about as much CPU as all of FastAPI's.
"""
import asyncio
import contextvars
import functools
import inspect
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
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

from certapi import auth, swagger_ui
from certapi.config import Settings
from certapi.errors import BY_STATUS, ApiError, envelope_bytes
from certapi.middleware import (
    AllowedMethods, BodyLimit, MediaTypeCase, PathControlCharacters, RequestLog,
)
from certapi.validation import VALIDATOR_MAP
from models.db import database, init_database

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
BASE_PATH = "/v1"
# Handlers running at once per process, as the WSGI bridge of the FlaskApp allowed.
HANDLER_THREADS = 10
_handler_pool: tuple[int, ThreadPoolExecutor] | None = None

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
    log.error("unhandled error", exc_info=exc)
    return _response(500, "internal_error", "Internal server error")


async def on_integrity(_request, exc: IntegrityError):
    # A uniqueness or reference rule held by the database; handlers check the common
    # cases first, so this is the race between two requests.
    log.info("integrity conflict: %s", exc)
    return _response(409, "conflict", "The change conflicts with the current state; retry")


def _executor() -> ThreadPoolExecutor:
    """This process's handler threads (a forked worker makes its own)."""
    global _handler_pool
    if _handler_pool is None or _handler_pool[0] != os.getpid():
        _handler_pool = (os.getpid(), ThreadPoolExecutor(
            max_workers=HANDLER_THREADS, thread_name_prefix="certapi-handler"))
    return _handler_pool[1]


def handler(function):
    """A handler as Connexion calls it: a coroutine that runs the (synchronous) handler
    on one of this process's handler threads, in a copy of the request's context.

    Connexion would run a plain function on anyio's thread pool; an executor hop costs
    less (bench/PROFILE.md) and bounds the threads, so the connection pool
    (models/db.py) is sized for them. The first query checks a pooled connection out
    (autoconnect) and it goes back to the pool when the handler returns, on its own
    thread, as Peewee's connections are per thread; connecting lazily lets /v1/health
    answer 503 itself while the database is unreachable. Connexion also inspects the
    handler's signature on every request: it is computed once (``__signature__``)."""

    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            if not database.is_closed():
                database.close()

    @functools.wraps(function)
    async def run(*args, **kwargs):
        job = functools.partial(contextvars.copy_context().run, call, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(_executor(), job)

    # On the handler itself too: Connexion's parameter decorator unwraps to it.
    run.__signature__ = function.__signature__ = inspect.signature(function)
    return run


def configure_logging() -> None:
    """The access and error logs go to stderr unless the host process set up logging."""
    logger = logging.getLogger("certapi")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def create_app(settings: Settings | None = None) -> connexion.AsyncApp:
    settings = settings or Settings()
    configure_logging()
    init_database(settings.database_url)
    auth.configure(settings.key_cache_seconds)
    spec = load_spec()

    app = connexion.AsyncApp(
        __name__,
        resolver=Resolver(function_resolver=lambda name: handler(get_function_from_name(name))),
        specification_dir=str(SPEC_PATH.parent),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=VALIDATOR_MAP,
        jsonifier=Jsonifier(json, separators=(",", ":")),
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/ui"),
        middlewares=swagger_ui.MIDDLEWARES,
    )
    app.add_api(spec, base_path=BASE_PATH)

    app.add_error_handler(ApiError, on_api_error)
    app.add_error_handler(IntegrityError, on_integrity)
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
    return app
