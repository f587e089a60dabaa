"""Theme tables (thematafels): the breakout rooms of an online meetup, each led by a moderator.

Rules, and how the database enforces them:
- Never more people at a table than its capacity: every table has a seat counter item
  (models.TableSeats, `T#<id>` in the meetup's partition), and a person is put at a table only in
  a transaction that adds to it on the condition `seated < capacity`.
- An admin sets a meetup's tables in one transaction with their counters; a table cannot shrink
  below the people at it, nor be removed while anyone sits there.
- People without a preference are spread before the session (`spread`): in sign-up order, each
  to the table with the most free seats (ties: the first in the meetup's order), each placement
  its own conditional transaction, so a run that stops half-way resumes where it was.
"""
from __future__ import annotations

import csv
import io
import secrets

from chalicelib import catalogue, clock, messages
from chalicelib.errors import Conflict
from chalicelib.messages import Message
from chalicelib.models import REGISTRATION_PREFIX, Meetup, Registration, TableSeats, ThemeTable
from chalicelib.observability import logger
from chalicelib.statuses import RegistrationStatus
from chalicelib.storage import Transaction, TransactionCancelled, storage_errors
from chalicelib.validation import Fields

TABLE_PREFIX = "T#"
MAX_TABLES = 20
MAX_TABLE_CAPACITY = 1000
ZOOM_HEADER = ("Pre-assign Room Name", "Email Address")  # exactly as Zoom imports it
NO_PREFERENCE = None


def seats_key(table_id: str) -> str:
    return TABLE_PREFIX + table_id


def tables_of(meetup: Meetup) -> list[ThemeTable]:
    return list(meetup.tables or [])


# --- the admin sets the tables ---------------------------------------------------------------------

def _given(value):
    """A nested field's value for `Fields` (which reads the payload when given None): "" for an
    absent one, anything else as it is, so that a wrong type is refused, not taken as empty."""
    return "" if value is None else value


def _read(payload: dict, current: list[ThemeTable]) -> tuple[list[ThemeTable], str | None]:
    f = Fields(payload, allowed=("tables", "change_until"))
    raw = payload.get("tables")
    if not isinstance(raw, list) or len(raw) > MAX_TABLES:
        f.fail("tables", Message(f"Geef een lijst van hoogstens {MAX_TABLES} tafels.",
                                 f"Give a list of at most {MAX_TABLES} tables."))
        f.check()
    known = {t.id for t in current}
    tables, names = [], set()
    for index, item in enumerate(raw):
        at = f"tables[{index}]"
        if not isinstance(item, dict) or set(item) - {"id", "name", "description", "moderator", "capacity"}:
            f.fail(at, Message("Een tafel heeft alleen id, name, description, moderator en capacity.",
                               "A table has only id, name, description, moderator and capacity."))
            continue
        table_id = item.get("id")
        if table_id is not None and (not isinstance(table_id, str) or table_id not in known):
            f.fail(f"{at}.id", Message("Deze tafel bestaat niet; laat id weg voor een nieuwe tafel.",
                                       "No such table; leave id out for a new table."))
        name = f.text(f"{at}.name", required=True, max_length=100, value=_given(item.get("name")))
        if name and name.casefold() in names:
            f.fail(f"{at}.name", Message("Twee tafels hebben deze naam.", "Two tables have this name."))
        names.add((name or "").casefold())
        moderator = {} if item.get("moderator") is None else item["moderator"]
        if not isinstance(moderator, dict) or set(moderator) - {"name", "email"}:
            f.fail(f"{at}.moderator", Message("De moderator heeft alleen name en email.",
                                              "The moderator has only name and email."))
            moderator = {}
        capacity = item.get("capacity")
        if capacity is None:
            f.fail(f"{at}.capacity", "required")
        elif isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= MAX_TABLE_CAPACITY:
            f.fail(f"{at}.capacity", "between", minimum=1, maximum=MAX_TABLE_CAPACITY)
        tables.append(ThemeTable(
            id=table_id or secrets.token_urlsafe(6), name=name or "", capacity=capacity,
            description=f.text(f"{at}.description", max_length=300, value=_given(item.get("description"))),
            moderator_name=f.text(f"{at}.moderator.name", max_length=200, person=True,
                                  value=_given(moderator.get("name"))),
            moderator_email=f.email(f"{at}.moderator.email", value=_given(moderator.get("email")))))
    change_until = f.moment("change_until") if "change_until" in payload else None
    f.check()
    return tables, (clock.to_storage(change_until) if change_until else None)


