"""Moves items written under the old national keys onto today's sharded ones:

- activity records kept under a bare UTC day (`2027-04-12`) move to `2027-04-12#<shard>`
  (models.activity_keys), the shard taken from the record's own random suffix;
- pending outbox messages whose `due` is the old single value `due` get their shard
  (models.outbox_due_key), so the retry job, which queries the shards, finds them;
- a meetup's address guards (`E#`), line entries (`W#`) and departures (`D#`), once kept in the
  meetup's own partition with its registrations, move to their own partitions
  (models.guard_partition, models.line_partition).

    python -m chalicelib.migrate_keys      # `make run` applies it at start (devtools/run.py)

Idempotent and safe to interrupt: a moved record is written under its new key before the old
one is deleted (a record briefly in both is the same record; the digest reads only the new
keys), and a message's `due` is changed only while it is still the old value. No Scan: the old
day partitions are read one by one over the days a record can still exist (the retention
period), and the old messages through the `by_due` index.
"""
from __future__ import annotations

import sys
from datetime import timedelta

from chalicelib import catalogue, clock
from chalicelib.config import get_settings
from chalicelib.models import (ACTIVITY_SHARDS, DEPARTURE_PREFIX, EMAIL_GUARD_PREFIX, WAITLIST_PREFIX, Activity,
                               Departure, EmailGuard, OutboxMessage, WaitlistEntry, guard_partition, line_partition,
                               outbox_due_key)
from chalicelib.storage import conditional, storage_errors

LEGACY_DUE = "due"
LOOKBACK_MARGIN_DAYS = 14  # beyond the retention period: records the TTL has not removed yet


def _shard_of(sk: str) -> int:
    return int(sk.rsplit("#", 1)[1], 16) % ACTIVITY_SHARDS


def migrate_activity(now=None) -> int:
    """Moves the records of the old day partitions; returns how many moved."""
    now = now or clock.now()
    days = get_settings().retention_days + LOOKBACK_MARGIN_DAYS
    moved = 0
    with storage_errors():
        for back in range(days, -1, -1):
            day = (now - timedelta(days=back)).strftime("%Y-%m-%d")
            old = list(Activity.query(day, consistent_read=True))
            if not old:
                continue
            with Activity.batch_write() as batch:
                for item in old:
                    batch.save(Activity(day=f"{day}#{_shard_of(item.sk)}", sk=item.sk, type=item.type,
                                        meetup_id=item.meetup_id, province=item.province, details=item.details,
                                        expires_at=item.expires_at))
            with Activity.batch_write() as batch:
                for item in old:
                    batch.delete(item)
            moved += len(old)
    return moved


def migrate_outbox() -> int:
    """Gives each message still under the old `due` value its shard; returns how many."""
    moved = 0
    with storage_errors():
        for key in list(OutboxMessage.by_due.query(LEGACY_DUE)):
            # A failed condition: sent or moved meanwhile.
            if conditional(lambda: OutboxMessage(id=key.id).update(
                    actions=[OutboxMessage.due.set(outbox_due_key(key.id))], condition=OutboxMessage.due == LEGACY_DUE)):
                moved += 1
    return moved


def migrate_meetup_partitions(meetup_id: str) -> int:
    """Moves one meetup's guards, line entries and departures to their partitions; returns how many."""
    moved = 0
    with storage_errors():
        for model, prefix, partition in ((EmailGuard, EMAIL_GUARD_PREFIX, guard_partition(meetup_id)),
                                         (WaitlistEntry, WAITLIST_PREFIX, line_partition(meetup_id)),
                                         (Departure, DEPARTURE_PREFIX, line_partition(meetup_id))):
            old = list(model.query(meetup_id, model.sk.startswith(prefix), consistent_read=True))
            if not old:
                continue
            with model.batch_write() as batch:
                for item in old:
                    values = {name: getattr(item, name) for name in model.get_attributes()}
                    batch.save(model(**dict(values, meetup_id=partition)))
            with model.batch_write() as batch:
                for item in old:
                    batch.delete(item)
            moved += len(old)
    return moved


def migrate_all() -> dict[str, int]:
    return {"activity_records": migrate_activity(), "outbox_messages": migrate_outbox(),
            "meetup_items": sum(migrate_meetup_partitions(m.id) for m in catalogue.tour())}


def main() -> int:
    print(f"Keys migrated: {migrate_all()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

