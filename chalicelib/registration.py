"""Sign-up, waitlist, cancellation and promotion: the roster rules of a meetup.

Rules, and how the database enforces them:
- Never more confirmed than `capacity`: the meetup item's counter is updated in the same
  transaction as the registration, conditioned on `confirmed < capacity`.
- One active registration per (meetup, email): an EmailGuard item created in that transaction
  with `attribute_not_exists`, deleted when the registration is cancelled.
- Strict first-come waitlist order, at a cost that does not grow with the line: each waiting
  person is one small item `W#<ticket>` in the meetup's partition. The ticket comes from the
  meetup's `waitlist_seq`, set to n+1 inside the join's own transaction on the condition that
  it is n (and that the line is as long as expected): the order is the order DynamoDB
  committed the joins in, and the join's position is known on commit. Within a process, the
  joins waiting for a meetup's line go into one transaction (group commit, tickets n+1..n+k in
  arrival order); between processes, a process that lost the race takes turns (a ticket lock
  on the meetup item, first come first served) instead of racing again. The first in line is a
  consistent Query of `W#` with Limit 1.
- Exact positions without counting the line: position = ticket - `waitlist_promoted` (those
  promoted from the front) - the departures ahead (`D#<ticket>` markers written when a waiting
  person leaves; counted with a keys-only Query below the ticket).
- An optional `waitlist_max_length`: a join is refused with 409 `waitlist_full` once reached.
- Nobody waits while a seat is free: a new sign-up only takes a seat when the line is empty,
  and cancelling a confirmed place promotes the first in line in the same transaction
  (conditioned on that person's entry still being there), or frees the seat on the condition
  that nobody waits; new seats go to the first in line (`fill_free_seats`).
- No refusal from a cache: the per-process hint only chooses which transaction to try; a
  refusal (closed, full, waitlist full) comes from a failed condition or a consistent read.
Every change writes its activity record (read by the digest) and its outbox email in the
same transaction: the email exists if and only if the change happened.
"""
from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist

from chalicelib import catalogue, clock, joining, line, messages, theme_tables, tokens
from chalicelib.config import get_settings
from chalicelib.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from chalicelib.messages import Message
from chalicelib.models import (DEPARTURE_PREFIX, EMAIL_GUARD_PREFIX, ERASURE_DUE, REGISTRATION_PREFIX, WAITLIST_PREFIX,
                               Activity, Departure, EmailGuard, Meetup, OutboxMessage, Registration, WaitlistEntry,
                               guard_partition, line_partition, ticket_key)
from chalicelib.observability import logger
from chalicelib.statuses import ACTIVE, MeetupState, RegistrationStatus
from chalicelib.storage import Transaction, TransactionCancelled, claim, new_activity, retry_pause, storage_errors
from chalicelib.validation import Fields

ROLES = ("teacher", "school_leader", "school_board", "local_politician", "education_support",
         "youth_work", "parent", "other")
LANGUAGES = ("nl", "en")
MANAGE_PURPOSE = "registration"
RESEND_INTERVAL = timedelta(minutes=10)  # the manage link is mailed again at most this often per registration
MAX_ATTEMPTS = 60


@dataclass
class SignUp:
    """Validated sign-up fields."""
    name: str
    email: str
    role: str
    organisation: str | None = None
    municipality: str | None = None
    theme: str | None = None
    language: str = "nl"
    follow_up_opt_in: bool = False
    is_bot: bool = False
    table_id: str | None = None  # the theme table asked for; None: no preference


@dataclass
class Outcome:
    registration: Registration
    created: bool
    position: int | None = None
    mail: list[OutboxMessage] = field(default_factory=list)
    meetup: Meetup | None = None

    @property
    def manage_url(self) -> str:
        return manage_url(self.registration, self.meetup.ends_at)


# --- reading and validating ----------------------------------------------------------------------

def read_sign_up(payload: dict) -> SignUp:
    f = Fields(payload)
    is_bot = bool(payload.get("website"))  # the honeypot: people never see it, bots fill it
    name = f.text("name", required=True, max_length=200, person=True)
    email = f.email("email", required=True)
    role = f.choice("role", ROLES, required=True)
    organisation = f.text("organisation", person=True)
    municipality = f.text("municipality", person=True)
    theme = f.text("theme")
    language = f.choice("language", LANGUAGES, default="nl") or "nl"
    follow_up = f.boolean("follow_up_opt_in")
    table_id = f.text("table_id", max_length=100)
    if not f.boolean("consent") and "consent" not in f.errors:
        f.fail("consent", "consent")
    f.check()  # a bot's bad body is refused like anyone's: the honeypot must not be told apart
    return SignUp(name=name, email=email, role=role, organisation=organisation, municipality=municipality,
                  theme=theme, language=language, follow_up_opt_in=follow_up, is_bot=is_bot,
                  table_id=None if table_id in (None, "none") else table_id)


def guard_key(email: str) -> str:
    from chalicelib.addresses import address_hash
    return EMAIL_GUARD_PREFIX + address_hash(email)


def link_expiry(meetup_ends_at: str):
    """A registration's links work until its personal data is erased: the retention period after
    the meetup ends (an earlier erasure ends them at once: the registration is gone)."""
    return max(clock.from_storage(meetup_ends_at), clock.now()) + get_settings().retention


def manage_token(registration: Registration, meetup_ends_at: str) -> str:
    return tokens.sign(MANAGE_PURPOSE, registration.meetup_id, registration.id,
                       expires=link_expiry(meetup_ends_at))


def manage_path(registration: Registration, meetup_ends_at: str) -> str:
    return f"/registrations/{manage_token(registration, meetup_ends_at)}"


def manage_url(registration: Registration, meetup_ends_at: str) -> str:
    return get_settings().public_base_url + manage_path(registration, meetup_ends_at)


def view(registration: Registration, position: int | None = None, *, full: bool = True) -> dict:
    body = {"id": registration.id, "meetup_id": registration.meetup_id, "status": registration.status,
            "waitlist_position": position if registration.status == RegistrationStatus.WAITLISTED else None}
    if full:
        body.update(name=registration.name, created_at=clock.to_public(registration.created_at))
    return body


def privacy_view(registration: Registration, token: str) -> dict:
    """What the manage link shows of consent, and the links that exercise the person's rights."""
    base = f"{get_settings().public_base_url}/registrations/{token}"
    return {"consent_at": clock.to_public(registration.consent_at) if registration.consent_at else None,
            "consent_version": registration.consent_version,
            "follow_up_opt_in": bool(registration.follow_up_opt_in),
            "follow_up_consent_at": clock.to_public(registration.follow_up_consent_at)
            if registration.follow_up_consent_at else None,
            "follow_up_withdrawn_at": clock.to_public(registration.follow_up_withdrawn_at)
            if registration.follow_up_withdrawn_at else None,
            "follow_up_url": f"{base}/follow-up", "data_url": f"{base}/data", "erase_url": f"{base}/erase",
            "privacy_url": f"{get_settings().public_base_url}/privacy"}


