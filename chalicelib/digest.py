"""Organisers and their email digests: who gets one, when, about what, and at most once.

Subscriptions (table `organisers`, GSI `by_frequency` on (frequency, id)):
- An organiser follows a scope (the whole tour, a province, or one meetup and the follow-ups
  handed over from it) and gets a digest daily or weekly, in Dutch or English.
- The id is derived from (email, scope, frequency), so the same subscription twice is one item
  (the second POST answers the first one). The unsubscribe link is signed and bound to the
  subscription's creation time: after unsubscribing and subscribing again, an old link does
  nothing to the new subscription.
- A new organiser's current period counts as served (`last_period`): their first digest comes at
  the start of the next period and covers what changed since they were added (`covered_until`).

Periods, in Europe/Amsterdam wall time (zoneinfo, so correct across daylight-saving changes):
- daily: from 07:00 each day to 07:00 the next; id "daily:2027-04-12";
- weekly: from Monday 07:00 to the next Monday 07:00; id "weekly:2027-W15" (ISO week).
An organiser is due when their `last_period` is not the current period.

At most one digest per organiser and period, however often and however concurrently the job
fires (EventBridge delivers at least once, Lambda retries):
1. claim: a conditional update on the organiser item, `last_period <> p AND (no claim on p OR
   its lease ran out)` -> `claimed_period = p, claim_until = now + LEASE`. One run wins; the
   others skip that organiser. The claim's `claim_until` is the claim's token.
2. send the digest directly (compose + backend), retrying a throttle or error a few times
   with bounded exponential backoff;
3. done: a conditional update (`claimed_period = p AND claim_until = <mine>`) sets
   `last_period = p`, `covered_until = cutoff`, and removes the claim.
   A failed send releases the claim instead, so the period stays open for the next firing.
A run that crashed half-way leaves the organisers it had not reached unclaimed (the next firing
serves them), and at most one claimed one, whose lease runs out before the firing after that.
Only a crash between handing the mail to SES and step 3 can send one twice (after the lease).

Why not through the outbox: the claim already is the at-most-once mechanism for a digest, and a
failed digest is better recomposed at the next firing (with what changed since) than resent
stale. The outbox would need the claim and the queued message in one transaction for nothing.

Cost grows with the changes, not the data: one run reads the activity log (written in the same
transaction as every roster change, partitioned by UTC day and shard, sorted by time) once, only the days
and the time range the due organisers need, plus one Query for the organisers (by frequency)
and one for the tour's meetups (seats, next sessions); it filters per organiser in memory. It
never reads the registrations.
"""
from __future__ import annotations

import bisect
import hashlib
import random
import time as _time
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import catalogue, clock, rendering, storage, tokens
from chalicelib.config import get_settings
from chalicelib.errors import NotFound
from chalicelib.messages import Message
from chalicelib.models import Activity, Meetup, Organiser, activity_partitions
from chalicelib.observability import logger
from chalicelib.statuses import MeetupState
from chalicelib.storage import conditional, storage_errors
from chalicelib.validation import Fields

FREQUENCIES = ("daily", "weekly")
LANGUAGES = ("nl", "en")
SCOPE_KINDS = ("all", "province", "meetup")
ORGANISER_FIELDS = ("email", "name", "scope", "frequency", "language")
UNSUBSCRIBE_PURPOSE = "organiser-unsubscribe"
TEMPLATE = "organiser_digest"

DIGEST_HOUR = time(7, 0)  # local (Europe/Amsterdam) time a period starts
LEASE = timedelta(minutes=15)  # a claim's life: far longer than one send with its retries
# The digest covers changes up to `now - SETTLE`: a roster change's activity stamp is taken
# before its transaction commits (a busy sign-up retries for a few seconds), so the most
# recent moments are left to the next digest rather than risk missing a late commit.
SETTLE = timedelta(minutes=2)
SEND_ATTEMPTS = 4  # one send and up to three retries within a run
RETRY_BASE_SECONDS = 0.5  # then 1 s, 2 s (throttled: twice as long), plus jitter
MAX_CONSECUTIVE_FAILURES = 3  # the backend is down: leave the rest to the next firing
SCHEDULED_TIME_BUDGET_SECONDS = 240.0  # send_digests has a 300 s Lambda timeout
# The email names at most this many changes per meetup and in all (the counts are always
# complete): a digest stays readable, and under the size at which mail clients clip it.
MAX_ENTRIES_PER_MEETUP = 50
MAX_ENTRIES = 300
NEXT_SESSIONS = 5
CHANGE_TYPES = ("signed_up", "waitlisted", "promoted", "cancelled", "handover", "joined")
COUNTED_ONLY = ("joined",)  # followed their personal join link: a number, no names


