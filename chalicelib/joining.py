"""The personal join link: emails carry `/join/{token}` (signed, per registration) instead of the
meetup's real `join_url`, which never appears in an email or a public page. The link leads to
`join_url` from `JOIN_OPENS_BEFORE` the start until the end, only while the registration is
confirmed; otherwise it says why not. The first click per registration is recorded (with an
activity record the digest counts), in one transaction conditioned on it being the first."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist

from chalicelib import catalogue, clock, messages, tokens
from chalicelib.config import get_settings
from chalicelib.errors import NotFound
from chalicelib.models import REGISTRATION_PREFIX, Meetup, Registration
from chalicelib.observability import logger
from chalicelib.statuses import MeetupState, RegistrationStatus
from chalicelib.storage import Transaction, TransactionCancelled, new_activity, storage_errors

JOIN_PURPOSE = "join"
JOIN_OPENS_BEFORE = timedelta(minutes=30)


class Door(enum.Enum):
    """What the join link does at a moment."""
    OPEN = "open"  # redirect to the meetup's join_url
    NOT_YET = "not_yet"  # before the window: when it opens, with an .ics
    ENDED = "ended"
    NO_LINK = "no_link"  # in the window, but the admin has not set a join_url yet
    NOT_CONFIRMED = "not_confirmed"  # waitlisted or cancelled: why not
    MEETUP_CANCELLED = "meetup_cancelled"


@dataclass
class Visit:
    door: Door
    registration: Registration
    meetup: Meetup
    opens_at: datetime
    first: bool = False  # this click was the first one recorded


def join_url(registration: Registration, expires: datetime) -> str:
    """The personal link put in emails (valid until `expires`, as the registration's other links)."""
    return get_settings().public_base_url + join_path(registration, expires)


def join_path(registration: Registration, expires: datetime) -> str:
    return f"/join/{tokens.sign(JOIN_PURPOSE, registration.meetup_id, registration.id, expires=expires)}"


def door(registration: Registration, meetup: Meetup, now: datetime) -> Door:
    """The rule, apart from storage: confirmed, the meetup on, and within its window."""
    if meetup.state == MeetupState.CANCELLED:
        return Door.MEETUP_CANCELLED
    if registration.status != RegistrationStatus.CONFIRMED:
        return Door.NOT_CONFIRMED
    starts, ends = clock.from_storage(meetup.starts_at), clock.from_storage(meetup.ends_at)
    if now < starts - JOIN_OPENS_BEFORE:
        return Door.NOT_YET
    if now >= ends:
        return Door.ENDED
    return Door.OPEN if meetup.join_url else Door.NO_LINK


def visit(token: str, now: datetime | None = None) -> Visit:
    """Follow a join link: what to show, and the first click recorded when the door is open."""
    meetup_id, registration_id = tokens.verify(JOIN_PURPOSE, token, 2)
    registration = _load(meetup_id, registration_id)
    meetup = catalogue.load(meetup_id, consistent=True)
    now = now or clock.now()
    found = Visit(door(registration, meetup, now), registration, meetup,
                  opens_at=clock.from_storage(meetup.starts_at) - JOIN_OPENS_BEFORE)
    if found.door is Door.OPEN and not registration.joined_at:
        found.first = _record_first_click(registration, meetup, now)
    return found


def _load(meetup_id: str, registration_id: str) -> Registration:
    with storage_errors():
        try:
            found = Registration.get(meetup_id, REGISTRATION_PREFIX + registration_id, consistent_read=True)
        except DoesNotExist:
            raise NotFound(messages.LINK_INVALID) from None
    if found.erased_at:
        raise NotFound(messages.DATA_ERASED)
    return found


def _record_first_click(registration: Registration, meetup: Meetup, now: datetime) -> bool:
    """`joined_at` and a `joined` activity record, once: a second click (or a concurrent one)
    fails the condition and changes nothing."""
    tx = Transaction()
    tx.update("registration", registration, [Registration.joined_at.set(clock.to_storage(now))],
              Registration.joined_at.does_not_exist() & (Registration.status == RegistrationStatus.CONFIRMED))
    tx.put("activity", new_activity("joined", meetup, now, {"registration_id": registration.id,
                                                            "role": registration.role}))
    try:
        tx.commit()
    except TransactionCancelled:
        return False
    registration.joined_at = clock.to_storage(now)
    logger.info("joined", extra={"meetup_id": meetup.id, "registration_id": registration.id})
    return True
