"""Which process of `certapi serve` does the background work: one leader per database.

Every serve worker runs a standby thread; the one that takes the leader's lock runs
the webhook sender and the expiry scan, the others only retry the lock every
``RETRY_SECONDS``. A sender in every worker made the workers poll and race for the
same claims, and put sender threads beside every worker's requests on its GIL
(bench/PROFILE.md, "Webhooks, session 20", has the cost before and after). The lock is one the
operating system or the database server drops when its holder dies (SQLite: an
flock() of ``<database>.sender`` beside the database file; PostgreSQL: a session
advisory lock held by a connection of its own), so after a kill -9 another worker
takes over within seconds, and the dead leader's claims come back when their lease
runs out, as before. Safety never rested on there being one sender: two leaders for a
moment (a PostgreSQL connection lost and its lock taken over) still send each attempt
once, as any number of `certapi worker`s do.

The leader does not send itself: it runs `certapi worker` as a child process tied to
it (``Delegate``) and supervises it. Sending costs CPU (urllib3, the kernel, a log line
per delivery), and in a thread of a serve worker that CPU was taken under the worker's
GIL, which its request threads then waited for: with one subscribed endpoint the
workers' write throughput fell to 0.71-0.87 of none, against 0.92-1.25 with the sender
in a process of its own (bench/PROFILE.md, "The sender in a process of its own"). The
child reads its stdin until end of file: when the leader dies, even by kill -9, the
kernel closes that pipe and the child stops (what it claimed comes back when the lease
runs out, so a child winding down beside its successor sends no attempt twice). It
writes its sender's beat to its stdout, which the leader reads.

The leader beats while its child's sender loop goes round: it touches the lock file
(SQLite) or runs a query on its lock's connection (PostgreSQL, whose ``state_change``
in ``pg_stat_activity`` every worker can read). Readiness reads that beat in every
worker, so ``webhook_sender`` says whether the serve's one sender is alive. An
in-memory database, which no other process can open, keeps the sender and the scan
in threads of the serving process (``InProcess``)."""
import fcntl
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any, Protocol

from certapi.webhooks import expiry
from certapi.webhooks.delivery import Sender
from certapi.webhooks.settings import WebhookSettings
from models import database
from models.db import is_postgres

log = logging.getLogger("certapi.webhooks")
# How often a standby worker tries to take over; a killed leader's work resumes within it.
RETRY_SECONDS = 2.0
# How often the leader beats (and, on PostgreSQL, checks that its lock's connection lives).
BEAT_SECONDS = 1.0
# The two keys of PostgreSQL's advisory lock (pg_locks: classid, objid): "cert", "send".
ADVISORY_KEYS = (0x63657274, 0x73656E64)


class Lock(Protocol):
    def acquire(self) -> bool: ...

    def beat(self) -> None: ...

    def release(self) -> None: ...

    def leader_silent_for(self) -> float | None: ...


class Solo:
    """No lock to share (an in-memory database): this process leads."""

    def __init__(self) -> None:
        self._beat = time.monotonic()

    def acquire(self) -> bool:
        return True

    def beat(self) -> None:
        self._beat = time.monotonic()

    def release(self) -> None:
        pass

    def leader_silent_for(self) -> float | None:
        return time.monotonic() - self._beat


class FileLock:
    """An flock() of a file beside the SQLite database; its mtime is the leader's beat."""

    def __init__(self, path: str):
        self.path = path
        self._fd = -1

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        self.beat()
        return True

    def beat(self) -> None:
        os.utime(self._fd)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = -1

    def leader_silent_for(self) -> float | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # held: there is a leader
                return max(0.0, time.time() - os.fstat(fd).st_mtime)
            return None  # not held: no leader right now
        finally:
            os.close(fd)  # drops the shared lock if it was taken


class AdvisoryLock:
    """A PostgreSQL session advisory lock on a connection outside the pool; the holder's
    queries are its beat. A standby worker keeps its connection to try again on it
    (one idle connection per worker rather than a new one every RETRY_SECONDS)."""

    def __init__(self, db: Any):
        self.db = db
        self._connection: Any = None

    def acquire(self) -> bool:
        import psycopg2

        if self._connection is None:
            self._connection = psycopg2.connect(database=self.db.database, **self.db.connect_params)
            self._connection.autocommit = True
            with self._connection.cursor() as cursor:
                cursor.execute("SET application_name = 'certapi-sender'")
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", ADVISORY_KEYS)
            return bool(cursor.fetchone()[0])

    def beat(self) -> None:
        """Raises when the connection, and so the lock, is gone."""
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def release(self) -> None:
        """Close the connection: its session's lock, if it holds it, goes with it."""
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                pass
            self._connection = None

    def leader_silent_for(self) -> float | None:
        row = database.execute_sql(
            "SELECT EXTRACT(EPOCH FROM clock_timestamp() - a.state_change) "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s "
            "AND l.objsubid = 2 AND l.granted", ADVISORY_KEYS).fetchone()
        return None if row is None else max(0.0, float(row[0]))


def lock_for_database() -> Lock:
    db = database.obj
    if is_postgres(db):
        return AdvisoryLock(db)
    path = db.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return Solo()
    return FileLock(f"{path}.sender")


