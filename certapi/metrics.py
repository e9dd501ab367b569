"""Prometheus metrics: what is counted, and ``GET /metrics`` that exposes it.

Requests are recorded by the access-log layer (certapi.middleware.RequestLog), which
already times every request, so metrics add no layer of their own. Under
``certapi serve --workers N`` every worker writes its values to files in a directory the
serve command creates per run (prometheus_client's multiprocess mode,
``PROMETHEUS_MULTIPROC_DIR``); a scrape, answered by any one worker, sums them all.
The webhook queue's depth and lag are read from the database when scraped, so they
cover every sender (serve's workers and `certapi worker` processes alike).

``CERTAPI_METRICS=off`` leaves ``/metrics`` out (a 404) and records nothing.
"""
import logging
import os
from collections.abc import Iterable

import flask
from peewee import PeeweeException
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from certapi.errors import DATABASE_UNAVAILABLE
from certapi.metrics_dir import MULTIPROCESS_ENV
from models.db import database

PATH = "/metrics"
# A request no operation answers (404s of unknown paths, Swagger UI, /metrics itself):
# one label value, so clients cannot grow the series count with made-up paths.
NO_OPERATION = "none"

log = logging.getLogger("certapi.metrics")
OUTAGE: tuple[type[Exception], ...] = (PeeweeException, *DATABASE_UNAVAILABLE)

if os.environ.get(MULTIPROCESS_ENV) and values.ValueClass is values.MutexValue:
    # prometheus_client picks its value store when first imported: imported before the
    # directory was set, every worker would count for itself and a scrape see one of them.
    raise RuntimeError(f"prometheus_client was imported before {MULTIPROCESS_ENV} was set")

# A `_created` series beside every counter doubles the scrape for nothing Prometheus uses.
disable_created_metrics()

REQUESTS = Counter("certapi_requests", "HTTP requests answered, by operationId and status class.",
                   ["operation", "status_class"])
# Buckets from 5 ms (a cached read) to 10 s (a 1000-item bulk enrollment on a busy disk).
LATENCY = Histogram("certapi_request_duration_seconds",
                    "Time from the request's arrival to the end of its answer, by operationId and "
                    "status class.", ["operation", "status_class"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
RATE_LIMITED = Counter("certapi_rate_limited_requests",
                       "Requests refused with 429 because their API key was over its rate limit.")
IDEMPOTENT_REPLAYS = Counter("certapi_idempotent_replays",
                             "Requests answered with the stored answer of an earlier request with "
                             "the same Idempotency-Key.")
DELIVERIES = Counter("certapi_webhook_deliveries",
                     "Webhook delivery attempts by outcome: succeeded, retry (failed, another "
                     "attempt is scheduled) or failed (failed, no attempt left).", ["outcome"])
DELIVERY_OUTCOMES = ("succeeded", "retry", "failed")
for _outcome in DELIVERY_OUTCOMES:
    DELIVERIES.labels(_outcome)  # present from the start, so rate() sees the first one
# livesum: the connections of the live workers, added up (a dead worker's go with it).
POOL = Gauge("certapi_db_pool_connections",
             "Pooled database connections by state (in_use, idle), as of each worker's last request.",
             ["state"], multiprocess_mode="livesum")
_POOL_IN_USE, _POOL_IDLE = POOL.labels("in_use"), POOL.labels("idle")


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROCESS_ENV))


def sample_pool() -> None:
    """Write this process's connection pool counts to the pool gauge."""
    pool = database.obj
    in_use, idle = getattr(pool, "_in_use", None), getattr(pool, "_connections", None)
    if in_use is None or idle is None:  # not a pooled database
        return
    global _pool_seen
    seen = (len(in_use), len(idle))
    if seen != _pool_seen:  # most requests leave the counts as they were: no write then
        _pool_seen = seen
        _POOL_IN_USE.set(seen[0])
        _POOL_IDLE.set(seen[1])


_pool_seen = (-1, -1)


class Recorder:
    """Records one answered request: what RequestLog calls as each request ends. The
    labelled series are looked up once per (operation, status class), not per request."""

    def __init__(self) -> None:
        self._series: dict[tuple[str | None, int], tuple[Counter, Histogram]] = {}

    def __call__(self, operation_id: str | None, status: int, seconds: float) -> None:
        key = (operation_id, status // 100)
        series = self._series.get(key)
        if series is None:
            labels = (operation_id or NO_OPERATION, f"{status // 100}xx")
            series = self._series[key] = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
        series[0].inc()
        series[1].observe(seconds)
        sample_pool()


class QueueCollector(Collector):
    """The webhook queue as the database holds it when scraped: pending deliveries to
    enabled endpoints (a disabled endpoint's stay pending until it is enabled again and
    would otherwise raise a lag alert forever), those whose rows a sender has yet to
    write included, and the age of the oldest of them."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from certapi.webhooks import fanout
        from models import WebhookDelivery, WebhookEndpoint
        from models.base import utcnow

        up = GaugeMetricFamily("certapi_database_up",
                               "Whether the scrape could read the webhook queue from the database.")
        try:
            with database.connection_context():
                pending = (WebhookDelivery.select(WebhookDelivery.created_at)
                           .join(WebhookEndpoint)
                           .where((WebhookDelivery.status == "pending") & WebhookEndpoint.enabled))
                depth = pending.count()
                first = pending.order_by(WebhookDelivery.created_at).first()
                unwritten, unwritten_since = fanout.unwritten()
        except OUTAGE as exc:
            log.warning("metrics: cannot read the webhook queue (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("certapi_webhook_outbox_pending",
                                "Webhook deliveries waiting to be sent (first attempts and retries).",
                                value=depth + unwritten)
        times = [t for t in (first.created_at if first else None, unwritten_since) if t is not None]
        lag = (utcnow() - min(times)).total_seconds() if times else 0.0
        yield GaugeMetricFamily("certapi_webhook_delivery_lag_seconds",
                                "Age of the oldest webhook delivery not yet sent (0 when none waits).",
                                value=max(0.0, lag))


_QUEUE = CollectorRegistry(auto_describe=False)
_QUEUE.register(QueueCollector())


def exposition() -> bytes:
    """Every metric in the Prometheus text format: the recorded ones (every worker's,
    summed, in multiprocess mode), process metrics, and the queue read now."""
    sample_pool()
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        # Process metrics cannot be summed across processes: these are the answering worker's.
        ProcessCollector(registry=registry)
    else:
        registry = REGISTRY
    return generate_latest(registry) + generate_latest(_QUEUE)


def scrape() -> flask.Response:
    return flask.Response(exposition(), mimetype=CONTENT_TYPE_LATEST)


def install(flask_app: flask.Flask) -> Recorder:
    """Serve ``GET /metrics`` beside the API (outside its base path and its security),
    and return the recorder for RequestLog."""
    flask_app.add_url_rule(PATH, "metrics", scrape, methods=["GET"])
    return Recorder()


def worker_exited(pid: int) -> None:
    """A worker process ended: its live gauges leave the sums (gunicorn's child_exit)."""
    multiprocess.mark_process_dead(pid)

