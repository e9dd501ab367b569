"""A bench target: certapi as `certapi serve` runs it (one worker leads and sends)
with one endpoint of every account subscribed to $BENCH_WEBHOOK_URL, a local receiver
that answers 200 (bench/webhooks.py runs both)."""
import os
import uuid

from peewee import IntegrityError

from certapi.server import served_app
from certapi.webhooks.signing import new_secret
from models import Account, WebhookEndpoint, database


def create_app():
    app = served_app()
    with database.connection_context():
        for account in Account.select():
            # One id per account, so the second worker's insert is a no-op.
            ident = str(uuid.uuid5(uuid.NAMESPACE_URL, account.uuid))
            try:
                with database.atomic():
                    WebhookEndpoint.create(uuid=ident, account=account, secret=new_secret(),
                                           url=os.environ["BENCH_WEBHOOK_URL"])
            except IntegrityError:
                pass
    return app
