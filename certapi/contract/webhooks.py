"""Webhooks (Standard Webhooks): subscribe, change an enrollment, and receive the
events signed, at a receiver the suite runs itself.

The server under test must reach the receiver: ``configure`` starts it (on the port of
the ``--webhook-receiver`` URL, or on a free loopback port with ``auto``). Without a
receiver, or when the server refuses its URL as a non-public destination, the
scenarios say SKIP and why."""
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from certapi.contract import expect
from certapi.contract.agent import enrollment_path
from certapi.contract.expect import Skip
from certapi.contract.runner import scenario

# How long a scenario waits for its deliveries to arrive.
WAIT_SECONDS = 30.0
NO_RECEIVER = ("no webhook receiver (--webhook-receiver auto, or a URL the server can "
               "reach): webhook delivery not checked")


class Receiver:
    """Records every POST it gets: (path, lower-cased headers, body text); answers 204."""

    def __init__(self, url: str | None = None):
        parts = urlsplit(url) if url else None
        host = "0.0.0.0" if parts else "127.0.0.1"
        self.received: list[tuple[str, dict, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.received.append(
                        (self.path, {k.lower(): v for k, v in self.headers.items()},
                         body.decode("utf-8", "replace")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer((host, parts.port or 80) if parts else (host, 0), Handler)
        self._server.daemon_threads = True
        self.base = url.rstrip("/") if url else \
            f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def at(self, path_suffix: str) -> list[tuple[dict, str]]:
        with self._lock:
            return [(h, b) for p, h, b in self.received if p.endswith(path_suffix)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_receiver: Receiver | None = None


def configure(url: str | None) -> None:
    """Start the receiver: ``auto`` on a free loopback port, or listening on the port of
    ``url`` (the address the server under test posts to). None stops it."""
    global _receiver
    if _receiver is not None:
        _receiver.close()
        _receiver = None
    if url:
        _receiver = Receiver(None if url == "auto" else url)


def _subscribe(api, event_types: list[str]) -> tuple[dict, str]:
    if _receiver is None:
        raise Skip(NO_RECEIVER)
    suffix = f"/{uuid.uuid4().hex}"
    response = api.post("/webhook-endpoints", {"url": _receiver.base + suffix,
                                               "event_types": event_types})
    if response.status_code == 422 and "url" in response.text:
        raise Skip("the server refuses the receiver's URL as a destination (run it with "
                   "CERTAPI_WEBHOOK_ALLOW_PRIVATE=1, or give --webhook-receiver a URL it accepts): "
                   + expect.what(response))
    endpoint = expect.shaped(response, 201, "WebhookEndpointWithSecret")
    expect.check(endpoint["secret"].startswith("whsec_"), f"secret is not whsec_…: {endpoint}")
    shown = expect.shaped(api.get(f"/webhook-endpoints/{endpoint['uuid']}"), 200, "WebhookEndpoint")
    expect.check("secret" not in shown, "GET of an endpoint shows its secret")
    return endpoint, suffix


def _wait(suffix: str, done) -> list[tuple[dict, str]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        got = _receiver.at(suffix)
        if done(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def _verified(secret: str, headers: dict, body: str) -> dict:
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        expect.check(name in headers, f"a delivery lacks the {name} header: {sorted(headers)}")
    expect.check(headers.get("content-type", "").startswith("application/json"),
                 f"a delivery's Content-Type is {headers.get('content-type')!r}")
    try:
        return Webhook(secret).verify(body, headers)
    except (WebhookVerificationError, ValueError) as exc:
        expect.fail(f"delivery {headers['webhook-id']} fails Standard Webhooks verification "
                    f"with the endpoint's secret: {exc}")


@scenario("webhooks.enroll_to_completion")
def enroll_to_completion(ctx):
    """Enroll, pass an attempt: enrollment.created, assessment_attempt.recorded and
    enrollment.completed arrive signed, with the events API's ids and the resource as GET shows it."""
    api = ctx.write
    wanted = ["enrollment.created", "assessment_attempt.recorded", "enrollment.completed"]
    endpoint, suffix = _subscribe(api, wanted)
    try:
        enrollment = api.enroll(api.certification(passing_score=70), api.user())
        expect.status(api.attempt(enrollment, 90), 201)
        final = expect.shaped(api.get(enrollment_path(enrollment)), 200, "Enrollment")

        def mine(got):
            return [p for p in (json.loads(b) for _, b in got)
                    if (p.get("data") or {}).get("uuid") == enrollment["uuid"]
                    or (p.get("data") or {}).get("enrollment_uuid") == enrollment["uuid"]]

        got = _wait(suffix, lambda got: len(mine(got)) >= 3)
        payloads = {}
        for headers, body in got:
            payload = _verified(endpoint["secret"], headers, body)
            payloads[payload["type"]] = (headers["webhook-id"], payload)
        missing = [t for t in wanted if t not in payloads]
        expect.check(not missing, f"not delivered within {WAIT_SECONDS:g}s: {missing} "
                                  f"(got {sorted(payloads)})")
        expect.equal(payloads["enrollment.completed"][1]["data"], final,
                     "enrollment.completed data vs GET of the enrollment")
        recorded = payloads["assessment_attempt.recorded"][1]["data"]
        expect.equal((recorded["enrollment_uuid"], recorded["certification_uuid"], recorded["score"]),
                     (enrollment["uuid"], enrollment["certification_uuid"], 90),
                     "assessment_attempt.recorded data")
        events = expect.body(expect.status(
            api.get("/events", params={"enrollment_uuid": enrollment["uuid"], "per_page": 100}), 200))
        known = {e["uuid"]: e for e in events["data"]}
        for kind, (event_id, payload) in payloads.items():
            expect.check(event_id in known, f"{kind}: webhook-id {event_id} is not in GET /events")
            expect.equal({k: known[event_id][k] for k in ("type", "timestamp", "data")}, payload,
                         f"{kind}: GET /events vs the delivered payload")
    finally:
        api.delete(f"/webhook-endpoints/{endpoint['uuid']}")


@scenario("webhooks.test_event")
def test_event(ctx):
    """POST …/test answers 202 and a signed webhook.test arrives; the delivery log shows it."""
    api = ctx.write
    endpoint, suffix = _subscribe(api, [])
    try:
        base = f"/webhook-endpoints/{endpoint['uuid']}"
        queued = expect.shaped(api.post(f"{base}/test"), 202, "WebhookDelivery")
        expect.equal(queued["event_type"], "webhook.test", "event_type of the test delivery")
        got = _wait(suffix, lambda got: bool(got))
        expect.check(got, f"no webhook.test delivered within {WAIT_SECONDS:g}s")
        headers, body = got[0]
        payload = _verified(endpoint["secret"], headers, body)
        expect.equal((payload["type"], headers["webhook-id"]), ("webhook.test", queued["event_id"]),
                     "type and webhook-id of the test delivery")
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            log = expect.body(expect.status(api.get(f"{base}/deliveries"), 200))["data"]
            done = [d for d in log if d["uuid"] == queued["uuid"] and d["status"] == "succeeded"]
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        expect.check(done, f"the delivery log does not show the test delivery succeeded: {log}")
    finally:
        api.delete(f"/webhook-endpoints/{endpoint['uuid']}")
