"""Whether this process should be sent traffic: what `GET /v1/ready` reports to an
orchestrator. `GET /v1/health` stays the liveness check (the process and its database
answer); readiness adds what a fresh or broken deployment lacks."""
from peewee import PeeweeException

from certapi.errors import DATABASE_UNAVAILABLE
from certapi.webhooks import background
from models.db import database
from models.migrate import pending
from models.probe import check_writable

OUTAGE: tuple[type[Exception], ...] = (PeeweeException, *DATABASE_UNAVAILABLE)
# The state of each check that lets traffic in; any other state fails it.
PASSING = {"database": ("ok",), "migrations": ("ok",), "webhook_sender": ("ok", "off")}


def _database() -> str:
    try:
        check_writable()
    except OUTAGE:
        if not database.is_closed():
            database.close()  # reconnect on the next call instead of reusing a dead link
        return "unavailable"
    return "ok"


def _migrations() -> str:
    try:
        return "pending" if pending() else "ok"
    except OUTAGE:
        return "unknown"


def checks() -> dict[str, str]:
    """Each check's state: the database takes a write; every migration this code knows
    is applied (a new release started against an old schema is not ready); the serve's
    background webhook sender runs, in whichever worker leads, and this worker stands by
    to take over (``off`` when deliveries are left to `certapi worker`,
    CERTAPI_WEBHOOK_BACKGROUND=0)."""
    found = {"database": _database()}
    found["migrations"] = _migrations() if found["database"] == "ok" else "unknown"
    found["webhook_sender"] = background.state()
    return found


def failing(found: dict[str, str]) -> list[str]:
    return [name for name, state in found.items() if state not in PASSING[name]]
