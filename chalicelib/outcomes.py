"""What a meetup produced: per theme table, the key conditions ("voorwaarden") and concrete
solutions, drafted by each table's moderator, reviewed and made final ("vastgesteld") by the host.

Storage (table `outcomes`): a meetup's partition (`pk` = its id) holds its state (`STATE`), its
items (`I#<item id>`, the table as an attribute) and its audit trail (`A#<stamp>#<random>`), so
a meetup's outcomes are one Query.

Rules, and how the database enforces them:
- A moderator's link edits only their table: every change of an item is conditioned on the
  item's `table_id` being the link's table.
- After the host finalised, only an admin changes anything: every draft write is a transaction
  with a condition check that the state is not `final`; finalising is one conditional update
  (`status` absent or `draft`).
- Every change writes its audit entry in the same transaction (who, when, which fields from
  what to what; the actor is "host", "moderator <table>" or "admin <name>", never an address).
- The links are mailed once after the meetup ends (`send_links`, deterministic outbox ids).
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist

from chalicelib import catalogue, clock, tokens
from chalicelib.config import get_settings
from chalicelib.errors import Conflict, Forbidden, NotFound
from chalicelib.messages import LINK_INVALID, Message
from chalicelib.models import (CONFIG_PARTITION, OUTCOME_AUDIT_PREFIX, OUTCOME_ITEM_PREFIX, OUTCOME_STATE_KEY,
                               Meetup, MeetupsByStart, OutcomeAudit, OutcomeItem,
                               OutcomeState, TagList)
from chalicelib.observability import logger
from chalicelib.statuses import MeetupState, OutcomeStatus
from chalicelib.storage import Transaction, TransactionCancelled, conditional, query_partition, storage_errors
from chalicelib.tags import DEFAULT_TAGS, get_tags  # noqa: F401 - DEFAULT_TAGS: outcomes.DEFAULT_TAGS
from chalicelib.validation import Fields, FormBody

PURPOSE = "outcomes"  # of the signed links
HOST = "*host"  # the link's part for the host (a table id never starts with '*')
LINK_DAYS = 120  # a link works this long after the meetup ended
PLENARY = "plenair"  # the one implicit table of a meetup without theme tables
KINDS = ("condition", "solution")
ACTORS = ("school", "gemeente", "rijk", "other")
ITEM_FIELDS = ("kind", "title", "explanation", "actors", "tags", "table_id")
MAX_ITEMS_PER_MEETUP = 200
LINKS_LOOKBACK = timedelta(days=14)  # send_links looks at meetups that started this long ago at most
_TAG = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")

FINAL = Message("De uitkomsten van deze meetup zijn vastgesteld; alleen de organisatie kan ze nog wijzigen.",
                "The outcomes of this meetup are final; only the organisers can change them now.")
CHANGED_MEANWHILE = Message("Dit punt is intussen door iemand anders gewijzigd of verwijderd. Laad de pagina opnieuw.",
                            "This item was changed or removed by someone else meanwhile. Please reload the page.")
HOST_ONLY = Message("Alleen de gastheer of gastvrouw kan de uitkomsten vaststellen.",
                    "Only the host can make the outcomes final.")
ITEM_NOT_FOUND = Message("Dit punt bestaat niet (meer).", "This item does not exist.")


def tables_of(meetup: Meetup) -> list[dict]:
    """The meetup's theme tables; without any, one implicit table ("Plenair") led by its host."""
    if meetup.tables:
        return [{"id": t.id, "name": t.name, "name_en": t.name, "description": t.description,
                 "moderator_name": t.moderator_name, "moderator_email": t.moderator_email,
                 "capacity": int(t.capacity) if t.capacity is not None else None, "implicit": False}
                for t in meetup.tables]
    return [{"id": PLENARY, "name": "Plenair", "name_en": "Plenary", "description": None,
             "moderator_name": meetup.host_name, "moderator_email": meetup.host_email, "capacity": None,
             "implicit": True}]


# --- links ---------------------------------------------------------------------------------------

def link_url(meetup: Meetup, table_id: str | None = None) -> str:
    """The host's link (`table_id` None: every table, may finalise) or a moderator's (one table)."""
    expires = clock.from_storage(meetup.ends_at) + timedelta(days=LINK_DAYS)
    token = tokens.sign(PURPOSE, meetup.id, table_id or HOST, expires=expires)
    return f"{get_settings().public_base_url}/outcomes/{token}"


