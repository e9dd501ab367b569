"""The per-run directory where `certapi serve --workers N` keeps its workers' metric
values (prometheus_client's multiprocess mode). Nothing here imports prometheus_client:
the directory must be in the environment before it is first imported, or it would count
each worker for itself."""
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "certapi-metrics-"


def metrics_enabled(env: Mapping[str, str] = os.environ) -> bool:
    """``CERTAPI_METRICS`` (of ``env``, the process's environment unless given): on unless
    off, 0, false or no."""
    return env.get("CERTAPI_METRICS", "on").strip().lower() not in ("off", "0", "false", "no")


@contextmanager
def multiprocess_dir() -> Iterator[str | None]:
    """A fresh directory for this run, in the environment the workers inherit, removed
    when the run ends (a leftover of an earlier run would add its counts to this one's).
    A directory the operator set is used as it is and left in place; with metrics off
    there is none."""
    if not metrics_enabled() or os.environ.get(MULTIPROCESS_ENV):
        yield os.environ.get(MULTIPROCESS_ENV)
        return
    owner = os.getpid()
    _remove_abandoned(tempfile.gettempdir())
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{owner}-")
    os.environ[MULTIPROCESS_ENV] = path
    try:
        yield path
    finally:
        # gunicorn's forked workers leave by SystemExit through this frame too: only the
        # process that made the directory removes it, when the whole run ends.
        if os.getpid() == owner:
            os.environ.pop(MULTIPROCESS_ENV, None)
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_abandoned(parent: str) -> None:
    """Remove what a run stopped with SIGKILL (or a crash) left behind: a directory named
    for a process that no longer exists. A running server's directory, or one whose name
    does not say its process, stays."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        pid = name[len(PREFIX):].split("-", 1)[0]
        if name.startswith(PREFIX) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
