"""Load benchmark: certapi against the FastAPI reference (bench/reference), same database,
same server, same load, measured alternately in one run.

    python -m bench.run                 # the full run: 100,000 enrollments, 4 rounds of 5 s
    python -m bench.run --quick         # 20,000 enrollments, 2 rounds of 3 s

Seeds one SQLite database (bench/seed.py), gives each server its own copy, serves both
with gunicorn and 2 uvicorn workers, warms them up with reads, then for each scenario
runs wrk against certapi and the reference one after the other, in short slices whose
order alternates (ABBA...), so bursts of other load on a shared machine fall on both
alike; it prints requests/s, p50, p99 and errors per scenario with the
certapi/reference ratios, the last-page/first-page latency ratio and the workers' RSS.
Every non-2xx answer is an error: the scenarios are built so that none is expected.

Both servers run with the production defaults (bench/production.py): rate limiting on
with a limit the load never reaches, an Idempotency-Key on a share of the writes
(--idempotency-share), one webhook endpoint per account delivered by each worker's
background sender to a receiver in this process that answers 200; --plain turns them off.

Then, for both servers, the program-scale figures (bench/scale.py): stats p50 under wrk's
load and stats throughput, the CSV export of the big certification (rows/s, first byte,
worker RSS growth) and bulk enrollment of 1000 users against single enrolls of the same
users, with certapi/reference ratios.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench import production, scale
from bench.ids import Layout
from certapi.metrics_dir import metrics_enabled

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "scenario.lua"
SCENARIOS = ("enroll", "get", "list_first", "list_last", "progress", "attempt", "mix")
SCALE = ("stats", "csv", "bulk")
TARGETS = {
    # As `certapi serve` runs it: the app and a webhook sender in every worker.
    "certapi": "certapi.server:served_app()",
    "reference": "bench.reference.app:create_app()",
}
PER_PAGE = 25
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROGRESS = 50


def children_of(pids: list[int]) -> list[int]:
    """The child processes of ``pids``."""
    found = []
    for pid in pids:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                             text=True).stdout
        found += [int(child) for child in out.split()]
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system, threads included) ``pids`` have used so far; a process
    gone meanwhile counts nothing."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One gunicorn master with N uvicorn workers on a private copy of the database."""

    def __init__(self, name: str, app: str, database_url: str, workdir: Path, workers: int,
                 extra_env: dict | None = None):
        self.name, self.port = name, free_port()
        self.log = open(workdir / f"{name}.log", "w")
        env = {**os.environ, **(extra_env or {}), "DATABASE_URL": database_url}
        if metrics_enabled(env):
            # What `certapi serve --workers N` does: one directory the workers' values meet in.
            shared = workdir / f"metrics-{name}"
            shared.mkdir(exist_ok=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(workers),
             # The worker class `certapi serve --workers N` uses (certapi/server.py: uvicorn
             # on uvloop and httptools, with certapi's bounded request heads), for both
             # servers: slow-client limits are a production feature too.
             "--worker-class", "certapi.server.Worker", "--no-control-socket",
             "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning",
             "--graceful-timeout", "5", app],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not start in {timeout:.0f} s; see {self.log.name}")

    def worker_pids(self) -> list[int]:
        return children_of([self.process.pid])

    def worker_cpu_seconds(self) -> float:
        """CPU time (user + system) the workers have used so far, threads included: per
        request, a steadier figure than req/s on a shared machine, where a slice's rate
        follows whatever else runs."""
        return cpu_seconds(self.worker_pids())

    def worker_memory(self) -> list[dict]:
        """Current and peak resident set size of each worker, in MB."""
        result = []
        for pid in self.worker_pids():
            fields = {}
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        fields[key] = int(value.split()[0]) / 1024
            except FileNotFoundError:
                continue
            result.append({"pid": pid, "rss_mb": fields.get("VmRSS"), "peak_mb": fields.get("VmHWM")})
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def postgres_database(server_url: str, name: str, template: str | None = None) -> str:
    """A fresh database ``name`` on the PostgreSQL server of ``server_url`` (a copy of
    ``template`` when given: each bench server gets its own copy of the seed); its URL."""
    import psycopg2

    parts = urlsplit(server_url)
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    admin.close()
    return urlunsplit(parts._replace(path=f"/{name}"))


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is not installed (make bench installs it: apt-get install -y wrk)")
    return path