def admin_view(registration: Registration, position: int | None) -> dict:
    return view(registration, position) | {
        "email": registration.email, "role": registration.role, "organisation": registration.organisation,
        "municipality": registration.municipality, "theme": registration.theme,
        "language": registration.language, "follow_up_opt_in": registration.follow_up_opt_in,
        # Extensions to the contract:
        "consent_at": clock.to_public(registration.consent_at) if registration.consent_at else None,
        "consent_version": registration.consent_version,
        "erased": registration.erased_at is not None,
        "joined_at": clock.to_public(registration.joined_at) if registration.joined_at else None}


def _load_registration(meetup_id: str, registration_id: str) -> Registration:
    with storage_errors():
        try:
            return Registration.get(meetup_id, REGISTRATION_PREFIX + registration_id, consistent_read=True)
        except DoesNotExist:
            raise NotFound(messages.LINK_INVALID) from None


def _read_meetup(meetup_id: str) -> Meetup:
    """The meetup as it is now (a consistent read): what a rule may be decided on."""
    return catalogue.load(meetup_id, consistent=True)




def waitlist_position(registration: Registration) -> int | None:
    """1 for the next in line; None unless waiting."""
    if registration.status != RegistrationStatus.WAITLISTED or not registration.waitlist_ticket:
        return None
    return line.position_of_ticket(registration.meetup_id, int(registration.waitlist_ticket))


def by_token(token: str, purpose: str = MANAGE_PURPOSE) -> Registration:
    """The registration a link is for; 404 once its personal data has been erased."""
    meetup_id, registration_id = tokens.verify(purpose, token, 2)
    registration = _load_registration(meetup_id, registration_id)
    if registration.erased_at:
        raise NotFound(messages.DATA_ERASED)
    return registration


def find_by_token(token: str) -> tuple[Registration, int | None]:
    registration = by_token(token)
    return registration, waitlist_position(registration)


LIST_LIMIT = 500  # rows per page of the admin listing, unless `limit` says otherwise
LIST_MAX = 1000  # at most this many: a page of the CSV or JSON stays far under Lambda's 6 MB
LIST_PHASES = (RegistrationStatus.CONFIRMED, RegistrationStatus.WAITLISTED, RegistrationStatus.CANCELLED)
CURSOR_PURPOSE = "registrations-cursor"
BAD_CURSOR = Message("Deze cursor is ongeldig of verlopen; begin opnieuw zonder cursor.",
                     "This cursor is not valid or has expired; start again without a cursor.")


def _cursor(meetup_id: str, phase: int, after: str) -> str:
    from datetime import timedelta
    return tokens.sign(CURSOR_PURPOSE, meetup_id, str(phase), after, expires=clock.now() + timedelta(days=1))


def _read_cursor(meetup_id: str, cursor: str | None) -> tuple[int, str | None]:
    """(phase, last sk shown) of a cursor this service signed for this meetup; else a 400 naming it."""
    from chalicelib.errors import DomainError, MalformedRequest
    if cursor is None:
        return 0, None
    try:
        signed_for, phase, after = tokens.verify(CURSOR_PURPOSE, cursor, 3)
    except DomainError:
        signed_for, phase, after = None, "", ""
    if signed_for != meetup_id or phase not in ("0", "1", "2") or (after and not after.startswith(REGISTRATION_PREFIX)):
        raise MalformedRequest(BAD_CURSOR, code="invalid_cursor", fields={"cursor": BAD_CURSOR})
    return int(phase), after or None


def read_page_request(params: dict) -> tuple[int, str | None]:
    """`limit` (1..LIST_MAX, default LIST_LIMIT) and `cursor` of a listing request; 400 naming a bad one."""
    from chalicelib.errors import MalformedRequest
    raw = params.get("limit")
    if raw is None:
        limit = LIST_LIMIT
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit() and 1 <= int(raw) <= LIST_MAX:
        limit = int(raw)
    else:
        bad = Message(f"limit moet een heel getal van 1 tot en met {LIST_MAX} zijn.",
                      f"limit must be a whole number from 1 to {LIST_MAX}.")
        raise MalformedRequest(bad, code="invalid_limit", fields={"limit": bad})
    if params.get("format") not in (None, "json", "csv"):
        bad = Message("format moet json of csv zijn.", "format must be json or csv.")
        raise MalformedRequest(bad, code="invalid_format", fields={"format": bad})
    cursor = params.get("cursor")
    if cursor is not None and (not cursor or len(cursor) > 1000):
        raise MalformedRequest(BAD_CURSOR, code="invalid_cursor", fields={"cursor": BAD_CURSOR})
    return limit, cursor


