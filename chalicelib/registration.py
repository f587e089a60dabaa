"""Sign-up, waitlist, cancellation and promotion: the roster rules of a meetup.

Rules, and how the database enforces them:
- Never more confirmed than `capacity`: the meetup item's counter is updated in the same
  transaction as the registration, conditioned on `confirmed < capacity`.
- One active registration per (meetup, email): an EmailGuard item created in that transaction
  with `attribute_not_exists`, deleted when the registration is cancelled.
- Strict first-come waitlist order: the line is a list on one item per meetup, appended to
  inside the sign-up transaction, so its order is the order DynamoDB committed the sign-ups
  in: the earlier accepted is never behind a later one, and joiners never retry on order.
- Nobody waits while a seat is free: a new sign-up only takes a seat when the line is empty,
  and cancelling a confirmed place promotes the first in line in the same transaction
  (conditioned on that person still being first); so does a capacity rise.
Every change writes its activity record (read by the digest) and its outbox email in the
same transaction: the email exists if and only if the change happened.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from pynamodb.exceptions import DoesNotExist

from chalicelib import catalogue, clock, messages, tokens
from chalicelib.config import get_settings
from chalicelib.errors import Conflict, NotFound, ServiceUnavailable
from chalicelib.messages import Message
from chalicelib.models import (EMAIL_GUARD_PREFIX, ERASURE_DUE, REGISTRATION_PREFIX, WAITLIST_KEY, Activity, EmailGuard,
                               Meetup, OutboxMessage, Registration, Transaction, TransactionCancelled, Waitlist,
                               retry_pause, storage_errors)
from chalicelib.observability import logger
from chalicelib.validation import Fields

ROLES = ("teacher", "school_leader", "school_board", "local_politician", "education_support",
         "youth_work", "parent", "other")
LANGUAGES = ("nl", "en")
MANAGE_PURPOSE = "registration"
MAX_ATTEMPTS = 60
POSITION_WINDOW = 20  # elements after the expected place read to find a new joiner
PROMOTIONS_PER_TRANSACTION = 7  # meetup + line + 3 items a promotion: within 25 transaction items


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
    if not f.boolean("consent") and "consent" not in f.errors:
        f.fail("consent", "consent")
    f.check()  # a bot's bad body is refused like anyone's: the honeypot must not be told apart
    return SignUp(name=name, email=email, role=role, organisation=organisation, municipality=municipality,
                  theme=theme, language=language, follow_up_opt_in=follow_up, is_bot=is_bot)


def guard_key(email: str) -> str:
    from chalicelib.privacy import address_hash
    return EMAIL_GUARD_PREFIX + address_hash(email)


def link_expiry(meetup_ends_at: str):
    """A registration's links work until its personal data is erased: the retention period after
    the meetup ends (an earlier erasure ends them at once: the registration is gone)."""
    return max(clock.from_storage(meetup_ends_at), clock.now()) + get_settings().retention


def manage_token(registration: Registration, meetup_ends_at: str) -> str:
    return tokens.sign(MANAGE_PURPOSE, registration.meetup_id, registration.id,
                       expires=link_expiry(meetup_ends_at))


def manage_url(registration: Registration, meetup_ends_at: str) -> str:
    return f"{get_settings().public_base_url}/registrations/{manage_token(registration, meetup_ends_at)}"


def view(registration: Registration, position: int | None = None, *, full: bool = True) -> dict:
    body = {"id": registration.id, "meetup_id": registration.meetup_id, "status": registration.status,
            "waitlist_position": position if registration.status == "waitlisted" else None}
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
        "erased": registration.erased_at is not None}


def _load_registration(meetup_id: str, registration_id: str) -> Registration:
    with storage_errors():
        try:
            return Registration.get(meetup_id, REGISTRATION_PREFIX + registration_id, consistent_read=True)
        except DoesNotExist:
            raise NotFound(messages.LINK_INVALID) from None


def read_line(meetup_id: str) -> list[str]:
    """The registration ids in line, first in line first (a consistent read)."""
    with storage_errors():
        try:
            return list(Waitlist.get(meetup_id, WAITLIST_KEY, consistent_read=True).line or [])
        except DoesNotExist:
            return []


def waitlist_position(registration: Registration, line: list[str] | None = None, *,
                      near: int | None = None) -> int | None:
    """1 for the next in line. With `near` (the position the caller expects), only a window of
    the line around it is read: a long line costs little to look up right after a join."""
    if registration.status != "waitlisted":
        return None
    if line is None and near is not None:
        # Others joining meanwhile put one further back than expected; leaving, rarely nearer.
        first = max(0, near - 1 - POSITION_WINDOW // 4)
        window = _read_line_window(registration.meetup_id, first, near - 1 + POSITION_WINDOW)
        if registration.id in window:
            return first + window.index(registration.id) + 1
    line = read_line(registration.meetup_id) if line is None else line
    return line.index(registration.id) + 1 if registration.id in line else None


def _read_line_window(meetup_id: str, first: int, last: int) -> list[str]:
    """line[first..last]: DynamoDB returns the projected elements that exist, in order."""
    with storage_errors():
        try:
            found = Waitlist.get(meetup_id, WAITLIST_KEY, consistent_read=True,
                                 attributes_to_get=[f"line[{i}]" for i in range(first, last + 1)])
        except DoesNotExist:
            return []
    return list(found.line or [])


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
LIST_PHASES = ("confirmed", "waitlisted", "cancelled")
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
        positions = {rid: n for n, rid in enumerate(read_line(meetup_id), start=1)} \
            if any(r.status == "waitlisted" for r in found) else {}
    next_cursor = _cursor(meetup_id, phase, after or "") if phase < len(LIST_PHASES) else None
    return catalogue.viewable(lambda r: admin_view(r, positions.get(r.id)), found), next_cursor


# --- records written alongside every change -------------------------------------------------------

def _activity(kind: str, meetup: Meetup, registration: Registration, now, **details) -> Activity:
    return Activity(
        day=now.strftime("%Y-%m-%d"), sk=f"{clock.stamp(now)}#{secrets.token_hex(4)}", type=kind,
        meetup_id=meetup.id, province=meetup.province,
        details={"registration_id": registration.id, "name": registration.name, "role": registration.role,
                 "organisation": registration.organisation, **details},
        expires_at=now + get_settings().retention)


def _mail(template: str, meetup: Meetup, registration: Registration, position: int | None = None) -> OutboxMessage:
    from chalicelib import outbox
    base = get_settings().public_base_url
    context = {
        "name": registration.name, "registration_id": registration.id, "status": registration.status,
        "waitlist_position": position, "manage_url": manage_url(registration, meetup.ends_at),
        "meetup": {"id": meetup.id, "title": meetup.title, "starts_at": meetup.starts_at,
                   "ends_at": meetup.ends_at, "mode": meetup.mode, "city": meetup.city, "venue": meetup.venue,
                   "join_url": meetup.join_url, "url": f"{base}/meetups/{meetup.id}", "tour_url": f"{base}/meetups"},
    }
    return outbox.message(registration.email, template, registration.language or "nl", context)


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
    return meetup.state == "open" and clock.from_storage(meetup.starts_at) > now


# --- sign-up -----------------------------------------------------------------------------------

class _MeetupHints:
    """Recently seen meetups, per process: they let a sign-up go straight to its transaction.
    Only a hint: the transaction re-checks every fact it relies on (seats, waitlist, state, start,
    and `updated_at`, so that emails never carry stale details), and a refused one returns the
    current item, which refreshes the hint without another read."""

    TTL_SECONDS = 30

    def __init__(self):
        self._seen: dict[str, tuple[float, Meetup]] = {}
        self._lock = threading.Lock()

    def get(self, meetup_id: str) -> Meetup:
        seen = self._seen.get(meetup_id)
        if seen and time.monotonic() - seen[0] < self.TTL_SECONDS:
            with self._lock:
                return Meetup.from_raw_data(seen[1].serialize())  # a copy: threads share the hint
        return self.put(catalogue.load(meetup_id, consistent=True))

    def put(self, meetup: Meetup) -> Meetup:
        if len(self._seen) > 500:
            self._seen.clear()
        self._seen[meetup.id] = (time.monotonic(), Meetup.from_raw_data(meetup.serialize()))
        return meetup

    def forget(self, meetup_id: str) -> None:
        self._seen.pop(meetup_id, None)

    def count(self, meetup_id: str, status: str) -> None:
        """A sign-up committed: count it on the shared hint (never overwrite it with a copy
        taken earlier, which would lose what other requests counted meanwhile)."""
        with self._lock:
            seen = self._seen.get(meetup_id)
            if seen is None:
                return
            if status == "confirmed":
                seen[1].confirmed += 1
            else:
                seen[1].waitlist_length += 1


hints = _MeetupHints()


def _decoy(meetup: Meetup, registration: Registration, now) -> Outcome:
    """The honeypot's answer: what a real sign-up would answer, checked the same way (closed,
    full), with nothing stored or sent. Its manage link is signed like a real one and leads
    nowhere."""
    logger.info("honeypot filled; nothing stored", extra={"meetup_id": meetup.id})
    if not _is_open(meetup, now):
        raise Conflict(messages.CLOSED, code="closed")
    if meetup.confirmed < meetup.capacity and meetup.waitlist_length == 0:
        return Outcome(registration, created=True, meetup=meetup)
    if not meetup.waitlist_enabled:
        raise Conflict(messages.FULL, code="full")
    registration.status = "waitlisted"
    return Outcome(registration, created=True, position=int(meetup.waitlist_length) + 1, meetup=meetup)


def sign_up(meetup_id: str, payload: dict) -> Outcome:
    """Register someone: a confirmed seat, else a waitlist place, else 409.

    Usually one transaction for a seat, and one more read (the count of those ahead) for a
    waitlist place; a cold process first reads the meetup."""
    signup = read_sign_up(payload)
    meetup = hints.get(meetup_id)
    now = clock.now()
    stamp = clock.to_storage(now)
    from chalicelib.privacy import address_hash
    registration = Registration(
        meetup_id=meetup.id, sk="", id=secrets.token_urlsafe(12), status="confirmed", name=signup.name,
        email=signup.email, email_hash=address_hash(signup.email), role=signup.role,
        organisation=signup.organisation, municipality=signup.municipality, theme=signup.theme,
        language=signup.language, follow_up_opt_in=signup.follow_up_opt_in, created_at=stamp, updated_at=stamp,
        # The consent the form asked for: when, and to which version of the statement.
        consent_at=stamp, consent_version=get_settings().privacy_version,
        follow_up_consent_at=stamp if signup.follow_up_opt_in else None)
    registration.sk = REGISTRATION_PREFIX + registration.id
    guard = EmailGuard(meetup_id=meetup.id, sk=guard_key(signup.email), registration_id=registration.id,
                       expires_at=clock.from_storage(meetup.ends_at) + get_settings().retention)

    if signup.is_bot:
        return _decoy(meetup, registration, now)
    for attempt in range(MAX_ATTEMPTS):
        if not _is_open(meetup, now):
            raise Conflict(messages.CLOSED, code="closed")
        unchanged = (Meetup.updated_at == meetup.updated_at) & (Meetup.state == "open") & (Meetup.starts_at > stamp)
        tx = Transaction()
        if meetup.confirmed < meetup.capacity and meetup.waitlist_length == 0:
            registration.status = "confirmed"
            tx.update("meetup", meetup, [Meetup.confirmed.add(1)],
                      unchanged & (Meetup.confirmed < Meetup.capacity) & (Meetup.waitlist_length == 0),
                      return_old=True)
            activity, template = "signed_up", "registration_confirmed"
        elif meetup.waitlist_enabled:
            registration.status = "waitlisted"
            tx.update("meetup", meetup, [Meetup.waitlist_length.add(1)],
                      unchanged & (Meetup.waitlist_enabled == True)  # noqa: E712 (a condition, not a test)
                      & ((Meetup.confirmed >= Meetup.capacity) | (Meetup.waitlist_length > 0)), return_old=True)
            tx.update("line", Waitlist(meetup_id=meetup.id), [Waitlist.line.set((Waitlist.line | []).append([registration.id]))])
            activity, template = "waitlisted", "registration_waitlisted"
        else:
            raise Conflict(messages.FULL, code="full")
        position_hint = meetup.waitlist_length + 1 if registration.status == "waitlisted" else None
        mail = _mail(template, meetup, registration, position_hint)
        tx.put("guard", guard, EmailGuard.sk.does_not_exist(), return_old=True)
        tx.put("registration", registration, Registration.sk.does_not_exist())
        tx.put("activity", _activity(activity, meetup, registration, now))
        tx.put("mail", mail, OutboxMessage.id.does_not_exist())
        try:
            tx.commit()
        except TransactionCancelled as cancelled:
            if cancelled.failed("guard"):
                return _existing(meetup, cancelled.old_item("guard"))
            if cancelled.failed("registration") or cancelled.failed("mail"):
                raise ServiceUnavailable(messages.TRY_AGAIN) from cancelled  # a random id collided
            meetup = hints.put(_fresh(meetup_id, cancelled, attempt))
            continue
        _note_committed(meetup, registration)
        position = waitlist_position(registration, near=position_hint)
        # The stored mail carries the position the hint suggested (a later retry sends that);
        # the one sent now carries the position in the committed line.
        mail.context = dict(mail.context, waitlist_position=position)
        logger.info("registration created", extra={"meetup_id": meetup.id, "registration_id": registration.id,
                                                     "status": registration.status, "position": position,
                                                     "attempts": attempt + 1})
        _deliver([mail])
        return Outcome(registration, created=True, position=position, mail=[mail], meetup=meetup)
    raise ServiceUnavailable(messages.BUSY)


def _note_committed(meetup: Meetup, registration: Registration) -> None:
    """Keep the hint close to the truth, so the next sign-up picks the right path first time."""
    hints.count(meetup.id, registration.status)


def _existing(meetup: Meetup, raw_guard: dict | None) -> Outcome:
    """The same address already holds a place here: change nothing, and mail that address its
    manage link again (at most once per privacy.RESEND_INTERVAL). The caller answers with nothing
    of the existing registration: an address tells a stranger no more than that it is registered."""
    from chalicelib import privacy
    registration_id = (raw_guard or {}).get("registration_id", {}).get("S")
    if not registration_id:
        raise ServiceUnavailable(messages.TRY_AGAIN)
    registration = _load_registration(meetup.id, registration_id)
    privacy.send_link(registration, meetup)
    return Outcome(registration, created=False, meetup=meetup)


# --- cancellation and promotion ------------------------------------------------------------------

def _load_many(meetup_id: str, registration_ids: list[str]) -> list[Registration]:
    found = {}
    with storage_errors():
        for registration in Registration.batch_get([(meetup_id, REGISTRATION_PREFIX + rid) for rid in registration_ids],
                                                   consistent_read=True):
            found[registration.id] = registration
    return [found[rid] for rid in registration_ids if rid in found]


def _promote(tx: Transaction, meetup: Meetup, line_ids: list[str], waiting: list[Registration],
             now, stamp: str) -> list[OutboxMessage]:
    """Confirm the first `len(waiting)` in line: they leave the front of the line, each only if
    the line still starts with them (so nobody is skipped), and each gets an email."""
    positions = range(len(waiting))
    condition = None
    for index in positions:
        check = Waitlist.line[index] == line_ids[index]
        condition = check if condition is None else condition & check
    tx.update("line", Waitlist(meetup_id=meetup.id), [Waitlist.line[index].remove() for index in positions], condition)
    mails = []
    for person in waiting:
        tx.update(f"promote {person.id}", person,
                  [Registration.status.set("confirmed"), Registration.promoted_at.set(stamp),
                   Registration.updated_at.set(stamp)], Registration.status == "waitlisted")
        tx.put(f"promoted activity {person.id}", _activity("promoted", meetup, person, now))
        promoted = Registration.from_raw_data(person.serialize())
        promoted.status = "confirmed"
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
    Cancelling sets when its personal data goes (`erase_after`, the `by_erasure` index)."""
    meetup_id, registration_id = registration.meetup_id, registration.id
    if registration.status == "cancelled":
        return Outcome(registration, created=False)
    meetup = catalogue.load(meetup_id, consistent=True)
    for attempt in range(MAX_ATTEMPTS):
        if registration.status == "cancelled":
            return Outcome(registration, created=False)
        now = clock.now()
        stamp = clock.to_storage(now)
        was = registration.status
        line = read_line(meetup_id) if was == "waitlisted" or meetup.waitlist_length else []
        head = _load_many(meetup_id, line[:1]) if was == "confirmed" and _is_open(meetup, now) else []
        tx = Transaction()
        mails = []
        if was == "waitlisted":
            if registration.id not in line:
                raise ServiceUnavailable(messages.TRY_AGAIN)
            index = line.index(registration.id)
            tx.update("line", Waitlist(meetup_id=meetup.id), [Waitlist.line[index].remove()],
                      Waitlist.line[index] == registration.id)
            tx.update("meetup", meetup, [Meetup.waitlist_length.add(-1)], return_old=True)
        elif head:  # the seat passes on: confirmed stays, the line shortens
            tx.update("meetup", meetup, [Meetup.waitlist_length.add(-1)], Meetup.waitlist_length > 0,
                      return_old=True)
            mails += _promote(tx, meetup, line, head, now, stamp)
        else:  # a seat frees up: only while nobody waits for it (else retry, and promote)
            tx.update("meetup", meetup, [Meetup.confirmed.add(-1)],
                      (Meetup.waitlist_length == 0) if _is_open(meetup, now) else None, return_old=True)
        tx.update("registration", registration,
                  [Registration.status.set("cancelled"), Registration.cancelled_at.set(stamp),
                   Registration.updated_at.set(stamp), Registration.erase_due.set(ERASURE_DUE),
                   Registration.erase_after.set(clock.to_storage(now + get_settings().retention))],
                  (Registration.status == was) & Registration.erased_at.does_not_exist())
        tx.delete("guard", EmailGuard(meetup_id=meetup.id, sk=guard_key(registration.email)),
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
        registration.status = "cancelled"
        hints.forget(meetup_id)
        logger.info("registration cancelled", extra={
            "meetup_id": meetup.id, "registration_id": registration.id, "was": was,
            "promoted": [w.id for w in head]})
        _deliver(mails)
        return Outcome(registration, created=False, mail=mails, meetup=meetup)
    raise ServiceUnavailable(messages.BUSY)


def change_capacity(meetup: Meetup, capacity: int) -> Meetup:
    """Set a meetup's capacity (never below `confirmed`: the condition says so). New seats go to
    those in line through `fill_free_seats`, which the caller runs as a background job: a rise of
    1,000 seats must not hold up the admin's request."""
    for attempt in range(MAX_ATTEMPTS):
        if capacity < meetup.confirmed:
            raise Conflict(f"Capacity {capacity} is below the {int(meetup.confirmed)} confirmed places",
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
    meetup = catalogue.load(meetup.id, consistent=True)
    logger.info("capacity changed", extra={"meetup_id": meetup.id, "capacity": capacity})
    return meetup


def seats_to_fill(meetup: Meetup) -> int:
    """How many of those in line free seats could take now (0 when closed)."""
    if not _is_open(meetup, clock.now()):
        return 0
    return max(0, min(int(meetup.capacity) - int(meetup.confirmed), int(meetup.waitlist_length)))


def fill_free_seats(meetup_id: str) -> list[OutboxMessage]:
    """Promote the first in line into free seats while seats are free and people wait (each
    promotion conditioned on who stands first and on the seats read). Safe to run again, and by
    two runners at once: a promotion happens once. Returns the promotion emails it queued (the
    caller dispatches them)."""
    meetup = catalogue.load(meetup_id, consistent=True)
    mails: list[OutboxMessage] = []
    attempt = 0  # conflicts in a row: each transaction that commits starts the count again
    while attempt < MAX_ATTEMPTS:
        now = clock.now()
        stamp = clock.to_storage(now)
        free = int(meetup.capacity) - int(meetup.confirmed)
        line = read_line(meetup.id) if free > 0 and meetup.waitlist_length and _is_open(meetup, now) else []
        heads = _load_many(meetup.id, line[:min(free, PROMOTIONS_PER_TRANSACTION)])
        if not heads:
            break
        actions = [Meetup.confirmed.add(len(heads)), Meetup.waitlist_length.add(-len(heads))]
        tx = Transaction()
        tx.update("meetup", meetup, actions, Meetup.confirmed == meetup.confirmed, return_old=True)
        batch = _promote(tx, meetup, line, heads, now, stamp)
        try:
            tx.commit()
        except TransactionCancelled as cancelled:
            meetup = _fresh(meetup.id, cancelled, attempt)
            attempt += 1
            continue
        attempt = 0
        mails += batch
        meetup = catalogue.load(meetup.id, consistent=True)
        if int(meetup.confirmed) >= int(meetup.capacity) or not int(meetup.waitlist_length):
            break
    else:
        raise ServiceUnavailable(messages.BUSY)
    if mails:
        hints.forget(meetup.id)
    logger.info("free seats filled", extra={"meetup_id": meetup.id, "promoted": len(mails)})
    return mails


def cancellation_notice(meetup: Meetup, person: Registration) -> OutboxMessage:
    """The "this meetup will not take place" email to one person: one id per (meetup, person),
    so that queueing it again (a repeated cancellation, a resumed job) sends nobody a second one."""
    message = _mail("meetup_cancelled", meetup, person)
    message.id = f"meetup-cancelled-{meetup.id}-{person.id}"
    return message


CSV_COLUMNS = ("id", "status", "waitlist_position", "name", "email", "role", "organisation", "municipality",
               "theme", "language", "follow_up_opt_in", "created_at")


def to_csv(rows: list[dict], *, header: bool = True) -> str:
    """CSV of rows; `header=False` for the pages after the first, so that the pages of an export
    put one after the other are one CSV file."""
    import csv
    import io
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    if header:
        writer.writeheader()
    for row in rows:
        # Cells starting with = + - @ are read as formulas by spreadsheets: defuse them.
        writer.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@" else v) for k, v in row.items()})
    return buffer.getvalue()
