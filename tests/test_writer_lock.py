"""models.db.WriterLock: one SQLite write transaction at a time across threads and
processes, with busy_timeout's deadline."""
import multiprocessing
import threading
import time

import pytest
from peewee import OperationalError

from models.db import SerialWritesSqliteDatabase, WriterLock


def test_threads_take_turns(tmp_path):
    lock = WriterLock(str(tmp_path / "db.lock"), timeout=5)
    inside, overlaps = [], []

    def write():
        for _ in range(20):
            lock.acquire()
            try:
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                time.sleep(0.0005)
                inside.pop()
            finally:
                lock.release()

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


def test_waiting_thread_gives_up_after_timeout(tmp_path):
    holder = WriterLock(str(tmp_path / "db.lock"), timeout=5)
    holder.acquire()
    holder.timeout = 0.05
    failed = []

    def wait():
        try:
            holder.acquire()
        except OperationalError as exc:
            failed.append(str(exc))

    thread = threading.Thread(target=wait)
    thread.start()
    thread.join()
    holder.release()
    assert failed == ["database is locked"]


def _try_lock(path, queue):
    lock = WriterLock(path, timeout=0.1)
    try:
        lock.acquire()
    except OperationalError:
        queue.put("locked out")
        return
    lock.release()
    queue.put("acquired")


@pytest.mark.parametrize("held", [True, False])
def test_other_processes_wait_for_the_holder(tmp_path, held):
    path = str(tmp_path / "db.lock")
    lock = WriterLock(path, timeout=5)
    if held:
        lock.acquire()
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_try_lock, args=(path, queue))
    child.start()
    child.join(10)
    if held:
        lock.release()
    assert queue.get(timeout=5) == ("locked out" if held else "acquired")


def test_transactions_hold_the_lock_until_commit_or_rollback(tmp_path):
    db = SerialWritesSqliteDatabase(str(tmp_path / "t.db"), pragmas={"busy_timeout": 1000})
    db.execute_sql("CREATE TABLE t (x)")
    other = WriterLock(str(tmp_path / "t.db.lock"), timeout=0.05)

    def blocked() -> bool:
        result = []
        thread = threading.Thread(target=lambda: result.append(_attempt(other)))
        thread.start()
        thread.join()
        return result[0]

    with db.atomic():
        db.execute_sql("INSERT INTO t VALUES (1)")
        assert blocked()
    assert not blocked()
    with pytest.raises(ZeroDivisionError):
        with db.atomic():
            db.execute_sql("INSERT INTO t VALUES (2)")
            1 / 0
    assert not blocked()
    assert db.execute_sql("SELECT count(*) FROM t").fetchone() == (1,)
    db.close_all()


def _attempt(lock: WriterLock) -> bool:
    """Whether ``lock`` is held elsewhere (acquiring it times out)."""
    try:
        lock.acquire()
    except OperationalError:
        return True
    lock.release()
    return False
