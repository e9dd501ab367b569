"""Versioned schema migrations (playhouse.migrations), applied by `certapi migrate`."""
from pathlib import Path

from playhouse.migrations import Runner

from models import statistics
from models.db import database, is_postgres

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant will do; it names "the certapi migration lock" among advisory locks.
_ADVISORY_LOCK = 0x63657274


def migrate() -> list[str]:
    """Apply pending migrations; returns their names (empty when up to date).

    Several machines may start at once against one database: the plan is made and
    applied inside one transaction that first takes a lock (PostgreSQL: an advisory
    lock; SQLite: the write lock, taken up front), so the second migrator waits and
    then finds nothing left to do."""
    with database.atomic():
        if is_postgres():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK,))
        applied = Runner(database.obj, str(MIGRATIONS_DIR)).up()
    statistics.refresh()  # a migration may add indexes the planner knows nothing about
    return applied


def pending() -> list[str]:
    """The migrations not yet applied to the bound database, in order."""
    return [m.name for m in Runner(database.obj, str(MIGRATIONS_DIR)).status() if not m.applied]
