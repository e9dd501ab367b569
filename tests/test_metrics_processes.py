"""GET /metrics from a real `certapi serve --workers 4`: requests spread over the workers
are each counted once, whichever worker answers the scrape, also after a worker is
killed and replaced; the per-run metrics directory goes when the server stops."""
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.databases import backends, fresh_database, query
from tests.live_server import LiveServer, new_account
from tests.test_webhook_processes import (
    Writer,
    committed_events,
    fast_delivery,  # noqa: F401 (an autouse fixture, used here too)
    hooked_serve,
    wait_for_all,
)

REQUESTS = 200


def counted(server: LiveServer, operation: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "certapi_requests_total"
               and sample.labels == {"operation": operation, "status_class": "2xx"})


def metric_files(tmp: str) -> list[str]:
    found = [os.path.join(root, name) for root, _, names in os.walk(tmp) for name in names]
    return [path for path in found if path.endswith(".db") and "certapi-metrics-" in path]


@pytest.mark.slow
@pytest.mark.parametrize("kind", backends())
def test_requests_over_four_workers_are_each_counted_once(kind, tmp_path, monkeypatch):
    # The serve command makes its metrics directory under $TMPDIR: here, to look into it.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("CERTAPI_METRICS", raising=False)
    with fresh_database(kind, tmp_path, "metrics") as url:
        server = LiveServer(url, tmp_path / "serve.log", workers=4).start()
        try:
            headers = new_account(url)

            def one(_):
                # A connection per request, so gunicorn hands them to whichever worker accepts.
                return httpx.get(f"{server.url}/v1/partners", headers=headers, timeout=30).status_code

            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(one, range(REQUESTS))) == {200}
            writers = {os.path.basename(path).rsplit("_", 1)[1] for path in metric_files(str(tmp))
                       if os.path.basename(path).startswith("counter_")}
            assert len(writers) >= 2, (writers, server.log())  # the requests were spread
            for _ in range(8):  # any worker may answer the scrape; each sums them all
                assert counted(server, "listPartners") == REQUESTS

            victim = server.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while victim in server.worker_pids() or len(server.worker_pids()) < 4:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.2)
            # A dead worker's counts stay in the sums.
            assert counted(server, "listPartners") == REQUESTS
            assert server.terminate() == 0
        finally:
            server.kill()
    assert metric_files(str(tmp)) == []  # the run's directory is gone


def delivered(server: LiveServer) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "certapi_webhook_deliveries_total"
               and sample.labels == {"outcome": "succeeded"})


@pytest.mark.parametrize("kind", backends())
def test_one_worker_counts_what_its_sender_process_delivers(kind, tmp_path, monkeypatch):
    """`serve` with one worker is two processes too (the sender is the worker's child):
    /metrics counts the deliveries the child made."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("CERTAPI_METRICS", raising=False)
    with hooked_serve(kind, tmp_path, workers=1, name="metrics") as hooked:
        with Writer(hooked.server.url, hooked.headers, hooked.certification) as writer:
            time.sleep(1)
        assert writer.acknowledged > 0
        wait_for_all(hooked.receiver, committed_events(hooked.url))
        sent = query(hooked.url,
                     "SELECT count(*) FROM webhook_delivery WHERE status = 'succeeded'")[0][0]
        assert sent >= 3 * writer.acknowledged
        assert delivered(hooked.server) == sent
