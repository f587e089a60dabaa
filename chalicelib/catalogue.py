"""The tour catalogue: meetups, their public view, and the admin changes to them."""
from __future__ import annotations

import secrets
from datetime import datetime

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock, messages
from chalicelib.config import MAX_REMINDER_OFFSET
from chalicelib.errors import Conflict, NotFound, ValidationFailed
from chalicelib.messages import Message, problem
from chalicelib.models import TOUR_LISTING, Meetup
from chalicelib.observability import logger
from chalicelib.statuses import MeetupState
from chalicelib.storage import conditional, storage_errors
from chalicelib.validation import Fields

KINDS = ("regional", "extra", "follow_up", "final")
MODES = ("online", "in_person")
STATES = tuple(MeetupState)
PROVINCES = ("Drenthe", "Flevoland", "Friesland", "Gelderland", "Groningen", "Limburg",
             "Noord-Brabant", "Noord-Holland", "Overijssel", "Utrecht", "Zeeland", "Zuid-Holland")
_PROVINCE_ALIASES = {p.lower(): p for p in PROVINCES} | {"fryslân": "Friesland", "fryslan": "Friesland"}
MAX_CAPACITY = 100_000
# What a calendar entry shows: a change of any of these raises the meetup's calendar_sequence.
CALENDAR_FIELDS = ("starts_at", "ends_at", "city", "venue", "mode", "join_url")
MAX_WAITLIST = 1_000_000  # the largest `waitlist.max_length` an admin can set
SETTABLE = ("title", "kind", "province", "city", "venue", "host", "starts_at", "ends_at", "mode",
            "capacity", "waitlist", "status", "join_url", "description", "follows", "reminders")


def normalise_province(value: str | None) -> str | None:
    if value is None:
        return None
    return _PROVINCE_ALIASES.get(value.strip().lower())


def new_id() -> str:
    return secrets.token_urlsafe(9)


# --- public view -------------------------------------------------------------------------------

def public_status(meetup: Meetup, now: datetime | None = None) -> str:
    """open | full | closed, as the contract shows it."""
    if meetup.state != MeetupState.OPEN or meetup.awaiting_host or clock.from_storage(meetup.starts_at) <= (now or clock.now()):
        return "closed"
    return "full" if meetup.confirmed >= meetup.capacity else "open"


def view(meetup: Meetup) -> dict:
    seats_left = max(0, int(meetup.capacity) - int(meetup.confirmed))
    return {
        "id": meetup.id,
        "title": meetup.title,
        "kind": meetup.kind,
        "province": meetup.province,
        "city": meetup.city,
        "host": {"name": meetup.host_name},
        "starts_at": clock.to_public(meetup.starts_at),
        "ends_at": clock.to_public(meetup.ends_at),
        "mode": meetup.mode,
        "capacity": int(meetup.capacity),
        "confirmed": int(meetup.confirmed),
        "seats_left": seats_left,
        "waitlist": {"enabled": bool(meetup.waitlist_enabled), "length": int(meetup.waitlist_length),
                     "max_length": int(meetup.waitlist_max_length) if meetup.waitlist_max_length else None},
        "status": public_status(meetup),
        "follows": meetup.follows,
        # Extensions to the contract:
        "venue": meetup.venue,
        "description": meetup.description,
        "cancelled": meetup.state == MeetupState.CANCELLED,
        "demo": bool(meetup.demo),
    }


PHASES = ("open", "waitlist", "full", "announced", "closed", "cancelled", "past")


def phase(meetup: Meetup, now: datetime | None = None) -> str:
    """What the pages say about a meetup, one word for one state: cancelled ("gaat niet door"),
    past, announced (a follow-up whose new host has not accepted yet), closed, full (no
    waitlist), waitlist (full, its waitlist open) or open. Sign-up is possible in the last two."""
    now = now or clock.now()
    if meetup.state == MeetupState.CANCELLED:
        return "cancelled"
    if clock.from_storage(meetup.starts_at) <= now:
        return "past"
    if meetup.awaiting_host:
        return "announced"
    if meetup.state != MeetupState.OPEN:
        return "closed"
    if meetup.confirmed >= meetup.capacity or meetup.waitlist_length:
        return "waitlist" if meetup.waitlist_enabled else "full"
    return "open"


