"""Bulk-loading a roster in the real item format (PynamoDB models, BatchWriteItem), for tests and
benchmarks that need thousands of people without signing each one up through a transaction."""
from __future__ import annotations

import secrets
from datetime import timedelta

from chalicelib import clock
from chalicelib.models import (REGISTRATION_PREFIX, WAITLIST_PREFIX, Meetup, Registration, WaitlistEntry, line_partition,
                               ticket_key)


def person(meetup: Meetup, status: str, n: int, stamp: str, **extra) -> Registration:
    rid = secrets.token_urlsafe(12)
    return Registration(meetup_id=meetup.id, sk=REGISTRATION_PREFIX + rid, id=rid, status=status,
                        name=f"Deelnemer {n}", email=f"p{n}-{rid[:6].lower()}@bulk.example.nl",
                        email_hash=secrets.token_hex(32), role="teacher", organisation="Basisschool De Klimop",
                        municipality="Lelystad", language="nl", follow_up_opt_in=bool(n % 2), created_at=stamp,
                        updated_at=stamp, consent_at=stamp, consent_version="2026-11-23", **extra)


def load_roster(meetup: Meetup, *, confirmed: int = 0, waiting: int = 0, cancelled: int = 0) -> dict[str, list[Registration]]:
    """Writes `confirmed`, `waiting` (in line, in this order) and `cancelled` registrations of
    `meetup`, their line entries, and the meetup's counters (capacity unchanged)."""
    start = clock.now() - timedelta(hours=1)
    made: dict[str, list[Registration]] = {"confirmed": [], "waitlisted": [], "cancelled": []}
    n = 0
    with Registration.batch_write() as batch:
        for status, count in (("confirmed", confirmed), ("waitlisted", waiting), ("cancelled", cancelled)):
            for _ in range(count):
                n += 1
                stamp = clock.to_storage(start + timedelta(microseconds=n * 1000))
                extra = {"cancelled_at": stamp} if status == "cancelled" else {}
                if status == "waitlisted":
                    extra["waitlist_ticket"] = len(made["waitlisted"]) + 1
                registration = person(meetup, status, n, stamp, **extra)
                batch.save(registration)
                made[status].append(registration)
    # The line: one entry per waiting person, tickets 1..N in order, as sign-ups write them.
    with WaitlistEntry.batch_write() as batch:
        for ticket, registration in enumerate(made["waitlisted"], start=1):
            batch.save(WaitlistEntry(meetup_id=line_partition(meetup.id), sk=ticket_key(WAITLIST_PREFIX, ticket),
                                     registration_id=registration.id, ticket=ticket))
    meetup.update(actions=[Meetup.confirmed.set(confirmed), Meetup.waitlist_length.set(waiting),
                           Meetup.waitlist_seq.set(waiting), Meetup.waitlist_promoted.set(0)])
    return made
