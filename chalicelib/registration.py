"""Sign-up, waitlist, cancellation and promotion: the roster rules of a meetup."""
from __future__ import annotations

from chalicelib.errors import Conflict
from chalicelib.models import Meetup


def change_capacity(meetup: Meetup, capacity: int) -> Meetup:
    raise Conflict("not yet")
