"""`pip install .` (a real wheel, not editable) gives a working `certapi` anywhere: the
wheel carries openapi.yaml, which the repository keeps once, at its top level."""
import os
import shutil
import site
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from certapi.spec import spec_file
from tests.live_server import free_port

ROOT = Path(__file__).resolve().parent.parent
# What a checkout holds besides the source: environments, builds, databases, reports.
NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "reports", "*.egg-info",
                                    "__pycache__", ".pytest_cache", "*.db*")


def test_a_checkout_serves_its_top_level_spec():
    assert spec_file() == ROOT / "openapi.yaml"
    assert not (ROOT / "certapi" / "openapi.yaml").exists(), "a second copy of the contract"


def _run(*argv, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300,
                          **kwargs)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_installed_wheel_migrates_and_serves_from_another_directory(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    # Built as `pip install .` builds it (isolated, with the pinned build backend).
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist",
         source)
    (wheel,) = (tmp_path / "dist").glob("certapi-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("certapi/openapi.yaml") == (ROOT / "openapi.yaml").read_bytes()
    shutil.rmtree(source)  # nothing may be read from the sources any more

    # A fresh environment whose dependencies are this one's, so nothing is downloaded;
    # the path line adds this environment's site-packages but not the editable install
    # of the checkout in it (a .pth inside a .pth-added directory is not processed).
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    Path(purelib.stdout.strip(), "dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
    where = _run(python, "-c", "import certapi.spec as s; print(s.__file__); print(s.spec_file())",
                 cwd=elsewhere, env=env).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    certapi = venv / "bin" / "certapi"
    assert _run(certapi, "migrate", cwd=elsewhere, env=env).stdout.startswith("applied: ")
    port = free_port()
    server = subprocess.Popen([certapi, "serve", "--port", str(port), "--log-level", "warning"],
                              cwd=elsewhere, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        if health is None:
            server.kill()
            pytest.fail(f"the installed server did not answer:\n{server.communicate()[0]}")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        served = httpx.get(f"http://127.0.0.1:{port}/v1/openapi.json", timeout=10)
        assert served.status_code == 200 and "/certifications" in served.json()["paths"]
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "Traceback" not in output, output
    assert (elsewhere / "certapi.db").exists()
