"""Converts the old waitlists (one `LINE` item per meetup holding a list of registration ids)
into today's line: one `W#<ticket>` entry per waiting person, tickets 1..N in the old order, the
meetup's `waitlist_seq` set to N (plus any tickets given out already), each registration's
`waitlist_ticket` set, and the old item deleted.

    python -m chalicelib.migrate_waitlists      # `make run` applies it at start (devtools/run.py)

Idempotent and safe to interrupt: the entries and tickets are written with deterministic
values, and the last step (the sequence and the old item's deletion) is one transaction
conditioned on the sequence it read and on the old item still being there. A second run finds
no old item and changes nothing. Meetups are found through the tour listing index, not a Scan.
"""
from __future__ import annotations

import sys

from pynamodb.exceptions import DoesNotExist

from chalicelib import catalogue, clock
from chalicelib.config import get_settings
from chalicelib.models import (REGISTRATION_PREFIX, WAITLIST_KEY, WAITLIST_PREFIX, LegacyWaitlist,
                               Meetup, Registration, WaitlistEntry, line_partition, ticket_key)
from chalicelib.observability import logger
from chalicelib.statuses import RegistrationStatus
from chalicelib.storage import Transaction


def migrate_meetup(meetup: Meetup) -> int:
    """Converts one meetup's old line; returns how many people it moved (0: nothing to do)."""
    try:
        old = LegacyWaitlist.get(meetup.id, WAITLIST_KEY, consistent_read=True)
    except DoesNotExist:
        return 0
    meetup = Meetup.get(meetup.id, consistent_read=True)
    ids = list(dict.fromkeys(old.line or []))
    waiting = {r.id: r for r in Registration.batch_get([(meetup.id, REGISTRATION_PREFIX + rid) for rid in ids],
                                                       consistent_read=True) if r.status == RegistrationStatus.WAITLISTED}
    line = [rid for rid in ids if rid in waiting]  # the old order; anyone no longer waiting left
    start = int(meetup.waitlist_seq or 0)  # tickets given out since (none, unless new code ran first)
    expires = clock.from_storage(meetup.ends_at) + get_settings().retention
    with WaitlistEntry.batch_write() as batch:
        for offset, registration_id in enumerate(line, start=1):
            batch.save(WaitlistEntry(meetup_id=line_partition(meetup.id), sk=ticket_key(WAITLIST_PREFIX, start + offset),
                                     registration_id=registration_id, ticket=start + offset, expires_at=expires))
    for offset, registration_id in enumerate(line, start=1):
        waiting[registration_id].update(actions=[Registration.waitlist_ticket.set(start + offset)],
                                        condition=Registration.status == RegistrationStatus.WAITLISTED)
    tx = Transaction()
    expected = (Meetup.waitlist_seq == start) if start else (Meetup.waitlist_seq.does_not_exist()
                                                             | (Meetup.waitlist_seq == 0))
    tx.update("meetup", meetup, [Meetup.waitlist_seq.set(start + len(line)),
                                 Meetup.waitlist_length.set(len(line) + (int(meetup.waitlist_length or 0) if start else 0))],
              expected)
    tx.delete("line", old, LegacyWaitlist.sk.exists())
    tx.commit()
    logger.info("waitlist migrated", extra={"meetup_id": meetup.id, "people": len(line)})
    return len(line)


def migrate_all() -> dict[str, int]:
    """Every meetup of the tour (the `by_start` listing index); returns {meetup id: people moved}."""
    moved = {}
    for meetup in catalogue.tour():
        count = migrate_meetup(meetup)
        if count:
            moved[meetup.id] = count
    return moved


def main() -> int:
    moved = migrate_all()
    print(f"Waitlists migrated: {len(moved)} meetups, {sum(moved.values())} people")
    return 0


if __name__ == "__main__":
    sys.exit(main())
