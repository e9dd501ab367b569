"""`certapi worker`: webhook delivery and the expiry scan as a process of its own, for
deployments that scale senders apart from the HTTP API (any number may run beside
`certapi serve`). The leading worker of `certapi serve` runs the same loop as its child
(``python -m certapi.webhooks.worker --tied``, certapi.webhooks.background)."""
import os
import signal
import sys
import threading
from collections.abc import Callable

from certapi.webhooks import expiry
from certapi.webhooks.delivery import Sender

# How often a tied worker reports its sender's beat to its parent.
BEAT_SECONDS = 1.0


def run_worker(tied: bool = False) -> int:
    """Deliver and scan until SIGTERM or SIGINT; the database must already be bound.
    ``tied``: also until stdin ends (the parent is gone), reporting the sender's beat on
    stdout meanwhile."""
    from certapi.logs import configure as configure_logging
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
    if tied:
        threading.Thread(target=_until_end_of_input, args=(stop,), daemon=True).start()
        threading.Thread(target=_report_beats, args=(sender, stop), daemon=True).start()
    sender.run()
    return 0


# Both pipes are used through their file descriptors, not sys.stdin/sys.stdout: a daemon
# thread blocked inside a buffered stream holds its lock, and the interpreter's shutdown,
# which flushes the standard streams, then aborts with a fatal error.
def _until_end_of_input(stop: Callable[[], None]) -> None:
    while os.read(0, 4096):  # nothing is ever written: this ends when the parent is gone
        pass
    stop()


def _report_beats(sender: Sender, stop: Callable[[], None]) -> None:
    while not sender.stopping.wait(BEAT_SECONDS):
        try:
            os.write(1, f"{sender.beat}\n".encode())
        except OSError:  # nobody reads any more (EPIPE)
            stop()
            return


if __name__ == "__main__":
    from models.db import init_database

    init_database()
    sys.exit(run_worker(tied="--tied" in sys.argv[1:]))
