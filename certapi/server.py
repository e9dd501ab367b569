"""Running the HTTP server: one uvicorn process, or gunicorn supervising N uvicorn workers.

With one worker there is nothing to supervise, so plain uvicorn serves (what `make run`
uses). With more, gunicorn's master owns the listening socket, forks the workers,
restarts one that dies, and on SIGTERM stops accepting, lets each worker finish the
requests it holds (up to ``GRACEFUL_SECONDS``), then exits. Each worker builds its own
app, and so its own connection pool, after the fork.

Both run the same connection handler (certapi.http_protocol), so request heads are
bounded and slow clients timed out in either mode.
"""
import errno
import socket
from typing import TYPE_CHECKING

from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from certapi.http_protocol import BoundedHttpToolsProtocol
from certapi.metrics_dir import multiprocess_dir

WORKER_CLASS = "certapi.server.Worker"


class Worker(UvicornWorker):
    """gunicorn's uvicorn worker with certapi's bounded connection handler."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "http": BoundedHttpToolsProtocol}


if TYPE_CHECKING:
    import connexion

GRACEFUL_SECONDS = 30


class _Gunicorn(BaseApplication):
    """gunicorn configured from a dict, not from argv, a config file or
    $GUNICORN_CMD_ARGS: the `certapi serve` options are the whole configuration."""

    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> "connexion.FlaskApp":
        return served_app()


def served_app() -> "connexion.FlaskApp":
    """The app as `certapi serve` runs it, one per worker process: unless
    CERTAPI_WEBHOOK_BACKGROUND=0 (deployments that run `certapi worker` instead), each
    worker stands by to run the webhook sender and the expiry scan, and one of them (the
    leader, certapi.webhooks.background) does."""
    import os

    from certapi.app import create_app
    from certapi.webhooks import background

    app = create_app()
    if os.environ.get("CERTAPI_WEBHOOK_BACKGROUND", "1").strip() != "0":
        background.start()
    return app


def serve(host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
    """Serve until stopped; the schema must already be migrated."""
    from certapi.config import Settings

    keepalive = Settings().keepalive_seconds
    # Even one worker is not one process: the webhook sender runs in a child of the
    # leading worker (certapi.webhooks.background), and /metrics counts its deliveries.
    with multiprocess_dir() as metrics_dir:
        if workers > 1:
            _gunicorn(host, port, workers, log_level, keepalive, metrics_dir)
            return
        import uvicorn

        uvicorn.run("certapi.server:served_app", factory=True, host=host, port=port,
                    access_log=False, log_level=log_level, http=BoundedHttpToolsProtocol,
                    timeout_keep_alive=keepalive)


def _worker_exited(_arbiter: object, worker: object) -> None:
    from certapi.metrics import worker_exited

    worker_exited(worker.pid)  # type: ignore[attr-defined]


def _gunicorn(host: str, port: int, workers: int, log_level: str, keepalive: int,
              metrics_dir: str | None) -> None:
    _Gunicorn({
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": WORKER_CLASS,
        "graceful_timeout": GRACEFUL_SECONDS,
        "keepalive": keepalive,  # gunicorn's own default (2 s) is also uvicorn's in its workers
        "loglevel": log_level,
        "errorlog": "-",
        "accesslog": None,  # certapi.access logs every request itself
        "proc_name": "certapi",
        # gunicorn's runtime control socket lives at one path per user ($HOME): two
        # instances on a host would fight over it, and `certapi serve` does not use it.
        "control_socket_disable": True,
        # A dead or restarted worker's gauges leave the sums /metrics reports.
        **({"child_exit": _worker_exited} if metrics_dir else {}),
    }).run()


def cannot_listen(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port, or None when it can.

    Checked before anything else starts, so a busy port costs one line and no side
    effects (no migration, no demo key). SO_REUSEADDR as the servers set it: a socket of
    a stopped server lingering in TIME_WAIT is no reason to refuse, a listening one is."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: unknown host ({exc.strerror})"
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            hint = " (another server is listening there; choose another port)" \
                if exc.errno == errno.EADDRINUSE else ""
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}"
    return None
