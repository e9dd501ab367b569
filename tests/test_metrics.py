"""GET /metrics in process: the request counter and histogram by operationId and status
class, 429s, idempotent replays, webhook deliveries by outcome, the queue's depth and lag
read at scrape time, the pool gauge, process metrics, and CERTAPI_METRICS=off."""
import datetime
import os

from prometheus_client.parser import text_string_to_metric_families

from certapi.app import create_app
from certapi.config import Settings
from certapi.webhooks.delivery import Sender
from models import Account, ApiKey, WebhookDelivery
from models.base import utcnow
from tests.conftest import expect_error
from tests.webhook_receiver import Answer, Receiver


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape: (name, sorted labels) → value."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests(samples, operation: str, status_class: str) -> float:
    return value(samples, "certapi_requests_total", operation=operation, status_class=status_class)


def test_requests_are_counted_and_timed_by_operation_and_status_class(client, tenant):
    before = scrape(client)
    for _ in range(3):
        assert client.get("/v1/partners", headers=tenant.headers).status_code == 200
    expect_error(client.get("/v1/partners?per_page=0", headers=tenant.headers), 422, "validation_error")
    expect_error(client.get("/v1/nowhere", headers=tenant.headers), 404, "not_found")
    after = scrape(client)

    assert requests(after, "listPartners", "2xx") - requests(before, "listPartners", "2xx") == 3
    assert requests(after, "listPartners", "4xx") - requests(before, "listPartners", "4xx") == 1
    # A path no operation answers is one label value, never the path itself.
    assert requests(after, "none", "4xx") - requests(before, "none", "4xx") >= 1
    assert not [key for key in after if "/v1/nowhere" in str(key)]
    count = "certapi_request_duration_seconds_count"
    labels = {"operation": "listPartners", "status_class": "2xx"}
    assert value(after, count, **labels) - value(before, count, **labels) == 3
    total = value(after, "certapi_request_duration_seconds_sum", **labels)
    assert total > value(before, "certapi_request_duration_seconds_sum", **labels)
    # Cumulative buckets end with +Inf = count.
    assert value(after, "certapi_request_duration_seconds_bucket", le="+Inf", **labels) == \
        value(after, count, **labels)


def test_metrics_need_no_key_and_carry_process_and_pool_metrics(client, tenant):
    client.get("/v1/partners", headers=tenant.headers)
    samples = scrape(client)
    assert value(samples, "process_resident_memory_bytes") > 0
    assert ("certapi_db_pool_connections", (("state", "idle"),)) in samples
    assert ("certapi_db_pool_connections", (("state", "in_use"),)) in samples
    assert value(samples, "certapi_database_up") == 1


def test_rate_limited_requests_are_counted(client, tenant):
    _, key = ApiKey.issue(Account.get_by_id(tenant.uuid), "read", rate_limit=1)
    headers = {"Authorization": f"Bearer {key}"}
    before = value(scrape(client), "certapi_rate_limited_requests_total")
    assert client.get("/v1/partners", headers=headers).status_code == 200
    expect_error(client.get("/v1/partners", headers=headers), 429, "rate_limit_exceeded")
    expect_error(client.get("/v1/partners", headers=headers), 429, "rate_limit_exceeded")
    assert value(scrape(client), "certapi_rate_limited_requests_total") - before == 2


def test_idempotent_replays_are_counted(client, tenant):
    headers = {**tenant.headers, "Idempotency-Key": '"metrics-replay-1"'}
    before = value(scrape(client), "certapi_idempotent_replays_total")
    first = client.post("/v1/partners", headers=headers, json={"name": "Replayed"})
    again = client.post("/v1/partners", headers=headers, json={"name": "Replayed"})
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert value(scrape(client), "certapi_idempotent_replays_total") - before == 1