# --- periods ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    id: str
    starts: datetime  # aware, Europe/Amsterdam
    ends: datetime


def _local_start(day: date) -> datetime:
    return datetime.combine(day, DIGEST_HOUR, tzinfo=clock.AMSTERDAM)


def period_at(frequency: str, moment: datetime) -> Period:
    """The period `moment` falls in. 07:00 never falls in a daylight-saving gap or fold (those
    are at 02:00-03:00), so the wall-clock start of every period exists exactly once."""
    local = moment.astimezone(clock.AMSTERDAM)
    if frequency == "daily":
        day = local.date() if local >= _local_start(local.date()) else local.date() - timedelta(days=1)
        return Period(f"daily:{day.isoformat()}", _local_start(day), _local_start(day + timedelta(days=1)))
    if frequency == "weekly":
        monday = local.date() - timedelta(days=local.weekday())
        if local < _local_start(monday):
            monday -= timedelta(days=7)
        year, week, _ = monday.isocalendar()
        return Period(f"weekly:{year}-W{week:02d}", _local_start(monday), _local_start(monday + timedelta(days=7)))
    raise ValueError(f"unknown frequency {frequency!r}")


# --- subscriptions -----------------------------------------------------------------------------

def _subscription_id(email: str, scope_kind: str, scope_value: str | None, frequency: str) -> str:
    key = "|".join((email.strip().lower(), scope_kind, scope_value or "", frequency))
    return "org_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def _read_scope(f: Fields) -> tuple[str, str | None]:
    raw = f.payload.get("scope")
    if raw is None or raw == "":
        f.fail("scope", "required")
        return "all", None
    if raw == "all":
        return "all", None
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("province", "meetup_id"):
        f.fail("scope", "choice", options='"all", {"province": "..."}, {"meetup_id": "..."}')
        return "all", None
    if "province" in raw:
        value = raw["province"]
        province = catalogue.normalise_province(value) if isinstance(value, str) else None
        if province is None:
            f.fail("scope.province", "choice", options=", ".join(catalogue.PROVINCES))
        return "province", province
    meetup_id = f.text("scope.meetup_id", required=True, max_length=100, value=raw["meetup_id"] or "")
    if meetup_id is not None:
        with storage_errors():
            try:
                Meetup.get(meetup_id)
            except DoesNotExist:
                f.fail("scope.meetup_id", Message("Er is geen meetup met dit id.", "There is no meetup with this id."))
    return "meetup", meetup_id


def subscribe(payload: dict, *, now: datetime | None = None) -> tuple[Organiser, bool]:
    """Add an organiser; returns (organiser, created). The same email, scope and frequency
    again is the same subscription: it is returned as it is, nothing changes."""
    f = Fields(payload, allowed=ORGANISER_FIELDS)
    email = f.email("email", required=True)
    name = f.text("name", required=True, max_length=200)
    scope_kind, scope_value = _read_scope(f)
    frequency = f.choice("frequency", FREQUENCIES, required=True)
    language = f.choice("language", LANGUAGES, default="nl") or "nl"
    f.check()
    now = now or clock.now()
    from chalicelib.privacy import address_hash
    organiser = Organiser(
        id=_subscription_id(email, scope_kind, scope_value, frequency), email=email, email_hash=address_hash(email),
        name=name,
        scope_kind=scope_kind, scope_value=scope_value, frequency=frequency, language=language,
        created_at=clock.stamp(now), covered_until=clock.stamp(now),
        last_period=period_at(frequency, now).id)
    if not conditional(lambda: organiser.save(condition=Organiser.id.does_not_exist())):
        with storage_errors():
            return Organiser.get(organiser.id, consistent_read=True), False
    logger.info("organiser subscribed", extra={"organiser_id": organiser.id, "scope": scope_kind,
                                               "frequency": frequency})
    return organiser, True


def list_organisers() -> list[Organiser]:
    """Every organiser, from the `by_frequency` index (one Query per frequency)."""
    with storage_errors():
        return [o for frequency in FREQUENCIES for o in Organiser.by_frequency.query(frequency)]


