"""Reminders before a meetup: at each of its offsets (default a day and an hour before the start,
minute precision) every confirmed person gets one reminder with their personal join link; the
day before, everyone waiting gets one message saying where they stand.

Each person gets each reminder at most once however often the schedule fires, also with two runs
at once or a crash between people: every message has an id made of the meetup, the reminder and
the person, written with `attribute_not_exists` (`outbox.queue_once`). Someone who was given
their place after a reminder's moment does not get that reminder late: their confirmation or
promotion told them already. A meetup's done reminders are marked on it, so later runs skip it."""
from __future__ import annotations

from datetime import datetime, timedelta

from chalicelib import catalogue, clock
from chalicelib.config import MAX_REMINDER_OFFSET, get_settings
from chalicelib.models import REGISTRATION_PREFIX, Meetup, MeetupsByStart, Registration
from chalicelib.observability import logger
from chalicelib.statuses import MeetupState, RegistrationStatus
from chalicelib.storage import conditional, storage_errors

WAITLIST_NOTICE_OFFSET = 24 * 60  # "the day before"
BATCH = 25  # messages per queue_once transaction


def offsets_of(meetup: Meetup) -> list[int]:
    return [int(v) for v in (meetup.reminder_offsets or get_settings().reminder_offsets)]


def due(meetup: Meetup, now: datetime) -> list[tuple[str, int]]:
    """The reminders of `meetup` whose moment has come and that are not done: ("confirmed",
    offset) and ("waitlisted", the day before). None once it has started or when it is off."""
    starts = clock.from_storage(meetup.starts_at)
    if meetup.state == MeetupState.CANCELLED or now >= starts:
        return []
    done = set(meetup.reminders_done or [])
    wanted = [(RegistrationStatus.CONFIRMED, offset) for offset in offsets_of(meetup)]
    if meetup.waitlist_enabled:
        wanted.append((RegistrationStatus.WAITLISTED, WAITLIST_NOTICE_OFFSET))
    return [(who, offset) for who, offset in wanted
            if f"{who}:{offset}" not in done and now >= starts - timedelta(minutes=offset)]


def run(now: datetime | None = None) -> dict:
    """Send what is due for every meetup that starts within the longest offset."""
    now = now or clock.now()
    horizon = now + timedelta(minutes=MAX_REMINDER_OFFSET)
    with storage_errors():
        coming = catalogue.tour(MeetupsByStart.starts_at.between(clock.to_storage(now), clock.to_storage(horizon)))
    result = {"meetups": 0, "queued": 0, "table_lists": 0}
    for listed in coming:
        if listed.tables and _day_before(listed, now):
            from chalicelib import theme_tables
            theme_tables.spread(listed.id)  # those without a table get one before the session
            result["table_lists"] += theme_tables.send_lists(listed)
        if not due(listed, now):
            continue
        meetup = catalogue.load(listed.id, consistent=True)  # its latest reminders_done
        for who, offset in due(meetup, now):
            result["queued"] += _send(meetup, who, offset, now)
            _mark_done(meetup, f"{who}:{offset}")
        result["meetups"] += 1
    if result["queued"]:
        logger.info("reminders queued", extra=result)
    return result


def _day_before(meetup: Meetup, now: datetime) -> bool:
    from chalicelib.theme_tables import LIST_MOMENT_MINUTES
    starts = clock.from_storage(meetup.starts_at)
    return meetup.state != MeetupState.CANCELLED and starts - timedelta(minutes=LIST_MOMENT_MINUTES) <= now < starts


def _send(meetup: Meetup, who: str, offset: int, now: datetime) -> int:
    from chalicelib import outbox, registration
    moment = clock.to_storage(clock.from_storage(meetup.starts_at) - timedelta(minutes=offset))
    with storage_errors():
        people = [p for p in Registration.query(meetup.id, Registration.sk.startswith(REGISTRATION_PREFIX),
                                               consistent_read=True, filter_condition=(Registration.status == who)
                                               & Registration.erased_at.does_not_exist())
                  if (p.promoted_at or p.created_at) <= moment]
    template = "registration_reminder" if who == RegistrationStatus.CONFIRMED else "waitlist_reminder"
    queued = 0
    for start in range(0, len(people), BATCH):
        batch = {}
        for person in people[start:start + BATCH]:
            position = registration.waitlist_position(person) if who == RegistrationStatus.WAITLISTED else None
            message = registration.compose_mail(template, meetup, person, position)
            message.id = f"reminder-{meetup.id}-{who}-{offset}-{person.id}"
            batch[message.id] = message
        committed = outbox.queue_once(batch)
        outbox.dispatch(committed)  # batch by batch: a run cut short has still sent what it queued
        queued += len(committed)
    return queued


def _mark_done(meetup: Meetup, reminder: str) -> None:
    """Conditional on it not being marked: two runs at once both queue nothing twice anyway."""
    conditional(lambda: meetup.update(
        actions=[Meetup.reminders_done.set((Meetup.reminders_done | []).append([reminder]))],
        condition=Meetup.reminders_done.does_not_exist() | ~Meetup.reminders_done.contains(reminder)))