def test_queue_depth_lag_and_deliveries_by_outcome(client, tenant, monkeypatch, only_this_tenant):
    monkeypatch.setenv("CERTAPI_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("CERTAPI_WEBHOOK_RETRY_SCHEDULE", "60")  # one retry, a minute away
    monkeypatch.setenv("CERTAPI_WEBHOOK_TIMEOUT", "2")
    with Receiver() as good, Receiver(lambda received: Answer(500)) as bad:
        ours = []
        for url in (good.url, bad.url):
            response = client.post("/v1/webhook-endpoints", headers=tenant.headers, json={"url": url})
            assert response.status_code == 201, response.text
            ours.append(response.json()["uuid"])
            assert client.post(f"/v1/webhook-endpoints/{ours[-1]}/test",
                               headers=tenant.headers).status_code == 202
        # Queued a minute ago: the lag is the oldest pending delivery's age.
        WebhookDelivery.update(created_at=utcnow() - datetime.timedelta(seconds=60)).where(
            WebhookDelivery.endpoint.in_(ours)).execute()
        queued = scrape(client)
        assert value(queued, "certapi_webhook_outbox_pending") == 2
        assert value(queued, "certapi_webhook_delivery_lag_seconds") >= 60

        Sender().run_once()
        sent = scrape(client)
        assert value(sent, "certapi_webhook_deliveries_total", outcome="succeeded") - \
            value(queued, "certapi_webhook_deliveries_total", outcome="succeeded") == 1
        assert value(sent, "certapi_webhook_deliveries_total", outcome="retry") - \
            value(queued, "certapi_webhook_deliveries_total", outcome="retry") == 1
        assert value(sent, "certapi_webhook_outbox_pending") == 1  # the retry waits

        WebhookDelivery.update(next_attempt_at=utcnow()).where(
            WebhookDelivery.endpoint.in_(ours)).execute()
        Sender().run_once()  # the schedule has no attempt left: failed
        done = scrape(client)
        assert value(done, "certapi_webhook_deliveries_total", outcome="failed") - \
            value(sent, "certapi_webhook_deliveries_total", outcome="failed") == 1
        assert value(done, "certapi_webhook_outbox_pending") == 0
        assert value(done, "certapi_webhook_delivery_lag_seconds") == 0


def test_metrics_off_removes_the_endpoint(app, database_url, tenant, keep_database_binding):
    off = create_app(Settings(database_url=database_url, key_cache_seconds=0, metrics=False))
    with off.test_client() as raw:
        expect_error(raw.get("/metrics"), 404, "not_found")
        assert raw.get("/v1/partners", headers=tenant.headers).status_code == 200


def test_metrics_off_by_environment(monkeypatch):
    for given, expected in [("off", False), ("0", False), ("OFF", False), ("on", True), ("", True)]:
        monkeypatch.setenv("CERTAPI_METRICS", given)
        assert Settings().metrics is expected, given


def test_a_killed_runs_metrics_directory_is_removed_by_the_next_run(tmp_path, monkeypatch):
    """serve --workers N makes a directory per run and removes it when it stops; one killed
    with SIGKILL cannot, so the next run removes directories whose process is gone."""
    import subprocess
    import sys
    import tempfile

    from certapi import metrics_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(metrics_dir.MULTIPROCESS_ENV, raising=False)
    monkeypatch.setenv("CERTAPI_METRICS", "on")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    abandoned = tmp_path / f"{metrics_dir.PREFIX}{gone}-x1"
    (abandoned / "sub").mkdir(parents=True)
    running = tmp_path / f"{metrics_dir.PREFIX}{os.getppid()}-x2"  # a live process's
    running.mkdir()
    unrelated = tmp_path / f"{metrics_dir.PREFIX}notapid"
    unrelated.mkdir()
    with metrics_dir.multiprocess_dir() as path:
        assert path is not None and os.path.basename(path).startswith(f"{metrics_dir.PREFIX}{os.getpid()}-")
        assert not abandoned.exists()
        assert running.exists() and unrelated.exists()
    assert not os.path.exists(path)
