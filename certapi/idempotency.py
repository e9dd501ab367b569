"""``Idempotency-Key`` on every POST and PATCH: a retried write replays the first answer
instead of running again.

Each keyed write runs in one transaction that also stores its answer, so after a crash
at any point the key either has its answer stored with the change, or neither
happened: a retry replays or runs once, never twice. While a key's first request runs,
a latch held for the transaction makes a second one answer 409 with ``Retry-After: 1``
instead of waiting: on PostgreSQL a transaction-level advisory lock, on SQLite a lock
on one byte of ``<database>-idempotency.lock`` plus a set for the threads of this
process. Both are released by the operating system or the server if the process dies.

What is stored: the answer of an operation that ran (2xx, or the 404/409/422 of a
business rule). Not stored: requests refused before the operation (401, 403, 429, a
422 of validation never reach this layer), 5xx answers, and a conflict raised by the
database itself (a race the client should simply retry).
"""
import datetime
import fcntl
import functools
import hashlib
import json
import os
import random
import re
import threading
from collections.abc import Callable
from typing import Any

import flask
from connexion import context as connexion_context

from certapi import metrics
from certapi.config import Settings
from certapi.errors import ApiError, Conflict, ValidationFailed, envelope_bytes
from models.base import utcnow
from models.db import database, is_postgres
from models.idempotency import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
METHODS = frozenset({"POST", "PATCH"})
# 1–255 visible ASCII characters, bare (not starting with a quote) or as a
# structured-field string ("" is the empty key).
WELL_FORMED = re.compile(r'"[!#-\[\]-~]{1,255}"|[!#-~][!-~]{0,254}', re.ASCII)
# Expired answers are deleted by one stored answer in this many (and when met).
PURGE_EVERY = 200


