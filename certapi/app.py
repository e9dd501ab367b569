"""The application factory: openapi.yaml routed by Connexion (FlaskApp) into the handlers."""
import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

import connexion
from connexion.middleware import MiddlewarePosition
from connexion.middleware.response_validation import ResponseValidationMiddleware
from connexion.options import SwaggerUIOptions
from connexion.utils import get_function_from_name

from certapi import (
    auth,
    errors,
    handler_call,
    idempotency,
    jsoncodec,
    metrics,
    ratelimit,
    swagger_ui,
)
from certapi.config import Settings
from certapi.logs import configure as configure_logging
from certapi.middleware import (
    AllowedMethods,
    BodyLimit,
    HostHeader,
    MediaTypeCase,
    PathControlCharacters,
    PathShape,
    RequestLog,
)
from certapi.routing import HandlerResolver
from certapi.spec import BASE_PATH, SPEC_PATH, load_spec
from certapi.validation import VALIDATOR_MAP
from models.db import database, init_database

__all__ = ["SPEC_PATH", "configure_logging", "create_app", "load_spec", "resolve_handler"]


def resolve_handler(name: str) -> Callable[..., Any]:
    """The handler for an operationId. Connexion inspects a handler's signature on every
    request; computed once here, inspect returns the stored ``__signature__`` as it is."""
    function = get_function_from_name(name)
    function.__signature__ = inspect.signature(function)
    return function


def _release_connection(_exc: BaseException | None) -> None:
    # The first query of a request checks a pooled connection out (autoconnect); the
    # request hands it back when it ends, on the handler's thread, as Peewee's connections
    # are per thread. Connecting lazily lets /v1/health answer 503 itself while the
    # database is unreachable.
    if not database.is_closed():
        database.close()


UI_PATH = "/ui"


def _middlewares(validate_responses: bool) -> list:
    """Connexion's stack (with certapi's Swagger UI layer) and PathShape just before Swagger
    UI: the first router, whose mount at the base path redirected ``/v1`` to ``/v1/``.
    (``add_middleware`` cannot place it there: its positions name Connexion's own class.)
    Without response validation its layer goes: it would still look every request's
    operation up only to pass it on."""
    stack: list = [m for m in swagger_ui.MIDDLEWARES
                   if validate_responses or m is not ResponseValidationMiddleware]
    shape = partial(PathShape, base_path=BASE_PATH, keep=frozenset({f"{BASE_PATH}{UI_PATH}/"}))
    stack.insert(stack.index(swagger_ui.RawSpecSwaggerUI), shape)
    return stack


def create_app(settings: Settings | None = None) -> connexion.FlaskApp:
    settings = settings or Settings()
    configure_logging()
    init_database(settings.database_url)
    auth.configure(settings.key_cache_seconds)

    app = connexion.FlaskApp(
        __name__,
        resolver=HandlerResolver(function_resolver=resolve_handler),
        specification_dir=str(SPEC_PATH.parent),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=VALIDATOR_MAP,
        jsonifier=jsoncodec.JSONIFIER,
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path=UI_PATH),
        middlewares=_middlewares(settings.validate_responses),
    )
    app.add_api(load_spec(), base_path=BASE_PATH)
    app.app.json = jsoncodec.OrjsonProvider(app.app)  # the handler layer reads bodies with it
    app.app.teardown_request(_release_connection)
    # Connexion makes Flask propagate a handler's exception to its ExceptionMiddleware, so
    # every error, wherever raised, is answered there, by one function.
    for exception in errors.HANDLED:
        app.add_error_handler(exception, errors.answer)

    # Added in this order, each lands just before routing/exception handling, so the
    # outermost is RequestLog, then the 405 and size checks inside the error handlers.
    recorder = metrics.install(app.app) if settings.metrics else None
    app.add_middleware(RequestLog, position=MiddlewarePosition.BEFORE_EXCEPTION, record=recorder)
    app.add_middleware(HostHeader, position=MiddlewarePosition.BEFORE_ROUTING)
    app.add_middleware(AllowedMethods, position=MiddlewarePosition.BEFORE_ROUTING)
    app.add_middleware(PathControlCharacters, position=MiddlewarePosition.BEFORE_ROUTING)
    app.add_middleware(BodyLimit, position=MiddlewarePosition.BEFORE_ROUTING,
                       max_bytes=settings.max_body_bytes)
    app.add_middleware(MediaTypeCase, position=MiddlewarePosition.BEFORE_ROUTING)
    ratelimit.install(app, settings)
    handler_call.install(app.app)  # before idempotency, which wraps the views it leaves
    idempotency.install(app.app, settings)
    return app
