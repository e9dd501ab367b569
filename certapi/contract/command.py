"""`certapi contract`: the suite against a running implementation, over the network."""
import sys

import httpx

from certapi.contract.report import format_table, write_json, write_junit
from certapi.contract.runner import Keys, exit_code, run_suite

TIMEOUT_SECONDS = 30
DEFAULT_PREFIX = "/v1"


class Unreachable(Exception):
    """Nothing answers at the base URL: the run stops before any scenario."""


def split_base_url(base_url: str, api_root: str | None = None) -> tuple[str, str | None]:
    """``http://host:8080/v1`` → (``http://host:8080``, ``/v1``): a base URL with a path is
    the API root itself. A bare ``http://host:8080`` gives a prefix of None: to be found.
    ``api_root`` (``/v1``, ``/`` for none) overrides the path."""
    url = httpx.URL(base_url)
    path = url.path.rstrip("/") or None
    if api_root is not None:
        path = "/" + api_root.strip("/") if api_root.strip("/") else ""
    return str(url.copy_with(path="/", query=None, fragment=None)).rstrip("/"), path


def find_api_root(client: httpx.Client, prefix: str | None) -> str:
    """The API root's path: the one given, else ``/v1`` or ``""``, whichever serves
    ``/health``. Raises ``Unreachable`` when the server does not answer at all."""
    candidates = [prefix] if prefix is not None else [DEFAULT_PREFIX, ""]
    for candidate in candidates:
        try:
            response = client.get(f"{candidate}/health")
        except httpx.HTTPError as exc:
            raise Unreachable(f"GET {candidate}/health: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 200:
            return candidate
    # It answers, but not /health: run anyway, the health scenario reports it.
    return candidates[0]


def run(base_url: str, api_key: str, read_key: str | None = None,
        second_account_key: str | None = None, junit: str | None = None,
        select: str | None = None, json_path: str | None = None, strict: bool = False,
        api_root: str | None = None, webhook_receiver: str | None = None,
        limited_key: str | None = None) -> int:
    """Exit status: 0 all passed (MISSING allowed unless ``strict``), 1 a scenario failed,
    2 nothing to run (no server answering, no scenario selected)."""
    from certapi.contract import webhooks

    webhooks.configure(webhook_receiver)
    root, prefix = split_base_url(base_url, api_root)
    keys = Keys(api_key, read_key, second_account_key, limited_key)
    chosen = (lambda name: select in name) if select else None

    def progress(result):
        print(f"  {result.outcome:<7} {result.name}", file=sys.stderr, flush=True)

    with httpx.Client(base_url=root, timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
        try:
            prefix = find_api_root(client, prefix)
        except Unreachable as exc:
            print(f"certapi contract: nothing answers at {root} ({exc}); is the server running?",
                  file=sys.stderr)
            return 2
        print(f"API root: {root}{prefix}", file=sys.stderr)
        results = run_suite(client, keys, prefix=prefix, select=chosen, progress=progress)
    if not results:
        print(f"no scenario matches {select!r}", file=sys.stderr)
        return 2
    print(format_table(results))
    if junit:
        write_junit(results, junit)
        print(f"JUnit report: {junit}")
    if json_path:
        write_json(results, json_path)
        print(f"JSON report: {json_path}")
    return exit_code(results, strict=strict)
