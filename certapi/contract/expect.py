"""Assertions for scenarios. A failed one raises ``ContractFailure`` whose message is the
reason shown in the report, so every message says what was sent and what came back."""
import datetime
import json

import httpx

from certapi.contract import schemas


class ContractFailure(AssertionError):
    """The implementation does not honour the contract. ``response`` is the answer that
    broke the rule, when one did, and ``expected`` the statuses the rule wanted: the runner
    tells a route that is absent (MISSING) from one that answers wrongly (FAIL) by them."""

    def __init__(self, message: str, response: httpx.Response | None = None,
                 expected: tuple = ()):
        super().__init__(message)
        self.response, self.expected = response, tuple(expected)


class Missing(Exception):
    """The implementation has no route for what the scenario needs; the message names it."""


class Skip(Exception):
    """The scenario cannot run with what it was given (a missing key, say)."""


def fail(message: str, response: httpx.Response | None = None, expected: tuple = ()):
    raise ContractFailure(message, response, expected)


def check(condition, message: str, response: httpx.Response | None = None,
          expected: tuple = ()) -> None:
    if not condition:
        fail(message, response, expected)


def what(response: httpx.Response) -> str:
    """``POST /v1/partners → 500 {"error": ...}``, bodies cut short."""
    text = response.text
    text = text if len(text) <= 200 else text[:197] + "..."
    request = response.request
    return f"{request.method} {request.url.path} → {response.status_code} {text}".rstrip()


def status(response: httpx.Response, *expected: int) -> httpx.Response:
    if response.status_code not in expected:
        wanted = " or ".join(str(code) for code in expected)
        fail(f"expected {wanted}: {what(response)}", response, expected)
    return response


def body(response: httpx.Response):
    kind = response.headers.get("content-type", "")
    if not kind.startswith("application/json"):
        fail(f"Content-Type is {kind!r}, not application/json: {what(response)}")
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        fail(f"body is not JSON: {what(response)}")


# An enrollment was made: the scenarios whose rule is not the status code accept either,
# so a 200 for 201 is reported once, by the scenario that owns the created status.
CREATED = (200, 201)


def shaped(response: httpx.Response, expected: int | tuple, schema: str) -> dict:
    """The JSON body of a response with this status (or one of these), holding exactly
    ``schema``'s shape."""
    value = body(status(response, *(expected if isinstance(expected, tuple) else (expected,))))
    shape(value, schema, f"{response.request.method} {response.request.url.path}")
    return value


def shape(value, schema: str, where: str) -> None:
    problems = schemas.problems(value, schema)
    if problems:
        fail(f"{where}: does not match {schema}: " + "; ".join(problems[:5]))


def error(response: httpx.Response, expected: int, code: str, place: str | None = None,
          names: str | None = None) -> str:
    """An error envelope with this status and code; ``place`` is the prefix its message
    must start with (``body/user_uuid``), ``names`` a word it must contain. Returns the message."""
    value = body(status(response, expected))
    shape(value, "Error", what(response))
    got = value["error"]["code"]
    check(got == code, f"error code {got!r}, expected {code!r}: {what(response)}")
    message = value["error"]["message"]
    check(message.strip(), f"empty error message: {what(response)}")
    if place is not None:
        check(message.startswith(place),
              f"message should name the place {place!r}: {what(response)}")
    if names is not None:
        check(names.lower() in message.lower(),
              f"message should name {names!r}: {what(response)}")
    return message


def equal(actual, expected, label: str) -> None:
    if actual != expected:
        fail(f"{label}: expected {expected!r}, got {actual!r}")


def location(response: httpx.Response, path: str) -> None:
    """Location names the created resource (a path, or a URL whose path ends with it)."""
    given = response.headers.get("location")
    check(given, f"no Location header: {what(response)}")
    check(httpx.URL(given).path.endswith(path),
          f"Location {given!r} does not name {path}: {what(response)}")


def timestamp(value, label: str) -> datetime.datetime:
    check(isinstance(value, str) and schemas.RFC3339_Z.match(value),
          f"{label}: {value!r} is not an RFC 3339 UTC timestamp ending in Z")
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def stable_order(items: list[dict], time_field: str, label: str) -> None:
    """Items are in the contract's list order: ``time_field``, then uuid."""
    keys = [(timestamp(item[time_field], f"{label}: {time_field}"), item["uuid"]) for item in items]
    check(keys == sorted(keys), f"{label}: not ordered by {time_field}, then uuid")
