"""The roster invariants, checked on what is stored."""
from __future__ import annotations

from chalicelib import registration as roster_rules
from chalicelib.models import EMAIL_GUARD_PREFIX, REGISTRATION_PREFIX, EmailGuard, Meetup, Registration


def roster(meetup_id: str):
    meetup = Meetup.get(meetup_id, consistent_read=True)
    registrations = list(Registration.query(meetup_id, Registration.sk.startswith(REGISTRATION_PREFIX),
                                            consistent_read=True))
    guards = list(EmailGuard.query(meetup_id, EmailGuard.sk.startswith(EMAIL_GUARD_PREFIX), consistent_read=True))
    return meetup, registrations, guards, roster_rules.read_line(meetup_id)


def check(meetup_id: str) -> tuple[list, list]:
    """Asserts every invariant; returns (confirmed, waitlist in order)."""
    meetup, registrations, guards, line = roster(meetup_id)
    by_id = {r.id: r for r in registrations}
    confirmed = [r for r in registrations if r.status == "confirmed"]
    assert len(line) == len(set(line)), "nobody stands in line twice"
    assert {r.id for r in registrations if r.status == "waitlisted"} == set(line), \
        "the line holds exactly the waitlisted registrations"
    waiting = [by_id[rid] for rid in line]
    assert len(confirmed) == meetup.confirmed, "the seat counter matches the confirmed records"
    assert len(waiting) == meetup.waitlist_length, "the waitlist counter matches the line"
    assert meetup.confirmed <= meetup.capacity, "never more confirmed than capacity"
    if waiting:
        assert meetup.confirmed == meetup.capacity, "nobody waits while a seat is free"
    active_emails = [r.email.lower() for r in confirmed + waiting]
    assert len(active_emails) == len(set(active_emails)), "one active registration per email"
    assert {g.registration_id for g in guards} == {r.id for r in confirmed + waiting}, \
        "an email guard for every active registration, and only for those"
    return confirmed, waiting