class Work(Protocol):
    """The sender and the expiry scan while this process leads."""

    settings: WebhookSettings

    @property
    def beat(self) -> float: ...  # time.monotonic() when the sender's loop last went round

    def alive(self) -> bool: ...

    def stop(self) -> None: ...


class InProcess:
    """The sender and the scan as threads of this process."""

    def __init__(self) -> None:
        self.sender, self.scanner = Sender(), expiry.start_background()
        self.settings = self.sender.settings
        self.thread = threading.Thread(target=self.sender.run, name="webhook-sender", daemon=True)
        self.thread.start()

    @property
    def beat(self) -> float:
        return self.sender.beat

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.sender.stop()
        self.scanner.stop()


class Delegate:
    """`certapi worker` as a child of this process, tied to it by its stdin (see the
    module's docstring); its environment is this process's, so it opens the same
    database, logs in the same format and counts into the same metrics directory."""

    def __init__(self) -> None:
        self.settings = WebhookSettings.from_env()
        self.beat = time.monotonic()
        # Unbuffered pipes: a daemon thread blocked in a buffered stream's read holds its
        # lock, which the interpreter's shutdown may then wait for (as in the child).
        self.process = subprocess.Popen(
            [sys.executable, "-m", "certapi.webhooks.worker", "--tied"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        threading.Thread(target=self._read_beats, name="webhook-beats", daemon=True).start()

    def _read_beats(self) -> None:
        assert self.process.stdout is not None
        pending = b""
        while chunk := os.read(self.process.stdout.fileno(), 4096):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                try:
                    self.beat = float(line)
                except ValueError:  # not a beat: a stray write to the child's stdout
                    pass

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Ask the child to stop (it ends the batch it sends), and make sure it does."""
        if self.process.poll() is None:
            self.process.terminate()
            threading.Thread(target=self._reap, name="webhook-reap", daemon=True).start()

    def _reap(self) -> None:
        try:
            self.process.wait(self.settings.longest_send_seconds + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Background:
    """This process's part: stand by, and while leading run a sender and the scan."""

    def __init__(self, lock: Lock):
        self.lock = lock
        self.stopping = threading.Event()
        self.work: Work | None = None  # while this process leads
        self.thread = threading.Thread(target=self.run, name="webhook-standby", daemon=True)
        self.beat = time.monotonic()  # when the standby loop last went round
        self._leader_seen = time.monotonic()

    def healthy_for(self) -> float:
        """How long a loop may stay silent before it counts as stalled: longer than a
        batch of sends can take."""
        settings = self.work.settings if self.work else WebhookSettings.from_env()
        return settings.lease_seconds + settings.poll_seconds + 30

    def run(self) -> None:
        while not self.stopping.is_set():
            self.beat = time.monotonic()
            try:
                if self.lock.acquire():
                    self._lead()
            except Exception as exc:  # the database is away: stand by, try again
                log.warning("webhook sender leadership: %s: %s", type(exc).__name__, exc)
                self.lock.release()
            self.stopping.wait(RETRY_SECONDS)

    def _lead(self) -> None:
        work: Work
        if isinstance(self.lock, Solo):
            work, where = InProcess(), "in this process"
        else:
            work = delegate = Delegate()
            where = f"in process {delegate.process.pid}"
        log.info("webhook sender and expiry scan run %s (leader: pid %d)", where, os.getpid())
        self.work = work
        try:
            while not self.stopping.wait(BEAT_SECONDS):
                self.beat = time.monotonic()
                if not work.alive() or time.monotonic() - work.beat > self.healthy_for():
                    # A stalled loop keeps no lock: another worker may do better.
                    log.error("webhook sender stalled or gone: handing the lead over")
                    return
                self.lock.beat()
        finally:
            self.work = None
            work.stop()
            self.lock.release()

    def state(self) -> str:
        """``ok`` while this standby loop runs and the leader (here or in another
        process) beats; ``stopped`` otherwise, or when the leader's beat cannot be
        read."""
        limit = self.healthy_for()
        if not self.thread.is_alive() or time.monotonic() - self.beat > limit:
            return "stopped"
        work = self.work
        if work is not None:
            return "ok" if time.monotonic() - work.beat <= limit else "stopped"
        try:
            silent = self.lock.leader_silent_for()
        except Exception:  # the database (PostgreSQL's lock table) cannot tell right now
            return "stopped"
        if silent is None:
            # No leader this moment (one just died, or the serve just started): a standby
            # loop takes over within RETRY_SECONDS; only a long vacancy fails.
            return "ok" if time.monotonic() - self._leader_seen <= limit else "stopped"
        self._leader_seen = time.monotonic()
        return "ok" if silent <= limit else "stopped"

    def stop(self) -> None:
        self.stopping.set()


_background: Background | None = None


def start() -> Background:
    """Start this process's standby thread (what each `certapi serve` worker does)."""
    global _background
    background = Background(lock_for_database())
    background.thread.start()
    _background = background
    return background


def state() -> str:
    """The background sender, for readiness: ``off`` (none started in this process:
    CERTAPI_WEBHOOK_BACKGROUND=0, or not `certapi serve`), ``ok``, or ``stopped``."""
    if _background is None:
        return "off"
    return _background.state()
