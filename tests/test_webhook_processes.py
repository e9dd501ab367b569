"""Webhook delivery by real processes: `certapi serve --workers 4` sends each attempt
once; kill -9 of `serve` or of `certapi worker` in the middle of a stream of changes
loses no event of a committed change (after a restart every webhook-id arrives, each
body signed), against a real local receiver."""
import collections
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.databases import backends, fresh_database, query
from tests.live_server import CERTAPI, LiveServer, new_account
from tests.webhook_receiver import Answer, Receiver

DELIVER_SECONDS = 90


@pytest.fixture(autouse=True)
def fast_delivery(monkeypatch):
    monkeypatch.setenv("CERTAPI_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("CERTAPI_WEBHOOK_RETRY_SCHEDULE", "0.5,0.5,0.5")
    monkeypatch.setenv("CERTAPI_WEBHOOK_TIMEOUT", "1")  # a dead sender's lease: 9 s
    monkeypatch.setenv("CERTAPI_WEBHOOK_POLL_SECONDS", "0.1")


def subscribe(server: LiveServer, headers: dict, url: str) -> str:
    response = httpx.post(f"{server.url}/v1/webhook-endpoints", headers=headers, json={"url": url})
    assert response.status_code == 201, response.text
    return response.json()["secret"]


def committed_events(url: str) -> set[str]:
    return {uuid for (uuid,) in query(url, "SELECT uuid FROM event")}


def wait_for_all(receiver: Receiver, expected: set[str], seconds: float = DELIVER_SECONDS):
    receiver.wait_for(lambda r: expected <= set(r.ids()), seconds)


def assert_all_signed(receiver: Receiver, secret: str, known: set[str]) -> None:
    for received in list(receiver.received):
        received.verified(secret)  # raises on a missing or wrong signature
        assert received.id in known  # nothing from a change that did not commit


class Writer:
    """Enrolls users and records attempts in a thread until stopped or the server dies."""

    def __init__(self, base: str, headers: dict, certification: str):
        self.base, self.headers, self.certification = base, headers, certification
        self.stop = threading.Event()
        self.acknowledged = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=10) as http:
            while not self.stop.is_set():
                try:
                    user = http.post("/v1/users", json={"email": f"{uuid.uuid4().hex}@x.io"})
                    enrolled = http.post(f"/v1/certifications/{self.certification}/enrollments",
                                         json={"user_uuid": user.json()["uuid"]})
                    path = (f"/v1/certifications/{self.certification}/enrollments/"
                            f"{enrolled.json()['uuid']}/assessment-attempts")
                    http.post(path, json={"score": 95})
                    self.acknowledged += 1
                except (httpx.TransportError, KeyError, ValueError):
                    if self.stop.wait(0.05):
                        return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(15)


def published(server: LiveServer, headers: dict) -> str:
    return httpx.post(f"{server.url}/v1/certifications", headers=headers,
                      json={"name": "Hooks", "status": "published"}).json()["uuid"]


@dataclass
class Hooked:
    """A running serve whose account is subscribed to a receiver."""
    url: str  # the database's
    server: LiveServer
    receiver: Receiver
    headers: dict
    secret: str
    certification: str  # a published one of the account


@contextmanager
def hooked_serve(kind: str, tmp_path, workers: int, name: str = "hooks") -> Iterator[Hooked]:
    """`certapi serve --workers N` on a fresh database, an account subscribed to a
    receiver that answers 200, and a published certification; killed at the end."""
    with fresh_database(kind, tmp_path, name) as url, \
            Receiver(lambda r: Answer(200)) as receiver:
        server = LiveServer(url, tmp_path / "serve.log", workers=workers).start()
        try:
            headers = new_account(url)
            secret = subscribe(server, headers, receiver.url)
            yield Hooked(url, server, receiver, headers, secret, published(server, headers))
        finally:
            server.kill()


