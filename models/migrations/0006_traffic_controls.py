"""Traffic controls: a key's own rate limit, stored idempotent answers, and the table of
rate-limit counters (used where counters live in the main database: PostgreSQL by
default; on SQLite they go to a file of their own, see certapi.ratelimit)."""
from peewee import (
    CharField, DateTimeField, DoubleField, ForeignKeyField, IntegerField, Model, TextField,
)


def up(migrator, db):
    migrator.migrate(migrator.add_column("api_key", "rate_limit", IntegerField(null=True)))

    class Account(Model):
        uuid = CharField(primary_key=True, max_length=36)

        class Meta:
            database = db
            table_name = "account"

    class IdempotencyRecord(Model):
        uuid = CharField(primary_key=True, max_length=36)
        account = ForeignKeyField(Account, on_delete="CASCADE")
        key = CharField(max_length=255)
        fingerprint = CharField(max_length=64)
        status = IntegerField()
        body = TextField()
        content_type = CharField(max_length=100, null=True)
        location = TextField(null=True)
        created_at = DateTimeField(index=True)

        class Meta:
            database = db
            table_name = "idempotency_record"
            indexes = ((("account", "key"), True),)

    class RateLimitCounter(Model):
        name = CharField(primary_key=True, max_length=255)
        count = IntegerField()
        expires_at = DoubleField()

        class Meta:
            database = db
            table_name = "rate_limit_counter"

    db.create_tables([IdempotencyRecord, RateLimitCounter])


def down(migrator, db):
    db.execute_sql("DROP TABLE IF EXISTS rate_limit_counter")
    db.execute_sql("DROP TABLE IF EXISTS idempotency_record")
    migrator.migrate(migrator.drop_column("api_key", "rate_limit"))
