"""Telling an absent route from a wrong answer.

A foreign implementation may simply not have a feature (no DELETE for enrollments, no
partners at all). Its answer then is 405 with an ``Allow`` that lacks the method, or a 404
from its framework rather than from the contract. Such a scenario is MISSING, not FAILed."""
import functools
import re

import httpx

from certapi.contract import schemas


@functools.cache
def _templates() -> list[tuple[re.Pattern, str, set[str]]]:
    found = []
    for template, methods in schemas.path_methods().items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
        found.append((pattern, template, methods))
    return found


def template_of(path: str) -> tuple[str, set[str]] | None:
    """The documented template (and its methods) a path relative to the API root falls under."""
    for pattern, template, methods in _templates():
        if pattern.match(path):
            return template, methods
    return None


def _is_contract_error(response: httpx.Response) -> bool:
    try:
        value = response.json()
    except ValueError:
        return False
    return not schemas.problems(value, "Error")


def absent(response: httpx.Response, prefix: str, expected: tuple, get) -> str | None:
    """``"DELETE /v1/…/enrollments/{uuid} (405, Allow: GET, PATCH)"`` when ``response``
    shows the route it was sent to is not there; None when it is an answer of the route.

    ``expected`` are the statuses the scenario wanted (an expected 404 is an answer, never
    an absent route); ``get(path)`` reads a path relative to the API root, used to check
    that the parent of a sub-collection exists before calling the sub-collection absent."""
    code = response.status_code
    if code not in (404, 405) or code in expected:
        return None
    method, full = response.request.method, response.request.url.path
    if not full.startswith(prefix):
        return None
    path = full[len(prefix):] or "/"
    known = template_of(path)
    if known is None:
        return None
    template, methods = known
    where = f"{method} {prefix}{template}" if method in methods else f"{prefix}{template}"
    if code == 405:
        allow = {m.strip().upper() for m in response.headers.get("allow", "").split(",")}
        if method in methods and method not in allow:
            return f"{where} (405, Allow: {response.headers.get('allow', 'none')})"
        return None
    if not _is_contract_error(response):
        return f"{where} (404 from no route: {response.text[:60]!r})"
    # An enveloped 404 on an item may mean the item is absent. On a collection it means
    # the route is absent, once its parent is known to be there.
    if template.endswith("}"):
        return None
    parent = path.rsplit("/", 1)[0]
    if not parent or get(parent).status_code == 200:
        return f"{where} (404 although {prefix}{parent or '/'} is there)"
    return None