def list_registrations(meetup_id: str, *, limit: int = LIST_LIMIT, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of a meetup's registrations, for admins, and the cursor of the next (None at the
    end). Pages come confirmed first, then waitlisted, then cancelled; within a status by
    registration id (the key order a Query gives), the waitlisted with their `waitlist_position`.
    Each status is one Query with a filter, resumed from the cursor: no page reads the whole roster."""
    phase, after = _read_cursor(meetup_id, cursor)
    catalogue.load(meetup_id)
    found: list[Registration] = []
    with storage_errors():
        while phase < len(LIST_PHASES) and len(found) < limit:
            query = Registration.query(
                meetup_id, Registration.sk.between(after or REGISTRATION_PREFIX, REGISTRATION_PREFIX[:-1] + "$"),
                Registration.status == LIST_PHASES[phase], consistent_read=True,
                limit=limit - len(found) + (1 if after else 0), page_size=LIST_MAX)
            rows = [r for r in query if r.sk != after]
            found += rows
            if len(found) >= limit and query.last_evaluated_key is not None:
                after = found[-1].sk
                break
            phase, after = phase + 1, None
        positions = line.positions_of(meetup_id, [r for r in found if r.status == RegistrationStatus.WAITLISTED and r.waitlist_ticket])
    next_cursor = _cursor(meetup_id, phase, after or "") if phase < len(LIST_PHASES) else None
    return catalogue.viewable(lambda r: admin_view(r, positions.get(r.id)), found), next_cursor


# --- records written alongside every change -------------------------------------------------------

def _activity(kind: str, meetup: Meetup, registration: Registration, now, **details) -> Activity:
    return new_activity(kind, meetup, now, {"registration_id": registration.id, "name": registration.name,
                                            "role": registration.role, "organisation": registration.organisation,
                                            **details})


def _mail(template: str, meetup: Meetup, registration: Registration, position: int | None = None) -> OutboxMessage:
    from chalicelib import outbox
    # Links as paths: mail.compose adds the base when the email is written (keeps the item < 1 KB).
    context = {
        "name": registration.name, "registration_id": registration.id, "status": registration.status,
        "waitlist_position": position, "manage_url": manage_path(registration, meetup.ends_at),
        # The waitlisted email's position is composed again when it is sent (`line.position_for_mail`).
        "waitlist_ticket": int(registration.waitlist_ticket) if registration.status == RegistrationStatus.WAITLISTED
        and registration.waitlist_ticket else None,
        "meetup": {"id": meetup.id, "title": meetup.title, "starts_at": meetup.starts_at,
                   "ends_at": meetup.ends_at, "mode": meetup.mode, "city": meetup.city, "venue": meetup.venue,
                   "sequence": int(meetup.calendar_sequence or 0),
                   "url": f"/meetups/{meetup.id}", "tour_url": "/meetups"},
        # The personal join link, never the meetup's join_url (an admin may change that at will).
        "join_link": (joining.join_path(registration, link_expiry(meetup.ends_at)) if meetup.mode == "online"
                      else None),
    }
    return outbox.message(registration.email, template, registration.language or "nl", context)


compose_mail = _mail  # the registration emails' context, for the other capabilities that mail people


def _deliver(mails: list[OutboxMessage]) -> None:
    """Hand what a committed change queued to delivery; whatever fails waits in the outbox."""
    from chalicelib import outbox
    outbox.dispatch(mails)


def _fresh(meetup_id: str, cancelled: TransactionCancelled, attempt: int) -> Meetup:
    """The meetup as the failed transaction found it (no extra read), or re-read after a conflict."""
    old = cancelled.old_item("meetup")
    if cancelled.failed("meetup") and old:
        return Meetup.from_raw_data(old)
    retry_pause(attempt)
    return catalogue.load(meetup_id, consistent=True)


def _is_open(meetup: Meetup, now) -> bool:
    return meetup.state == MeetupState.OPEN and clock.from_storage(meetup.starts_at) > now


def _seat_free(meetup: Meetup) -> bool:
    return meetup.confirmed < meetup.capacity and not meetup.waitlist_length


def _refusal(meetup: Meetup, now) -> Conflict | None:
    """Why this copy of the meetup refuses a sign-up, if it does. Only a copy the database just
    confirmed (a consistent read, a failed condition's item) may turn anyone away. An announced
    follow-up (its new host has not accepted the handover yet) takes no sign-ups either."""
    if meetup.awaiting_host:
        return Conflict(messages.AWAITING_HOST, code="awaiting_host")
    if not _is_open(meetup, now):
        return Conflict(messages.CLOSED, code="closed")
    if _seat_free(meetup):
        return None
    if not meetup.waitlist_enabled:
        return Conflict(messages.FULL, code="full")
    limit = meetup.waitlist_max_length
    if limit and int(meetup.waitlist_length or 0) >= int(limit):
        return Conflict(messages.WAITLIST_FULL, code="waitlist_full")
    return None


# --- sign-up -----------------------------------------------------------------------------------

class _MeetupHints:
    """Recently seen meetups, per process: they let a sign-up go straight to its transaction.
    Only a hint: it chooses which transaction to try first, never an answer. The transaction
    re-checks every fact it relies on (seats, the waitlist's sequence and length, state, start,
    and `updated_at`, so that emails never carry stale details); a refused one returns the
    current item, which refreshes the hint without another read; and a refusal is only given on
    a copy the database confirmed (see `_refusal`)."""

    TTL_SECONDS = 30

    def __init__(self):
        self._seen: dict[str, tuple[float, Meetup]] = {}
        self._lock = threading.Lock()

    def get(self, meetup_id: str) -> tuple[Meetup, bool]:
        """(a copy of the meetup, whether the database confirmed it just now)."""
        with self._lock:
            seen = self._seen.get(meetup_id)
            if seen and time.monotonic() - seen[0] < self.TTL_SECONDS:
                return Meetup.from_raw_data(seen[1].serialize()), False  # a copy: threads share the hint
        return self.put(_read_meetup(meetup_id)), True

    def put(self, meetup: Meetup) -> Meetup:
        with self._lock:
            if len(self._seen) > 500:
                self._seen.clear()
            self._seen[meetup.id] = (time.monotonic(), Meetup.from_raw_data(meetup.serialize()))
        return meetup

    def forget(self, meetup_id: str) -> None:
        with self._lock:
            self._seen.pop(meetup_id, None)

    def newer(self, meetup: Meetup) -> Meetup:
        """The shared hint if it has seen more of the line than `meetup` (same version), else `meetup`."""
        with self._lock:
            seen = self._seen.get(meetup.id)
            if (seen and seen[1].updated_at == meetup.updated_at
                    and int(seen[1].waitlist_seq or 0) > int(meetup.waitlist_seq or 0)):
                return Meetup.from_raw_data(seen[1].serialize())
        return meetup

    def count(self, meetup_id: str, status: str, *, seq: int = 0, length: int = 0, seats: int = 1) -> None:
        """A sign-up committed: count it on the shared hint (never overwrite it with a copy
        taken earlier, which would lose what other requests counted meanwhile)."""
        with self._lock:
            seen = self._seen.get(meetup_id)
            if seen is None:
                return
            if status == RegistrationStatus.CONFIRMED:
                seen[1].confirmed += seats
            elif seq > int(seen[1].waitlist_seq or 0):
                seen[1].waitlist_seq, seen[1].waitlist_length = seq, length


hints = _MeetupHints()


def _decoy(meetup: Meetup, registration: Registration, now) -> Outcome:
    """The honeypot's answer: what a real sign-up would answer, checked the same way (closed,
    full, waitlist full: on a consistent read), with nothing stored or sent. Its manage link is
    signed like a real one and leads nowhere."""
    logger.info("honeypot filled; nothing stored", extra={"meetup_id": meetup.id})
    meetup = _read_meetup(meetup.id)
    refusal = _refusal(meetup, now)
    if refusal:
        raise refusal
    if _seat_free(meetup):
        return Outcome(registration, created=True, meetup=meetup)
    registration.status = RegistrationStatus.WAITLISTED
    return Outcome(registration, created=True, position=int(meetup.waitlist_length) + 1, meetup=meetup)


def sign_up(meetup_id: str, payload: dict) -> Outcome:
    """Register someone: a confirmed seat, else a waitlist place, else 409.

    Usually one request: the transaction (a cold process first reads the meetup). A waitlist
    join takes the next ticket of the meetup's sequence in its own transaction, conditioned on
    the sequence and the line's length it expects: so its position is known on commit."""
    signup = read_sign_up(payload)
    meetup, confirmed = hints.get(meetup_id)
    now = clock.now()
    stamp = clock.to_storage(now)
    from chalicelib.addresses import address_hash
    registration = Registration(
        meetup_id=meetup.id, sk="", id=secrets.token_urlsafe(12), status=RegistrationStatus.CONFIRMED, name=signup.name,
        email=signup.email, email_hash=address_hash(signup.email), role=signup.role,
        organisation=signup.organisation, municipality=signup.municipality, theme=signup.theme,
        language=signup.language, follow_up_opt_in=signup.follow_up_opt_in, created_at=stamp, updated_at=stamp,
        # The consent the form asked for: when, and to which version of the statement.
        consent_at=stamp, consent_version=get_settings().privacy_version,
        follow_up_consent_at=stamp if signup.follow_up_opt_in else None)
    registration.sk = REGISTRATION_PREFIX + registration.id
    expires = clock.from_storage(meetup.ends_at) + get_settings().retention
    guard = EmailGuard(meetup_id=guard_partition(meetup.id), sk=guard_key(signup.email), registration_id=registration.id,
                       expires_at=expires)

    if signup.table_id is not None:
        if signup.table_id not in {t.id for t in meetup.tables or []} and not confirmed:
            meetup, confirmed = hints.put(_read_meetup(meetup_id)), True  # tables added since the hint
        if signup.table_id not in {t.id for t in meetup.tables or []}:
            raise ValidationFailed({"table_id": messages.problem(
                "choice", "table_id", options=", ".join(["none"] + [t.id for t in meetup.tables or []]))})
        registration.table_id = signup.table_id  # a seat there now, or the wish while waiting
    if signup.is_bot:
        return _decoy(meetup, registration, now)
    for attempt in range(MAX_ATTEMPTS):
        refusal = _refusal(meetup, now)
        if refusal is not None:
            if confirmed:
                raise refusal
            meetup, confirmed = hints.put(_read_meetup(meetup_id)), True  # the hint may be stale: ask
            continue
        if _seat_free(meetup) and registration.table_id:
            outcome = _take_seat(meetup, registration, guard, now, stamp)
        else:
            batches = _seats if _seat_free(meetup) else _lines
            outcome = batches.join(meetup, _Join(registration, guard, expires, now))
            if isinstance(outcome, _Again):
                meetup, confirmed = outcome.meetup, outcome.confirmed
                continue
        if isinstance(outcome, Outcome):
            logger.info("registration created", extra={
                "meetup_id": meetup.id, "registration_id": registration.id, "status": registration.status,
                "position": outcome.position, "attempts": attempt + 1})
            _deliver(outcome.mail)
            return outcome
        if isinstance(outcome, dict):  # the address holds a place already
            return _existing(meetup, outcome)
        if outcome.failed("table"):
            raise Conflict(messages.TABLE_FULL, code="table_full")
        meetup, confirmed = hints.put(_fresh(meetup_id, outcome, attempt)), True
    raise ServiceUnavailable(messages.BUSY)


