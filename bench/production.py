"""The production defaults both bench servers run with (bench/run.py), and the webhook
subscription they deliver to.

- rate limiting: on, as `certapi serve` has it (CERTAPI_RATE_LIMIT's default); the
  bench's key (bench/seed.py) has a limit the load never reaches, so every request is
  counted and none refused;
- Idempotency-Key on a share of the writes (bench/run.py --idempotency-share);
- one webhook endpoint per account subscribed to a receiver in the bench process that
  answers 200 (bench/webhooks.py's), each worker running the background sender;
- metrics: on in both (see ENV): the reference records every request through certapi's
  recorder and request log, as certapi does, but serves no /metrics.
"""
import sys
import uuid

ENV = {
    # The receiver listens on 127.0.0.1, which certapi refuses to deliver to by default.
    "CERTAPI_WEBHOOK_ALLOW_PRIVATE": "1",
    "CERTAPI_WEBHOOK_BACKGROUND": "1",
    # Metrics recorded as `certapi serve --workers N` records them (multiprocess mode: bench/run.py
    # gives each server its own PROMETHEUS_MULTIPROC_DIR), by both servers.
    "CERTAPI_METRICS": "on",
}
# `--plain` runs: no limiting, no subscriber (the sender still runs, with nothing to send), no keys.
PLAIN_ENV = {"CERTAPI_RATE_LIMIT": "0", "CERTAPI_METRICS": "off"}


def subscribe(database_url: str, url: str) -> int:
    """One endpoint per account, receiving every event type; how many were made."""
    from certapi.webhooks.signing import new_secret
    from models import Account, WebhookEndpoint, database
    from models.db import init_database

    init_database(database_url)
    made = 0
    with database.connection_context(), database.atomic():
        for account in Account.select():
            WebhookEndpoint.create(uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, account.uuid)),
                                   account=account, secret=new_secret(), url=url)
            made += 1
    return made


if __name__ == "__main__":  # python -m bench.production DATABASE_URL RECEIVER_URL
    print(subscribe(sys.argv[1], sys.argv[2]))
