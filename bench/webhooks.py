"""Write throughput with one subscribed webhook endpoint against none, and the delivery
lag under that load.

    python -m bench.webhooks [--quick] [bench.run options]

Runs bench/run.py's write scenarios (enroll, progress, attempt) on two servers, each on
its own copy of the seeded database, alternating as bench/run.py does: ``certapi``
(no endpoint: events are still recorded for the events API, nothing is sent) and
``webhooks`` (bench/webhook_target.py: one endpoint subscribed to a receiver in this
process that answers 200). Prints the throughput ratio (target >= 0.85), the lag from
an event's timestamp to its arrival (p50, p99, max) and what was still pending when the
servers stopped, and each server's workers' CPU time per write (utime + stime from
/proc, during its own slices, divided by the requests answered): the steadier figure
on a shared machine."""
import asyncio
import json
import os
import sqlite3
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httptools

from bench import run as bench_run

WRITES = "enroll,progress,attempt"


class Receiver:
    """The subscribed endpoint: answers every POST with 200 and notes, per delivery, its
    webhook-id and the lag from the event's timestamp to its arrival.

    It shares the two cores with the servers under test, so it is made cheap: one
    asyncio loop in a thread, httptools (uvicorn's parser) reading the requests, one
    canned answer, no thread per connection and no header objects (Python's
    ThreadingHTTPServer cost about three times the CPU per delivery)."""

    ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"

    def __init__(self):
        self.lags: list[float] = []
        self.ids: set[bytes] = set()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait()

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            self.loop.create_server(lambda: _Connection(self), "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def arrived(self, webhook_id: bytes, body: bytes) -> None:
        stamp = json.loads(body)["timestamp"]
        raised = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        self.lags.append(time.time() - raised)
        self.ids.add(webhook_id)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


class _Connection(asyncio.Protocol):
    def __init__(self, receiver: Receiver):
        self.receiver = receiver
        self.parser = httptools.HttpRequestParser(self)
        self.webhook_id, self.body = b"", []

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"webhook-id":
            self.webhook_id = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.receiver.arrived(self.webhook_id, b"".join(self.body))
        self.webhook_id, self.body = b"", []
        self.transport.write(Receiver.ANSWER)


class WorkerCpu:
    """Wraps bench/run.py's wrk runs to add up, per server, its workers' CPU seconds
    during its slices and the requests they answered."""

    def __init__(self):
        self.servers: dict[str, object] = {}  # url -> bench_run.Server
        self.cpu: dict[str, float] = {}
        self.requests: dict[str, int] = {}
        self.load: list[float] = []
        # Each server's sender process(es) (children of its leading worker): pid -> the
        # CPU seconds it had used when last seen, so a replaced one still counts.
        self.senders: dict[str, dict[int, float]] = {}
        original_init, original_wrk = bench_run.Server.__init__, bench_run.run_wrk

        def server_init(server, *args, **kwargs):
            original_init(server, *args, **kwargs)
            self.servers[server.url] = server

        def run_wrk(url, *args, **kwargs):
            server = self.servers.get(url)
            pids = server.worker_pids() if server else []
            before = bench_run.cpu_seconds(pids)
            result = original_wrk(url, *args, **kwargs)
            if server:
                self.cpu[server.name] = self.cpu.get(server.name, 0.0) + bench_run.cpu_seconds(pids) - before
                self.requests[server.name] = self.requests.get(server.name, 0) + result["requests"]
                seen = self.senders.setdefault(server.name, {})
                for child in bench_run.children_of(pids):
                    seen[child] = bench_run.cpu_seconds([child])
            self.load.append(os.getloadavg()[0])
            return result

        bench_run.Server.__init__ = server_init
        bench_run.run_wrk = run_wrk

    def per_write_ms(self, name: str) -> float:
        return 1000 * self.cpu.get(name, 0.0) / max(1, self.requests.get(name, 0))

    def sender_seconds(self, name: str) -> float:
        """CPU the server's sender processes had used by the end of its last slice (from
        their start: the warm-up's deliveries included, the drain after the last slice not)."""
        return sum(self.senders.get(name, {}).values())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    receiver = Receiver()
    cpu = WorkerCpu()
    os.environ.update(BENCH_WEBHOOK_URL=receiver.url, CERTAPI_WEBHOOK_ALLOW_PRIVATE="1")
    report = Path(os.environ.get("TMPDIR", "/tmp")) / f"certapi-bench-webhooks-{os.getpid()}.json"
    bench_run.main([*argv, "--targets", "certapi,webhooks=bench.webhook_target:create_app()",
                    "--scenarios", WRITES, "--json", str(report), "--keep"])
    results = json.loads(report.read_text())["results"]
    print("\nwrite throughput, one subscribed endpoint / none:")
    ratios = []
    for scenario in WRITES.split(","):
        plain, hooked = results["certapi"][scenario]["rps"], results["webhooks"][scenario]["rps"]
        ratios.append(hooked / plain)
        print(f"  {scenario:<9} {plain:7.0f} -> {hooked:7.0f} req/s  ratio {hooked / plain:.2f}")
    overall = min(ratios)
    print(f"  lowest ratio {overall:.2f} (target >= 0.85): {'ok' if overall >= 0.85 else 'MISSED'}")
    plain_cpu, hooked_cpu = cpu.per_write_ms("certapi"), cpu.per_write_ms("webhooks")
    print(f"  workers' CPU per write (all write scenarios): {plain_cpu:.2f} -> "
          f"{hooked_cpu:.2f} ms, {hooked_cpu / plain_cpu if plain_cpu else float('nan'):.2f}x "
          f"(0.85 needs under about 1.18x)")
    sender_seconds = cpu.sender_seconds("webhooks")
    if receiver.lags:
        print(f"  the sender process's CPU: {sender_seconds:.1f} s, "
              f"{1000 * sender_seconds / len(receiver.lags):.2f} ms per delivery "
              f"(runs beside the workers on the same cores; not in the workers' figure)")
    if cpu.load:
        print(f"  load average (1 min) after each slice: {min(cpu.load):.1f} to {max(cpu.load):.1f}")
    lags = list(receiver.lags)
    print(f"\ndelivery lag under load (event timestamp -> arrival), {len(lags)} deliveries "
          f"of {len(receiver.ids)} events: "
          f"p50 {percentile(lags, 0.5):.2f} s, p99 {percentile(lags, 0.99):.2f} s, "
          f"max {max(lags, default=float('nan')):.2f} s")
    workdirs = sorted(Path(os.environ.get("TMPDIR", "/tmp")).glob("certapi-bench-*/webhooks.db"),
                      key=lambda p: p.stat().st_mtime)
    if workdirs:
        with sqlite3.connect(workdirs[-1]) as db:
            pending = db.execute(
                "SELECT count(*) FROM webhook_delivery WHERE status = 'pending'").fetchone()[0]
            total = db.execute("SELECT count(*) FROM webhook_delivery").fetchone()[0]
            # Events whose delivery rows no sender had written yet (migration 0010).
            unwritten = db.execute("SELECT count(*) FROM event WHERE fanout IS NOT NULL") \
                .fetchone()[0]
        print(f"deliveries: {total}, still pending when the servers stopped: {pending}, "
              f"events not yet fanned out: {unwritten} ({workdirs[-1].parent})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