def normalize(value: str) -> str:
    """The draft's structured-field string ``"abc"`` and the bare ``abc`` are one key."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def fingerprint(method: str, full_path: str, raw_body: bytes) -> str:
    """Method, path with query string, and the body compared as parsed JSON."""
    body = ""
    if raw_body:
        try:
            body = json.dumps(json.loads(raw_body), sort_keys=True, separators=(",", ":"))
        except ValueError:  # validation let a non-JSON body through: compare its bytes
            body = raw_body.decode("utf-8", "replace")
    return hashlib.sha256(f"{method}\n{full_path}\n{body}".encode()).hexdigest()


class FileLatch:
    """Non-blocking per-key exclusion across the threads and processes sharing one SQLite
    database: a POSIX lock on one byte of a lock file (per process, freed when the
    process dies) and a set for this process's threads (POSIX locks do not exclude
    them)."""

    SPAN = 1 << 40

    def __init__(self, path: str):
        self.path = path
        self._held: set[int] = set()
        self._guard = threading.Lock()
        self._fd: int = -1
        self._pid: int | None = None

    def _file(self) -> int:
        if self._pid != os.getpid():  # a forked worker needs a descriptor of its own
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid, self._held = os.getpid(), set()
        return self._fd

    def acquire(self, name: str) -> int | None:
        offset = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % self.SPAN
        with self._guard:
            fd = self._file()
            if offset in self._held:
                return None
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            except OSError:
                return None
            self._held.add(offset)
            return offset

    def release(self, offset: int) -> None:
        with self._guard:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset)
            self._held.discard(offset)


class Idempotency:
    def __init__(self, ttl_hours: int):
        self.ttl = datetime.timedelta(hours=ttl_hours)
        self._file_latch: FileLatch | None = None

    # --- the latch: one running request per key ---------------------------------------

    def _file_latch_for(self) -> FileLatch:
        if self._file_latch is None:
            self._file_latch = FileLatch(f"{database.obj.database}-idempotency.lock")
        return self._file_latch

    @staticmethod
    def _advisory_latch(name: str) -> bool:
        """PostgreSQL, inside the transaction: freed when it ends, or by the server when
        the connection dies."""
        return database.execute_sql("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                                    (name,)).fetchone()[0]

    # --- the view wrapper ---------------------------------------------------------------

    def wrap(self, view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def idempotent(*args: Any, **kwargs: Any) -> Any:
            request = flask.request
            raw = request.headers.get(HEADER) if request.method in METHODS else None
            if raw is None:
                return view(*args, **kwargs)
            if not WELL_FORMED.fullmatch(raw):
                # Connexion checks the spec's pattern first; this keeps the layer safe alone.
                raise ValidationFailed(f"header/{HEADER}: " + (
                    "Must not be empty" if not raw else "Does not match the expected format"))
            return self.run(view, args, kwargs, normalize(raw))
        idempotent.idempotent = True  # type: ignore[attr-defined]
        return idempotent

    def run(self, view: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
            key: str) -> Any:
        request = flask.request
        # The caller's account, as Connexion's security layer passes it to handlers (`user`).
        account = connexion_context.context["user"]
        full_path = request.full_path if request.query_string else request.path
        digest = fingerprint(request.method, full_path, request.get_data())
        name = f"{account}:{key}"
        busy = Conflict(f"A request with this {HEADER} is still being processed; retry",
                        headers={"Retry-After": "1"})
        postgres, offset = is_postgres(), None
        if not postgres:
            # Before BEGIN: SQLite's writers queue for the write lock, and a twin that
            # queued behind the first would wait instead of hearing 409.
            offset = self._file_latch_for().acquire(name)
            if offset is None:
                raise busy
        try:
            with database.atomic() as transaction:
                if postgres and not self._advisory_latch(name):
                    raise busy
                stored = self._stored(account, key)
                if stored is not None:
                    if stored.fingerprint != digest:
                        raise ValidationFailed(
                            f"header/{HEADER}: Already used with a different method, path or "
                            "body; use a new key for a new request")
                    return self._replay(stored)
                try:
                    response = flask.current_app.make_response(view(*args, **kwargs))
                except ApiError as refused:  # a business rule answered: that is stored too
                    response = _error_response(refused)
                if response.status_code >= 500:
                    transaction.rollback()
                    return response
                self._store(account, key, digest, response)
                return response
        finally:
            if offset is not None:
                self._file_latch_for().release(offset)

    def _stored(self, account: str, key: str) -> IdempotencyRecord | None:
        row = IdempotencyRecord.get_or_none(
            (IdempotencyRecord.account == account) & (IdempotencyRecord.key == key))
        if row is not None and row.created_at < utcnow() - self.ttl:
            row.delete_instance()
            return None
        return row

    def _store(self, account: str, key: str, digest: str, response: flask.Response) -> None:
        IdempotencyRecord.create(
            account=account, key=key, fingerprint=digest, status=response.status_code,
            body=response.get_data(as_text=True), content_type=response.content_type,
            location=response.headers.get("Location"))
        if random.randrange(PURGE_EVERY) == 0:
            self.purge()

    def purge(self) -> int:
        """Delete the answers older than the retention time; how many went."""
        return IdempotencyRecord.delete().where(
            IdempotencyRecord.created_at < utcnow() - self.ttl).execute()

    @staticmethod
    def _replay(stored: IdempotencyRecord) -> flask.Response:
        response = flask.Response(stored.body, status=stored.status,
                                  content_type=stored.content_type)
        if stored.location:
            response.headers["Location"] = stored.location
        response.headers[REPLAYED] = "true"
        metrics.IDEMPOTENT_REPLAYS.inc()
        return response


def _error_response(error: ApiError) -> flask.Response:
    """The envelope errors.answer would send, as a response this layer can store."""
    response = flask.Response(envelope_bytes(error.code, error.message), status=error.status,
                              content_type="application/json")
    response.headers.update(error.headers)
    return response


def install(flask_app: flask.Flask, settings: Settings) -> Idempotency:
    """Wrap every operation's view of ``flask_app`` (on the first request: Connexion adds
    the views then)."""
    from certapi.handler_call import replace_views_once

    layer = Idempotency(settings.idempotency_ttl_hours)
    replace_views_once(flask_app, lambda endpoint, view: (
        view if endpoint == "static" or getattr(view, "idempotent", False) else layer.wrap(view)))
    flask_app.extensions["certapi_idempotency"] = layer
    return layer
