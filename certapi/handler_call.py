"""Calling the handlers: Connexion's own parameter and response decorators, built once
per operation instead of on every request.

Connexion's FlaskApp registers each operation with Flask as a ``FlaskOperation``, whose
every call builds a new decorator stack for the handler (a FlaskDecorator, a parameter
decorator that inspects the handler's signature, a response decorator, four
``functools.wraps``) and a new URI parser for the operation's parameters. The stack
reads the request and the current operation from Connexion's context when it runs, not
when it is built, so one stack per operation answers every request alike: this module
swaps each operation's view for one that keeps its stack (measured: 2-3 % of the CPU
of a read or a progress report in process)."""
import functools
import threading
from collections.abc import Callable
from typing import Any

import flask
from connexion.apps.flask import FlaskOperation
from connexion.context import operation
from connexion.decorators import FlaskDecorator
from connexion.frameworks.flask import Flask as FlaskFramework
from connexion.operations import AbstractOperation


class PreparedOperation:
    """A FlaskOperation's view with its decorator stack and URI parser built once."""

    def __init__(self, view: FlaskOperation):
        decorator = FlaskDecorator(pythonic_params=view.pythonic_params,
                                   jsonifier=view.jsonifier)
        # update_wrapper(view, handler) left the handler in __wrapped__.
        self.call = decorator.decorate(view.__wrapped__)
        self._parsed_for: AbstractOperation | None = None
        self._parser: Any = None
        functools.update_wrapper(self, view)

    def _uri_parser(self) -> Any:
        # Connexion's routing hands every request of this view the same operation
        # object; the check keeps the parser right should that ever change.
        current = operation._get_current_object()
        if current is not self._parsed_for:
            self._parser = current.uri_parser_class(current.parameters,
                                                    current.body_definition())
            self._parsed_for = current
        return self._parser

    def __call__(self, *_args: Any, **_view_args: Any) -> flask.Response:
        # The path's values reach the handler through the request (as in FlaskOperation).
        return self.call(FlaskFramework.get_request(uri_parser=self._uri_parser()))


def replace_views_once(flask_app: flask.Flask, replace: Callable[[str, Any], Any]) -> None:
    """On the first request, before its view is looked up, set each view of ``flask_app``
    to ``replace(endpoint, view)``: Connexion adds its operations' views only when its
    stack is first built, on the first request. Hooks run in the order installed, so a
    later one sees what an earlier one left."""
    done = threading.Event()
    guard = threading.Lock()

    @flask_app.before_request
    def _replace_views() -> None:
        if done.is_set():
            return
        with guard:
            if not done.is_set():
                for endpoint, view in list(flask_app.view_functions.items()):
                    flask_app.view_functions[endpoint] = replace(endpoint, view)
                done.set()


def install(flask_app: flask.Flask) -> None:
    """Swap Connexion's operation views for prepared ones; install this before anything
    that wraps the views (certapi.idempotency)."""
    replace_views_once(flask_app, lambda _endpoint, view: (
        PreparedOperation(view) if isinstance(view, FlaskOperation) else view))
