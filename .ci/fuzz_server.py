"""CI's fuzz leg: `schemathesis run` against a real `certapi serve`.

Starts the server on a temporary SQLite database and a free loopback port, makes an
account and a write key with the `certapi` command line, seeds the resources the hooks
point requests at (tests/fuzzing.py), and runs the Schemathesis command line with every
check and every phase, a fixed seed and a bounded budget ($CERTAPI_FUZZ_EXAMPLES).
Reports go to reports/fuzz/ (JUnit XML, and NDJSON events). It fails on any failure,
and also unless every operation answered 2xx at least once in the NDJSON record: a
wrong key or a world that names nothing would otherwise pass with 401s and 404s.

Run from the repository root: .venv/bin/python .ci/fuzz_server.py
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from certapi.spec import load_spec  # noqa: E402
from tests.fuzzing import CONFIG_PATH, SEED, max_examples, seed_world, without_success  # noqa: E402

BIN = ROOT / ".venv" / "bin"
REPORTS = ROOT / "reports" / "fuzz"
METHODS = ("get", "put", "post", "patch", "delete")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def certapi(*args: str, database_url: str) -> str:
    result = subprocess.run([BIN / "certapi", *args, "--database-url", database_url],
                            check=True, capture_output=True, text=True)
    return result.stdout.strip()


def wait_until_up(base: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"certapi serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"certapi serve did not answer within {timeout:.0f}s")


def stop(server: subprocess.Popen, log) -> None:
    """SIGTERM to the server's process group (gunicorn's workers too), SIGKILL if it lingers."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    log.close()


def seed(base: str, key: str) -> dict:
    with httpx.Client(base_url=base.removesuffix("/v1"), headers={"Authorization": f"Bearer {key}"},
                      timeout=10) as client:
        def post(path, body):
            response = client.post(path, json=body)
            if response.status_code not in (201, 202):
                raise SystemExit(f"seeding {path} answered {response.status_code}: {response.text}")
            return response.json()

        return seed_world(post)


def status_spread(ndjson: Path) -> dict[str, Counter]:
    """(operation label → status counts) over every recorded exchange in the NDJSON
    event log, whatever phase or check sent it."""
    spread: dict[str, Counter] = defaultdict(Counter)
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        recorder = event.get("ScenarioFinished", {}).get("recorder")
        if not recorder:
            continue
        for case_id, interaction in recorder.get("interactions", {}).items():
            case = recorder.get("cases", {}).get(case_id, {}).get("value", {})
            response = interaction.get("response")
            if case and response:
                spread[f"{case['method']} {case['path']}"][response["status_code"]] += 1
    return spread


def main() -> int:
    examples = max_examples()
    REPORTS.mkdir(parents=True, exist_ok=True)
    for old in REPORTS.iterdir():
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="certapi-fuzz-") as tmp:
        database_url = f"sqlite:///{tmp}/fuzz.db"
        certapi("migrate", database_url=database_url)
        account = certapi("accounts", "create", "Fuzz", database_url=database_url)
        # Unlimited: the run makes thousands of requests a minute with this one key.
        key = certapi("keys", "create", account, "--permission", "write", "--rate-limit", "0",
                      database_url=database_url)
        port = free_port()
        base = f"http://127.0.0.1:{port}/v1"
        log = open(Path(tmp) / "server.log", "w")
        server = subprocess.Popen(
            [BIN / "certapi", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--database-url", database_url, "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        returncode = 1
        try:
            wait_until_up(base, server)
            world = Path(tmp) / "world.json"
            world.write_text(json.dumps(seed(base, key)))
            started = time.monotonic()
            command = [
                BIN / "schemathesis", "--config-file", CONFIG_PATH, "run", ROOT / "openapi.yaml",
                "--url", base, "--header", f"Authorization: Bearer {key}",
                "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
                "--seed", str(SEED), "--max-examples", str(examples), "--workers", "1",
                "--report", "junit,ndjson", "--report-junit-path", REPORTS / "junit.xml",
                "--report-ndjson-path", REPORTS / "events.ndjson",
                "--output-sanitize", "true",
            ]
            env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
                   "CERTAPI_FUZZ_WORLD": str(world), "PYTHONPATH": str(ROOT)}
            returncode = subprocess.run([str(part) for part in command], env=env, cwd=ROOT).returncode
            print(f"schemathesis run: exit {returncode} after {time.monotonic() - started:.0f}s"
                  f" (max-examples {examples})")
        finally:
            stop(server, log)
            if returncode or server.returncode not in (0, -signal.SIGTERM):
                print("certapi serve's log, last lines:\n"
                      + (Path(tmp) / "server.log").read_text()[-5000:], file=sys.stderr)

    if not (REPORTS / "events.ndjson").exists():
        return returncode or 1
    spread = status_spread(REPORTS / "events.ndjson")
    labels = [f"{method.upper()} {path}" for path, item in load_spec()["paths"].items()
              for method in item if method in METHODS]
    print("status spread per operation:")
    for label in labels:
        print(f"  {label}: " + ", ".join(f"{s}×{n}" for s, n in sorted(spread[label].items())))
    probes = Counter()
    for label in set(spread) - set(labels):  # unsupported_method's probes: PUT, TRACE...
        probes.update(spread[label])
    print("  undocumented methods: " + ", ".join(f"{s}×{n}" for s, n in sorted(probes.items())))
    missing = without_success(spread, labels)
    if missing:
        print("no 2xx answer for: " + ", ".join(missing), file=sys.stderr)
    return returncode or (1 if missing else 0)


if __name__ == "__main__":
    sys.exit(main())