def _add_person(tx: Transaction, n: str, meetup: Meetup, registration: Registration, guard: EmailGuard,
                kind: str, template: str, position: int | None, now) -> OutboxMessage:
    """The items every new registration writes: its address guard, itself, its activity record
    and its email (parts named with the suffix `n`, so a batch tells whose condition failed)."""
    mail = _mail(template, meetup, registration, position)
    tx.put(f"guard{n}", guard, EmailGuard.sk.does_not_exist(), return_old=True)
    tx.put(f"registration{n}", registration, Registration.sk.does_not_exist())
    tx.put(f"activity{n}", _activity(kind, meetup, registration, now))
    tx.put(f"mail{n}", mail, OutboxMessage.id.does_not_exist())
    return mail


def _unchanged(meetup: Meetup, stamp: str):
    """The condition "the meetup is the copy this sign-up relied on, open and not started"."""
    return ((Meetup.updated_at == meetup.updated_at) & (Meetup.state == MeetupState.OPEN) & (Meetup.starts_at > stamp)
            & Meetup.awaiting_host.does_not_exist())


def _take_seat(meetup: Meetup, registration: Registration, guard: EmailGuard, now, stamp: str):
    """One attempt at a seat and a seat at the chosen theme table (a sign-up without a table
    takes a seat in a batch: `_commit_seats`). Returns the Outcome, the existing guard's item (a
    duplicate), or the TransactionCancelled to retry on."""
    tx = Transaction()
    registration.status, registration.waitlist_ticket = RegistrationStatus.CONFIRMED, None
    tx.update("meetup", meetup, [Meetup.confirmed.add(1)],
              _unchanged(meetup, stamp) & (Meetup.confirmed < Meetup.capacity) & (Meetup.waitlist_length == 0),
              return_old=True)
    if registration.table_id:
        theme_tables.seat(tx, meetup.id, registration.table_id)  # never more than the table holds
    mail = _add_person(tx, "", meetup, registration, guard, "signed_up", "registration_confirmed", None, now)
    try:
        tx.commit()
    except TransactionCancelled as cancelled:
        if cancelled.failed("guard"):
            return cancelled.old_item("guard") or {}
        if cancelled.failed("meetup"):  # a stale copy: retry on the item
            return cancelled
        if cancelled.failed("registration") or cancelled.failed("mail"):
            raise ServiceUnavailable(messages.TRY_AGAIN) from cancelled  # a random id collided
        return cancelled
    hints.count(meetup.id, registration.status)
    return Outcome(registration, created=True, mail=[mail], meetup=meetup)


# --- joining the line: group commit ----------------------------------------------------------------
# The meetup's sequence makes joins to one line take turns: each is conditioned on the ticket
# before it. So within a process, joins to one meetup are committed together: whichever request
# holds the meetup's line lock takes every join waiting for it (up to JOIN_BATCH) into one
# transaction, tickets n+1..n+k in the order they arrived, conditioned on the sequence being n.
# One condition, one meetup write and one round trip for k people; across processes (or Lambda
# containers, one request each) the condition still decides the order.

JOIN_BATCH = 16  # joins per transaction at most: 1 + 5 x 16 = 81 of DynamoDB's 100 parts
# Between processes (or Lambda containers), joins to one line race for the sequence, and every
# lost race is a whole transaction thrown away; the process that just won knows the next ticket
# first and may keep winning. So once a process lost a race, its joins to that meetup take turns
# for a while, first come first served: a turn is an atomic add on the meetup item (it cannot
# fail, and returns the item as stored); the joiner waits, reading the meetup now and then,
# until `line_serving` reaches its turn, and its join transaction moves `line_serving` on.
# A turn nobody moves on for TURN_STALLED (its holder died) is skipped by the next in turn.
CONTENDED_FOR = 5.0  # seconds after a lost race or a wait that the process's joins take turns
TURN_WAIT = 10.0  # seconds a batch waits for its turn at most (then 503 "busy, try again")
TURN_STALLED = 2.0  # seconds without progress after which the turn being served is skipped
TURN_POLL_MAX = 0.25  # seconds between two looks at the line at most
TURN_GUESS = 0.05  # seconds a turn takes, until this process measured its own
TURN_POLL_MIN = 0.02  # seconds between two looks at the line when next in turn


@dataclass
class _Join:
    """A sign-up waiting for its ticket; `result` is set by whoever commits it."""
    registration: Registration
    guard: EmailGuard
    expires: datetime
    signed_up: datetime  # the sign-up's time (`created_at`): its activity record's time too
    result: object = None  # an Outcome, the existing guard's item (dict), _Again or an exception


@dataclass
class _Again:
    """Not joined: the line's meetup now refuses or has a free seat; decide again on this copy."""
    meetup: Meetup
    confirmed: bool


