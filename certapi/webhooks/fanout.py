"""Fan-out: the delivery rows of the events whose ``fanout`` column names endpoints.

A change's transaction writes its events only, each naming the endpoints subscribed to
it at commit time (certapi.webhooks.outbox), so the delivery rows (a table and three
indexes) stay out of the time a write holds SQLite's single write lock, which every
other write waits for. ``fan_out`` writes them later, in one transaction that takes the
waiting events, inserts their deliveries and clears the column: a crash leaves either
all of it or none. On PostgreSQL the events are taken FOR UPDATE, so two fan-outs never
write the same event's rows; on SQLite the transaction holds the write lock from its
start. Readers of the delivery log call ``settle`` first, so the API shows a delivery
from the moment its event commits."""
import datetime
from dataclasses import dataclass
from typing import Any

from models import Event, WebhookDelivery, WebhookEndpoint, database
from models.base import new_uuid
from models.bulk import among, insert_rows, unindexed

# Events fanned out per transaction by a sender.
EVENTS_PER_FAN_OUT = 128


@dataclass(frozen=True)
class Claim:
    """Deliveries to create already claimed by a sender (certapi.webhooks.delivery): in
    the state its claim UPDATE would leave them in, so a fresh event costs that sender no
    second transaction. At most ``limit`` of them; the rest are left due."""
    token: str
    until: datetime.datetime
    limit: int


def names(endpoints: list[str]) -> str | None:
    """The ``fanout`` value of an event for ``endpoints`` (their uuids): None for none."""
    return ",".join(endpoints) or None


def named(value: str) -> list[str]:
    """The endpoint uuids a ``fanout`` value names."""
    return value.split(",")


def _waiting(account: str | None) -> Any:
    query = Event.select(Event.uuid).where(Event.fanout.is_null(False))
    if account is not None:
        # Checked on the rows of the partial index: the account's own index would walk
        # every event the account ever raised.
        query = query.where(unindexed(Event.account) == account)
    return query


def fan_out(limit: int = EVENTS_PER_FAN_OUT, claim: Claim | None = None) -> tuple[int, list[str]]:
    """Write the delivery rows of up to ``limit`` waiting events (oldest first) and clear
    their column; events another fan-out holds (PostgreSQL) are passed over. (events
    fanned out, uuids of the deliveries created under ``claim``)."""
    if not _waiting(None).exists():  # a read of the partial index, outside the write lock
        return 0, []
    return _take(limit, None, claim, skip_locked=True)


def settle(account: str) -> None:
    """Fan out every event of ``account`` still waiting, so its delivery log is complete.
    On PostgreSQL what a sender has in hand is waited for, not passed over: once it
    commits, its rows no longer match and its deliveries are there to read."""
    while _waiting(account).exists():
        _take(EVENTS_PER_FAN_OUT, account, None, skip_locked=False)


def _take(limit: int, account: str | None, claim: Claim | None,
          skip_locked: bool) -> tuple[int, list[str]]:
    with database.atomic():
        query = (_waiting(account).select(Event.uuid, Event.type, Event.created_at, Event.fanout)
                 .order_by(Event.created_at).limit(limit))
        if database.for_update:  # PostgreSQL; SQLite's transaction holds the write lock
            query = query.for_update(of=Event, skip_locked=skip_locked or None)
        events = list(query.tuples().execute())
        if not events:
            return 0, []
        wanted = {uuid for *_, fanout in events for uuid in named(fanout)}
        endpoints = (WebhookEndpoint.select(WebhookEndpoint.uuid, WebhookEndpoint.enabled)
                     .where(among(WebhookEndpoint.uuid, sorted(wanted))))
        if database.for_update:
            # An endpoint deleted meanwhile waits for this commit, then takes these rows
            # with it (its INSERT would otherwise fail the foreign key).
            endpoints = endpoints.for_update("FOR KEY SHARE")  # type: ignore[arg-type]
        # An endpoint deleted since its event committed took its deliveries with it;
        # one disabled since keeps them pending, as it would have, but none is claimed.
        enabled: dict[str, bool] = dict(endpoints.tuples().execute())
        rows: list[dict[str, Any]] = []
        claimed: list[str] = []
        for event_uuid, event_type, created_at, fanout in events:
            for endpoint in named(fanout):
                if endpoint not in enabled:
                    continue
                # Stamped with the event's time: the log orders, and the metrics' lag
                # counts, from the change, not from the fan-out.
                row = {"uuid": new_uuid(), "endpoint": endpoint, "event": event_uuid,
                       "event_type": event_type, "status": "pending", "attempts": 0,
                       "next_attempt_at": created_at, "created_at": created_at,
                       "updated_at": created_at}
                if claim is not None and enabled[endpoint] and len(claimed) < claim.limit:
                    row.update(claim=claim.token, attempts=1, next_attempt_at=claim.until)
                    claimed.append(row["uuid"])
                rows.append(row)
        insert_rows(WebhookDelivery, rows)
        (Event.update(fanout=None)
         .where(among(Event.uuid, [uuid for uuid, *_ in events])).execute())
    return len(events), claimed



def unwritten() -> tuple[int, datetime.datetime | None]:
    """The deliveries to enabled endpoints that committed events still name in their
    ``fanout`` column (no sender has written their rows yet), and the oldest such event's
    time (for the queue's metrics). A read of the events' partial index: nothing when
    none waits."""
    waiting = list(Event.select(Event.fanout, Event.created_at)
                   .where(Event.fanout.is_null(False)).order_by(Event.created_at).tuples().execute())
    if not waiting:
        return 0, None
    wanted = sorted({uuid for fanout, _ in waiting for uuid in named(fanout)})
    enabled = {uuid for (uuid,) in WebhookEndpoint.select(WebhookEndpoint.uuid)
               .where(WebhookEndpoint.uuid.in_(wanted) & WebhookEndpoint.enabled).tuples().execute()}
    depth, oldest = 0, None
    for fanout, created_at in waiting:
        count = sum(1 for uuid in named(fanout) if uuid in enabled)
        if count and oldest is None:
            oldest = created_at
        depth += count
    return depth, oldest
