"""Swagger UI's middleware, serving the spec as written.

Connexion serves /openapi.json (and .yaml) from its dereferenced copy of the spec, every
$ref expanded inline (spec-first/connexion #2127): the named components vanish from
Swagger UI and from generated clients. The raw copy it keeps is the file itself."""
from typing import Any

from connexion.middleware.main import ConnexionMiddleware
from connexion.middleware.swagger_ui import SwaggerUIAPI, SwaggerUIMiddleware
from connexion.spec import Specification
from starlette.requests import Request as StarletteRequest


class _RawSpecAPI(SwaggerUIAPI):
    def _spec_for_prefix(self, request: StarletteRequest) -> dict:
        return self.specification.with_base_path(self._base_path_for_prefix(request)).raw


class RawSpecSwaggerUI(SwaggerUIMiddleware):
    def add_api(self, specification: Specification, base_path: str | None = None,
                arguments: dict | None = None, **kwargs: Any) -> None:
        # SwaggerUIMiddleware.add_api with its API class swapped (upstream hard-codes it).
        api = _RawSpecAPI(specification, base_path=base_path, arguments=arguments,
                          default=self.default_fn, **kwargs)
        self.router.mount(api.base_path, app=api.router)


# Connexion's own middleware stack with the swagger-ui layer swapped for this one.
MIDDLEWARES = [RawSpecSwaggerUI if m is SwaggerUIMiddleware else m
               for m in ConnexionMiddleware.default_middlewares]