def page_view(meetup: Meetup) -> dict:
    """The public view with the `phase` the pages show (not part of the JSON contract)."""
    return view(meetup) | {"phase": phase(meetup)}


def page_meetup(meetup_id: str) -> dict:
    return page_view(load(meetup_id))


def page_meetups(*, province: str | None = None) -> dict:
    """The front page: the tour (of one province when asked), and whether demo data is shown."""
    found = viewable(page_view, find_meetups(province=province or None))
    return {"meetups": found, "demo": any(m["demo"] for m in found), "provinces": PROVINCES,
            "province": normalise_province(province) if province else None}


def admin_view(meetup: Meetup) -> dict:
    body = view(meetup)
    body["host"] = {"name": meetup.host_name, "email": meetup.host_email}
    body["join_url"] = meetup.join_url
    body["state"] = meetup.state
    body["reminders"] = [int(v) for v in meetup.reminder_offsets] if meetup.reminder_offsets else None
    body["tables"] = [{"id": t.id, "name": t.name, "description": t.description, "capacity": int(t.capacity),
                       "moderator": {"name": t.moderator_name, "email": t.moderator_email}}
                      for t in (meetup.tables or [])]
    body["table_change_until"] = clock.to_public(meetup.table_change_until) if meetup.table_change_until else None
    return body


# --- reads -------------------------------------------------------------------------------------

def load(meetup_id: str, *, consistent: bool = False) -> Meetup:
    if not meetup_id or len(meetup_id) > 100:
        raise NotFound(messages.meetup_not_found(meetup_id))
    with storage_errors():
        try:
            return Meetup.get(meetup_id, consistent_read=consistent)
        except DoesNotExist:
            raise NotFound(messages.meetup_not_found(meetup_id)) from None


def get_meetup(meetup_id: str) -> dict:
    return view(load(meetup_id))


def find_meetups(*, province: str | None = None, kind: str | None = None,
                 upcoming: bool | str | None = False) -> list[Meetup]:
    """Meetups by start time, read from an index: by province when asked, else the tour listing.
    `upcoming` may be a query parameter's text ("true", "false", ...)."""
    fields = Fields({"province": province, "kind": kind, "upcoming": upcoming})
    if upcoming == "":  # an empty ?upcoming= is refused like an empty ?kind=, not read as absent
        fields.fail("upcoming", "boolean")
    upcoming = fields.boolean("upcoming")
    if province is not None and normalise_province(province) is None:
        fields.fail("province", "choice", options=", ".join(PROVINCES))
    if kind is not None and kind not in KINDS:  # an empty ?kind= too: it matches no meetup
        fields.fail("kind", "choice", options=", ".join(KINDS))
    fields.check()
    range_condition = None
    if upcoming:
        range_condition = Meetup.starts_at > clock.to_storage(clock.now())
    with storage_errors():
        if province is not None:
            found = load_many([key.id for key in Meetup.by_province.query(normalise_province(province),
                                                                          range_condition)])
        else:
            found = tour(range_condition)
    return [m for m in found if kind is None or m.kind == kind]


def tour(range_condition=None) -> list[Meetup]:
    """The tour's meetups by start time (optionally a range of start times): the keys from the
    `by_start` index, which projects keys only, then the items with BatchGetItem."""
    with storage_errors():
        ids = [key.id for key in Meetup.by_start.query(TOUR_LISTING, range_condition)]
    return load_many(ids) if ids else []


def find_calendar(*, province: str | None = None, meetup_id: str | None = None) -> list[Meetup]:
    """The meetups of the tour calendar: all (or a province's), or the one asked for."""
    if meetup_id is not None:
        return [load(meetup_id)]
    return find_meetups(province=province or None)  # empty: the whole tour, as a form's "all" sends it