class _Lines:
    """The sign-ups waiting for each meetup's lock of one kind of batch (the line, or its seats),
    in arrival order; the holder commits them with `commit(meetup, waiting)`. For the line also
    whether it is contended by other processes (per process)."""

    STRIPES = 64

    def __init__(self, commit, size: int):
        self._commit, self._size = commit, size
        self._lock = threading.Lock()
        self._line_locks = [threading.Lock() for _ in range(self.STRIPES)]
        self._pending: dict[str, list[_Join]] = {}
        self._contended: dict[str, float] = {}  # meetup id -> until (monotonic)
        self._turn_time = TURN_GUESS

    def took(self, seconds: float) -> None:
        """A join transaction's time: how long a turn takes, as a moving average."""
        with self._lock:
            self._turn_time = 0.8 * self._turn_time + 0.2 * seconds

    def turn_time(self) -> float:
        return self._turn_time

    def contend(self, meetup_id: str) -> None:
        with self._lock:
            self._contended[meetup_id] = time.monotonic() + CONTENDED_FOR

    def forget(self, meetup_id: str) -> None:
        with self._lock:
            self._contended.pop(meetup_id, None)

    def contended(self, meetup_id: str) -> bool:
        with self._lock:
            until = self._contended.get(meetup_id)
            if until is not None and until < time.monotonic():
                del self._contended[meetup_id]
                return False
            return until is not None

    def line_lock(self, meetup_id: str) -> threading.Lock:
        """Held by whoever commits a batch of this kind to the meetup in this process."""
        return self._line_locks[hash(meetup_id) % self.STRIPES]

    def join(self, meetup: Meetup, join: _Join):
        """Commit `join` (with whatever else waits for the line) and return its result."""
        with self._lock:
            self._pending.setdefault(meetup.id, []).append(join)
        with self.line_lock(meetup.id):
            while join.result is None:  # else a predecessor's batch committed it meanwhile
                try:
                    self._commit(meetup, lambda: self._next_batch(meetup.id))
                except Exception as exc:  # noqa: BLE001 (each waiting request raises it itself)
                    for member in self._next_batch(meetup.id):  # those the failed attempt was for
                        member.result = exc
                finally:
                    self._settle(meetup.id)
        if isinstance(join.result, Exception):
            raise join.result
        return join.result

    def _next_batch(self, meetup_id: str) -> list[_Join]:
        """The first few waiting (a batch's size at most), one per address (a transaction
        writes an item once)."""
        batch, addresses = [], set()
        with self._lock:
            for member in self._pending.get(meetup_id, []):
                if member.result is None and member.guard.sk not in addresses:
                    addresses.add(member.guard.sk)
                    batch.append(member)
                    if len(batch) == self._size:
                        break
        return batch

    def _settle(self, meetup_id: str) -> None:
        with self._lock:
            waiting = [member for member in self._pending.get(meetup_id, []) if member.result is None]
            if waiting:
                self._pending[meetup_id] = waiting
            else:
                self._pending.pop(meetup_id, None)



def _answer_refused(batch: list[_Join], cancelled: TransactionCancelled) -> None:
    """After a batch's transaction was cancelled: a member whose address holds a place already
    gets that place; one whose random id collided (its own items refused, the meetup not) gets
    "try again". The others stay unanswered, to be tried again."""
    for n, member in enumerate(batch):
        if cancelled.failed(f"guard{n}"):
            member.result = cancelled.old_item(f"guard{n}") or {}
        elif not cancelled.failed("meetup") and any(
                cancelled.failed(f"{part}{n}") for part in ("registration", "mail", "entry")):
            member.result = ServiceUnavailable(messages.TRY_AGAIN)


def _commit_joins(meetup: Meetup, waiting) -> None:
    """Join the waiting (`waiting()`: the next batch, as it is now) to the line in one
    transaction, retried on the meetup as the failed condition returned it; sets each member's
    result. A member whose address holds a place already, or whose random id collided, leaves
    the batch; the others are tried again, with whoever queued meanwhile: the more joins wait,
    the larger the batch. While the line is contended, it is only tried in this process's turn."""
    meetup, confirmed, turn = hints.newer(meetup), False, None
    deadline, losses = time.monotonic() + TURN_WAIT, 0
    try:
        while losses < MAX_ATTEMPTS and time.monotonic() < deadline:
            if turn is None and _lines.contended(meetup.id):
                turn, meetup = _wait_for_turn(meetup.id, deadline)
                confirmed = True
                if turn is None:
                    break  # waited too long
            batch, now = waiting(), clock.now()
            if not batch:
                return  # nobody left to join (each got an answer)
            refusal = _refusal(meetup, now)
            if refusal is not None or _seat_free(meetup):
                for member in batch:
                    member.result = _Again(meetup, confirmed)
                return
            limit = meetup.waitlist_max_length
            room = int(limit) - int(meetup.waitlist_length or 0) if limit else len(batch)
            trying = batch[:room]  # the rest find the line full on their next turn
            started = time.monotonic()
            cancelled = _join_line(meetup, trying, now, turn)
            if cancelled is None:
                _lines.took(time.monotonic() - started)
                turn = None  # the join moved the turns on
                return
            losses += 1
            _answer_refused(trying, cancelled)
            if all(member.result is not None for member in batch):
                return
            if turn is None and cancelled.failed("meetup"):
                _lines.contend(meetup.id)  # a race lost: take turns from now on
            meetup, confirmed = hints.put(_fresh(meetup.id, cancelled, losses)), True
            if turn is not None and int(meetup.line_serving or 0) != turn:
                turn = None  # skipped as stalled: take another turn
        for member in waiting():  # still unanswered: the retries or the wait ran out
            member.result = ServiceUnavailable(messages.BUSY)
    finally:
        if turn is not None:
            _pass_turn(meetup.id, turn)


def _wait_for_turn(meetup_id: str, deadline: float) -> tuple[int | None, Meetup]:
    """Take a turn at the line and wait for it: (the turn, the meetup as stored when it came),
    or (None, the meetup) at the deadline."""
    with storage_errors():
        item = Meetup(id=meetup_id)  # the atomic add refreshes it with the stored item
        item.update(actions=[Meetup.line_next.add(1),
                             Meetup.line_serving.set(Meetup.line_serving | 0)],
                    condition=Meetup.id.exists())
    turn = int(item.line_next) - 1
    serving, since = int(item.line_serving), time.monotonic()
    if serving < turn:
        _lines.contend(meetup_id)  # others were ahead: keep taking turns
    while serving < turn:
        if serving in (item.line_abandoned or ()):
            _pass_turn(meetup_id, serving)  # its joiner gave up waiting: no need to wait for it
        elif time.monotonic() > deadline:
            _abandon_turn(meetup_id, turn)
            return None, item
        # Those ahead each take about a turn's time; next in turn, look often.
        time.sleep(min(TURN_POLL_MAX, (turn - serving - 1) * _lines.turn_time() + TURN_POLL_MIN)
                   * random.uniform(0.7, 1.3))
        item = _read_meetup(meetup_id)
        now_serving = int(item.line_serving or 0)
        if now_serving != serving:
            serving, since = now_serving, time.monotonic()
        elif time.monotonic() - since > TURN_STALLED and serving not in (item.line_abandoned or ()):
            _pass_turn(meetup_id, serving)  # its holder is gone: move on
    hints.put(item)
    return turn, item


def _pass_turn(meetup_id: str, turn: int) -> None:
    """Move the turns on from `turn` without a join (its batch had nobody left to join, or its
    holder is gone or gave up); nothing if they moved on already."""
    with storage_errors():
        claim(Meetup(id=meetup_id), [Meetup.line_serving.set(turn + 1), Meetup.line_abandoned.delete({turn})],
              Meetup.line_serving == turn)


