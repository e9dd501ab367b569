from peewee import PeeweeException

from certapi import readiness
from certapi.errors import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS
from models.db import database
from models.probe import check_writable

OUTAGE: tuple[type[Exception], ...] = (PeeweeException, *DATABASE_UNAVAILABLE)
Answer = tuple[dict[str, str], int, dict[str, str]]


def get_health() -> dict[str, str] | Answer:
    try:
        check_writable()
    except OUTAGE:
        if not database.is_closed():
            database.close()  # reconnect on the next call instead of reusing a dead link
        return {"status": "unavailable"}, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return {"status": "ok"}


def get_readiness() -> tuple[dict[str, object], int, dict[str, str]]:
    found = readiness.checks()
    failed = readiness.failing(found)
    body: dict[str, object] = {"status": "not_ready" if failed else "ready", "checks": found, "failing": failed}
    if failed:
        return body, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return body, 200, {}
