"""The one database handle every model uses, bound at start-up from a URL."""
import os
from urllib.parse import parse_qsl, urlsplit

from peewee import DatabaseProxy, PostgresqlDatabase
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


def is_postgres(db=None) -> bool:
    """Whether ``db`` (default: the bound database) is PostgreSQL."""
    return isinstance(db if db is not None else database.obj, PostgresqlDatabase)


# Every URL gets Peewee's connection pool (``sqlite+pool``, ``postgresql+pool``). A request
# checks a connection out when it first touches the database and hands it back when it
# ends (certapi.app), so a process holds at most one per busy thread. On PostgreSQL the
# pool pings an idle connection before handing it out and drops it when the server has
# gone away, so a database restart costs no failed request once it is back.
POOLED_SCHEMES = {"sqlite": "sqlite+pool", "postgres": "postgresql+pool",
                  "postgresql": "postgresql+pool"}
POOL_DEFAULTS = {
    # Per process: the handler threads (10) and key-lookup threads need fewer; with N
    # workers, N × max_connections must stay below the server's max_connections.
    "max_connections": 20,
    # Seconds a thread waits for a free connection before failing.
    "timeout": 10,
}
POSTGRES_DEFAULTS = {
    # Reopen connections older than this, so server- or proxy-side idle limits never bite.
    "stale_timeout": 300,
    # An unreachable server fails a request (and /v1/health) in seconds, not minutes.
    "connect_timeout": 5,
}


def _pooled(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return POOLED_SCHEMES.get(scheme, scheme) + sep + rest


def init_database(url: str | None = None):
    """Bind the proxy to the database at ``url`` (default: $DATABASE_URL).

    Settings in the URL's query string win over the defaults above; they go to Peewee's
    database class or the driver (``?max_connections=40&sslmode=require``)."""
    url = _pooled(url or database_url())
    given = {key for key, _ in parse_qsl(urlsplit(url).query)}
    kwargs = dict(POOL_DEFAULTS)
    if is_sqlite(url):
        kwargs["pragmas"] = SQLITE_PRAGMAS
        # Take the write lock when a transaction starts, so two read-modify-write
        # transactions queue up instead of one failing with "database is locked".
        kwargs["lock_type"] = "IMMEDIATE"
        kwargs["check_same_thread"] = False  # pooled connections move between threads
    else:
        kwargs.update(POSTGRES_DEFAULTS)
    for key in given:
        kwargs.pop(key, None)
    db = connect(url, unquote_user=True, unquote_password=True, **kwargs)
    database.initialize(db)
    return db


def close_all() -> None:
    """Close every pooled connection, e.g. before the process forks its workers (a
    connection must never be shared by two processes)."""
    if database.obj is not None:
        database.obj.close_all()