def load_many(meetup_ids: list[str]) -> list[Meetup]:
    """The meetups with these ids that exist, by start time (BatchGetItem, 100 at a time)."""
    with storage_errors():
        found = list(Meetup.batch_get(list(dict.fromkeys(meetup_ids))))
    return sorted(found, key=lambda m: (m.starts_at, m.id))


def list_meetups(*, province: str | None = None, kind: str | None = None,
                 upcoming: bool | str | None = False) -> list[dict]:
    return viewable(view, find_meetups(province=province, kind=kind, upcoming=upcoming))


def viewable(render, items) -> list:
    """`render(item)` for each item that renders: one damaged item (stored before today's
    validation, or by hand) is logged and left out instead of failing the whole list."""
    shown = []
    for item in items:
        try:
            shown.append(render(item))
        except Exception:
            logger.exception("item left out of a listing", extra={"item": str(getattr(item, "id", "?"))[:100]})
    return shown


# --- admin writes ------------------------------------------------------------------------------

def _read_fields(payload: dict, *, creating: bool, current: Meetup | None = None) -> dict:
    """Validate admin meetup fields; returns model attribute values to set."""
    f = Fields(payload, allowed=SETTABLE)
    values: dict = {}
    if creating or f.has("title"):
        values["title"] = f.text("title", required=True, max_length=200)
    if creating or f.has("kind"):
        values["kind"] = f.choice("kind", KINDS, required=True)
    if f.has("province"):
        raw = payload.get("province")
        if raw is None:
            values["province"] = None
        elif not isinstance(raw, str) or normalise_province(raw) is None:
            f.fail("province", "choice", options=", ".join(PROVINCES))
        else:
            values["province"] = normalise_province(raw)
    if f.has("city"):
        values["city"] = f.text("city", max_length=100)
    if f.has("venue"):
        values["venue"] = f.text("venue", max_length=200)
    if creating or f.has("host"):
        host = f.mapping("host", required=True)
        if host is not None:
            unknown = set(host) - {"name", "email"}
            if unknown:
                names = ", ".join(sorted(map(str, unknown)))[:200]
                f.fail("host", Message(f"Alleen name en email kunnen worden opgegeven, niet: {names}.",
                                       f"Only name and email can be given, not: {names}."))
            values["host_name"] = f.text("host.name", required=True, max_length=200, value=host.get("name") or "",
                                         person=True)
            if "email" in host:
                values["host_email"] = f.email("host.email", value=host.get("email") or "")
    for name in ("starts_at", "ends_at"):
        if creating or f.has(name):
            moment = f.moment(name, required=True)
            if moment is not None:
                values[name] = clock.to_storage(moment)
    if creating or f.has("mode"):
        values["mode"] = f.choice("mode", MODES, required=True)
    if creating or f.has("capacity"):
        values["capacity"] = f.integer("capacity", required=True, minimum=0, maximum=MAX_CAPACITY)
    if f.has("waitlist"):
        waitlist = f.mapping("waitlist")
        if waitlist is not None:
            if set(waitlist) - {"enabled", "length", "max_length"}:
                f.fail("waitlist", Message("Alleen enabled en max_length kunnen worden ingesteld.",
                                           "Only enabled and max_length can be set."))
            else:
                if "enabled" in waitlist or "max_length" not in waitlist:
                    if not isinstance(waitlist.get("enabled"), bool):
                        f.fail("waitlist.enabled", "boolean")
                    else:
                        values["waitlist_enabled"] = waitlist["enabled"]
                if "max_length" in waitlist:  # null: no limit
                    inner = Fields({"waitlist.max_length": waitlist["max_length"]})
                    inner.form = f.form
                    limit = inner.integer("waitlist.max_length", minimum=1, maximum=MAX_WAITLIST)
                    for name, problem_ in inner.errors.items():
                        f.fail(name, problem_)
                    if not inner.errors:
                        values["waitlist_max_length"] = limit
    if f.has("status"):
        values["state"] = f.choice("status", STATES, required=True)
    if f.has("join_url"):
        values["join_url"] = f.url("join_url")
    if f.has("description"):
        values["description"] = f.text("description", max_length=2000, multiline=True)
    if f.has("follows"):
        values["follows"] = f.text("follows", max_length=100)
    if f.has("reminders"):
        values["reminder_offsets"] = _reminder_offsets(f)
    f.check()

    starts = values.get("starts_at") or (current.starts_at if current else None)
    ends = values.get("ends_at") or (current.ends_at if current else None)
    if starts and ends and clock.from_storage(ends) <= clock.from_storage(starts):
        raise ValidationFailed({"ends_at": problem("after_start", "ends_at")})
    mode = values.get("mode") or (current.mode if current else None)
    city = values["city"] if "city" in values else (current.city if current else None)
    if mode == "in_person" and not city:
        raise ValidationFailed({"city": problem("city_in_person", "city")})
    return values


