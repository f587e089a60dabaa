"""The tour as a subscribable calendar (`GET /meetups.ics`): every meetup an event with a stable
UID and the meetup's `calendar_sequence`, so a subscribed calendar follows every change. It never
carries a join link: those are personal (chalicelib.joining)."""
from __future__ import annotations

from datetime import timedelta

from chalicelib import clock
from chalicelib.config import get_settings
from chalicelib.models import Meetup
from chalicelib.statuses import MeetupState

UID_DOMAIN = "klassen-meetups"
CALENDAR_NAME = "Klassen Meetups"


def tour_calendar(meetups: list[Meetup], lang: str = "nl") -> bytes:
    """An iCalendar PUBLISH of these meetups."""
    from icalendar import Calendar, Event

    base = get_settings().public_base_url
    events = []
    for meetup in meetups:
        starts = clock.from_storage(meetup.starts_at).astimezone(clock.AMSTERDAM)
        ends = clock.from_storage(meetup.ends_at).astimezone(clock.AMSTERDAM)
        where = "Online" if meetup.mode == "online" else ", ".join(p for p in (meetup.venue, meetup.city) if p)
        url = f"{base}/meetups/{meetup.id}" + ("?lang=en" if lang == "en" else "")
        event = Event.new(uid=f"meetup-{meetup.id}@{UID_DOMAIN}", summary=meetup.title, start=starts, end=ends,
                          location=where or None, url=url, stamp=clock.now(),
                          sequence=int(meetup.calendar_sequence or 0),
                          description="\n\n".join(p for p in (meetup.description, url) if p))
        event.add("status", "CANCELLED" if meetup.state == MeetupState.CANCELLED else "CONFIRMED")
        events.append(event)
    calendar = Calendar.new(prodid="-//Klassen Meetups//NL", method="PUBLISH", subcomponents=events)
    calendar.add("x-wr-calname", CALENDAR_NAME)
    if events:
        first = min(e.start for e in events)
        last = max(e.end for e in events)
        calendar.add_missing_timezones(first_date=first.date() - timedelta(days=366),
                                       last_date=last.date() + timedelta(days=366))
    return calendar.to_ical()