def _abandon_turn(meetup_id: str, turn: int) -> None:
    """Give up a turn not served yet, so that nobody waits TURN_STALLED for it (under overload,
    every turn given up would otherwise stall the line that long); if it is being served by
    now, pass it on."""
    with storage_errors():
        if not claim(Meetup(id=meetup_id), [Meetup.line_abandoned.add({turn})], Meetup.line_serving < turn):
            _pass_turn(meetup_id, turn)


def _join_line(meetup: Meetup, batch: list[_Join], now, turn: int | None = None) -> TransactionCancelled | None:
    """One transaction: tickets seq+1..seq+k to `batch`, conditioned on the sequence and the
    line's length this copy of the meetup shows, and on it being this process's `turn` (moved
    on by this transaction) or, without one, on nobody waiting for a turn. Sets each member's
    Outcome on commit."""
    stamp = clock.to_storage(now)
    seq, length = int(meetup.waitlist_seq or 0), int(meetup.waitlist_length or 0)
    expected_seq = (Meetup.waitlist_seq == seq) if seq else (
        Meetup.waitlist_seq.does_not_exist() | (Meetup.waitlist_seq == 0))
    tx = Transaction()
    # `updated_at` covers the limit (`waitlist_max_length`) that `_refusal` checked on this copy.
    actions = [Meetup.waitlist_length.add(len(batch)), Meetup.waitlist_seq.set(seq + len(batch))]
    if turn is None:
        turns = Meetup.line_next.does_not_exist() | (Meetup.line_next == Meetup.line_serving)
    else:
        turns = Meetup.line_serving == turn
        actions.append(Meetup.line_serving.set(turn + 1))
    tx.update("meetup", meetup, actions,
              _unchanged(meetup, stamp) & (Meetup.waitlist_enabled == True)  # noqa: E712 (a condition, not a test)
              & ((Meetup.confirmed >= Meetup.capacity) | (Meetup.waitlist_length > 0))
              & expected_seq & (Meetup.waitlist_length == length) & turns, return_old=True)
    mails = []
    for n, member in enumerate(batch):
        ticket, registration = seq + 1 + n, member.registration
        registration.status, registration.waitlist_ticket = RegistrationStatus.WAITLISTED, ticket
        tx.put(f"entry{n}", WaitlistEntry(meetup_id=line_partition(meetup.id), sk=ticket_key(WAITLIST_PREFIX, ticket),
                                          registration_id=registration.id, ticket=ticket, expires_at=member.expires),
               WaitlistEntry.sk.does_not_exist())
        mails.append(_add_person(tx, str(n), meetup, registration, member.guard, "waitlisted",
                                 "registration_waitlisted", length + 1 + n, member.signed_up))
    try:
        tx.commit()
    except TransactionCancelled as cancelled:
        return cancelled
    hints.count(meetup.id, RegistrationStatus.WAITLISTED, seq=seq + len(batch), length=length + len(batch))
    for n, (member, mail) in enumerate(zip(batch, mails)):
        member.result = Outcome(member.registration, created=True, position=length + 1 + n, mail=[mail], meetup=meetup)
    return None


# --- taking seats: group commit --------------------------------------------------------------------
# Seats need no order among those taking them (whoever's transaction lands first has one), only
# the ceiling: a batch adds its size to `confirmed`, conditioned on that many seats being free,
# so batches of different processes do not conflict below it. One meetup write and one round
# trip for k people, as for the line.

SEAT_BATCH = 16  # seats per transaction at most: 1 + 4 x 16 = 65 of DynamoDB's 100 parts


def _commit_seats(meetup: Meetup, waiting) -> None:
    """Seat the waiting (`waiting()`: the next batch, as it is now) in one transaction, retried
    on the meetup as the failed condition returned it; sets each member's result. Those the
    free seats do not cover wait for the next batch; once none is free (or the meetup refuses,
    or people wait in line) the rest decide again (_Again). A member whose address holds a place
    already, or whose random id collided, leaves the batch."""
    meetup, confirmed = hints.newer(meetup), False
    for attempt in range(1, MAX_ATTEMPTS + 1):
        batch, now = waiting(), clock.now()
        if not batch:
            return  # nobody left to seat (each got an answer)
        if _refusal(meetup, now) is not None or not _seat_free(meetup):
            for member in batch:
                member.result = _Again(meetup, confirmed)
            return
        trying = batch[:int(meetup.capacity) - int(meetup.confirmed)]
        cancelled = _seat_batch(meetup, trying, now)
        if cancelled is None:
            return
        _answer_refused(trying, cancelled)
        meetup, confirmed = hints.put(_fresh(meetup.id, cancelled, attempt)), True
    for member in waiting():  # still unanswered: the retries ran out
        member.result = ServiceUnavailable(messages.BUSY)


def _seat_batch(meetup: Meetup, batch: list[_Join], now) -> TransactionCancelled | None:
    """One transaction: a seat each for `batch`, conditioned on as many being free on the
    meetup this copy shows (same version, open, nobody in line). Sets each member's Outcome on
    commit."""
    tx = Transaction()
    # `updated_at` pins the capacity this copy shows: the ceiling is that capacity less the batch.
    tx.update("meetup", meetup, [Meetup.confirmed.add(len(batch))],
              _unchanged(meetup, clock.to_storage(now)) & (Meetup.confirmed <= int(meetup.capacity) - len(batch))
              & (Meetup.waitlist_length == 0), return_old=True)
    mails = []
    for n, member in enumerate(batch):
        member.registration.status, member.registration.waitlist_ticket = RegistrationStatus.CONFIRMED, None
        mails.append(_add_person(tx, str(n), meetup, member.registration, member.guard, "signed_up",
                                 "registration_confirmed", None, member.signed_up))
    try:
        tx.commit()
    except TransactionCancelled as cancelled:
        return cancelled
    hints.count(meetup.id, RegistrationStatus.CONFIRMED, seats=len(batch))
    for member, mail in zip(batch, mails):
        member.result = Outcome(member.registration, created=True, mail=[mail], meetup=meetup)
    return None


_lines = _Lines(_commit_joins, JOIN_BATCH)
_seats = _Lines(_commit_seats, SEAT_BATCH)


def send_link(registration: Registration, meetup: Meetup, now: datetime | None = None) -> bool:
    """Mail a registration's manage link to its address, at most once per RESEND_INTERVAL: the
    time is claimed with a conditional write in the same transaction as the queued email."""
    from chalicelib import outbox
    now = now or clock.now()
    stamp = clock.to_storage(now)
    if registration.status not in ACTIVE or registration.erased_at or not registration.email:
        return False
    mail = _mail("registration_link", meetup, registration)
    tx = Transaction()
    tx.update("registration", registration, [Registration.link_sent_at.set(stamp)],
              Registration.status.is_in(*ACTIVE) & Registration.erased_at.does_not_exist()
              & (Registration.link_sent_at.does_not_exist()
                 | (Registration.link_sent_at <= clock.to_storage(now - RESEND_INTERVAL))))
    tx.put("mail", mail, OutboxMessage.id.does_not_exist())
    try:
        tx.commit()
    except TransactionCancelled:
        logger.info("manage link not mailed again: sent recently", extra={"registration_id": registration.id})
        return False
    logger.info("manage link mailed again", extra={"registration_id": registration.id})
    outbox.dispatch([mail])
    return True