def load(organiser_id: str) -> Organiser:
    if not organiser_id or len(organiser_id) > 100:
        raise NotFound("No such organiser")
    with storage_errors():
        try:
            return Organiser.get(organiser_id, consistent_read=True)
        except DoesNotExist:
            raise NotFound(f"No organiser with id {organiser_id!r}") from None


def remove(organiser_id: str) -> Organiser:
    """An admin removes an organiser: 404 when there is none."""
    organiser = load(organiser_id)
    if not conditional(lambda: organiser.delete(condition=Organiser.id.exists())):
        raise NotFound(f"No organiser with id {organiser_id!r}")
    logger.info("organiser removed", extra={"organiser_id": organiser_id})
    return organiser


UNSUBSCRIBE_LINK_DAYS = 365  # an unsubscribe link works this long after the digest that carried it


def unsubscribe_token(organiser: Organiser) -> str:
    return tokens.sign(UNSUBSCRIBE_PURPOSE, organiser.id, organiser.created_at,
                       expires=clock.now() + timedelta(days=UNSUBSCRIBE_LINK_DAYS))


def unsubscribe_url(organiser: Organiser) -> str:
    return f"{get_settings().public_base_url}/organisers/unsubscribe/{unsubscribe_token(organiser)}"


def find_by_token(token: str) -> Organiser | None:
    """The subscription a link is for, or None when it has been ended (a tampered link: 404)."""
    organiser_id, created_at = tokens.verify(UNSUBSCRIBE_PURPOSE, token, 2)
    with storage_errors():
        try:
            organiser = Organiser.get(organiser_id, consistent_read=True)
        except DoesNotExist:
            return None
    return organiser if organiser.created_at == created_at else None


def unsubscribe(token: str) -> None:
    """Ends the subscription the link is for; again (or already ended): the same, nothing more."""
    organiser_id, created_at = tokens.verify(UNSUBSCRIBE_PURPOSE, token, 2)
    if not conditional(lambda: Organiser(id=organiser_id).delete(condition=Organiser.created_at == created_at)):
        return
    logger.info("organiser unsubscribed", extra={"organiser_id": organiser_id})


def scope_view(organiser: Organiser):
    if organiser.scope_kind == "province":
        return {"province": organiser.scope_value}
    if organiser.scope_kind == "meetup":
        return {"meetup_id": organiser.scope_value}
    return "all"


def next_digest_from(organiser: Organiser, now: datetime | None = None) -> datetime:
    """When the organiser's next digest is due (it goes out at the first run from then on)."""
    current = period_at(organiser.frequency, now or clock.now())
    return current.ends if organiser.last_period == current.id else current.starts


def view(organiser: Organiser) -> dict:
    return {
        "id": organiser.id, "email": organiser.email, "name": organiser.name, "scope": scope_view(organiser),
        "frequency": organiser.frequency, "language": organiser.language,
        "created_at": clock.to_public(organiser.created_at), "unsubscribe_url": unsubscribe_url(organiser),
        # Extensions to the contract:
        "last_period": organiser.last_period,
        "covered_until": clock.to_public(organiser.covered_until),
        "next_digest_from": next_digest_from(organiser).isoformat(timespec="seconds"),
    }


def describe_scope(organiser: Organiser, lang: str) -> str:
    """'de hele tour', 'provincie Utrecht', 'de meetup <title>' (one read for a meetup)."""
    meetups = []
    if organiser.scope_kind == "meetup":
        with storage_errors():
            try:
                meetups.append(Meetup.get(organiser.scope_value))
            except DoesNotExist:
                pass
    return _scope_label(organiser, Tour(meetups), lang)


def public_view(organiser: Organiser) -> dict:
    """What the holder of an unsubscribe link sees."""
    return {"email": organiser.email, "name": organiser.name, "scope": scope_view(organiser),
            "frequency": organiser.frequency, "language": organiser.language}


# --- the activity log, read once per run ---------------------------------------------------------

def _stamp_of(value: str) -> str:
    """Any stored time as an activity stamp ("...T10:00:00.000000Z"), which sorts with `sk`."""
    return clock.stamp(clock.from_storage(value))