def set_tables(meetup_id: str, payload: dict) -> Meetup:
    """Replace a meetup's tables (and the deadline for changing table), with their seat counters,
    in one transaction."""
    meetup = catalogue.load(meetup_id, consistent=True)
    current = tables_of(meetup)
    tables, change_until = _read(payload, current)
    kept = {t.id for t in tables}
    tx = Transaction()
    tx.update("meetup", meetup, [Meetup.tables.set(tables) if tables else Meetup.tables.remove(),
                                 Meetup.table_change_until.set(change_until) if change_until
                                 else Meetup.table_change_until.remove(),
                                 Meetup.updated_at.set(clock.to_storage(clock.now()))],
              Meetup.updated_at == meetup.updated_at)
    for table in tables:
        seats = TableSeats(meetup_id=meetup.id, sk=seats_key(table.id), table_id=table.id, capacity=table.capacity)
        if table.id in {t.id for t in current}:
            tx.update(f"seats {table.id}", seats, [TableSeats.capacity.set(table.capacity)],
                      TableSeats.seated <= table.capacity)
        else:
            tx.put(f"seats {table.id}", seats, TableSeats.sk.does_not_exist())
    for table in current:
        if table.id not in kept:
            tx.delete(f"seats {table.id}", TableSeats(meetup_id=meetup.id, sk=seats_key(table.id)),
                      TableSeats.seated == 0)
    try:
        tx.commit()
    except TransactionCancelled as cancelled:
        crowded = [t.id for t in tables + current if cancelled.failed(f"seats {t.id}")]
        if crowded:
            raise Conflict(Message("Aan deze tafel zitten meer mensen dan dat: " + ", ".join(crowded) + ".",
                                   "More people sit at this table than that: " + ", ".join(crowded) + "."),
                           code="table_occupied") from None
        raise Conflict(messages.TRY_AGAIN, code="changed_meanwhile") from None
    logger.info("tables set", extra={"meetup_id": meetup.id, "tables": len(tables)})
    return catalogue.load(meetup.id, consistent=True)


# --- who sits where ---------------------------------------------------------------------------------

def seated_people(meetup_id: str) -> list[Registration]:
    """The confirmed people of a meetup, in sign-up order (one Query of its partition)."""
    with storage_errors():
        found = list(Registration.query(meetup_id, Registration.sk.startswith(REGISTRATION_PREFIX),
                                        consistent_read=True,
                                        filter_condition=(Registration.status == RegistrationStatus.CONFIRMED)
                                        & Registration.erased_at.does_not_exist()))
    return sorted(found, key=lambda r: (r.promoted_at or r.created_at, r.id))


def seats(meetup_id: str) -> dict[str, TableSeats]:
    with storage_errors():
        return {s.table_id: s for s in TableSeats.query(meetup_id, TableSeats.sk.startswith(TABLE_PREFIX),
                                                        consistent_read=True)}


def lists(meetup_id: str, lang: str = "nl") -> dict:
    """Each table's list for the admin and the moderator: name, role, organisation, municipality
    (no addresses); and who has no table yet."""
    from chalicelib import rendering
    meetup = catalogue.load(meetup_id)
    people = seated_people(meetup_id)
    counters = seats(meetup_id)
    labels = rendering.TEXTS[lang]

    def row(person: Registration) -> dict:
        return {"name": person.name, "role": labels.get(f"role_{person.role}", person.role),
                "organisation": person.organisation, "municipality": person.municipality}
    known = {t.id for t in tables_of(meetup)}
    return {
        "meetup_id": meetup.id,
        "tables": [{"id": t.id, "name": t.name, "description": t.description,
                    "moderator": {"name": t.moderator_name}, "capacity": int(t.capacity),
                    "seated": int(counters[t.id].seated) if t.id in counters else 0,
                    "people": [row(p) for p in people if p.table_id == t.id]} for t in tables_of(meetup)],
        "no_table": [row(p) for p in people if p.table_id not in known],
    }