@pytest.mark.parametrize("kind", backends())
def test_serve_with_four_workers_sends_each_attempt_once(kind, tmp_path, monkeypatch):
    # Nothing is killed here, so no lease needs to run out: a generous timeout keeps a
    # slow moment of a loaded machine from turning an answered attempt into a retry.
    monkeypatch.setenv("CERTAPI_WEBHOOK_TIMEOUT", "5")
    # Every event fails once (500), then succeeds: exactly two attempts per event.
    seen = collections.Counter()
    lock = threading.Lock()

    def respond(received):
        with lock:
            seen[received.id] += 1
            return Answer(500 if seen[received.id] == 1 else 200)

    with fresh_database(kind, tmp_path, "hooks") as url, Receiver(respond) as receiver:
        server = LiveServer(url, tmp_path / "serve.log", workers=4).start()
        try:
            headers = new_account(url)
            secret = subscribe(server, headers, receiver.url)
            with Writer(server.url, headers, published(server, headers)) as writer:
                receiver.wait_for(lambda r: len(r.received) >= 80, 60)
            assert writer.acknowledged > 5
            expected = committed_events(url)
            receiver.wait_for(lambda r: all(seen[i] >= 2 for i in expected), DELIVER_SECONDS)
            time.sleep(2)  # time for any duplicate to show up
        finally:
            server.kill()
        counts = collections.Counter(receiver.ids())
        assert set(counts) == expected
        assert {n for n in counts.values()} == {2}, [i for i, n in counts.items() if n != 2][:5]
        assert_all_signed(receiver, secret, expected)
        # Every attempt that reached the receiver was counted. (An attempt can fail before
        # it reaches it, e.g. on a kept-alive connection the receiver just closed: that
        # is one attempt more in the log, not a request more at the receiver.)
        rows = query(url, "SELECT event_id, status, attempts FROM webhook_delivery")
        assert {status for _, status, _ in rows} == {"succeeded"}
        assert all(attempts >= counts[event_id] for event_id, _, attempts in rows)


class StallAfter:
    """Answers the first ``count`` deliveries at once, then holds every answer until
    ``release()``: the senders fall behind the writers for certain, so a kill leaves
    committed events unsent however fast the machine delivers."""

    def __init__(self, count: int):
        self.count = count
        self.answered = 0
        self.lock = threading.Lock()
        self.released = threading.Event()

    def __call__(self, _received: object) -> Answer:
        with self.lock:
            self.answered += 1
            stall = self.answered > self.count
        if stall:
            self.released.wait(30)
        return Answer(200)

    def release(self) -> None:
        self.released.set()


@pytest.mark.parametrize("kind", backends())
def test_kill_9_of_serve_loses_no_committed_event(kind, tmp_path):
    stall = StallAfter(30)
    with fresh_database(kind, tmp_path, "hooks") as url, Receiver(stall) as receiver:
        server = LiveServer(url, tmp_path / "first.log", workers=2).start()
        try:
            headers = new_account(url)
            secret = subscribe(server, headers, receiver.url)
            with Writer(server.url, headers, published(server, headers)):
                receiver.wait_for(lambda r: len(r.received) >= 30, 60)
                time.sleep(0.5)  # more writes while the senders are held up
                server.kill()  # writing and delivering, both in full flow
        finally:
            server.kill()
            stall.release()
        expected = committed_events(url)
        assert not expected <= set(receiver.ids())  # the kill did leave events unsent

        restarted = LiveServer(url, tmp_path / "second.log", workers=2).start()
        try:
            wait_for_all(receiver, expected)
        finally:
            restarted.kill()
        assert_all_signed(receiver, secret, expected)


def start_worker(url: str, log_path) -> subprocess.Popen:
    with log_path.open("ab") as log:
        return subprocess.Popen([CERTAPI, "worker", "--database-url", url], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def kill_9(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(10)


@pytest.mark.parametrize("kind", backends())
def test_kill_9_of_worker_loses_no_committed_event(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("CERTAPI_WEBHOOK_BACKGROUND", "0")  # `serve` leaves it to the worker
    with fresh_database(kind, tmp_path, "hooks") as url, \
            Receiver(lambda r: Answer(200, delay=0.05)) as receiver:
        server = LiveServer(url, tmp_path / "serve.log", workers=2).start()
        worker = None
        try:
            headers = new_account(url)
            secret = subscribe(server, headers, receiver.url)
            with Writer(server.url, headers, published(server, headers)):
                time.sleep(1)
                assert receiver.received == []  # serve sends nothing itself here
                worker = start_worker(url, tmp_path / "worker1.log")
                receiver.wait_for(lambda r: len(r.received) >= 30, 60)
                kill_9(worker)
                time.sleep(0.5)
            expected = committed_events(url)
            assert not expected <= set(receiver.ids())
            worker = start_worker(url, tmp_path / "worker2.log")
            wait_for_all(receiver, expected)
        finally:
            if worker is not None:
                kill_9(worker)
            server.kill()
        assert_all_signed(receiver, secret, expected)