@dataclass(frozen=True, slots=True)
class Change:
    """One activity record as plain data (read once per run, filtered per organiser)."""
    sk: str  # "<stamp>#<hex>": sorts by time
    type: str
    meetup_id: str
    province: str | None
    details: dict

    @property
    def at(self) -> str:
        return self.sk.split("#", 1)[0]


class ActivityWindow:
    """The activity between `since` and `until` (stamps), read by UTC day partitions with a
    range condition on the sort key, consistently (a digest must not skip a committed change).
    Extends itself backwards if an organiser turns out to need older changes."""

    def __init__(self, until: str):
        self.until = until
        self.since = until
        self.items: list[Change] = []  # sorted by sk
        self.keys: list[str] = []
        self.by_meetup: dict[str, list[int]] = {}
        self.by_province: dict[str, list[int]] = {}
        self.everything: list[int] = []

    def cover(self, since: str) -> None:
        if since >= self.since:
            return
        older = list(self._read(since, self.since))
        self.since = since
        self.items = older + self.items
        self.keys = [a.sk for a in self.items]
        self._index()

    def _read(self, since: str, until: str):
        first, last = clock.from_storage(since).date(), clock.from_storage(until).date()
        day = first
        with storage_errors():
            while day <= last:
                if day == first and day == last:
                    condition = Activity.sk.between(since, until)
                elif day == first:
                    condition = Activity.sk >= since
                elif day == last:
                    condition = Activity.sk < until
                else:
                    condition = None
                found = [item for partition in activity_partitions(day.isoformat())
                         for item in Activity.query(partition, condition, consistent_read=True)]
                for item in sorted(found, key=lambda a: a.sk):  # the day's shards, merged by time
                    if since <= item.sk < until:  # `between` includes its upper end
                        yield Change(item.sk, item.type, item.meetup_id, item.province, item.details or {})
                day += timedelta(days=1)

    def _index(self) -> None:
        self.by_meetup, self.by_province, self.everything = {}, {}, []
        for position, item in enumerate(self.items):
            if item.type not in CHANGE_TYPES:
                continue
            self.everything.append(position)
            details = item.details
            for meetup_id in {item.meetup_id, details.get("from_meetup_id"), details.get("to_meetup_id")} - {None}:
                self.by_meetup.setdefault(meetup_id, []).append(position)
            if item.province:
                self.by_province.setdefault(item.province, []).append(position)

    def select(self, since: str, meetup_ids: set[str] | None, province: str | None = None) -> list[Change]:
        """Changes from `since` on: every one (`meetup_ids` None), or those about these meetups
        (or in this province)."""
        start = bisect.bisect_left(self.keys, since)
        if meetup_ids is None:
            positions = self.everything
        else:
            found = set()
            for meetup_id in meetup_ids:
                found.update(self.by_meetup.get(meetup_id, ()))
            if province:
                found.update(self.by_province.get(province, ()))
            positions = sorted(found)
        return [self.items[p] for p in positions if p >= start]


# --- the run -------------------------------------------------------------------------------------

@dataclass
class RunResult:
    sent: int = 0
    skipped: int = 0  # served without an email: nothing changed in their scope
    failed: int = 0  # the send failed; the period stays open for the next firing
    busy: int = 0  # another run holds the claim (or served them just now)
    deferred: int = 0  # left for the next firing: time budget spent or mail backend failing

    def as_dict(self) -> dict:
        return {"sent": self.sent, "skipped": self.skipped, "failed": self.failed, "busy": self.busy,
                "deferred": self.deferred}


def _claim(organiser: Organiser, period: Period, now: datetime) -> str | None:
    """Take this organiser's period for this run; the lease end is the claim's token. The
    update refreshes `organiser` with the stored item (covered_until as stored, not as indexed)."""
    lease = storage.lease_until(now, LEASE)
    p = period.id
    claimed = storage.claim(
        organiser, [Organiser.claimed_period.set(p), Organiser.claim_until.set(lease)],
        Organiser.id.exists()
        & (Organiser.last_period.does_not_exist() | (Organiser.last_period != p))
        & (Organiser.claimed_period.does_not_exist() | (Organiser.claimed_period != p)
           | storage.free(Organiser.claim_until, now)))
    return lease if claimed else None


def _mine(period: Period, lease: str):
    return (Organiser.claimed_period == period.id) & (Organiser.claim_until == lease)


