"""Builders for test data through the real service functions."""
from __future__ import annotations

from datetime import timedelta

from chalicelib import clock


def meetup_payload(**overrides) -> dict:
    starts = clock.now() + timedelta(days=overrides.pop("days_ahead", 30))
    payload = {
        "title": "Klassen Meetup test",
        "kind": "regional",
        "province": "Flevoland",
        "city": "Lelystad",
        "host": {"name": "Gemeente Lelystad", "email": "host@lelystad.example.nl"},
        "starts_at": clock.to_public(starts),
        "ends_at": clock.to_public(starts + timedelta(hours=2)),
        "mode": "online",
        "capacity": 10,
        "waitlist": {"enabled": True},
    }
    payload.update(overrides)
    return payload


def make_meetup(**overrides):
    from chalicelib import catalogue
    return catalogue.create_meetup(meetup_payload(**overrides))
