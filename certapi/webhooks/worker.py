"""`certapi worker`: webhook delivery and the expiry scan as a process of its own, for
deployments that scale senders apart from the HTTP API (any number may run beside
`certapi serve`)."""
import signal

from certapi.webhooks import expiry
from certapi.webhooks.delivery import Sender


def run_worker() -> int:
    """Deliver and scan until SIGTERM or SIGINT; the database must already be bound."""
    from certapi.app import configure_logging
    from models.migrate import migrate

    configure_logging()
    migrate()
    sender = Sender()
    scanner = expiry.start_background()

    def stop(*_: object) -> None:
        scanner.stop()
        sender.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    sender.run()
    return 0