def _holder(token: str) -> tuple[Meetup, str | None]:
    """(the meetup, the link's table id or None for the host)."""
    meetup_id, part = tokens.verify(PURPOSE, token, 2)
    meetup = catalogue.load(meetup_id)
    if part == HOST:
        return meetup, None
    if part not in {t["id"] for t in tables_of(meetup)}:
        raise NotFound(LINK_INVALID)
    return meetup, part


def _actor(table_id: str | None) -> str:
    return "host" if table_id is None else f"moderator {table_id}"


def admin_actor(name: str) -> str:
    """An admin in the audit: the token's name, never an address."""
    return "admin " + ("(address withheld)" if "@" in name else name[:60])


# --- tags (read by chalicelib.tags) ----------------------------------------------------------------

def put_tags(payload: dict, actor: str) -> list[str]:
    f = Fields(payload, allowed=("tags",))
    raw = payload.get("tags")
    tags: list[str] = []
    if not isinstance(raw, list) or not raw or len(raw) > 60:
        f.fail("tags", Message("Geef een lijst van 1 tot 60 tags.", "Give a list of 1 to 60 tags."))
    else:
        for tag in raw:
            if not isinstance(tag, str) or not _TAG.fullmatch(tag):
                f.fail("tags", Message("Een tag bestaat uit 2 tot 40 kleine letters, cijfers of streepjes.",
                                       "A tag is 2 to 40 lower-case letters, digits or hyphens."))
                break
            if tag not in tags:
                tags.append(tag)
    f.check()
    now = clock.now()
    before = get_tags()
    tx = Transaction()
    tx.put("tags", TagList(tags=tags, updated_at=clock.stamp(now)))
    tx.put("audit", _audit(CONFIG_PARTITION, now, actor, "changed", changes={"tags": {"before": before, "after": tags}}))
    with storage_errors():
        tx.commit()
    return tags


# --- reading ----------------------------------------------------------------------------------------

def load(meetup_id: str) -> tuple[OutcomeState | None, list[OutcomeItem], list[OutcomeAudit]]:
    """A meetup's state, items (oldest first) and audit trail: one Query (paged)."""
    state, items, audit = None, [], []
    with storage_errors():
        for raw in query_partition(OutcomeItem, meetup_id, consistent=True):
            sk = raw["sk"]["S"]
            if sk == OUTCOME_STATE_KEY:
                state = OutcomeState.from_raw_data(raw)
            elif sk.startswith(OUTCOME_ITEM_PREFIX):
                items.append(OutcomeItem.from_raw_data(raw))
            elif sk.startswith(OUTCOME_AUDIT_PREFIX):
                audit.append(OutcomeAudit.from_raw_data(raw))
    return state, items, audit


def is_final(state: OutcomeState | None) -> bool:
    return state is not None and state.status == OutcomeStatus.FINAL


def item_view(item: OutcomeItem) -> dict:
    return {"id": item.id, "table_id": item.table_id, "kind": item.kind, "title": item.title,
            "explanation": item.explanation, "actors": list(item.actors or []), "tags": list(item.tags or []),
            "updated_at": clock.to_public(clock.from_storage(item.updated_at))}


def audit_view(entry: OutcomeAudit) -> dict:
    return {"at": clock.to_public(clock.from_storage(entry.at)), "actor": entry.actor, "action": entry.action,
            "item_id": entry.item_id, "table_id": entry.table_id, "changes": entry.changes}


def _view(meetup: Meetup, state, items, table_id: str | None, *, admin: bool = False, audit=None) -> dict:
    from chalicelib import youth
    tables = [t for t in tables_of(meetup) if table_id is None or t["id"] == table_id]
    body = {
        "meetup": {"id": meetup.id, "title": meetup.title, "city": meetup.city, "province": meetup.province,
                   "starts_at": clock.to_public(clock.from_storage(meetup.starts_at)),
                   "chain_id": meetup.chain_id or meetup.id},
        "role": "admin" if admin else ("host" if table_id is None else "moderator"),
        "status": state.status if state is not None and state.status else OutcomeStatus.DRAFT,
        "finalised_at": clock.to_public(clock.from_storage(state.finalised_at)) if is_final(state) else None,
        "editable": admin or not is_final(state),
        "tables": [{"id": t["id"], "name": t["name"], "name_en": t["name_en"], "description": t["description"],
                    "items": [item_view(i) for i in items if i.table_id == t["id"]]} for t in tables],
        "tags": get_tags(), "kinds": list(KINDS), "actors": list(ACTORS),
        "ideas": [youth.idea_view(idea) for idea in youth.approved_ideas(meetup.province)],
    }
    if admin:
        body["links"] = {"host": link_url(meetup), "tables": {t["id"]: link_url(meetup, t["id"]) for t in tables}}
        body["audit"] = [audit_view(entry) for entry in audit or []]
    return body