def _existing(meetup: Meetup, raw_guard: dict | None) -> Outcome:
    """The same address already holds a place here: change nothing, and mail that address its
    manage link again (at most once per RESEND_INTERVAL). The caller answers with nothing
    of the existing registration: an address tells a stranger no more than that it is registered."""
    registration_id = (raw_guard or {}).get("registration_id", {}).get("S")
    if not registration_id:
        raise ServiceUnavailable(messages.TRY_AGAIN)
    registration = _load_registration(meetup.id, registration_id)
    send_link(registration, meetup)
    return Outcome(registration, created=False, meetup=meetup)


# --- cancellation and promotion ------------------------------------------------------------------

PROMOTIONS_PER_TRANSACTION = 6  # meetup + 4 items a promotion: within 25 transaction items
FILL_TRANSACTIONS_PER_CALL = 10  # fill_free_seats promotes at most 60 people a call


def _load_many(meetup_id: str, registration_ids: list[str]) -> list[Registration]:
    found = {}
    with storage_errors():
        for registration in Registration.batch_get([(meetup_id, REGISTRATION_PREFIX + rid) for rid in registration_ids],
                                                   consistent_read=True):
            found[registration.id] = registration
    return [found[rid] for rid in registration_ids if rid in found]


def _heads(meetup_id: str, count: int) -> list[tuple[WaitlistEntry, Registration]]:
    """The first `count` in line with their registrations (one Query, one BatchGetItem)."""
    entries = line.entries(meetup_id, count)
    people = {r.id: r for r in _load_many(meetup_id, [e.registration_id for e in entries])}
    return [(entry, people[entry.registration_id]) for entry in entries if entry.registration_id in people]


def _promote(tx: Transaction, meetup: Meetup, heads: list[tuple[WaitlistEntry, Registration]],
             now, stamp: str, passing: str | None = None) -> list[OutboxMessage]:
    """Confirm the first in line: each leaves the line only if their entry is still there (the
    entry of the lowest ticket: nobody can be ahead of it, tickets only grow), and each gets an
    email. The caller updates the meetup's counters (`waitlist_promoted` among them)."""
    mails = []
    # The table each asked for if it has room (seat taken in this transaction), else no preference.
    # `passing`: the table of the person whose cancellation frees this seat; a seat there passes
    # straight on (the counter stays: one transaction may not touch an item twice).
    free = ({t: int(s.capacity) - int(s.seated) for t, s in theme_tables.seats(meetup.id).items()}
            if meetup.tables and any(person.table_id for _, person in heads) else {})
    for entry, person in heads:
        tx.delete(f"entry {person.id}", entry, WaitlistEntry.registration_id == person.id)
        table_action = []
        if passing and person.table_id == passing:
            passing = None
        elif person.table_id and person.table_id != passing and free.get(person.table_id, 0) > 0:
            free[person.table_id] -= 1
            theme_tables.seat(tx, meetup.id, person.table_id, name=f"table {person.id}")
        elif person.table_id:
            table_action, person.table_id = [Registration.table_id.remove()], None
        tx.update(f"promote {person.id}", person,
                  [Registration.status.set(RegistrationStatus.CONFIRMED), Registration.promoted_at.set(stamp),
                   Registration.updated_at.set(stamp), *table_action], Registration.status == RegistrationStatus.WAITLISTED)
        tx.put(f"promoted activity {person.id}", _activity("promoted", meetup, person, now))
        promoted = Registration.from_raw_data(person.serialize())
        promoted.status = RegistrationStatus.CONFIRMED
        mail = _mail("registration_promoted", meetup, promoted)
        tx.put(f"promoted mail {person.id}", mail, OutboxMessage.id.does_not_exist())
        mails.append(mail)
    return mails


def cancel(token: str) -> Outcome:
    """Cancel through the manage link; again on a cancelled one answers the same.
    A freed seat goes to the first in line in the same transaction."""
    return cancel_registration(by_token(token))


def cancel_registration(registration: Registration, *, notify: bool = True) -> Outcome:
    """Cancel; `notify=False` (an erasure follows) sends the person no cancellation email.
    Cancelling sets when its personal data goes (`erase_after`, the `by_erasure` index).

    A waiting person leaves the line: their entry goes, a departure marker `D#<ticket>` comes
    (positions behind them count it). A confirmed person's seat goes to the first in line in the
    same transaction; it is only freed on the condition that nobody waits."""
    meetup_id, registration_id = registration.meetup_id, registration.id
    if registration.status == RegistrationStatus.CANCELLED:
        return Outcome(registration, created=False)
    meetup = _read_meetup(meetup_id)
    for attempt in range(MAX_ATTEMPTS):
        if registration.status == RegistrationStatus.CANCELLED:
            return Outcome(registration, created=False)
        now = clock.now()
        stamp = clock.to_storage(now)
        was = registration.status
        expires = clock.from_storage(meetup.ends_at) + get_settings().retention
        head = (_heads(meetup_id, 1) if was == RegistrationStatus.CONFIRMED and _is_open(meetup, now) and meetup.waitlist_length
                else [])
        tx = Transaction()
        mails = []
        if was == RegistrationStatus.WAITLISTED:
            ticket = int(registration.waitlist_ticket or 0)
            if not ticket:
                raise ServiceUnavailable(messages.TRY_AGAIN)  # a line not yet migrated
            tx.delete("entry", WaitlistEntry(meetup_id=line_partition(meetup_id), sk=ticket_key(WAITLIST_PREFIX, ticket)),
                      WaitlistEntry.registration_id == registration.id)
            tx.put("departure", Departure(meetup_id=line_partition(meetup_id), sk=ticket_key(DEPARTURE_PREFIX, ticket),
                                          expires_at=expires))
            tx.update("meetup", meetup, [Meetup.waitlist_length.add(-1)], Meetup.waitlist_length > 0,
                      return_old=True)
        elif head:  # the seat passes on: confirmed stays, the line shortens from its front
            tx.update("meetup", meetup, [Meetup.waitlist_length.add(-1), Meetup.waitlist_promoted.add(1)],
                      Meetup.waitlist_length > 0, return_old=True)
            passing = registration.table_id if head[0][1].table_id == registration.table_id else None
            mails += _promote(tx, meetup, head, now, stamp, passing=passing)
        else:  # a seat frees up: only while nobody waits for it (else retry, and promote)
            tx.update("meetup", meetup, [Meetup.confirmed.add(-1)],
                      (Meetup.waitlist_length == 0) if _is_open(meetup, now) else None, return_old=True)
        unchanged = (Registration.status == was) & Registration.erased_at.does_not_exist()
        if was == "confirmed":  # the table seat goes back too (the table as read, not changed since)
            if registration.table_id:
                if not (head and head[0][1].table_id == registration.table_id):  # else it passes on
                    theme_tables.unseat(tx, meetup.id, registration.table_id)
                unchanged &= Registration.table_id == registration.table_id
            else:
                unchanged &= Registration.table_id.does_not_exist()
        tx.update("registration", registration,
                  [Registration.status.set(RegistrationStatus.CANCELLED), Registration.cancelled_at.set(stamp),
                   Registration.updated_at.set(stamp), Registration.erase_due.set(ERASURE_DUE),
                   Registration.erase_after.set(clock.to_storage(now + get_settings().retention))], unchanged)
        tx.delete("guard", EmailGuard(meetup_id=guard_partition(meetup.id), sk=guard_key(registration.email)),
                  EmailGuard.registration_id == registration.id)
        tx.put("activity", _activity("cancelled", meetup, registration, now, was=was))
        if notify:
            mails.insert(0, _mail("registration_cancelled", meetup, registration))
            tx.put("mail", mails[0], OutboxMessage.id.does_not_exist())
        try:
            tx.commit()
        except TransactionCancelled as cancelled:
            meetup = _fresh(meetup_id, cancelled, attempt)
            registration = _load_registration(meetup_id, registration_id)
            continue
        registration.status = RegistrationStatus.CANCELLED
        hints.forget(meetup_id)
        logger.info("registration cancelled", extra={
            "meetup_id": meetup.id, "registration_id": registration.id, "was": was,
            "promoted": [person.id for _, person in head]})
        _deliver(mails)
        return Outcome(registration, created=False, mail=mails, meetup=meetup)
    raise ServiceUnavailable(messages.BUSY)