def _reminder_offsets(f: Fields) -> list[int] | None:
    """`reminders`: up to 5 whole numbers of minutes before the start (null: the default)."""
    raw = f.payload.get("reminders")
    if raw is None:
        return None
    if (not isinstance(raw, list) or len(raw) > 5
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_REMINDER_OFFSET for v in raw)):
        f.fail("reminders", Message(f"Geef tot 5 hele aantallen minuten voor het begin, van 1 tot {MAX_REMINDER_OFFSET}.",
                                    f"Give up to 5 whole numbers of minutes before the start, 1 to {MAX_REMINDER_OFFSET}."))
        return None
    return sorted(set(raw), reverse=True)


def build_meetup(payload: dict, *, meetup_id: str | None = None, demo: bool = False,
                 origin: Meetup | None = None) -> Meetup:
    """Validate admin meetup fields and build the (UNSAVED) Meetup: the caller saves it, alone
    (`create_meetup`) or inside its own transaction (a handover). A meetup that `follows`
    another joins that one's chain and, unless given, its province; `origin` is that meetup
    when the caller has read it already."""
    values = _read_fields(payload, creating=True)
    if values.get("follows"):
        if origin is None or origin.id != values["follows"]:
            origin = load(values["follows"])
        values.setdefault("province", origin.province)
        values["chain_id"] = origin.chain_id or origin.id
    stamp = clock.to_storage(clock.now())
    meetup = Meetup(id=meetup_id or new_id(), listing=TOUR_LISTING, created_at=stamp, updated_at=stamp,
                    demo=demo, **values)
    meetup.chain_id = meetup.chain_id or meetup.id
    return meetup


def create_meetup(payload: dict, *, meetup_id: str | None = None, demo: bool = False) -> Meetup:
    meetup = build_meetup(payload, meetup_id=meetup_id, demo=demo)
    if not conditional(lambda: meetup.save(condition=Meetup.id.does_not_exist())):
        raise Conflict(Message(f"Er is al een meetup met id {meetup.id!r}.", f"A meetup with id {meetup.id!r} exists already."),
                       code="exists")
    logger.info("meetup created", extra={"meetup_id": meetup.id, "kind": meetup.kind})
    return meetup


def read_changes(meetup_id: str, payload: dict) -> tuple[Meetup, dict]:
    """The meetup as stored now and the admin's valid changes to it (`capacity` among them:
    the roster's rules apply it, chalicelib.meetup_changes)."""
    meetup = load(meetup_id, consistent=True)
    return meetup, _read_fields(payload, creating=False, current=meetup)


def store_changes(meetup: Meetup, values: dict) -> bool:
    """Store changed fields (not `capacity`) with `updated_at` (added to `values`); True when
    the meetup moved: a change of time, place, mode or join details, which updates everyone's
    calendar entry (its `calendar_sequence` is raised in the same update)."""
    moved = any(name in CALENDAR_FIELDS and value != getattr(meetup, name) for name, value in values.items())
    if values:
        values["updated_at"] = clock.to_storage(clock.now())
        actions = [getattr(Meetup, name).set(value) if value is not None else getattr(Meetup, name).remove()
                   for name, value in values.items()]
        if moved:
            actions.append(Meetup.calendar_sequence.add(1))
        if not conditional(lambda: meetup.update(actions=actions, condition=Meetup.id.exists())):
            raise NotFound(messages.meetup_not_found(meetup.id))
    return moved
