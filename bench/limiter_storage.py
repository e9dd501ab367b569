"""Where the SQLite rate-limit counters should live: the main database or a file of their
own. Serves a fresh SQLite database with 2 workers for each choice (and with limiting
off), drives GETs and POSTs at once with one key, and prints throughput and latency.

    .venv/bin/python -m bench.limiter_storage [--seconds 15]

Counting makes every request a write; in the main file those writes queue with the
POSTs for SQLite's single write lock. The numbers behind the choice are in
bench/PROFILE.md."""
import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CERTAPI = str(Path(sys.executable).with_name("certapi"))
READERS, WRITERS = 16, 4


def cli(url: str, *args: str) -> str:
    return subprocess.run([CERTAPI, *args, "--database-url", url], check=True,
                          capture_output=True, text=True).stdout.strip()


async def drive(base: str, headers: dict, seconds: float) -> dict:
    latencies = {"GET": [], "POST": []}
    deadline = time.monotonic() + seconds

    async def loop(http, method):
        n = 0
        while time.monotonic() < deadline:
            n += 1
            started = time.perf_counter()
            if method == "GET":
                response = await http.get("/v1/partners")
            else:
                response = await http.post("/v1/partners", json={"name": f"p{n}"})
            assert response.status_code in (200, 201), response.text
            latencies[method].append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=READERS + WRITERS)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as http:
        await asyncio.gather(*[loop(http, "GET") for _ in range(READERS)],
                             *[loop(http, "POST") for _ in range(WRITERS)])
    result = {}
    for method, values in latencies.items():
        values.sort()
        result[method] = (len(values) / seconds, statistics.median(values) * 1000,
                          values[int(len(values) * 0.99)] * 1000)
    return result


def measure(label: str, env_extra: dict, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        cli(url, "migrate")
        account = cli(url, "accounts", "create", "Bench")
        key = cli(url, "keys", "create", account, "--rate-limit", "100000000")
        port = 18000 + os.getpid() % 1000
        env = {**os.environ, **env_extra}
        server = subprocess.Popen([CERTAPI, "serve", "--workers", "2", "--port", str(port),
                                   "--database-url", url, "--log-level", "warning"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(1200):
                try:
                    if httpx.get(f"{base}/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            result = asyncio.run(drive(base, {"Authorization": f"Bearer {key}"}, seconds))
        finally:
            server.terminate()
            server.wait(30)
    for method, (rate, p50, p99) in result.items():
        print(f"{label:<28} {method:<5} {rate:8.1f} req/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms",
              flush=True)


def unlimited_app():
    """certapi with rate limiting off, for `bench.run --targets NAME=bench.limiter_storage:unlimited_app()`."""
    from certapi.app import create_app
    from certapi.config import Settings

    return create_app(Settings(rate_limit=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {READERS} GET + {WRITERS} POST connections")
    measure("limiting off", {"CERTAPI_RATE_LIMIT": "0"}, args.seconds)
    measure("counters in own file", {}, args.seconds)
    measure("counters in main database", {"CERTAPI_RATE_LIMIT_STORAGE": "certapi+sql://"},
            args.seconds)


if __name__ == "__main__":
    main()
