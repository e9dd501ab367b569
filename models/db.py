"""The one database handle every model uses, bound at start-up from a URL."""
import fcntl
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from peewee import Database, DatabaseProxy, OperationalError, PostgresqlDatabase
from playhouse.db_url import connect, register_database
from playhouse.pool import PooledSqliteDatabase

DEFAULT_DATABASE_URL = "sqlite:///certapi.db"

database = DatabaseProxy()

# WAL lets readers run beside the single writer; busy_timeout makes a writer wait for the
# lock instead of failing; foreign_keys is off by default in SQLite. Every pooled
# connection keeps a page cache of its own (KiB when negative), and a worker holds 11-14
# connections under load. In WAL mode a connection empties its cache whenever another
# one has written since its last read, so under a stream of writes a cache lives about
# one transaction and 500 KiB holds what one statement walks; the operating system
# caches the file for all of them. Measured on 100,000 enrollments: SQLite's default
# 2 MiB each put up to 26 MB of page cache in a worker at its first write burst
# (workers 120-132 MB after the scenarios), 500 KiB 93-95 MB, with the CPU of a bulk
# enrollment and of the CSV export unchanged; 64 MiB each grew a worker well past 120 MB.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "synchronous": "normal",
    "cache_size": -500,
}


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def is_sqlite(url: str) -> bool:
    return urlsplit(url).scheme.startswith("sqlite")


def is_postgres(db: Database | None = None) -> bool:
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


class WriterLock:
    """One SQLite write transaction at a time across the threads and worker processes
    that share a database file, handed over as soon as the holder commits.

    SQLite lets one writer in and makes the others poll with growing sleeps (1 ms up to
    100 ms, busy_timeout): under a steady stream of writes a waiter keeps missing its
    turn and the slowest writes took a second. Waiting here instead, threads on a lock
    and processes on an flock() of ``<database>.lock`` polled every half millisecond,
    keeps the wait to the transactions ahead. Writers outside this process's pool (the
    command line) still meet busy_timeout."""

    POLL_SECONDS = 0.0005

    def __init__(self, path: str, timeout: float):
        self.path, self.timeout = path, timeout
        self._threads = threading.Lock()
        self._fd, self._pid = -1, 0

    def _file(self) -> int:
        if self._pid != os.getpid():  # a forked worker needs a lock of its own
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:  # the directory is gone, read-only or full: an outage
                raise OperationalError(f"cannot open {self.path}: {exc.strerror}") from exc
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> None:
        if not self._threads.acquire(timeout=self.timeout):
            raise OperationalError("database is locked")
        try:
            fd, deadline = self._file(), time.monotonic() + self.timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OperationalError("database is locked") from None
                    time.sleep(self.POLL_SECONDS)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only (it holds emails and key
    hashes) before SQLite creates it with the umask's 0644. SQLite gives the -wal and
    -shm files the database file's mode, and the WriterLock file is 0600 too. An
    existing file keeps the mode it has."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        pass  # it exists, or SQLite will say why it cannot be opened when it connects


class SerialWritesSqliteDatabase(PooledSqliteDatabase):
    """Peewee's pooled SQLite database whose transactions take the WriterLock first."""

    def __init__(self, database: str, *args: Any, **kwargs: Any):
        super().__init__(database, *args, **kwargs)
        self._writer: WriterLock | None = None
        if database and database != ":memory:" and not database.startswith("file:"):
            _create_private(database)
            timeout = self._pragmas_dict().get("busy_timeout", 5000) / 1000
            self._writer = WriterLock(f"{database}.lock", timeout)
        self._holding = threading.local()

    def _pragmas_dict(self) -> dict:
        return dict(self._pragmas or ())

    def begin(self, lock_type: str | None = None) -> None:
        if self._writer is None:
            return super().begin(lock_type)
        self._writer.acquire()
        try:
            super().begin(lock_type)
        except BaseException:
            self._writer.release()
            raise
        self._holding.lock = True

    def _end(self, finish: Callable[[], Any]) -> Any:
        try:
            return finish()
        finally:
            if getattr(self._holding, "lock", False) and self._writer is not None:
                self._holding.lock = False
                self._writer.release()

    def commit(self) -> Any:
        return self._end(super().commit)

    def rollback(self) -> Any:
        return self._end(super().rollback)


register_database(SerialWritesSqliteDatabase, "sqlite+pool")


def _pooled(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return POOLED_SCHEMES.get(scheme, scheme) + sep + rest


def init_database(url: str | None = None) -> Database:
    """Bind the proxy to the database at ``url`` (default: $DATABASE_URL).

    Settings in the URL's query string win over the defaults above; they go to Peewee's
    database class or the driver (``?max_connections=40&sslmode=require``)."""
    url = _pooled(url or database_url())
    given = {key for key, _ in parse_qsl(urlsplit(url).query)}
    kwargs: dict[str, object] = dict(POOL_DEFAULTS)
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
