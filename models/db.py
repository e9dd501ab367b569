"""The one database handle every model uses, bound at start-up from a URL."""
import os
from urllib.parse import urlsplit

from peewee import DatabaseProxy
from playhouse.db_url import connect

DEFAULT_DATABASE_URL = "sqlite:///certapi.db"

database = DatabaseProxy()

# WAL lets readers run beside the single writer; busy_timeout makes a writer wait for the
# lock instead of failing; foreign_keys is off by default in SQLite.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "synchronous": "normal",
    "cache_size": -64000,
}


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def is_sqlite(url: str) -> bool:
    return urlsplit(url).scheme.startswith("sqlite")


def init_database(url: str | None = None):
    """Bind the proxy to the database at ``url`` (default: $DATABASE_URL)."""
    url = url or database_url()
    kwargs = {}
    if is_sqlite(url):
        kwargs["pragmas"] = SQLITE_PRAGMAS
        # Take the write lock when a transaction starts, so two read-modify-write
        # transactions queue up instead of one failing with "database is locked".
        if "lock_type" not in url:
            url += ("&" if "?" in url else "?") + "lock_type=IMMEDIATE"
        kwargs["check_same_thread"] = False
    db = connect(url, **kwargs)
    database.initialize(db)
    return db