def fill_free_seats(meetup_id: str) -> list[OutboxMessage]:
    """Promote the first in line into free seats, while seats are free and people wait (and the
    meetup is open), at most FILL_TRANSACTIONS_PER_CALL transactions a call: call again until it
    returns nothing. Each transaction is conditioned on the seats and capacity it read and on
    each promoted person's entry still being there. Returns the promotion emails, committed to
    the outbox; the caller hands them to delivery (`outbox.dispatch`)."""
    mails: list[OutboxMessage] = []
    meetup = _read_meetup(meetup_id)
    transactions = 0
    for attempt in range(MAX_ATTEMPTS):
        now = clock.now()
        stamp = clock.to_storage(now)
        free = int(meetup.capacity) - int(meetup.confirmed)
        waiting = int(meetup.waitlist_length or 0)
        if free <= 0 or waiting <= 0 or not _is_open(meetup, now) or transactions >= FILL_TRANSACTIONS_PER_CALL:
            break
        heads = _heads(meetup_id, min(free, waiting, PROMOTIONS_PER_TRANSACTION))
        if not heads:
            break
        count = len(heads)
        tx = Transaction()
        tx.update("meetup", meetup, [Meetup.confirmed.add(count), Meetup.waitlist_length.add(-count),
                                     Meetup.waitlist_promoted.add(count)],
                  (Meetup.confirmed == meetup.confirmed) & (Meetup.capacity == meetup.capacity)
                  & (Meetup.state == MeetupState.OPEN) & (Meetup.waitlist_length >= count), return_old=True)
        batch = _promote(tx, meetup, heads, now, stamp)
        try:
            tx.commit()
        except TransactionCancelled as cancelled:
            meetup = _fresh(meetup_id, cancelled, attempt)
            continue
        mails += batch
        transactions += 1
        meetup = _read_meetup(meetup_id)
    if mails:
        hints.forget(meetup_id)
        logger.info("free seats filled", extra={"meetup_id": meetup_id, "promoted": len(mails)})
    return mails


def change_capacity(meetup: Meetup, capacity: int) -> Meetup:
    """Set a meetup's capacity (never below `confirmed`: the condition says so). New seats go to
    those in line through `fill_free_seats`, which the caller runs as a background job: a rise of
    1,000 seats must not hold up the admin's request."""
    for attempt in range(MAX_ATTEMPTS):
        if capacity < meetup.confirmed:
            raise Conflict(Message(f"Het aantal plekken ({capacity}) is lager dan de {int(meetup.confirmed)} bevestigde plekken.",
                                   f"Capacity {capacity} is below the {int(meetup.confirmed)} confirmed places."),
                           code="capacity_below_confirmed")
        stamp = clock.to_storage(clock.now())
        tx = Transaction()
        tx.update("meetup", meetup, [Meetup.capacity.set(capacity), Meetup.updated_at.set(stamp)],
                  Meetup.confirmed <= capacity, return_old=True)
        try:
            tx.commit()
        except TransactionCancelled as cancelled:
            meetup = _fresh(meetup.id, cancelled, attempt)
            continue
        break
    else:
        raise ServiceUnavailable(messages.BUSY)
    hints.forget(meetup.id)
    meetup = _read_meetup(meetup.id)
    logger.info("capacity changed", extra={"meetup_id": meetup.id, "capacity": capacity})
    return meetup


def seats_to_fill(meetup: Meetup) -> int:
    """How many of those in line free seats could take now (0 when closed)."""
    if not _is_open(meetup, clock.now()):
        return 0
    return max(0, min(int(meetup.capacity) - int(meetup.confirmed), int(meetup.waitlist_length or 0)))


def cancellation_notice(meetup: Meetup, person: Registration) -> OutboxMessage:
    """The "this meetup will not take place" email to one person (a confirmed place's takes its
    calendar entry back): one id per (meetup, person), so that queueing it again (a repeated
    cancellation, a resumed job) sends nobody a second one."""
    message = _mail("meetup_cancelled", meetup, person)
    message.id = f"meetup-cancelled-{meetup.id}-{person.id}"
    return message


def change_notice(meetup: Meetup, person: Registration) -> OutboxMessage:
    """The update to a confirmed person after a change of time, place, mode or join details:
    one per person per change (`calendar_sequence`), with the invitation's raised SEQUENCE, so
    their calendars follow."""
    message = _mail("meetup_changed", meetup, person)
    message.id = f"meetup-changed-{meetup.id}-{int(meetup.calendar_sequence or 0)}-{person.id}"
    return message


CSV_COLUMNS = ("id", "status", "waitlist_position", "name", "email", "role", "organisation", "municipality",
               "theme", "language", "follow_up_opt_in", "created_at", "joined_at")


CSV_SEPARATORS = (";", ",")


def to_csv(rows: list[dict], separator: str | None = None, *, header: bool = True) -> str:
    """The registrations as a spreadsheet opens them: a UTF-8 BOM (so Excel reads UTF-8), `;`
    between cells (what Dutch Excel expects; `separator=","` for others) and each role as its
    label in the row's language. `header=False` for the pages after the first (no BOM, no header
    row), so that the pages of an export put one after the other are one CSV file."""
    import csv
    import io

    from chalicelib.rendering import TEXTS
    separator = ";" if separator is None else separator
    if separator not in CSV_SEPARATORS:
        from chalicelib.errors import ValidationFailed
        raise ValidationFailed({"separator": Message("Kies ; of , als scheidingsteken.", "Choose ; or , as the separator.")})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", delimiter=separator)
    if header:
        buffer.write("\ufeff")
        writer.writeheader()
    for row in rows:
        texts = TEXTS["en" if row.get("language") == "en" else "nl"]
        row = dict(row, role=texts.get(f"role_{row.get('role')}", row.get("role")))
        # Cells starting with = + - @ are read as formulas by spreadsheets: defuse them.
        writer.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@" else v) for k, v in row.items()})
    return buffer.getvalue()
