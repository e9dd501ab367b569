"""A real `certapi serve` in a subprocess on a free loopback port, for tests that need
several worker processes, signals or crashes. Every server started here is stopped
(SIGKILL at the latest) when its test ends."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CERTAPI = str(Path(sys.executable).with_name("certapi"))
START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(database_url: str, *args: str) -> str:
    """Run a `certapi` operator command against ``database_url``; its stdout."""
    done = subprocess.run([CERTAPI, *args, "--database-url", database_url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def new_account(database_url: str, name: str = "Load", rate_limit: int | None = None) -> dict:
    """A fresh account with a write key (with its own rate limit if given), made with the
    operator commands."""
    account = cli(database_url, "accounts", "create", name)
    extra = () if rate_limit is None else ("--rate-limit", str(rate_limit))
    key = cli(database_url, "keys", "create", account, *extra)
    return {"Authorization": f"Bearer {key}"}


class LiveServer:
    # Load tests fire far more than the default 500 requests per minute with one key: the
    # limiter still counts every request, but admits them.
    LOAD_RATE_LIMIT = 1_000_000

    def __init__(self, database_url: str, log_path: Path, workers: int = 4,
                 rate_limit: int = LOAD_RATE_LIMIT):
        self.database_url = database_url
        self.rate_limit = rate_limit
        self.log_path = log_path
        self.workers = workers
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LiveServer":
        self.port = free_port()
        env = {**os.environ, "CERTAPI_KEY_CACHE_SECONDS": "5",
               "CERTAPI_RATE_LIMIT": str(self.rate_limit)}
        env.pop("DATABASE_URL", None)
        with self.log_path.open("ab") as log:
            # A session of its own, so the master and every worker can be signalled at once.
            self.process = subprocess.Popen(
                [CERTAPI, "serve", "--workers", str(self.workers), "--port", str(self.port),
                 "--database-url", self.database_url, "--log-level", "warning"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"server did not answer within {START_SECONDS}s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
                             capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def terminate(self, timeout: float = 40) -> int:
        """SIGTERM to the master (what a supervisor sends); its exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the master and every worker, no goodbyes."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def read_until_closed(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too);
    a socket timeout ends it with what came, or with a note that nothing did."""
    reply = b""
    try:
        while chunk := conn.recv(65536):
            reply += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return reply or b"(no answer within the socket timeout)"
    return reply
