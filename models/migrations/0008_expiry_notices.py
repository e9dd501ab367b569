"""Expiry notices: when the expiry scan raised an enrollment's ``enrollment.expiring`` and
``enrollment.expired`` events (null: not yet).

Each scan looks for completed enrollments whose marker is still null and whose expiry
(or renewal window) has come. Partial indexes hold only those rows: a certificate
leaves them once its notice is raised, so a scan reads the few rows due, not the
history of every certificate ever issued. Existing rows start unmarked: an enrollment
that expired before this migration gets its ``enrollment.expired`` at the first scan."""
from peewee import DateTimeField

INDEXES = {
    "enrollment_expiring_unraised": "expiring_raised_at",
    "enrollment_expired_unraised": "expired_raised_at",
}


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("enrollment", "expiring_raised_at", DateTimeField(null=True)),
        migrator.add_column("enrollment", "expired_raised_at", DateTimeField(null=True)),
    )
    for name, marker in INDEXES.items():
        db.execute_sql(f"CREATE INDEX {name} ON enrollment (expires_at) "
                       f"WHERE {marker} IS NULL AND expires_at IS NOT NULL")


def down(migrator, db):
    for name in INDEXES:
        db.execute_sql(f"DROP INDEX IF EXISTS {name}")
    migrator.migrate(
        migrator.drop_column("enrollment", "expired_raised_at"),
        migrator.drop_column("enrollment", "expiring_raised_at"),
    )
