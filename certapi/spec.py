"""What the code takes from openapi.yaml, read once: the base path, each path's methods,
path-template matching and the uuid pattern. The spec is the source of truth; nothing
here is written a second time by hand."""
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

CHECKOUT_SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"


def spec_file() -> Path:
    """The openapi.yaml this installation serves. The repository keeps the contract as one
    file at its top level; a built wheel has no top level, so the build copies it into the
    certapi package (setup.py), while a checkout or an editable install reads the original."""
    packaged = Path(str(files("certapi") / "openapi.yaml"))
    return packaged if packaged.is_file() else CHECKOUT_SPEC


SPEC_PATH = spec_file()
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def load_spec() -> dict[str, Any]:
    """A fresh copy of the spec (callers such as Connexion may change what they get)."""
    with SPEC_PATH.open() as fh:
        return yaml.safe_load(fh)


SPEC = load_spec()
BASE_PATH: str = SPEC["servers"][0]["url"].rstrip("/")
UUID_PATTERN: str = SPEC["components"]["schemas"]["Uuid"]["pattern"]


@dataclass(frozen=True)
class Route:
    """One documented path, as the server sees it (base path included)."""

    template: str
    methods: tuple[str, ...]  # upper case, sorted: what an ``Allow`` header lists
    operation_ids: dict[str, str]  # upper-case method → operationId

    @property
    def segments(self) -> list[str]:
        return self.template.split("/")

    def parameter_segments(self, path: str) -> list[tuple[str, str]] | None:
        """(parameter name, value) for each templated segment of ``path``, or None when
        ``path`` does not fit this template (segment by segment, any characters)."""
        segments = path.split("/")
        if len(segments) != len(self.segments):
            return None
        found = []
        for part, value in zip(self.segments, segments, strict=True):
            if part.startswith("{"):
                found.append((part[1:-1], value))
            elif part != value:
                return None
        return found


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
                      + "$")


ROUTES: tuple[Route, ...] = tuple(
    Route(BASE_PATH + path, tuple(sorted(m.upper() for m in item if m in HTTP_METHODS)),
          {m.upper(): op["operationId"] for m, op in item.items() if m in HTTP_METHODS})
    for path, item in SPEC["paths"].items()
)
_MATCHERS = tuple((_template_regex(route.template), route) for route in ROUTES)


def route_for(path: str) -> Route | None:
    """The documented route whose template ``path`` fits (no ``/`` inside a parameter)."""
    for pattern, route in _MATCHERS:
        if pattern.match(path):
            return route
    return None


def operation_id(method: str, path: str) -> str | None:
    """The operationId that answers ``method`` on ``path``, if one does."""
    route = route_for(path)
    return route.operation_ids.get(method) if route is not None else None


def url(*segments: str) -> str:
    """A server path under the base path: ``url("partners", uuid)`` → ``/v1/partners/<uuid>``."""
    return "/".join((BASE_PATH, *segments))