def _complete(organiser: Organiser, period: Period, lease: str, cutoff: str, sent_at: str | None) -> None:
    actions = [Organiser.last_period.set(period.id), Organiser.covered_until.set(cutoff),
               Organiser.claimed_period.remove(), Organiser.claim_until.remove()]
    if sent_at:
        actions.append(Organiser.last_sent_at.set(sent_at))
    try:
        organiser.update(actions=actions, condition=_mine(period, lease))
    except UpdateError as exc:
        # Unsubscribed meanwhile, or the lease ran out and another run took over.
        logger.warning("digest period not marked done", exc_info=exc,
                       extra={"organiser_id": organiser.id, "period": period.id,
                              "condition_failed": storage.is_condition_failure(exc)})


def _release(organiser: Organiser, period: Period, lease: str) -> None:
    try:
        organiser.update(actions=[Organiser.claimed_period.remove(), Organiser.claim_until.remove()],
                         condition=_mine(period, lease))
    except UpdateError as exc:  # the lease runs out by itself
        logger.warning("digest claim not released", exc_info=exc,
                       extra={"organiser_id": organiser.id, "period": period.id})


def _send(message, backend, sleep) -> None:
    """Hand the message over, retrying a failure with bounded exponential backoff."""
    from chalicelib import mail
    for attempt in range(SEND_ATTEMPTS):
        try:
            mail.send(message, via=backend)
            return
        except mail.MailDeliveryFailed as exc:
            if attempt + 1 == SEND_ATTEMPTS:
                raise
            delay = RETRY_BASE_SECONDS * (2 ** attempt) * (2 if exc.throttled else 1)
            logger.info("digest send failed; retrying", extra={"attempt": attempt + 1, "throttled": exc.throttled,
                                                               "retry_in_seconds": delay})
            sleep(delay * (1 + random.random() / 5))


def _due(organisers: list[Organiser], now: datetime) -> list[tuple[Organiser, Period]]:
    due = []
    now_stamp = clock.stamp(now)
    for organiser in organisers:
        if organiser.frequency not in FREQUENCIES:
            continue
        period = period_at(organiser.frequency, now)
        if organiser.last_period == period.id:
            continue
        if organiser.claimed_period == period.id and (organiser.claim_until or "") >= now_stamp:
            continue  # another run is at it (as the index last saw it; the claim decides)
        due.append((organiser, period))
    return due


def who_is_due(now: datetime | None = None) -> list[dict]:
    """Each organiser and whether a run now would serve them (read only, the rule `run` uses):
    `due`, else `next_digest_from`; `new`: subscribed in the current period, whose first digest
    therefore comes at the next period (the admin console explains a run that sent nothing)."""
    now = now or clock.now()
    organisers = list_organisers()
    due_ids = {organiser.id for organiser, _ in _due(organisers, now)}
    found = []
    for organiser in organisers:
        current = period_at(organiser.frequency, now) if organiser.frequency in FREQUENCIES else None
        new = current is not None and clock.from_storage(organiser.created_at) >= current.starts
        found.append({"id": organiser.id, "name": organiser.name, "email": organiser.email,
                      "frequency": organiser.frequency, "due": organiser.id in due_ids, "new": new,
                      "next_digest_from": next_digest_from(organiser, now) if current else None})
    return found


