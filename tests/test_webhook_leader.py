"""One background sender per `certapi serve`: the workers elect a leader with a lock the
operating system or the database server drops when its holder dies, the others stand
by, and a killed leader is replaced without losing an event (both backends)."""
import os
import signal
import threading
import time

import httpx
import pytest
from playhouse.db_url import connect

from certapi.webhooks import background
from tests.databases import NO_SERVER, backends, fresh_database, query, server_url
from tests.live_server import LiveServer
from tests.test_webhook_processes import (
    Writer,
    assert_all_signed,
    committed_events,
    fast_delivery,  # noqa: F401 (an autouse fixture, used here too)
    hooked_serve,
    wait_for_all,
)


def test_one_file_lock_holder_at_a_time(tmp_path):
    path = str(tmp_path / "db.sqlite.sender")
    first, second = background.FileLock(path), background.FileLock(path)
    assert second.leader_silent_for() is None  # no file: no leader yet
    assert first.acquire()
    try:
        assert not second.acquire()
        assert second.leader_silent_for() is not None and second.leader_silent_for() < 5
        os.utime(path, (time.time() - 3600, time.time() - 3600))
        assert second.leader_silent_for() > 3000  # the leader stopped beating
        first.beat()
        assert second.leader_silent_for() < 5
    finally:
        first.release()
    assert second.leader_silent_for() is None  # released: no leader
    assert second.acquire()
    second.release()


def running(name: str) -> bool:
    return any(thread.name == name for thread in threading.enumerate())


