"""The README's "First requests" block, run as a reader would paste it: with bash and curl
against a real `certapi serve`, and covering every operation that takes a request body."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from certapi.app import load_spec
from tests.databases import backend, fresh_database
from tests.live_server import LiveServer, cli

ROOT = Path(__file__).resolve().parent.parent
# `api [-X METHOD] "$BASE/path/$VAR" [-d ...]`: one request of the block.
CALL = re.compile(r'\bapi (?:-X (?P<method>[A-Z]+) )?"\$BASE(?P<path>[^"]*)"(?P<body> -d)?')


def first_requests() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## First requests\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    return block


def _calls(block: str) -> set[tuple[str, str]]:
    return {(m["method"] or ("POST" if m["body"] else "GET"), re.sub(r"\$\w+", "{}", m["path"]))
            for m in CALL.finditer(block)}


def test_every_request_body_of_the_spec_has_an_example_in_the_readme():
    documented = _calls(first_requests())
    with_bodies = {(method.upper(), re.sub(r"\{[^}]+\}", "{}", path))
                   for path, item in load_spec()["paths"].items()
                   for method, operation in item.items()
                   if isinstance(operation, dict) and "requestBody" in operation}
    assert with_bodies and not with_bodies - documented, sorted(with_bodies - documented)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None,
                    reason="the README block needs bash and curl, and this machine lacks one")
def test_the_first_requests_block_runs_as_pasted(tmp_path):
    block = first_requests()
    assert block.count("\nKEY=") + block.startswith("KEY=") == 1 and "\nBASE=" in block
    with fresh_database(backend(), tmp_path, "readme") as url:
        server = LiveServer(url, tmp_path / "server.log", workers=1).start()
        try:
            account = cli(url, "accounts", "create", "Reader")
            key = cli(url, "keys", "create", account)
            script = re.sub(r"^KEY=.*$", f"KEY={key}", block, count=1, flags=re.M)
            script = re.sub(r"^BASE=.*$", f"BASE={server.url}/v1", script, count=1, flags=re.M)
            done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script],
                                  capture_output=True, text=True, timeout=120)
        finally:
            server.kill()
    assert done.returncode == 0 and done.stderr == "", f"{done.stdout}\n{done.stderr}\n{server.log()}"
    last = done.stdout.strip().splitlines()[-1]
    assert '"status":"completed"' in last.replace(" ", ""), done.stdout
