"""Profile a server under load: py-spy samples its workers while wrk drives one scenario,
then the samples are summarised by stage of the request (server, routing, security,
validation, handler call, data work, JSON, logging) and by function.

    python -m bench.profile --target certapi --scenario get [--quick] [--gil]

Writes the raw collapsed stacks and the summary next to each other (default
/tmp/certapi-profile/) and prints the summary. Without --gil it counts every sample of a
thread on the CPU, native SQLite work included; with --gil only the thread holding the
GIL, which is what bounds a worker's Python throughput.
"""
import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.ids import Layout
from bench.run import ROOT, TARGETS, Server, run_wrk, wrk_args

# Where a sample's time goes: the innermost frame that matches one of these decides
# (tried from the innermost frame outwards, the first pattern that matches wins), so a
# Peewee call made by a handler counts as data work, a jsonschema call made by the
# validation middleware as validation. Event-loop and thread plumbing (asyncio,
# threading, executors) is charged to the layer that called it, and only to
# "event loop, thread hand-offs" when no layer is on the stack.
STAGES = [
    ("json encode/decode", re.compile(r"(^|/)json/|jsonifier")),
    ("logging", re.compile(r"logging/")),
    ("data: handler, Peewee, SQLite", re.compile(
        r"handlers/|models/|peewee|playhouse|certapi/(lifecycle|pagination)|certapi/app\.py")),
    ("auth: key check (certapi.auth)", re.compile(r"certapi/auth|hashlib")),
    ("validation: params and body", re.compile(
        r"certapi/validation|connexion/validators|connexion/uri_parsing|jsonschema|regress"
        r"|connexion/middleware/request_validation|pydantic|fastapi/dependencies")),
    ("security middleware", re.compile(r"connexion/middleware/security|connexion/security")),
    ("a2wsgi + Flask", re.compile(r"a2wsgi/|flask/|werkzeug/")),
    ("handler call: parameters, response, thread hop", re.compile(
        r"connexion/decorators|connexion/apps|starlette/concurrency|anyio/|fastapi/routing"
        r"|starlette/responses")),
    ("certapi ASGI middleware (request log, limits, 405)", re.compile(r"certapi/middleware")),
    ("routing and exception layers", re.compile(r"connexion/|starlette/|fastapi/")),
    ("server: uvicorn, httptools", re.compile(r"uvicorn|httptools")),
]
PLUMBING = ("event loop, thread hand-offs",
            re.compile(r"asyncio/|threading|concurrent/|selectors|contextvars|queue"))


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in STAGES:
            if pattern.search(frame):
                return name
    if any(PLUMBING[1].search(frame) for frame in frames):
        return PLUMBING[0]
    return "other"


def function_of(frame: str) -> str:
    """``func (path/file.py:123)`` → ``func (path/file.py)``."""
    return re.sub(r":\d+\)$", ")", frame)


def summarise(raw: Path, top: int = 25) -> str:
    samples: list[tuple[list[str], int]] = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            samples.append((stack.split(";"), int(count)))
    total = sum(n for _, n in samples) or 1
    stages: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    for frames, n in samples:
        stages[stage_of(frames)] += n
        own[function_of(frames[-1])] += n
    out = [f"{total} samples", "", "by stage (innermost frame that belongs to one):"]
    out += [f"  {share(n, total)}  {name}" for name, n in stages.most_common()]
    out += ["", f"top {top} functions by self time:"]
    out += [f"  {share(n, total)}  {name}" for name, n in own.most_common(top)]
    return "\n".join(out)


def share(n: int, total: int) -> str:
    return f"{100 * n / total:5.1f}%"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=sorted(TARGETS), default="certapi")
    parser.add_argument("--scenario", default="get")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="20,000 enrollments")
    parser.add_argument("--gil", action="store_true", help="only the thread holding the GIL")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "certapi-profile")
    args = parser.parse_args(argv)

    layout = Layout(users=12_000, enrollments=20_000) if args.quick else Layout()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="certapi-profile-"))
    server = None
    try:
        db = workdir / "bench.db"
        out = subprocess.run(
            [sys.executable, "-m", "bench.seed", f"sqlite:///{db}", "--users", str(layout.users),
             "--enrollments", str(layout.enrollments)],
            cwd=ROOT, capture_output=True, text=True, check=True)
        key = json.loads(out.stdout.splitlines()[-1])["key"]
        server = Server(args.target, TARGETS[args.target], db, workdir, args.workers)
        server.wait_ready()
        params = wrk_args(layout, key, 1, 0, 1)
        run_wrk(server.url, "get", params, 2, 1, args.connections)  # warm up

        stem = f"{args.target}-{args.scenario}{'-gil' if args.gil else ''}"
        raw = args.out / f"{stem}.txt"
        spy = [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(server.process.pid),
               "--subprocesses", "--format", "raw", "--nolineno", "-r", "200",
               "-d", str(args.duration), "-o", str(raw)]
        if args.gil:
            spy.append("--gil")
        result = {}
        load = threading.Thread(target=lambda: result.update(run_wrk(
            server.url, args.scenario, params, args.duration, 1, args.connections)))
        load.start()
        subprocess.run(spy, check=True, capture_output=True)
        load.join()
        summary = (f"{args.target} / {args.scenario}: {result['rps']:.0f} req/s, "
                   f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                   f"errors {result['errors']} (under py-spy, {args.workers} workers)\n"
                   + summarise(raw))
        (args.out / f"{stem}.summary.txt").write_text(summary + "\n")
        print(summary)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
