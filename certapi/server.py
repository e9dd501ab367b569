"""Running the HTTP server: one uvicorn process, or gunicorn supervising N uvicorn workers.

With one worker there is nothing to supervise, so plain uvicorn serves (what `make run`
uses). With more, gunicorn's master owns the listening socket, forks the workers,
restarts one that dies, and on SIGTERM stops accepting, lets each worker finish the
requests it holds (up to ``GRACEFUL_SECONDS``), then exits. Each worker builds its own
app, and so its own connection pool, after the fork.
"""
from gunicorn.app.base import BaseApplication

WORKER_CLASS = "uvicorn_worker.UvicornWorker"
GRACEFUL_SECONDS = 30


class _Gunicorn(BaseApplication):
    """gunicorn configured from a dict, not from argv, a config file or
    $GUNICORN_CMD_ARGS: the `certapi serve` options are the whole configuration."""

    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return served_app()


def served_app():
    """The app as `certapi serve` runs it, one per worker process: with a webhook sender
    in the background unless CERTAPI_WEBHOOK_BACKGROUND=0 (deployments that run
    `certapi worker` instead)."""
    import os

    from certapi.app import create_app
    from certapi.webhooks.delivery import start_background

    app = create_app()
    if os.environ.get("CERTAPI_WEBHOOK_BACKGROUND", "1").strip() != "0":
        start_background()
    return app


def serve(host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
    """Serve until stopped; the schema must already be migrated."""
    if workers <= 1:
        import uvicorn

        uvicorn.run("certapi.server:served_app", factory=True, host=host, port=port,
                    access_log=False, log_level=log_level)
        return
    _Gunicorn({
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": WORKER_CLASS,
        "graceful_timeout": GRACEFUL_SECONDS,
        "loglevel": log_level,
        "errorlog": "-",
        "accesslog": None,  # certapi.access logs every request itself
        "proc_name": "certapi",
        # gunicorn's runtime control socket lives at one path per user ($HOME): two
        # instances on a host would fight over it, and `certapi serve` does not use it.
        "control_socket_disable": True,
    }).run()