def read_list_query(params: dict) -> tuple[str, str]:
    """`?format=json|csv` and `?separator=;|,` of the lists; anything else is a 422 naming it."""
    f = Fields(dict(params))
    fmt = f.choice("format", ("json", "csv"), default="json")
    separator = f.choice("separator", (";", ","), default=";")
    f.check()
    return fmt, separator


def lists_csv(meetup_id: str, lang: str = "nl", separator: str = ";") -> str:
    found = lists(meetup_id, lang)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=separator)
    writer.writerow(("tafel", "naam", "rol", "organisatie", "gemeente") if lang == "nl"
                    else ("table", "name", "role", "organisation", "municipality"))
    for table in found["tables"]:
        for person in table["people"]:
            writer.writerow([_defused(v) for v in (table["name"], person["name"], person["role"],
                                                   person["organisation"], person["municipality"])])
    return "\ufeff" + buffer.getvalue()


def zoom_csv(meetup_id: str) -> str:
    """Zoom's breakout-room pre-assignment file: `Pre-assign Room Name,Email Address`, one row per
    person seated at a table."""
    meetup = catalogue.load(meetup_id)
    names = {t.id: t.name for t in tables_of(meetup)}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ZOOM_HEADER)
    for person in seated_people(meetup_id):
        if person.table_id in names and person.email:
            writer.writerow((names[person.table_id], person.email))
    return buffer.getvalue()