def run_wrk(url: str, scenario: str, args: dict, duration: int, threads: int,
            connections: int) -> dict:
    command = [
        ensure_wrk(), "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
        "--timeout", "10s", "-s", str(SCRIPT), url, "--", scenario,
        *(f"{key}={value}" for key, value in args.items()),
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result = json.loads(line[len("BENCH_JSON "):])
            break
    else:
        raise RuntimeError(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")
    seconds = result["duration_us"] / 1e6
    ok = sum(n for status, n in result["statuses"].items() if status.startswith("2"))
    answered = sum(result["statuses"].values())
    result.update(
        rps=result["requests"] / seconds if seconds else 0.0,
        p50_ms=result["p50_us"] / 1000, p99_ms=result["p99_us"] / 1000,
        errors=answered - ok + result["socket_errors"],
    )
    return result


def wrk_args(layout: Layout, key: str, threads: int, part: int, parts: int) -> dict:
    return {
        "key": key, "threads": threads, "part": part, "parts": parts,
        "enrollments": layout.enrollments, "big": layout.big,
        "certifications": layout.certifications, "free_users": layout.free_users,
        "partners": layout.partners, "partner_every": layout.partner_every,
        "progress_pool": layout.progress_pool, "attempt_pool": layout.attempt_pool,
        "per_page": PER_PAGE, "progress": PROGRESS, "nonce": time.time_ns(),
    }


def combine(runs: list[dict]) -> dict:
    """Several rounds of one scenario on one server: total rate, mean percentiles."""
    seconds = sum(r["duration_us"] for r in runs) / 1e6
    return {
        "rps": sum(r["requests"] for r in runs) / seconds,
        "p50_ms": sum(r["p50_ms"] for r in runs) / len(runs),
        "p99_ms": sum(r["p99_ms"] for r in runs) / len(runs),
        "errors": sum(r["errors"] for r in runs),
        "wraps": sum(r["wraps"] for r in runs),
        # Only the scenario slices are timed for CPU (the program-scale runs share a server
        # with other load): None elsewhere.
        "cpu_ms": (1000 * sum(r["cpu_seconds"] for r in runs) / max(1, sum(r["requests"] for r in runs))
                   if all("cpu_seconds" in r for r in runs) else None),
        "statuses": [r["statuses"] for r in runs],
    }


def report(results: dict, memory: dict, names: list[str]) -> list[str]:
    """The table, the ratios against the reference and the verdict on the targets for
    every other server; returns the targets missed."""
    reference = "reference" if "reference" in names else None
    others = [n for n in names if n != reference]
    print()
    head = f"{'scenario':<11}"
    for name in names:
        head += f" | {name[:9]:>9} req/s   p50 ms   p99 ms  err"
    if reference:
        for name in others:
            head += f" | {name[:9]:>9}/ref req/s  p99"
    print(head)
    print("-" * len(head))
    for scenario in SCENARIOS:
        if scenario not in results[names[0]]:
            continue
        line = f"{scenario:<11}"
        for name in names:
            r = results[name][scenario]
            line += f" | {r['rps']:>15.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>4}"
        if reference:
            b = results[reference][scenario]
            for name in others:
                a = results[name][scenario]
                line += f" | {a['rps'] / b['rps']:>19.2f} {a['p99_ms'] / b['p99_ms']:>4.2f}"
        print(line)
    print("\nworkers' CPU per request, ms (user + system, every thread; lower is better):")
    for scenario in SCENARIOS:
        if scenario not in results[names[0]] or results[names[0]][scenario]["cpu_ms"] is None:
            continue
        line = f"  {scenario:<11}" + "".join(
            f" {name[:9]:>9} {results[name][scenario]['cpu_ms']:6.2f}" for name in names)
        if reference:
            b = results[reference][scenario]["cpu_ms"]
            line += "".join(f"   {name[:9]}/ref {results[name][scenario]['cpu_ms'] / b:4.2f}"
                            for name in others if b)
        print(line)
    print()
    for name in names:
        workers = memory.get(name, [])
        peaks = ", ".join(f"{w['rss_mb']:.0f} MB now / {w['peak_mb']:.0f} MB peak" for w in workers)
        print(f"{name} worker RSS: {peaks}")

    missed = []
    for name in others:
        own = results[name]

        def check(label, ok, detail, name=name):
            print(f"  [{'ok' if ok else 'MISSED'}] {label}: {detail}")
            if not ok:
                missed.append(f"{name}: {label}")

        print(f"\ntargets for {name}:")
        if reference and "mix" in own:
            ref = results[reference]["mix"]
            check("mix throughput ratio >= 1.0", own["mix"]["rps"] >= ref["rps"],
                  f"{own['mix']['rps'] / ref['rps']:.2f}")
            check("mix p99 ratio <= 1.0", own["mix"]["p99_ms"] <= ref["p99_ms"],
                  f"{own['mix']['p99_ms'] / ref['p99_ms']:.2f}")
        errors = sum(r["errors"] for r in own.values())
        check("zero errors", errors == 0, f"{errors}")
        if "list_first" in own and "list_last" in own:
            ratio = own["list_last"]["p50_ms"] / own["list_first"]["p50_ms"]
            check("last page <= 3x page 1 (p50)", ratio <= 3, f"{ratio:.2f}x")
        peak = max((w["peak_mb"] for w in memory.get(name, [])), default=0)
        check("worker RSS < 120 MB", peak < 120, f"peak {peak:.0f} MB")
    for name in names:
        errors = sum(r["errors"] for r in results[name].values())
        if errors:
            print(f"  note: {name} answered {errors} requests with non-2xx statuses: "
                  + "; ".join(f"{s}: {r['statuses']}" for s, r in results[name].items() if r["errors"]))
    return missed


def measure_scale(server: "Server", layout: Layout, key: str, parts: tuple[str, ...], args,
                  duration: int, rounds: int) -> dict:
    """The program-scale figures of one server (see bench/scale.py)."""
    found: dict = {}
    if "stats" in parts:
        # One client asking for the stats while wrk runs the mix: the latency a program
        # manager sees on a busy server.
        load = lambda: run_wrk(server.url, "mix", wrk_args(layout, key, args.threads, 0, 1),  # noqa: E731
                               duration * rounds, args.threads, args.connections)
        found["stats_under_load"] = scale.measure_stats_under_load(server.url, key, layout, load)
        # And the stats alone at wrk's concurrency: their throughput.
        runs = [run_wrk(server.url, "stats", wrk_args(layout, key, args.threads, 0, 1), duration,
                        args.threads, args.connections) for _ in range(rounds)]
        found["stats"] = combine(runs)
        print(f"  stats: {found['stats_under_load']['requests']} under the mix's load, then "
              f"{found['stats']['rps']:.0f} req/s alone", flush=True)
    if "csv" in parts:
        found["csv"] = scale.measure_csv(server.url, key, layout, server.worker_pids,
                                         repeats=1 if args.quick else 3)
        c = found["csv"]
        print(f"  CSV export: {c['rows']:,} rows in {c['seconds']:.2f} s", flush=True)
    if "bulk" in parts:  # last: it writes
        found["bulk"] = scale.measure_bulk(server.url, key, layout, requests=5 if args.quick else 10)
        print(f"  bulk: {found['bulk']['requests']} requests of {found['bulk']['items']} items", flush=True)
    return found


def scale_ratios(found: dict, reference: dict) -> dict[str, float]:
    """certapi/reference for each program-scale figure both have (higher is better)."""
    ratios = {}
    if "bulk" in found and "bulk" in reference:
        ratios["bulk"] = found["bulk"]["items_per_s"] / reference["bulk"]["items_per_s"]
    if "stats" in found and "stats" in reference:
        ratios["stats"] = found["stats"]["rps"] / reference["stats"]["rps"]
        ratios["stats_p99"] = found["stats"]["p99_ms"] / reference["stats"]["p99_ms"]
        ratios["stats_under_load_p50"] = (found["stats_under_load"]["p50_ms"]
                                          / reference["stats_under_load"]["p50_ms"])
    if "csv" in found and "csv" in reference:
        ratios["csv"] = found["csv"]["rows_per_s"] / reference["csv"]["rows_per_s"]
    return ratios


def report_scale(name: str, found: dict, single: dict | None,
                 reference: dict | None = None) -> list[str]:
    """The program-scale figures and their targets; returns the targets missed."""
    missed = []

    def check(label, ok, detail):
        if name == "reference":  # the targets are certapi's
            return
        print(f"  [{'ok' if ok else 'MISSED'}] {label}: {detail}")
        if not ok:
            missed.append(f"{name}: {label}")

    print(f"\nprogram scale, {name}:")
    if "bulk" in found:
        b = found["bulk"]
        print(f"  bulk: {b['items']} items, p50 {b['p50_ms']:.0f} ms (max {b['max_ms']:.0f} ms) = "
              f"{b['items_per_s']:,.0f} items/s; single enrolls of the same users one by one: "
              f"{b['single_items_per_s']:,.0f} items/s ({b['single_p50_ms']:.1f} ms each)"
              + (f"; wrk enroll ({single['rps']:.0f} req/s over many connections)" if single else ""))
        check("bulk of 1000 <= 0.5 s p50", b["p50_ms"] <= 500, f"{b['p50_ms']:.0f} ms")
        ratio = b["items_per_s"] / b["single_items_per_s"]
        check("bulk items/s >= 10x single enrolls", ratio >= 10, f"{ratio:.1f}x")
    if "stats" in found:
        u, s = found["stats_under_load"], found["stats"]
        print(f"  stats under the mix's load ({u['load_rps'] or 0:.0f} req/s of mix): {u['requests']} requests, "
              f"p50 {u['p50_ms']:.1f} ms (whole certification {u['whole_p50_ms'] or 0:.1f} ms), "
              f"p99 {u['p99_ms']:.1f} ms, statuses {u['statuses']}")
        print(f"  stats alone, {s['rps']:.0f} req/s at wrk's concurrency: p50 {s['p50_ms']:.1f} ms, "
              f"p99 {s['p99_ms']:.1f} ms, errors {s['errors']}")
        check("stats p50 <= 30 ms under load", u["p50_ms"] <= 30 and set(u["statuses"]) == {200},
              f"{u['p50_ms']:.1f} ms")
    if "csv" in found:
        c = found["csv"]
        print(f"  CSV: {c['rows']:,} rows, {c['bytes'] / 1e6:.1f} MB in {c['seconds']:.2f} s = "
              f"{c['rows_per_s']:,.0f} rows/s; first byte {c['first_byte_ms']:.0f} ms; "
              f"worker RSS growth {c['max_rss_growth_mb']:.1f} MB")
        check("CSV >= 50,000 rows/s", c["rows_per_s"] >= 50_000, f"{c['rows_per_s']:,.0f}")
        check("CSV first byte < 100 ms", c["first_byte_ms"] < 100, f"{c['first_byte_ms']:.0f} ms")
        check("worker RSS growth < 20 MB during the export", c["max_rss_growth_mb"] < 20,
              f"{c['max_rss_growth_mb']:.1f} MB")
    if reference:
        ratios = scale_ratios(found, reference)
        print("  against the reference: " + ", ".join(
            f"{label} {value:.2f}" for label, value in ratios.items()))
        for label in ("bulk", "stats", "csv"):
            if label in ratios:
                check(f"{label} throughput >= 0.85x the reference", ratios[label] >= 0.85,
                      f"{ratios[label]:.2f}")
    return missed


def _minutes(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = Layout()
    parser.add_argument("--quick", action="store_true",
                        help="20,000 enrollments over 12,000 users, 2 rounds of 3 s")
    parser.add_argument("--users", type=int)
    parser.add_argument("--certifications", type=int, default=defaults.certifications)
    parser.add_argument("--enrollments", type=int)
    parser.add_argument("--duration", type=int, help="seconds per slice (default 5, quick 3)")
    parser.add_argument("--rounds", type=int,
                        help="slices per scenario and server, alternating who goes first "
                             "(default 4, quick 2)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--targets", default="certapi,reference",
                        help="servers to measure, by name or as NAME=module:factory() "
                             "(to try a variant); ratios are against 'reference'")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--scale", default=",".join(SCALE),
                        help="program-scale measurements after the scenarios, certapi only "
                             "(stats, csv, bulk; empty for none)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--idempotency-keys", default="",
                        help="servers (by name, comma-separated) whose writes each carry an "
                             "Idempotency-Key (the others: --idempotency-share)")
    parser.add_argument("--idempotency-share", type=int, default=25,
                        help="per cent of the writes that carry an Idempotency-Key")
    parser.add_argument("--plain", action="store_true",
                        help="production defaults off: no rate limiting, no webhook "
                             "subscriber or sender, no Idempotency-Key")
    parser.add_argument("--keep", action="store_true", help="keep the databases and server logs")
    parser.add_argument("--postgres", metavar="URL",
                        help="a PostgreSQL server (postgresql://user@host:port/any) to run on "
                             "instead of SQLite: the seed and each server's copy are databases "
                             "made there (bench_seed, bench_<name>)")
    args = parser.parse_args(argv)

    quick = args.quick
    layout = Layout(
        users=args.users or (12_000 if quick else defaults.users),
        certifications=args.certifications,
        enrollments=args.enrollments or (20_000 if quick else defaults.enrollments),
    )
    duration = args.duration or (3 if quick else 5)
    rounds = args.rounds or (2 if quick else 4)
    apps = {}
    for item in filter(None, args.targets.split(",")):
        name, _, app = item.partition("=")
        apps[name] = app or TARGETS[name]
    names = list(apps)
    keyed = set(filter(None, args.idempotency_keys.split(",")))
    scenarios = [s for s in args.scenarios.split(",") if s]
    ensure_wrk()

    workdir = Path(tempfile.mkdtemp(prefix="certapi-bench-"))
    servers: list[Server] = []
    try:
        seed_db = workdir / "seed.db"
        seed_url = postgres_database(args.postgres, "bench_seed") if args.postgres else f"sqlite:///{seed_db}"
        started = time.perf_counter()
        print(f"seeding {layout.enrollments:,} enrollments, {layout.users:,} users, "
              f"{layout.certifications} certifications ...", flush=True)
        out = subprocess.run(  # its progress lines (stderr) show as they come
            [sys.executable, "-m", "bench.seed", seed_url,
             "--users", str(layout.users), "--certifications", str(layout.certifications),
             "--enrollments", str(layout.enrollments)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
        key = json.loads(out.stdout.splitlines()[-1])["key"]
        print(f"seeded {layout.enrollments:,} enrollments, {layout.users:,} users, "
              f"{layout.certifications} certifications in {time.perf_counter() - started:.0f} s "
              f"({workdir})", flush=True)

        receiver = None
        if args.plain:
            env = production.PLAIN_ENV
        elif "BENCH_WEBHOOK_URL" in os.environ:
            # bench/webhooks.py runs its own receiver and subscribes its own target only.
            env = production.ENV
        else:
            from bench.webhooks import Receiver  # here: bench.webhooks imports this module
            receiver = Receiver()
            env = {**production.ENV, "BENCH_WEBHOOK_URL": receiver.url}
            subprocess.run([sys.executable, "-m", "bench.production", seed_url,
                            receiver.url], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        print(f"starting {', '.join(names)} ({args.workers} workers each"
              f"{', production defaults off' if args.plain else ', production defaults on'}), "
              "warming up ...", flush=True)
        for name in names:
            if args.postgres:
                url = postgres_database(args.postgres, f"bench_{name}", template="bench_seed")
            else:
                url = f"sqlite:///{workdir / f'{name}.db'}"
                shutil.copyfile(seed_db, workdir / f"{name}.db")
            servers.append(Server(name, apps[name], url, workdir, args.workers, env))
        for server in servers:
            server.wait_ready()
        for server in servers:  # fill caches and connection pools with reads only
            for scenario in ("get", "list_first"):
                run_wrk(server.url, scenario, wrk_args(layout, key, args.threads, 0, 1),
                        2, args.threads, args.connections)

        raw: dict[str, dict[str, list]] = {name: {} for name in names}
        slices = len(scenarios) * rounds * len(servers)
        print(f"{len(scenarios)} scenarios x {rounds} round(s) x {len(servers)} server(s) = "
              f"{slices} slices of {duration} s, {args.connections} connections, "
              f"about {_minutes(slices * duration)}", flush=True)
        measuring, done = time.monotonic(), 0
        for scenario in scenarios:
            for round_ in range(rounds):
                order = servers if round_ % 2 == 0 else servers[::-1]
                # Each (round, single or mix) writes its own part of every pool.
                part = 2 * round_ + (1 if scenario == "mix" else 0)
                params = wrk_args(layout, key, args.threads, part, 2 * rounds)
                for server in order:
                    share = 100 if server.name in keyed else args.idempotency_share
                    idem = {"idem": 0 if args.plain else share}
                    cpu_before = server.worker_cpu_seconds()
                    result = run_wrk(server.url, scenario, {**params, **idem}, duration,
                                     args.threads, args.connections)
                    result["cpu_seconds"] = server.worker_cpu_seconds() - cpu_before
                    raw[server.name].setdefault(scenario, []).append(result)
                    done += 1
                    # From the slices so far (wrk's start and stop included), not the nominal length.
                    left = (time.monotonic() - measuring) / done * (slices - done)
                    print(f"  [{done}/{slices}, {_minutes(left)} left] "
                          f"round {round_ + 1} {scenario:<10} {server.name:<9} "
                          f"{result['rps']:7.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
                          f"p99 {result['p99_ms']:6.1f} ms  errors {result['errors']}  "
                          f"cpu {1000 * result['cpu_seconds'] / max(1, result['requests']):.2f} ms/req", flush=True)
        memory = {server.name: server.worker_memory() for server in servers}
        scale_parts = tuple(p for p in args.scale.split(",") if p)
        scale_found = {}
        for server in servers:
            if scale_parts:
                print(f"program scale on {server.name} ...", flush=True)
                scale_found[server.name] = measure_scale(server, layout, key, scale_parts, args,
                                                         duration, rounds)
    finally:
        for server in servers:
            server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    results = {name: {s: combine(runs) for s, runs in raw[name].items()} for name in names}
    missed = report(results, memory, names)
    for name, found in scale_found.items():
        missed += report_scale(name, found, results[name].get("enroll"),
                               scale_found.get("reference") if name != "reference" else None)
    if receiver is not None:
        print(f"\nwebhook receiver: {len(receiver.lags)} deliveries answered 200")
    if args.json:
        args.json.write_text(json.dumps({
            "layout": layout.__dict__, "duration": duration, "rounds": rounds,
            "connections": args.connections, "workers": args.workers,
            "results": results, "memory": memory, "scale": scale_found, "missed": missed,
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
