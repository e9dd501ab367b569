"""`certapi contract`: the suite against a running implementation, over the network."""
import sys

import httpx

from certapi.contract.runner import Keys, exit_code, format_table, run_suite, write_junit

TIMEOUT_SECONDS = 30


def split_base_url(base_url: str) -> tuple[str, str]:
    """``http://host:8080`` or ``http://host:8080/v1`` → (server root, ``/v1``-style prefix)."""
    url = httpx.URL(base_url)
    path = url.path.rstrip("/")
    prefix = path if path.endswith("/v1") else f"{path}/v1"
    return str(url.copy_with(path="/", query=None, fragment=None)).rstrip("/"), prefix


def run(base_url: str, api_key: str, read_key: str | None = None,
        second_account_key: str | None = None, junit: str | None = None,
        select: str | None = None, limited_key: str | None = None) -> int:
    root, prefix = split_base_url(base_url)
    keys = Keys(api_key, read_key, second_account_key, limited_key)
    chosen = (lambda name: select in name) if select else None

    def progress(result):
        print(f"  {result.outcome:<4} {result.name}", file=sys.stderr, flush=True)

    with httpx.Client(base_url=root, timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
        results = run_suite(client, keys, prefix=prefix, select=chosen, progress=progress)
    print(format_table(results))
    if junit:
        write_junit(results, junit)
        print(f"JUnit report: {junit}")
    if not results:
        print(f"no scenario matches {select!r}", file=sys.stderr)
        return 2
    return exit_code(results)