def run(now: datetime | None = None, *, backend=None, time_budget: float = SCHEDULED_TIME_BUDGET_SECONDS,
        sleep=_time.sleep) -> dict:
    """The digest job: every due organiser gets this period's digest, once. Safe to run at any
    time, as often and as concurrently as it comes. `now`, `backend` (a mail backend) and
    `sleep` are for tests and benchmarks."""
    from chalicelib import mail  # lazy, as everywhere: the API's cold start does not need it
    started = _time.monotonic()
    now = now or clock.now()
    cutoff = clock.stamp(now - SETTLE)
    result = RunResult()
    due = _due(list_organisers(), now)
    if not due:
        return result.as_dict()

    oldest = clock.stamp(now - get_settings().retention)  # older activity has expired: never read further back
    window = ActivityWindow(cutoff)
    window.cover(max(oldest, min(_stamp_of(o.covered_until) for o, _ in due)))
    with storage_errors():
        meetups = catalogue.find_meetups()  # the tour listing: one Query of its keys, one BatchGetItem
    tour = Tour(meetups)

    consecutive_failures = 0
    for position, (organiser, period) in enumerate(due):
        if _time.monotonic() - started > time_budget or consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            result.deferred += len(due) - position
            logger.warning("digest run stops early; the rest is left for the next firing",
                           extra={"left": len(due) - position, "failures": consecutive_failures})
            break
        with storage_errors():
            lease = _claim(organiser, period, now)
        if lease is None:
            result.busy += 1
            continue
        since = max(oldest, _stamp_of(organiser.covered_until))
        if since >= cutoff:  # covered right up to now (e.g. just added)
            _complete(organiser, period, lease, max(cutoff, _stamp_of(organiser.covered_until)), None)
            result.skipped += 1
            continue
        try:
            window.cover(since)
            from chalicelib import suppression
            # A hard-bounced or complaining address gets nothing more (SES), digests included.
            digest = None if suppression.is_suppressed(organiser.email) else \
                compose_digest(organiser, period, window, tour, since, cutoff, now)
            if digest is None:
                _complete(organiser, period, lease, cutoff, None)
                result.skipped += 1
                continue
            _send(digest, backend, sleep)
        except Exception as exc:  # noqa: BLE001 - one organiser's failure must not stop the others
            _release(organiser, period, lease)
            result.failed += 1
            consecutive_failures += 1
            throttled = isinstance(exc, mail.MailDeliveryFailed) and exc.throttled
            logger.warning("digest not sent; the period stays open for the next firing", exc_info=exc,
                           extra={"organiser_id": organiser.id, "period": period.id, "throttled": throttled})
            if throttled:
                consecutive_failures = MAX_CONSECUTIVE_FAILURES  # slow down: the rest next firing
            continue
        consecutive_failures = 0
        _complete(organiser, period, lease, cutoff, clock.stamp(clock.now()))
        result.sent += 1
        logger.info("digest sent", extra={"organiser_id": organiser.id, "period": period.id})
    logger.info("digest run", extra=result.as_dict())
    return result.as_dict()


# --- content -----------------------------------------------------------------------------------

class Tour:
    """The tour's meetups, from one Query: scopes, seats and next sessions."""

    def __init__(self, meetups: list[Meetup]):
        self.meetups = sorted(meetups, key=lambda m: m.starts_at)
        self.by_id = {m.id: m for m in self.meetups}
        self.follow_ups: dict[str, list[str]] = {}
        for meetup in self.meetups:
            if meetup.follows:
                self.follow_ups.setdefault(meetup.follows, []).append(meetup.id)

    def scope(self, organiser: Organiser) -> tuple[set[str] | None, str | None]:
        """(meetup ids, province) in scope; (None, None) is the whole tour."""
        if organiser.scope_kind == "province":
            return {m.id for m in self.meetups if m.province == organiser.scope_value}, organiser.scope_value
        if organiser.scope_kind == "meetup":
            ids, todo = set(), [organiser.scope_value]
            while todo:  # the meetup and the follow-ups handed over from it
                meetup_id = todo.pop()
                if meetup_id not in ids:
                    ids.add(meetup_id)
                    todo.extend(self.follow_ups.get(meetup_id, ()))
            return ids, None
        return None, None


def _meetup_context(meetup: Meetup | None, meetup_id: str) -> dict:
    base = get_settings().public_base_url
    if meetup is None:
        return {"id": meetup_id, "title": meetup_id, "starts_at": None, "city": None, "mode": None,
                "capacity": 0, "confirmed": 0, "seats_left": 0, "waitlist": 0, "fill": 0, "cancelled": False,
                "url": f"{base}/meetups/{meetup_id}"}
    capacity, confirmed = int(meetup.capacity), int(meetup.confirmed)
    fill = 100 if capacity <= 0 else min(100, round(confirmed * 100 / capacity))
    return {"id": meetup.id, "title": meetup.title, "starts_at": meetup.starts_at, "city": meetup.city,
            "mode": meetup.mode, "capacity": capacity, "confirmed": confirmed,
            "seats_left": max(0, capacity - confirmed), "waitlist": int(meetup.waitlist_length), "fill": fill,
            "cancelled": meetup.state == MeetupState.CANCELLED, "url": f"{base}/meetups/{meetup.id}"}


