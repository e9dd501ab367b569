"""Webhooks: endpoints, the event outbox and the delivery log/queue."""
from peewee import *


def up(migrator, db):
    class Account(Model):
        uuid = CharField(primary_key=True, max_length=36)
        class Meta:
            database = db
            table_name = 'account'

    class WebhookEndpoint(Model):
        uuid = CharField(primary_key=True, max_length=36)
        created_at = DateTimeField()
        updated_at = DateTimeField()
        account = ForeignKeyField(Account, on_delete='CASCADE')
        url = TextField()
        description = TextField(null=True)
        event_types = TextField()
        enabled = BooleanField()
        disabled_reason = TextField(null=True)
        secret = CharField(max_length=100)
        previous_secret = CharField(max_length=100, null=True)
        previous_secret_until = DateTimeField(null=True)
        failing_since = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'webhook_endpoint'
            indexes = ((('account', 'created_at', 'uuid'), False),)

    class Event(Model):
        uuid = CharField(primary_key=True, max_length=36)
        account = ForeignKeyField(Account, on_delete='CASCADE')
        type = CharField(max_length=64)
        enrollment_uuid = CharField(max_length=36, null=True)
        payload = TextField()
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'event'
            indexes = ((('account', 'created_at', 'uuid'), False), (('created_at',), False))

    class WebhookDelivery(Model):
        uuid = CharField(primary_key=True, max_length=36)
        created_at = DateTimeField()
        updated_at = DateTimeField()
        endpoint = ForeignKeyField(WebhookEndpoint, on_delete='CASCADE')
        event = ForeignKeyField(Event, on_delete='CASCADE')
        event_type = CharField(max_length=64)
        status = CharField(max_length=16)
        attempts = IntegerField()
        last_status_code = IntegerField(null=True)
        last_error = TextField(null=True)
        next_attempt_at = DateTimeField(null=True)
        claim = CharField(max_length=36, null=True)
        class Meta:
            database = db
            table_name = 'webhook_delivery'
            indexes = ((('endpoint', 'created_at', 'uuid'), False),
                       (('status', 'next_attempt_at'), False))

    db.create_tables([WebhookEndpoint, Event, WebhookDelivery])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('webhook_delivery'))
    migrator.migrate(migrator.drop_table('event'))
    migrator.migrate(migrator.drop_table('webhook_endpoint'))
