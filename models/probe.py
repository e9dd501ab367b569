"""Whether the database can take a write now: what `GET /v1/health` reports."""
from peewee import OperationalError

from models.db import database, is_postgres


def check_writable() -> None:
    """Commit a tiny write, or raise the database's error (unreachable, read-only, disk
    full). Nothing the service stores changes.

    SQLite: rewrite the header's ``user_version`` (unused by certapi) with its own value:
    a real page write and commit, so a read-only file, a full disk or a lock held too
    long fail here as they would for a request's write. PostgreSQL: take a transaction
    id, which writes a commit record, in a transaction that must not be read-only (a
    standby or ``default_transaction_read_only`` refuses writes)."""
    with database.atomic():
        if is_postgres():
            read_only, _ = database.execute_sql(
                "SELECT current_setting('transaction_read_only'), txid_current()").fetchone()
            if read_only == "on":
                raise OperationalError("the database is read-only")
        else:
            (version,) = database.execute_sql("PRAGMA user_version").fetchone()
            database.execute_sql(f"PRAGMA user_version = {int(version)}")
