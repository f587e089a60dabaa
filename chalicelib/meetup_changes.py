"""An admin's change of a meetup, and what follows from it: the catalogue stores the fields,
the roster applies a new capacity, and the bulk work (telling everyone of a cancellation,
promoting people into new seats, updating everyone's calendar entry) is a background job.

This module sits above the catalogue, the roster (chalicelib.registration) and the jobs, so
that the catalogue needs neither."""
from __future__ import annotations

from chalicelib import catalogue, jobs, registration
from chalicelib.observability import logger
from chalicelib.statuses import JobState, MeetupState


def update_meetup(meetup_id: str, payload: dict, *, actor: str | None = None):
    """Change a meetup's fields; returns the meetup and the background job the change started
    (or None). The request commits the change only: the emails to everyone registered (a
    cancellation) and the promotions into new seats (a capacity rise, a reopening) are a job
    (chalicelib/jobs.py), so the answer never waits for thousands of people."""
    meetup, values = catalogue.read_changes(meetup_id, payload)
    if not values:
        return meetup, None
    capacity = values.pop("capacity", None)
    if capacity is not None:
        meetup = registration.change_capacity(meetup, capacity)
    moved = catalogue.store_changes(meetup, values)
    logger.info("meetup updated", extra={"meetup_id": meetup_id, "fields": sorted(values) +
                                         (["capacity"] if capacity is not None else [])})
    job = None
    if values.get("state") == MeetupState.CANCELLED:
        job = jobs.start("meetup_cancelled", meetup.id, actor=actor,
                         total=int(meetup.confirmed) + int(meetup.waitlist_length))
    elif registration.seats_to_fill(meetup):
        job = jobs.start("promotions", meetup.id, actor=actor, total=registration.seats_to_fill(meetup))
    if moved and meetup.state != MeetupState.CANCELLED:  # every confirmed person's calendar follows
        changed = jobs.start("meetup_changed", meetup.id, actor=actor, total=int(meetup.confirmed),
                             params={"sequence": int(meetup.calendar_sequence or 0)})
        job = job or changed
    if job is not None and job.state in (JobState.DONE, JobState.FAILED):  # run within the request (tests)
        meetup = catalogue.load(meetup_id, consistent=True)
    return meetup, job