def show(token: str) -> dict:
    meetup, table_id = _holder(token)
    state, items, _ = load(meetup.id)
    return _view(meetup, state, items, table_id)


def admin_show(meetup_id: str) -> dict:
    meetup = catalogue.load(meetup_id)
    state, items, audit = load(meetup.id)
    return _view(meetup, state, items, None, admin=True, audit=audit)


# --- writing ------------------------------------------------------------------------------------------

def _new_item_id() -> str:
    return f"{time.time_ns():x}{secrets.token_hex(3)}"  # sorts by creation


def _audit(pk: str, now: datetime, actor: str, action: str, *, item: OutcomeItem | None = None,
           changes: dict | None = None) -> OutcomeAudit:
    return OutcomeAudit(pk=pk, sk=f"{OUTCOME_AUDIT_PREFIX}{clock.stamp(now)}#{secrets.token_hex(3)}",
                        at=clock.to_storage(now), actor=actor, action=action,
                        item_id=item.id if item else None, table_id=item.table_id if item else None,
                        changes=changes)


def _as_lists(payload: dict) -> dict:
    """A form sends each checked tag as `tag_<tag>` and each actor as `actor_<actor>` (a form body
    keeps one value per name); JSON sends lists."""
    if not isinstance(payload, FormBody):
        return payload
    plain = {k: v for k, v in payload.items() if not k.startswith(("tag_", "actor_"))}
    plain["tags"] = [k[4:] for k in payload if k.startswith("tag_")]
    plain["actors"] = [k[6:] for k in payload if k.startswith("actor_")]
    return plain


def _read_item(payload: dict, *, tables: list[str], partial: bool) -> dict:
    payload = _as_lists(payload)
    f = Fields(payload, allowed=ITEM_FIELDS)
    values: dict = {}
    need = not partial
    if need or f.has("kind"):
        values["kind"] = f.choice("kind", KINDS, required=True)
    if need or f.has("title"):
        values["title"] = f.text("title", required=True, max_length=160)
    if need or f.has("explanation"):
        values["explanation"] = f.text("explanation", max_length=2000, multiline=True)
    for name, options in (("actors", ACTORS), ("tags", get_tags())):
        if not (need or f.has(name)):
            continue
        raw = payload.get(name)
        if not isinstance(raw, list) or not raw or any(not isinstance(v, str) or v not in options for v in raw):
            f.fail(name, Message(f"Kies één of meer van: {', '.join(options)}.",
                                 f"Choose one or more of: {', '.join(options)}."))
        else:
            values[name] = list(dict.fromkeys(raw))
    if f.has("table_id") or (need and len(tables) > 1):
        values["table_id"] = f.choice("table_id", tables, required=True)
    f.check()
    return values


def _commit(tx: Transaction, *, guarded: bool) -> None:
    try:
        with storage_errors():
            tx.commit()
    except TransactionCancelled as cancelled:
        if guarded and cancelled.failed("state"):
            raise Conflict(FINAL, code="outcomes_final") from None
        if cancelled.failed("item"):
            raise Conflict(CHANGED_MEANWHILE, code="changed_meanwhile") from None
        raise


def _guard(tx: Transaction, meetup_id: str) -> None:
    tx.check("state", OutcomeState, meetup_id, OUTCOME_STATE_KEY,
             condition=OutcomeState.status.does_not_exist() | (OutcomeState.status == OutcomeStatus.DRAFT))


def add(meetup: Meetup, table_id: str | None, payload: dict, actor: str, *, guarded: bool = True) -> dict:
    """A new condition or solution; `table_id` the moderator's table (None: host or admin)."""
    tables = [t["id"] for t in tables_of(meetup)] if table_id is None else [table_id]
    values = _read_item(payload, tables=tables, partial=False)
    if values.get("table_id", tables[0]) not in tables:
        raise NotFound(LINK_INVALID)
    now = clock.now()
    item = OutcomeItem(pk=meetup.id, id=_new_item_id(), table_id=values.pop("table_id", tables[0]),
                       created_at=clock.to_storage(now), updated_at=clock.to_storage(now), **values)
    item.sk = OUTCOME_ITEM_PREFIX + item.id
    tx = Transaction()
    if guarded:
        _guard(tx, meetup.id)
    tx.put("item", item, OutcomeItem.sk.does_not_exist())
    tx.put("audit", _audit(meetup.id, now, actor, "added", item=item,
                           changes={k: {"before": None, "after": v} for k, v in values.items()}))
    _commit(tx, guarded=guarded)
    return item_view(item)


