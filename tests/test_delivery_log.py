"""The webhook delivery log line: with CERTAPI_LOG_FORMAT=json one JSON object per
attempt with its fields (endpoint uuid, event type, status, duration, outcome), never the
endpoint's URL or secret, the payload or an email; in text one escaped line."""
import io
import json
import logging

import pytest

from certapi.logs import formatter
from certapi.webhooks.delivery import Sender
from tests.webhook_receiver import Answer, Receiver


@pytest.fixture
def delivery_log():
    """What the certapi.webhooks logger writes, formatted as CERTAPI_LOG_FORMAT says."""
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    logger = logging.getLogger("certapi.webhooks")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def use(kind: str) -> io.StringIO:
        handler.setFormatter(formatter(kind))
        return written

    yield use
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def private_receivers(monkeypatch):
    monkeypatch.setenv("CERTAPI_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("CERTAPI_WEBHOOK_RETRY_SCHEDULE", "60")
    monkeypatch.setenv("CERTAPI_WEBHOOK_TIMEOUT", "2")


def endpoint_with_test_event(client, tenant, url: str) -> dict:
    response = client.post("/v1/webhook-endpoints", headers=tenant.headers, json={"url": url})
    assert response.status_code == 201, response.text
    endpoint = response.json()
    queued = client.post(f"/v1/webhook-endpoints/{endpoint['uuid']}/test", headers=tenant.headers)
    assert queued.status_code == 202, queued.text
    return endpoint


@pytest.mark.usefixtures("private_receivers", "only_this_tenant")
def test_json_delivery_lines_carry_their_fields_and_no_secret(client, tenant, delivery_log):
    written = delivery_log("json")
    with Receiver() as good, Receiver(lambda received: Answer(503)) as bad:
        ok = endpoint_with_test_event(client, tenant, good.url + "/hooks?token=url-secret")
        failing = endpoint_with_test_event(client, tenant, bad.url)
        assert Sender().run_once() == 2
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    by_endpoint = {line["endpoint_uuid"]: line for line in lines}
    assert set(by_endpoint) == {ok["uuid"], failing["uuid"]}
    sent, refused = by_endpoint[ok["uuid"]], by_endpoint[failing["uuid"]]
    for line in (sent, refused):
        assert line["logger"] == "certapi.webhooks" and line["level"] == "INFO"
        assert line["event_type"] == "webhook.test" and line["attempt"] == 1
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert len(line["event_uuid"]) == 36 and line["time"]
    assert (sent["status"], sent["outcome"], sent["error"]) == (200, "succeeded", None)
    assert (refused["status"], refused["outcome"], refused["error"]) == (503, "retry", "HTTP 503")
    for line in lines:  # these fields and nothing else: no URL, secret or payload
        assert set(line) == {"time", "level", "logger", "message", "endpoint_uuid", "event_type",
                             "event_uuid", "attempt", "status", "duration_ms", "outcome", "error"}
    text = written.getvalue()
    for secret in (ok["secret"], failing["secret"], "url-secret", "timestamp"):
        assert secret not in text


@pytest.mark.usefixtures("private_receivers", "only_this_tenant")
def test_text_delivery_line_is_one_line(client, tenant, delivery_log):
    written = delivery_log("text")
    with Receiver() as good:
        endpoint = endpoint_with_test_event(client, tenant, good.url)
        Sender().run_once()
    (line,) = written.getvalue().splitlines()
    assert f"webhook delivery endpoint={endpoint['uuid']} event_type=webhook.test" in line
    assert "status=200" in line and "outcome=succeeded" in line
