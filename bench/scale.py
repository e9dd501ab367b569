"""Program-scale measurements for bench/run.py: bulk enrollment against single enrolls,
and the CSV export of the big certification (rows/s, first byte, worker RSS growth).
The stats endpoint is measured under load with wrk (the ``stats`` scenario of
scenario.lua). The reference has none of these features, so only certapi is measured.

Bulk requests enroll the free users (those the seed left without any enrollment) into
certifications made for the purpose, so they never touch the rows other scenarios use."""
import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from bench.ids import CERTIFICATION, PARTNER, USER, Layout, uid

BULK_ITEMS = 1000
SINGLE_ENROLLS = 200


class Client:
    """One keep-alive HTTP connection with the bench's key."""

    def __init__(self, url: str, key: str):
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else None
        self.connection.request(method, path, body=payload, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def certification(self, name: str) -> str:
        status, body = self.call("POST", "/v1/certifications", {"name": name, "status": "published"})
        if status != 201:
            raise RuntimeError(f"creating a certification answered {status}: {body[:200]!r}")
        return json.loads(body)["uuid"]

    def close(self) -> None:
        self.connection.close()


def _item(layout: Layout, user: int) -> dict:
    item = {"user_uuid": uid(USER, user)}
    partner = layout.partner_of(user)
    if partner is not None:
        item["partnership_uuid"] = uid(PARTNER, partner)
    return item


def measure_bulk(url: str, key: str, layout: Layout, requests: int) -> dict:
    """p50 of one bulk request of up to 1000 free users (each into a fresh certification),
    and the items/s of the same users enrolled one request at a time, in the same run."""
    client = Client(url, key)
    users = list(range(layout.big, layout.big + min(BULK_ITEMS, layout.free_users)))
    items = [_item(layout, u) for u in users]
    try:
        seconds, created = [], 0
        for n in range(requests):
            path = f"/v1/certifications/{client.certification(f'Bulk {n}')}/enrollments/bulk"
            started = time.perf_counter()
            status, body = client.call("POST", path, {"enrollments": items})
            seconds.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"bulk answered {status}: {body[:200]!r}")
            created += json.loads(body)["summary"]["created"]
        single_path = f"/v1/certifications/{client.certification('Singles')}/enrollments"
        singles = items[:SINGLE_ENROLLS]
        started = time.perf_counter()
        for item in singles:
            status, body = client.call("POST", single_path, item)
            if status != 201:
                raise RuntimeError(f"enroll answered {status}: {body[:200]!r}")
        single_seconds = time.perf_counter() - started
    finally:
        client.close()
    p50 = statistics.median(seconds)
    return {
        "items": len(items), "requests": requests, "created": created,
        "p50_ms": p50 * 1000, "max_ms": max(seconds) * 1000, "items_per_s": len(items) / p50,
        "single_items_per_s": len(singles) / single_seconds,
        "single_p50_ms": single_seconds / len(singles) * 1000,
    }


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


class RssWatch:
    """Samples the workers' resident set size every few milliseconds while it runs."""

    def __init__(self, pids: list[int], every: float = 0.01):
        self.pids, self.every = pids, every
        self.before = {pid: _rss_mb(pid) or 0.0 for pid in pids}
        self.peak = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                now = _rss_mb(pid)
                if now is not None and now > self.peak[pid]:
                    self.peak[pid] = now
            time.sleep(self.every)

    def __enter__(self) -> "RssWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return max(self.peak[pid] - self.before[pid] for pid in self.pids)


def measure_csv(url: str, key: str, layout: Layout, worker_pids: Callable[[], list[int]],
                repeats: int) -> dict:
    """The big certification's enrollments as CSV, streamed: rows/s, time to the first
    byte and the largest RSS growth of any worker while the export runs (median of
    ``repeats`` exports)."""
    parts = urlsplit(url)
    path = f"/v1/certifications/{uid(CERTIFICATION, 0)}/enrollments?format=csv"
    runs = []
    for _ in range(repeats):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        with RssWatch(worker_pids()) as watch:
            started = time.perf_counter()
            connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
            response = connection.getresponse()
            first = response.read(1)
            first_byte = time.perf_counter() - started
            size, lines = len(first), first.count(b"\n")
            while chunk := response.read(65536):
                size += len(chunk)
                lines += chunk.count(b"\n")
            total = time.perf_counter() - started
        connection.close()
        if response.status != 200:
            raise RuntimeError(f"CSV export answered {response.status}")
        rows = lines - 1  # the header
        if rows != layout.big:
            raise RuntimeError(f"CSV export gave {rows} rows, expected {layout.big}")
        runs.append({"rows": rows, "bytes": size, "seconds": total, "first_byte_ms": first_byte * 1000,
                     "rows_per_s": rows / total, "rss_growth_mb": watch.growth_mb})
    runs.sort(key=lambda run: run["seconds"])
    median = runs[len(runs) // 2]
    return {**median, "runs": runs, "max_rss_growth_mb": max(r["rss_growth_mb"] for r in runs)}


def measure_stats_under_load(url: str, key: str, layout: Layout, load: Callable[[], dict]) -> dict:
    """Latency of the big certification's stats (in all, and for one partnership, in
    turn) from one client while ``load`` (wrk running the bench's mix) keeps the server busy."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Authorization": f"Bearer {key}"}
    base = f"/v1/certifications/{uid(CERTIFICATION, 0)}/stats"
    found: dict = {}
    thread = threading.Thread(target=lambda: found.update(load=load()), daemon=True)
    thread.start()
    time.sleep(0.5)  # let the load reach its pace
    seconds, statuses, n = [], {}, 0
    while thread.is_alive():
        path = base if n % 2 == 0 else f"{base}?partnership_uuid={uid(PARTNER, n % layout.partners)}"
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        seconds.append(time.perf_counter() - started)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        n += 1
    thread.join()
    connection.close()
    whole = sorted(s for i, s in enumerate(seconds) if i % 2 == 0)
    return {
        "requests": len(seconds), "statuses": statuses,
        "p50_ms": statistics.median(seconds) * 1000,
        "p99_ms": sorted(seconds)[int(len(seconds) * 0.99)] * 1000,
        "whole_p50_ms": statistics.median(whole) * 1000 if whole else None,
        "load_rps": found.get("load", {}).get("rps"),
    }
