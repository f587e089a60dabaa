"""A meetup's waitlist as the roster reads it: the line in order and exact positions, computed
from a ticket, the promoted count and the departures ahead (never by reading the line). Below
both the roster (chalicelib.registration), which writes the line, and the outbox, which composes
a waitlisted email's position when it sends it."""
from __future__ import annotations

import bisect

from pynamodb.exceptions import DoesNotExist

from chalicelib import catalogue
from chalicelib.models import (DEPARTURE_PREFIX, WAITLIST_PREFIX, Departure, Meetup, Registration, WaitlistEntry,
                               line_partition, ticket_key)
from chalicelib.storage import storage_errors


def _meetup(meetup_id: str) -> Meetup:
    """The meetup as it is now (a consistent read)."""
    return catalogue.load(meetup_id, consistent=True)


def entries(meetup_id: str, limit: int | None = None) -> list[WaitlistEntry]:
    """The first `limit` in line (all without one), first in line first: a consistent Query of `W#`."""
    with storage_errors():
        return list(WaitlistEntry.query(line_partition(meetup_id), WaitlistEntry.sk.startswith(WAITLIST_PREFIX),
                                        consistent_read=True, limit=limit, page_size=limit))


def read_line(meetup_id: str) -> list[str]:
    """The registration ids in line, first in line first (reads the whole line: admin listing, tests)."""
    return [entry.registration_id for entry in entries(meetup_id)]


def departures_before(meetup_id: str, ticket: int) -> int:
    """How many waiting people with a ticket below `ticket` left the line (keys only, consistent):
    costs grow with the departures ahead, never with the line."""
    if ticket <= 1:
        return 0
    with storage_errors():
        return Departure.count(line_partition(meetup_id), Departure.sk.between(ticket_key(DEPARTURE_PREFIX, 0),
                                                               ticket_key(DEPARTURE_PREFIX, ticket - 1)),
                               consistent_read=True)


def line_state(meetup: Meetup) -> tuple:
    """Every change to the line changes one of these: a join the sequence, a promotion the
    promoted count, a departure the length."""
    return int(meetup.waitlist_seq or 0), int(meetup.waitlist_promoted or 0), int(meetup.waitlist_length or 0)


def departed(meetup: Meetup) -> int:
    """How many ever left the line while waiting: every ticket given out is waiting, promoted
    (from the front) or departed."""
    seq, promoted, length = line_state(meetup)
    return seq - promoted - length


def position_of_ticket(meetup_id: str, ticket: int, meetup: Meetup | None = None) -> int:
    """The exact place in line of a waiting ticket, without reading the line:
    ticket - promoted from the front - departures ahead. Read again if the line changed while
    the departures were counted, so the answer is the line at one moment. Nobody left the line
    yet (the usual case during a rush): the meetup alone tells."""
    before = meetup or _meetup(meetup_id)
    if departed(before) == 0:
        return int(ticket) - int(before.waitlist_promoted or 0)
    for _ in range(5):
        ahead = departures_before(meetup_id, ticket)
        after = _meetup(meetup_id)
        if line_state(after) == line_state(before):
            break
        before = after
    return int(ticket) - int(after.waitlist_promoted or 0) - ahead


def positions_of(meetup_id: str, waiting: list[Registration]) -> dict[str, int]:
    """The places in line of a page of waiting people: one read of the meetup and one keys-only
    Query of the departures up to the page's last ticket, never the line itself."""
    if not waiting:
        return {}
    meetup = _meetup(meetup_id)
    last = max(int(r.waitlist_ticket) for r in waiting)
    with storage_errors():
        departed = sorted(int(d.sk[len(DEPARTURE_PREFIX):]) for d in Departure.query(
            line_partition(meetup_id), Departure.sk.between(ticket_key(DEPARTURE_PREFIX, 0), ticket_key(DEPARTURE_PREFIX, last)),
            consistent_read=True, attributes_to_get=["meetup_id", "sk"]))
    promoted = int(meetup.waitlist_promoted or 0)
    return {r.id: int(r.waitlist_ticket) - promoted - bisect.bisect_left(departed, int(r.waitlist_ticket))
            for r in waiting}


def position_for_mail(context: dict, meetups: dict | None = None) -> dict:
    """The waitlisted email's context with the position as it is when the email is composed
    (whatever delivers it: the request, the worker, the stream or the retry job). A person no
    longer waiting keeps the position committed with the join. `meetups`: the meetups a batch
    of emails read already (a consistent read when the batch is composed; filled here)."""
    meetup_id = (context.get("meetup") or {}).get("id")
    ticket = context.get("waitlist_ticket")
    if not meetup_id or not ticket:
        return context
    meetups = {} if meetups is None else meetups
    if meetup_id not in meetups:
        meetups[meetup_id] = _meetup(meetup_id)
    meetup = meetups[meetup_id]
    if departed(meetup) == 0:  # nobody left the line: the first `promoted` tickets were promoted, the rest wait
        promoted = int(meetup.waitlist_promoted or 0)
        return dict(context, waitlist_position=int(ticket) - promoted) if int(ticket) > promoted else context
    with storage_errors():
        try:
            entry = WaitlistEntry.get(line_partition(meetup_id), ticket_key(WAITLIST_PREFIX, ticket), consistent_read=True)
        except DoesNotExist:
            return context
    if entry.registration_id != context.get("registration_id"):
        return context
    return dict(context, waitlist_position=position_of_ticket(meetup_id, int(ticket), meetup))
