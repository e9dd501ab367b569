"""operationIds name operations for API users (``createEnrollment``); this maps them onto
the handler functions, ``x-openapi-router-controller`` giving the module and the
operationId in snake case the function (``handlers.enrollments.create_enrollment``)."""
import re

from connexion.operations import AbstractOperation
from connexion.resolver import Resolver

_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")


def function_name(operation_id: str) -> str:
    """``updateEnrollmentProgress`` → ``update_enrollment_progress``."""
    return _WORD_START.sub("_", operation_id).lower()


def handler_path(controller: str, operation_id: str) -> str:
    return f"{controller}.{function_name(operation_id)}"


class HandlerResolver(Resolver):
    def resolve_operation_id(self, operation: AbstractOperation) -> str:
        if operation.router_controller is None:
            raise ValueError(f"{operation.operation_id}: no x-openapi-router-controller")
        return handler_path(operation.router_controller, operation.operation_id)