def _entry(item: Change, lang: str) -> dict:
    """Only what an organiser needs: name, role, organisation (never an email address)."""
    details = item.details
    role = details.get("role")
    return {"type": item.type, "at": item.at, "name": details.get("name") or "",
            "role": rendering.TEXTS[lang].get(f"role_{role}", role or ""),
            "organisation": details.get("organisation") or "", "was": details.get("was")}


def _handover(item: Change, tour: Tour) -> dict:
    details = item.details
    base = get_settings().public_base_url
    from_id = details.get("from_meetup_id") or item.meetup_id
    to_id = details.get("to_meetup_id")
    source, target = tour.by_id.get(from_id), tour.by_id.get(to_id)
    return {"at": item.at,
            "from_title": source.title if source else from_id, "from_city": details.get("from_city") or "",
            "to_title": target.title if target else (to_id or ""), "to_city": details.get("to_city") or "",
            "to_starts_at": target.starts_at if target else None,
            "to_url": f"{base}/meetups/{to_id}" if to_id else None}


def _scope_label(organiser: Organiser, tour: Tour, lang: str) -> str:
    if organiser.scope_kind == "province":
        return f"provincie {organiser.scope_value}" if lang == "nl" else f"the province of {organiser.scope_value}"
    if organiser.scope_kind == "meetup":
        meetup = tour.by_id.get(organiser.scope_value)
        title = meetup.title if meetup else organiser.scope_value
        return f"de meetup {title}" if lang == "nl" else f"the meetup {title}"
    return "de hele tour" if lang == "nl" else "the whole tour"


def digest_context(organiser: Organiser, period: Period, changes: list[Change], tour: Tour,
                   meetup_ids: set[str] | None, since: str, until: str, now: datetime) -> dict:
    lang = organiser.language if organiser.language in LANGUAGES else "nl"
    totals = {kind: 0 for kind in CHANGE_TYPES}
    sections: dict[str, dict] = {}
    handovers = []
    listed = 0
    for item in changes:
        totals[item.type] += 1
        if item.type == "handover":
            handovers.append(_handover(item, tour))
            continue
        section = sections.get(item.meetup_id)
        if section is None:
            section = sections[item.meetup_id] = {
                "meetup": _meetup_context(tour.by_id.get(item.meetup_id), item.meetup_id),
                "counts": {kind: 0 for kind in CHANGE_TYPES}, "entries": [], "more": 0}
        section["counts"][item.type] += 1
        if item.type in COUNTED_ONLY:
            continue
        if len(section["entries"]) < MAX_ENTRIES_PER_MEETUP and listed < MAX_ENTRIES:
            section["entries"].append(_entry(item, lang))
            listed += 1
        else:
            section["more"] += 1
    ordered = sorted(sections.values(), key=lambda s: (s["meetup"]["starts_at"] or "", s["meetup"]["title"]))
    now_storage = clock.to_storage(now)
    upcoming = [m for m in tour.meetups if m.starts_at > now_storage and m.state != MeetupState.CANCELLED
                and (meetup_ids is None or m.id in meetup_ids)]
    return {
        "name": organiser.name, "frequency": organiser.frequency, "period": period.id,
        "period_start": clock.to_storage(period.starts), "since": since, "until": until,
        "scope_label": _scope_label(organiser, tour, lang), "totals": totals, "change_count": len(changes),
        "meetups": ordered, "handovers": handovers,
        "next_sessions": [_meetup_context(m, m.id) for m in upcoming[:NEXT_SESSIONS]],
        "unsubscribe_url": unsubscribe_url(organiser),
    }


def compose_digest(organiser: Organiser, period: Period, window: ActivityWindow, tour: Tour, since: str,
                   until: str, now: datetime):
    """The digest email for one organiser, or None when nothing changed in their scope."""
    from chalicelib import mail
    meetup_ids, province = tour.scope(organiser)
    changes = window.select(since, meetup_ids, province)
    if not changes:
        return None
    context = digest_context(organiser, period, changes, tour, meetup_ids, since, until, now)
    message_id = "digest-" + organiser.id + "-" + period.id.replace(":", "-")
    message = mail.compose(TEMPLATE, organiser.language, organiser.email, context, message_id=message_id)
    # One-click unsubscribe (RFC 8058): mail clients POST to the same link as the button.
    mail.set_plain_header(message, "List-Unsubscribe", f"<{context['unsubscribe_url']}>")  # a link, not encoded
    mail.set_plain_header(message, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    return message