def _current(meetup_id: str, item_id: str, table_id: str | None) -> OutcomeItem:
    if not item_id or len(item_id) > 60:
        raise NotFound(ITEM_NOT_FOUND)
    with storage_errors():
        try:
            item = OutcomeItem.get(meetup_id, OUTCOME_ITEM_PREFIX + item_id, consistent_read=True)
        except DoesNotExist:
            raise NotFound(ITEM_NOT_FOUND) from None
    if table_id is not None and item.table_id != table_id:
        raise NotFound(ITEM_NOT_FOUND)  # another table's item: not this link's to see
    return item


def change(meetup: Meetup, table_id: str | None, item_id: str, payload: dict, actor: str, *,
           guarded: bool = True) -> dict:
    item = _current(meetup.id, item_id, table_id)
    tables = [t["id"] for t in tables_of(meetup)] if table_id is None else [table_id]
    values = _read_item(payload, tables=tables, partial=True)
    changes = {k: {"before": getattr(item, k) if not isinstance(getattr(item, k), list) else list(getattr(item, k)),
                   "after": v} for k, v in values.items()
               if (list(getattr(item, k)) if isinstance(getattr(item, k), list) else getattr(item, k)) != v}
    if not changes:
        return item_view(item)
    now = clock.now()
    actions = [getattr(OutcomeItem, k).set(v) if v is not None else getattr(OutcomeItem, k).remove()
               for k, v in values.items() if k in changes]
    actions.append(OutcomeItem.updated_at.set(clock.to_storage(now)))
    tx = Transaction()
    if guarded:
        _guard(tx, meetup.id)
    tx.update("item", item, actions, condition=(OutcomeItem.table_id == item.table_id)
              & (OutcomeItem.updated_at == item.updated_at))
    tx.put("audit", _audit(meetup.id, now, actor, "changed", item=item, changes=changes))
    _commit(tx, guarded=guarded)
    for k, v in values.items():
        setattr(item, k, v)
    item.updated_at = clock.to_storage(now)
    return item_view(item)


def remove(meetup: Meetup, table_id: str | None, item_id: str, actor: str, *, guarded: bool = True) -> None:
    item = _current(meetup.id, item_id, table_id)
    now = clock.now()
    tx = Transaction()
    if guarded:
        _guard(tx, meetup.id)
    tx.delete("item", item, condition=OutcomeItem.table_id == item.table_id)
    tx.put("audit", _audit(meetup.id, now, actor, "removed", item=item,
                           changes={"title": {"before": item.title, "after": None}}))
    _commit(tx, guarded=guarded)


def finalise(meetup: Meetup, actor: str) -> dict:
    """Marks the meetup's outcomes final: one conditional update (and its audit entry)."""
    now = clock.now()
    tx = Transaction()
    tx.update("state", OutcomeState(pk=meetup.id, sk=OUTCOME_STATE_KEY),
              [OutcomeState.status.set(OutcomeStatus.FINAL), OutcomeState.finalised_at.set(clock.to_storage(now)),
               OutcomeState.finalised_by.set(actor)],
              condition=OutcomeState.status.does_not_exist() | (OutcomeState.status == OutcomeStatus.DRAFT))
    tx.put("audit", _audit(meetup.id, now, actor, "finalised"))
    try:
        with storage_errors():
            tx.commit()
    except TransactionCancelled as cancelled:
        if cancelled.failed("state"):
            raise Conflict(FINAL, code="outcomes_final") from None
        raise
    return {"status": OutcomeStatus.FINAL, "finalised_at": clock.to_public(now)}


def reopen(meetup: Meetup, actor: str) -> dict:
    """An admin puts final outcomes back in draft (audited), so the host can review them again."""
    now = clock.now()
    tx = Transaction()
    tx.update("state", OutcomeState(pk=meetup.id, sk=OUTCOME_STATE_KEY),
              [OutcomeState.status.set(OutcomeStatus.DRAFT), OutcomeState.finalised_at.remove(),
               OutcomeState.finalised_by.remove()], condition=OutcomeState.status == OutcomeStatus.FINAL)
    tx.put("audit", _audit(meetup.id, now, actor, "reopened"))
    try:
        with storage_errors():
            tx.commit()
    except TransactionCancelled as cancelled:
        if cancelled.failed("state"):
            raise Conflict(Message("Deze uitkomsten zijn nog niet vastgesteld.", "These outcomes are not final."),
                           code="not_final") from None
        raise
    return {"status": OutcomeStatus.DRAFT}