def test_without_a_lock_to_share_the_sender_and_the_scan_are_threads(keep_database_binding):
    """An in-memory database (no other process can open it): the serving process leads
    alone and runs both loops as threads, which stop with it."""
    standby = background.Background(background.Solo())
    standby.thread.start()
    try:
        deadline = time.monotonic() + 10
        while standby.work is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert isinstance(standby.work, background.InProcess)
        assert standby.work.alive() and standby.state() == "ok"
        assert running("webhook-sender") and running("expiry-scan")
    finally:
        standby.stop()
        standby.thread.join(10)
    deadline = time.monotonic() + 10
    while (running("webhook-sender") or running("expiry-scan")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running("webhook-sender") and not running("expiry-scan")
    assert standby.work is None


@pytest.mark.skipif(server_url() is None, reason=NO_SERVER)
def test_one_advisory_lock_holder_at_a_time(tmp_path, keep_database_binding):
    from models import database

    with fresh_database("postgresql", tmp_path, "leader") as url:
        database.initialize(connect(url))
        try:
            first, second = background.AdvisoryLock(database.obj), background.AdvisoryLock(database.obj)
            assert second.leader_silent_for() is None
            assert first.acquire()
            try:
                assert not second.acquire()
                first.beat()
                assert second.leader_silent_for() < 5
            finally:
                first.release()
            assert second.leader_silent_for() is None
            assert second.acquire()
            second.release()
        finally:
            database.obj.close()


def processes() -> dict[int, int]:
    """Every process on the machine: pid → parent pid, from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                found[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:  # gone meanwhile
            continue
    return found


def worker_pids(server: LiveServer) -> set[int]:
    """The serve master's children (its gunicorn workers)."""
    return {pid for pid, parent in processes().items() if parent == server.process.pid}


def leaders(url: str) -> int:
    """How many processes hold the leader's lock of the database at ``url``: SQLite's
    flock() from /proc/locks, PostgreSQL's advisory lock from pg_locks."""
    if url.startswith("sqlite"):
        inode = os.stat(url.removeprefix("sqlite:///") + ".sender").st_ino
        with open("/proc/locks") as locks:
            return sum(1 for line in locks if "FLOCK" in line and " WRITE " in line
                       and line.split()[5].endswith(f":{inode}"))
    rows = query(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                      "AND classid = ? AND objid = ? AND objsubid = 2 AND granted",
                 *background.ADVISORY_KEYS)
    return rows[0][0]


def every_answer_ready(server: LiveServer, times: int = 12) -> None:
    """/v1/ready on fresh connections (gunicorn hands each to any worker): the sender is
    ok in every worker that answers, the followers reading the leader's beat."""
    for _ in range(times):
        response = httpx.get(f"{server.url}/v1/ready", headers={"connection": "close"}, timeout=5)
        assert response.status_code == 200, response.text
        assert response.json()["checks"]["webhook_sender"] == "ok"


@pytest.mark.parametrize("kind", backends())
def test_killed_workers_are_replaced_and_every_event_arrives(kind, tmp_path):
    """Each original worker in turn is killed with SIGKILL while changes are written;
    whichever led, another takes over and every committed event arrives, signed."""
    with hooked_serve(kind, tmp_path, workers=3) as hooked:
        server, url = hooked.server, hooked.url
        assert leaders(url) == 1
        every_answer_ready(server)
        for pid in sorted(worker_pids(server)):
            with Writer(server.url, hooked.headers, hooked.certification) as writer:
                time.sleep(1)
                os.kill(pid, signal.SIGKILL)
                time.sleep(1.5)
            assert writer.acknowledged > 0
            wait_for_all(hooked.receiver, committed_events(url))
        assert len(worker_pids(server)) == 3  # gunicorn replaced every one
        assert leaders(url) == 1
        every_answer_ready(server)
        assert_all_signed(hooked.receiver, hooked.secret, committed_events(url))


def sender_processes(server: LiveServer) -> dict[int, int]:
    """The serve's sender processes (pid → parent pid): a worker's child running
    `certapi.webhooks.worker --tied` (with one worker, the serve process is the worker)."""
    workers = worker_pids(server) | {server.process.pid}
    found = {}
    for pid, parent in processes().items():
        if parent not in workers:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except OSError:
            continue
        if b"certapi.webhooks.worker" in argv and b"--tied" in argv:
            found[pid] = parent
    return found


def one_sender(server: LiveServer, other_than: int = 0, seconds: float = 30) -> tuple[int, int]:
    """Wait until exactly one sender process runs, not ``other_than``: (pid, its parent)."""
    deadline = time.monotonic() + seconds
    while True:
        found = sender_processes(server)
        if len(found) == 1 and other_than not in found:
            return next(iter(found.items()))
        assert time.monotonic() < deadline, (found, server.log())
        time.sleep(0.2)


def gone(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    return not os.path.exists(f"/proc/{pid}")


@pytest.mark.parametrize("kind", backends())
def test_the_sender_is_a_child_of_the_leader_and_never_outlives_it(kind, tmp_path):
    """The leader sends through a child process of its own: a killed child is replaced;
    a killed leader's child stops (nobody left to supervise it) and the new leader starts
    its own; every committed event arrives, signed."""
    with hooked_serve(kind, tmp_path, workers=2, name="child") as hooked:
        server = hooked.server
        child, leader = one_sender(server)
        with Writer(server.url, hooked.headers, hooked.certification) as writer:
            time.sleep(1)
            os.kill(child, signal.SIGKILL)
            child, leader = one_sender(server, other_than=child)
            time.sleep(1)
            os.kill(leader, signal.SIGKILL)
            assert gone(child), server.log()  # no sender without its leader
            child, leader = one_sender(server, other_than=child)
            time.sleep(1)
        assert writer.acknowledged > 0
        wait_for_all(hooked.receiver, committed_events(hooked.url))
        assert leaders(hooked.url) == 1
        every_answer_ready(server)
        assert_all_signed(hooked.receiver, hooked.secret, committed_events(hooked.url))
        server.kill()
        assert gone(child)  # the kill of the serve's process group took it too


def test_the_sender_process_stops_cleanly(tmp_path):
    """A sender told to stop (SIGTERM, as a supervisor would) exits without an interpreter
    abort while its leader lives, and the leader starts another; Ctrl-C in a terminal,
    which signals the whole foreground process group, stops the one-worker serve and its
    sender alike."""
    with hooked_serve("sqlite", tmp_path, workers=1, name="stop") as hooked:
        server = hooked.server
        child, _ = one_sender(server)
        os.kill(child, signal.SIGTERM)
        assert gone(child), server.log()
        child, _ = one_sender(server, other_than=child)
        time.sleep(3)  # past its start: a Ctrl-C amid its imports ends it with a traceback
        os.killpg(server.process.pid, signal.SIGINT)
        assert server.process.wait(30) == 0, server.log()
        assert gone(child), server.log()
        assert "Fatal Python error" not in server.log(), server.log()
