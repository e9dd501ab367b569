"""`certapi worker`: webhook delivery as a process of its own, for deployments that
scale senders apart from the HTTP API (any number may run beside `certapi serve`)."""
import signal

from certapi.webhooks.delivery import Sender


def run_worker() -> int:
    """Deliver until SIGTERM or SIGINT; the database must already be bound."""
    from certapi.app import configure_logging
    from models.migrate import migrate

    configure_logging()
    migrate()
    sender = Sender()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sender.stop())
    sender.run()
    return 0