# --- through a link ---------------------------------------------------------------------------------

def add_by_link(token: str, payload: dict) -> dict:
    meetup, table_id = _holder(token)
    return add(meetup, table_id, payload, _actor(table_id))


def change_by_link(token: str, item_id: str, payload: dict) -> dict:
    meetup, table_id = _holder(token)
    return change(meetup, table_id, item_id, payload, _actor(table_id))


def remove_by_link(token: str, item_id: str) -> None:
    meetup, table_id = _holder(token)
    remove(meetup, table_id, item_id, _actor(table_id))


def finalise_by_link(token: str) -> dict:
    meetup, table_id = _holder(token)
    if table_id is not None:
        raise Forbidden(HOST_ONLY)
    return finalise(meetup, "host")


# --- the links, mailed after the meetup ---------------------------------------------------------------

def _message_key(value: str) -> str:
    return value if _SAFE_ID.fullmatch(value) else hashlib.sha256(value.encode()).hexdigest()[:16]


def send_links(now: datetime | None = None) -> dict:
    """Mails the host and each table's moderator of every meetup that ended (in the last two
    weeks) their link, once: deterministic ids, and the meetup's state marks it done."""
    from chalicelib import outbox, youth
    now = now or clock.now()
    with storage_errors():
        recent = catalogue.tour(MeetupsByStart.starts_at.between(
            clock.to_storage(now - LINKS_LOOKBACK), clock.to_storage(now)))
    result = {"meetups": 0, "queued": 0}
    for meetup in recent:
        if meetup.state == MeetupState.CANCELLED or meetup.ends_at > clock.to_storage(now):
            continue
        with storage_errors():
            try:
                state = OutcomeState.get(meetup.id, OUTCOME_STATE_KEY, consistent_read=True)
            except DoesNotExist:
                state = None
        if state is not None and state.links_sent_at:
            continue
        ideas = [youth.idea_view(i) for i in youth.approved_ideas(meetup.province)]
        meetup_context = {"title": meetup.title, "city": meetup.city, "starts_at": meetup.starts_at}
        batch = {}
        if meetup.host_email:
            key = f"outcomes-{_message_key(meetup.id)}-host"
            batch[key] = outbox.message(meetup.host_email, "outcomes_link", "nl", {
                "name": meetup.host_name, "meetup": meetup_context, "role": "host", "table_name": None,
                "url": link_url(meetup), "ideas": ideas}, message_id=key)
        for table in tables_of(meetup):
            if table["implicit"] or not table["moderator_email"]:
                continue  # the host's own link covers the implicit table
            key = f"outcomes-{_message_key(meetup.id)}-t-{_message_key(table['id'])}"
            batch[key] = outbox.message(table["moderator_email"], "outcomes_link", "nl", {
                "name": table["moderator_name"] or "", "meetup": meetup_context, "role": "moderator",
                "table_name": table["name"], "url": link_url(meetup, table["id"]), "ideas": ideas}, message_id=key)
        keys = list(batch)
        for start in range(0, len(keys), 25):
            committed = outbox.queue_once({k: batch[k] for k in keys[start:start + 25]})
            outbox.dispatch(committed)
            result["queued"] += len(committed)
        conditional(lambda: OutcomeState(pk=meetup.id, sk=OUTCOME_STATE_KEY).update(
            actions=[OutcomeState.links_sent_at.set(clock.to_storage(now))],
            condition=OutcomeState.links_sent_at.does_not_exist()))
        result["meetups"] += 1
    if result["queued"]:
        logger.info("outcome links queued", extra=result)
    return result


# --- by an admin (also after the outcomes are final) ------------------------------------------------

def admin_add(meetup_id: str, payload: dict, admin_name: str) -> dict:
    return add(catalogue.load(meetup_id), None, payload, admin_actor(admin_name), guarded=False)


def admin_change(meetup_id: str, item_id: str, payload: dict, admin_name: str) -> dict:
    return change(catalogue.load(meetup_id), None, item_id, payload, admin_actor(admin_name), guarded=False)


def admin_remove(meetup_id: str, item_id: str, admin_name: str) -> dict:
    remove(catalogue.load(meetup_id), None, item_id, admin_actor(admin_name), guarded=False)
    return {"removed": item_id}


def admin_finalise(meetup_id: str, admin_name: str) -> dict:
    return finalise(catalogue.load(meetup_id), admin_actor(admin_name))


def admin_reopen(meetup_id: str, admin_name: str) -> dict:
    return reopen(catalogue.load(meetup_id), admin_actor(admin_name))
