"""certapi with metrics on and off, for measuring what metrics cost (bench/PROFILE.md):

    python -m bench.run --quick --scenarios mix --scale "" \\
        --targets "off=bench.metrics_targets:off(),on=bench.metrics_targets:on()"

``on`` is what `certapi serve --workers N` runs: prometheus_client's multiprocess mode,
every worker writing its values to files in one directory shared by the gunicorn
master's workers (beside the bench's database copy, removed with it)."""
import os
from pathlib import Path

from models.db import database_url


def on():
    # Before anything imports prometheus_client: its value store is chosen on import.
    shared = Path(database_url().removeprefix("sqlite:///")).parent / f"metrics-{os.getppid()}"
    shared.mkdir(exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    from certapi.app import create_app
    from certapi.config import Settings

    return create_app(Settings(metrics=True))


def off():
    from certapi.app import create_app
    from certapi.config import Settings

    return create_app(Settings(metrics=False))