def _defused(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# --- the moderators' lists -------------------------------------------------------------------------

LIST_MOMENT_MINUTES = 24 * 60  # the day before; again whenever a list changes after that


def send_lists(meetup: Meetup) -> int:
    """Each moderator gets their table's list (names, roles, organisations: no addresses); a list
    that changed since gets sent again. The message id holds a digest of the list, so however
    often this runs, each version of a list goes to its moderator once."""
    import hashlib
    import json

    from chalicelib import outbox
    from chalicelib.config import get_settings
    from chalicelib import youth
    found = lists(meetup.id, "nl")
    base = get_settings().public_base_url
    # The youth council's approved ideas for this province, to take into the conversation.
    ideas = [{"title": i.title, "text": i.text, "age_band": i.age_band} for i in youth.approved_ideas(meetup.province)]
    batch = {}
    for table, listed in zip(tables_of(meetup), found["tables"]):
        if not table.moderator_email:
            continue
        people = [{"name": p["name"], "role": p["role"], "organisation": p["organisation"]} for p in listed["people"]]
        version = hashlib.sha256(json.dumps(people, sort_keys=True).encode()).hexdigest()[:16]
        context = {"name": table.moderator_name or "", "table": {"name": table.name, "capacity": int(table.capacity)},
                   "people": people, "ideas": ideas,
                   "meetup": {"id": meetup.id, "title": meetup.title, "starts_at": meetup.starts_at,
                              "ends_at": meetup.ends_at, "mode": meetup.mode, "city": meetup.city,
                              "venue": meetup.venue, "url": f"{base}/meetups/{meetup.id}"}}
        message = outbox.message(table.moderator_email, "table_list", "nl", context)
        message.id = f"table-list-{meetup.id}-{table.id}-{version}"
        batch[message.id] = message
    queued = outbox.queue_once(batch) if batch else []
    outbox.dispatch(queued)
    return len(queued)


# --- a person's own table -------------------------------------------------------------------------

NONE_CHOSEN = "none"  # "no preference"


def choices(meetup: Meetup, current: str | None) -> dict:
    """What the manage page (and the form) offers: every table with its free seats; a full one
    cannot be chosen unless it is the person's own."""
    counters = seats(meetup.id)
    offered = []
    for table in tables_of(meetup):
        counter = counters.get(table.id)
        free = int(counter.capacity) - int(counter.seated) if counter else int(table.capacity)
        offered.append({"id": table.id, "name": table.name, "description": table.description,
                        "moderator": table.moderator_name, "free": max(0, free),
                        "full": free <= 0 and table.id != current})
    until = meetup.table_change_until or meetup.starts_at
    return {"tables": offered, "current": current, "until": until,
            "open": clock.now() < clock.from_storage(until)}


def change_table(token: str, payload: dict) -> Registration:
    """A confirmed person moves to another table (or to no preference) until the meetup's
    deadline: the old seat is given back and the new one taken in one transaction."""
    from chalicelib import registration as roster
    person = roster.by_token(token)
    meetup = catalogue.load(person.meetup_id, consistent=True)
    f = Fields(payload, allowed=("table_id", "language"))
    choice = f.choice("table_id", [t.id for t in tables_of(meetup)] + [NONE_CHOSEN], required=True)
    f.check()
    if person.status != RegistrationStatus.CONFIRMED:
        raise Conflict(Message("Alleen met een plek kun je een tafel kiezen.", "Only with a seat can you choose a table."),
                       code="not_confirmed")
    if clock.now() >= clock.from_storage(meetup.table_change_until or meetup.starts_at):
        raise Conflict(Message("Van tafel wisselen kan niet meer.", "Changing table is closed."),
                       code="table_change_closed")
    new = None if choice == NONE_CHOSEN else choice
    if new == person.table_id:
        return person
    tx = Transaction()
    if person.table_id:
        unseat(tx, meetup.id, person.table_id)
    if new:
        seat(tx, meetup.id, new)
    was = (Registration.table_id == person.table_id) if person.table_id else Registration.table_id.does_not_exist()
    tx.update("person", person, [Registration.table_id.set(new) if new else Registration.table_id.remove(),
                                 Registration.table_given.remove()], was & (Registration.status == RegistrationStatus.CONFIRMED))
    try:
        tx.commit()
    except TransactionCancelled as cancelled:
        if cancelled.failed("table"):
            raise Conflict(Message("Deze tafel is vol. Kies een andere.", "This table is full. Please choose another."),
                           code="table_full") from None
        raise Conflict(messages.TRY_AGAIN, code="changed_meanwhile") from None
    person.table_id = new
    logger.info("table changed", extra={"meetup_id": meetup.id, "registration_id": person.id})
    return person


# --- placing people -------------------------------------------------------------------------------

def seat(tx: Transaction, meetup_id: str, table_id: str, name: str = "table") -> None:
    """Take a seat at a table inside the caller's transaction (fails when the table is full)."""
    tx.update(name, TableSeats(meetup_id=meetup_id, sk=seats_key(table_id)), [TableSeats.seated.add(1)],
              TableSeats.seated < TableSeats.capacity)


def unseat(tx: Transaction, meetup_id: str, table_id: str, name: str = "old table") -> None:
    tx.update(name, TableSeats(meetup_id=meetup_id, sk=seats_key(table_id)), [TableSeats.seated.add(-1)],
              TableSeats.seated > 0)


def choose_for(free: dict[str, int], order: list[str]) -> str | None:
    """The spread rule: the table with the most free seats; ties go to the first in `order`."""
    best = None
    for table_id in order:
        if free.get(table_id, 0) > 0 and (best is None or free[table_id] > free[best]):
            best = table_id
    return best


def spread(meetup_id: str) -> int:
    """Give everyone confirmed without a table one, by `choose_for`; returns how many were placed."""
    meetup = catalogue.load(meetup_id, consistent=True)
    order = [t.id for t in tables_of(meetup)]
    if not order:
        return 0
    placed = 0
    for person in seated_people(meetup_id):
        if person.table_id in order:
            continue
        free = {t: int(s.capacity) - int(s.seated) for t, s in seats(meetup_id).items()}
        table_id = choose_for(free, order)
        if table_id is None:
            break
        tx = Transaction()
        seat(tx, meetup_id, table_id)
        tx.update("person", person, [Registration.table_id.set(table_id), Registration.table_given.set(True)],
                  Registration.table_id.does_not_exist() & (Registration.status == RegistrationStatus.CONFIRMED))
        try:
            tx.commit()
            placed += 1
        except TransactionCancelled:
            continue  # placed meanwhile, or the table filled up: the next run sees it
    logger.info("tables spread", extra={"meetup_id": meetup_id, "placed": placed})
    return placed

