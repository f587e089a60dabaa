"""Time: stored as UTC ISO strings (they sort), shown in Europe/Amsterdam with offset."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
STORAGE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> datetime:
    return datetime.now(timezone.utc)


def to_storage(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(STORAGE_FORMAT)


def stamp(moment: datetime | None = None) -> str:
    """A sortable UTC timestamp with microseconds, for ordering events."""
    return (moment or now()).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_storage(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def to_public(value: str | datetime) -> str:
    moment = from_storage(value) if isinstance(value, str) else value
    return moment.astimezone(AMSTERDAM).isoformat(timespec="seconds")


def parse_public(value: str) -> datetime:
    """Parse an ISO 8601 time; one without offset is read as Europe/Amsterdam wall time."""
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=AMSTERDAM)
    return moment
