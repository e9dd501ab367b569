"""Throwaway databases for tests, on SQLite or on the PostgreSQL server named by
$CERTAPI_TEST_DATABASE_URL (`make test-postgres` starts one and sets it).

Each call makes a new, empty database (an SQLite file in a temporary directory, or a
`CREATE DATABASE` on the server) and removes it afterwards, so runs never see each
other's rows. DATABASE_URL is deliberately not used: the URL a developer exported for
`make run` must never receive test traffic."""
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from playhouse.db_url import connect

SERVER_ENV = "CERTAPI_TEST_DATABASE_URL"
NO_SERVER = (f"PostgreSQL variant not run: ${SERVER_ENV} is not set "
             "(`make test-postgres` starts a server and runs the whole suite on it)")


def server_url() -> str | None:
    return os.environ.get(SERVER_ENV) or None


def backend() -> str:
    """The backend this run's shared app uses."""
    return "postgresql" if server_url() else "sqlite"


def backends() -> list:
    """Parameters for tests that must hold on both backends: this run's backend, and
    PostgreSQL shown as skipped (with the reason) when no server is configured."""
    if server_url():
        return ["postgresql"]
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.skip(reason=NO_SERVER))]


def _on_server(url: str, statement: str) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True  # CREATE/DROP DATABASE refuse to run in a transaction
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


@contextmanager
def fresh_database(kind: str, tmp_dir: Path, label: str = "test"):
    """Yield the URL of a new empty database of ``kind`` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_dir / (label + '.db')}"
        return
    base = server_url()
    if base is None:
        raise RuntimeError(NO_SERVER)
    name = f"certapi_{label}_{uuid.uuid4().hex[:10]}"
    _on_server(base, f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(base)._replace(path="/" + name))
    finally:
        # FORCE: the app under test may still hold pooled connections.
        _on_server(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(url: str, sql: str, *params) -> list[tuple]:
    """Rows of ``sql`` (``?`` placeholders; a write commits at once) on the database at
    ``url``, over a connection of its own: what is really stored, whatever the server
    under test says."""
    db = connect(url)
    try:
        cursor = db.execute_sql(sql.replace("?", db.param), params)
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        db.close()
