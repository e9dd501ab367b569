"""Versioned schema migrations (playhouse.migrations), applied by `certapi migrate`."""
from pathlib import Path

from playhouse.migrations import Runner

from models.db import database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def migrate() -> list[str]:
    """Apply pending migrations; returns their names (empty when up to date)."""
    return Runner(database.obj, str(MIGRATIONS_DIR)).up()
