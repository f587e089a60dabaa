"""The roster invariants, checked on what is stored."""
from __future__ import annotations

from chalicelib import registration as roster_rules
from chalicelib.models import (DEPARTURE_PREFIX, EMAIL_GUARD_PREFIX, REGISTRATION_PREFIX, WAITLIST_PREFIX, Departure,
                               EmailGuard, Meetup, Registration, WaitlistEntry, guard_partition, line_partition)


def roster(meetup_id: str):
    meetup = Meetup.get(meetup_id, consistent_read=True)
    registrations = list(Registration.query(meetup_id, Registration.sk.startswith(REGISTRATION_PREFIX),
                                            consistent_read=True))
    guards = list(EmailGuard.query(guard_partition(meetup_id), EmailGuard.sk.startswith(EMAIL_GUARD_PREFIX), consistent_read=True))
    entries = list(WaitlistEntry.query(line_partition(meetup_id), WaitlistEntry.sk.startswith(WAITLIST_PREFIX), consistent_read=True))
    return meetup, registrations, guards, entries


def check(meetup_id: str, *, positions: bool = True) -> tuple[list, list]:
    """Asserts every invariant; returns (confirmed, waitlist in order)."""
    meetup, registrations, guards, entries = roster(meetup_id)
    line = [entry.registration_id for entry in entries]
    by_id = {r.id: r for r in registrations}
    confirmed = [r for r in registrations if r.status == "confirmed"]
    assert len(line) == len(set(line)), "nobody stands in line twice"
    assert {r.id for r in registrations if r.status == "waitlisted"} == set(line), \
        "the line holds exactly the waitlisted registrations"
    waiting = [by_id[rid] for rid in line]
    assert [int(r.waitlist_ticket) for r in waiting] == [int(e.ticket) for e in entries], \
        "each waiting registration holds the ticket of its entry"
    assert len(confirmed) == meetup.confirmed, "the seat counter matches the confirmed records"
    assert len(waiting) == meetup.waitlist_length, "the waitlist counter matches the line"
    departures = Departure.count(line_partition(meetup_id), Departure.sk.startswith(DEPARTURE_PREFIX), consistent_read=True)
    assert int(meetup.waitlist_seq or 0) == int(meetup.waitlist_promoted or 0) + departures + len(waiting), \
        "every ticket given out was promoted, left, or still waits"
    assert meetup.confirmed <= meetup.capacity, "never more confirmed than capacity"
    if waiting:
        assert meetup.confirmed == meetup.capacity, "nobody waits while a seat is free"
    if positions:
        assert [roster_rules.waitlist_position(r) for r in waiting] == list(range(1, len(waiting) + 1)), \
            "positions are exactly 1..N in line order"
    active_emails = [r.email.lower() for r in confirmed + waiting]
    assert len(active_emails) == len(set(active_emails)), "one active registration per email"
    assert {g.registration_id for g in guards} == {r.id for r in confirmed + waiting}, \
        "an email guard for every active registration, and only for those"
    return confirmed, waiting
