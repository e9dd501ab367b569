"""List pages and stats at a size: single-client latency on a big database.

    python -m bench.size                          # seeds 1,000,000 enrollments (SQLite)
    python -m bench.size --database-url URL       # an already seeded database (or PostgreSQL)

With no database given, seeds one (bench/seed.py: 600,000 users, 1,000,000 enrollments,
500,000 in certification 0) in a temporary directory, or at ``--keep-at PATH`` to reuse
it. Then migrates it, serves it with one worker and sends each request below
``--requests`` times from one client, one after another, printing p50 and p90 (ms) and
the ``total`` each answered: the cost of a page must not grow with the rows it counts.
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.ids import ACCOUNT, CERTIFICATION, PARTNER, uid
from bench.run import ROOT, free_port

PER_PAGE = 25
# The console script next to this interpreter (the package is installed in the venv).
CERTAPI = str(Path(sys.executable).parent / "certapi")


def requests_for(enrollments: int, users: int) -> list[tuple[str, str]]:
    """(label, path) for the big certification's lists and stats, and /users."""
    big = enrollments // 2
    base = f"/v1/certifications/{uid(CERTIFICATION, 0)}"
    last = -(-big // PER_PAGE)
    completed_last = -(-(big // 5) // PER_PAGE)  # the seed completes 2 in 10
    partner = uid(PARTNER, 3)
    return [
        ("enrollments page 1", f"{base}/enrollments?per_page={PER_PAGE}"),
        ("enrollments last page", f"{base}/enrollments?per_page={PER_PAGE}&page={last}"),
        ("?status=completed page 1", f"{base}/enrollments?per_page={PER_PAGE}&status=completed"),
        ("?status=completed last page",
         f"{base}/enrollments?per_page={PER_PAGE}&status=completed&page={completed_last}"),
        ("?partnership_uuid= page 1",
         f"{base}/enrollments?per_page={PER_PAGE}&partnership_uuid={partner}"),
        ("/users page 1", f"/v1/users?per_page={PER_PAGE}"),
        ("/users last page", f"/v1/users?per_page={PER_PAGE}&page={-(-users // PER_PAGE)}"),
        ("stats", f"{base}/stats"),
        ("stats ?partnership_uuid=", f"{base}/stats?partnership_uuid={partner}"),
    ]


def bench_key(database_url: str) -> str:
    """A fresh write key of the seeded account, never rate-limited."""
    from models import Account, ApiKey, database
    from models.db import init_database

    init_database(database_url)
    with database.atomic():
        _, key = ApiKey.issue(Account.get_by_id(uid(ACCOUNT, 0)), "write", rate_limit=10**9)
    database.close()
    return key


def serve(database_url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [CERTAPI, "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url,
                       "CERTAPI_WEBHOOK_BACKGROUND": "0"},
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited; see {log}")
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"the server did not start; see {log}")


def measure(url: str, key: str, requests: list[tuple[str, str]], n: int) -> list[dict]:
    port = int(url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {key}"}
    found = []
    for label, path in requests:
        seconds, total = [], None
        for i in range(n + 2):  # two warm-up requests fill the caches
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}: {body[:200]!r}")
            if i >= 2:
                seconds.append(time.perf_counter() - started)
        answer = json.loads(body)
        total = answer.get("pagination", {}).get("total", answer.get("enrollments", {}).get("total"))
        seconds.sort()
        found.append({"request": label, "p50_ms": statistics.median(seconds) * 1000,
                      "p90_ms": seconds[int(len(seconds) * 0.9)] * 1000, "total": total})
    connection.close()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="an already seeded database (bench/seed.py)")
    parser.add_argument("--keep-at", type=Path, help="seed into this SQLite file and keep it")
    parser.add_argument("--users", type=int, default=600_000)
    parser.add_argument("--enrollments", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="certapi-size-"))
    url = args.database_url
    if url is None:
        path = args.keep_at or workdir / "size.db"
        url = f"sqlite:///{path.resolve()}"
        print(f"seeding {args.enrollments:,} enrollments into {path} ...", flush=True)
        subprocess.run([sys.executable, "-m", "bench.seed", url, "--users", str(args.users),
                        "--enrollments", str(args.enrollments)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    subprocess.run([CERTAPI, "migrate"], cwd=ROOT, check=True,
                   env={**os.environ, "DATABASE_URL": url}, stdout=subprocess.DEVNULL)
    print(f"migrated in {time.perf_counter() - started:.1f} s", flush=True)
    key = bench_key(url)
    process, server = serve(url, workdir / "server.log")
    try:
        found = measure(server, key, requests_for(args.enrollments, args.users), args.requests)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    load = os.getloadavg()
    print(f"\n{url.split(':')[0]}, {args.enrollments:,} enrollments, one client, "
          f"{args.requests} requests each; load average {load[0]:.1f} {load[1]:.1f}")
    print("| request | p50 ms | p90 ms | total |\n|---|---|---|---|")
    for row in found:
        print(f"| {row['request']} | {row['p50_ms']:.1f} | {row['p90_ms']:.1f} | {row['total']:,} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
