"""Delivery rows written by the sender: ``event.fanout`` holds the endpoint uuids
(comma-separated) an event still has to be fanned out to.

Which endpoints an event is for is decided in the change's transaction, as before; only
the delivery rows (a table and three indexes) are left to the sender, which writes them
and clears the column in one transaction (certapi/webhooks/fanout.py). The partial
index holds just the events waiting for that, so finding them reads nothing when none
waits. Existing rows stay NULL: their deliveries exist already."""
from peewee import TextField


def up(migrator, db):
    migrator.migrate(migrator.add_column("event", "fanout", TextField(null=True)))
    db.execute_sql("CREATE INDEX event_fanout_waiting ON event (created_at) "
                   "WHERE fanout IS NOT NULL")


def down(migrator, db):
    # Events still waiting lose their receivers: fan them out (run a sender) first.
    db.execute_sql("DROP INDEX IF EXISTS event_fanout_waiting")
    migrator.migrate(migrator.drop_column("event", "fanout"))
