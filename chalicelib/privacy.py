"""Privacy by design (AVG/GDPR): retention, erasure and access on request, consent, the manage
link mailed again, and the periods the privacy statement names.

Retention (settings.retention, RETENTION_DAYS, default 30 days), by DynamoDB TTL where an item can
simply go and by the scheduled job `run_retention` where a record must be changed:
- a registration's personal fields (name, address and its hash, organisation, theme, consent
  times) are removed that long after its meetup ended, or after it was cancelled if that is
  earlier; the record stays with status, role, municipality and language, so the counts per
  meetup, role and municipality stay. The meetup's host address goes with it.
- email guards (a hash of an address): TTL at the meetup's end + the period; the job deletes them too.
- the activity log (names and organisations for the digests): TTL at the change + the period; the
  job deletes what TTL has not yet (DynamoDB deletes expired items within days, not at once).
- the outbox: a message loses its address and content when it is sent or given up; the bare
  record (id, template, times) expires by TTL after the period.
- organisers: deleted at once when they unsubscribe or an admin removes them.
- idempotency records (an admin's handover answer, no participant data): TTL after 24 hours.

Every lookup by address goes through `address_hash` (SHA-256 of the trimmed, lower-cased
address) on a sparse index: registrations, organisers and queued mail `by_email`/`by_recipient`.
No Scan anywhere.
"""
from __future__ import annotations

import secrets
import time as _time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist

from chalicelib import catalogue, clock, messages
from chalicelib.addresses import address_hash
from chalicelib.config import get_settings
from chalicelib.models import (EMAIL_GUARD_PREFIX, ERASURE_AUDIT_PREFIX, REGISTRATION_PREFIX, Activity, EmailGuard,
                               ErasureRecord, Meetup, MeetupsByStart, OutboxMessage, Organiser, Registration,
                               RegistrationsByErasure, activity_partitions, guard_partition)
from chalicelib.observability import logger
from chalicelib.statuses import ACTIVE, RegistrationStatus
from chalicelib.storage import Transaction, TransactionCancelled, conditional, storage_errors
from chalicelib.validation import Fields

AUDIT_RETENTION_DAYS = 730  # erasure records (a hash of the address, never the address)
LOG_RETENTION_DAYS = 30  # CloudWatch Logs: .chalice/config.json's log_retention_in_days (a test checks)
BACKUP_RETENTION_DAYS = 35  # point-in-time recovery of the registrations, meetups and handovers tables
IDEMPOTENCY_HOURS = 24  # chalicelib.handover.IDEMPOTENCY_TTL_SECONDS (a test checks)
ACTIVITY_LOOKBACK_DAYS = 14  # days of the activity log the job looks at before the retention boundary
JOB_TIME_BUDGET_SECONDS = 20.0  # the scheduled job stops then; the next run goes on
FOLLOW_UP_PURPOSE = "follow-up-unsubscribe"  # the one-click link in follow-up invitations
PERSONAL_FIELDS = ("name", "email", "email_hash", "organisation", "theme", "consent_at", "consent_version",
                   "follow_up_consent_at", "follow_up_withdrawn_at", "link_sent_at", "erase_due", "erase_after")


def _resend_interval() -> timedelta:
    from chalicelib import registration as roster
    return roster.RESEND_INTERVAL


def periods() -> dict:
    """The retention periods: what the code applies and the privacy statement says (one source)."""
    days = get_settings().retention_days
    return {"registration_days": days, "cancelled_days": days, "activity_days": days, "outbox_days": days,
            "guard_days": days, "idempotency_hours": IDEMPOTENCY_HOURS, "log_days": LOG_RETENTION_DAYS,
            "backup_days": BACKUP_RETENTION_DAYS, "audit_days": AUDIT_RETENTION_DAYS,
            "resend_minutes": int(_resend_interval().total_seconds() // 60)}


def statement_context() -> dict:
    settings = get_settings()
    return {"controller": settings.privacy_controller, "contact_email": settings.privacy_contact_email,
            "contact_address": settings.privacy_contact_address, "version": settings.privacy_version,
            "region": settings.region, "periods": periods()}


# --- the manage link, mailed again ----------------------------------------------------------------

def resend_links(payload: dict) -> int:
    """"Mail me my links": the manage links of the address's active registrations. The caller
    answers the same whatever this finds; returns how many were mailed (for logs and tests)."""
    from chalicelib import catalogue, registration as roster
    f = Fields(payload, allowed=("email", "language"))
    email = f.email("email", required=True)
    f.choice("language", ("nl", "en"))
    f.check()
    sent = 0
    for registration in _registrations_of(address_hash(email)):
        if registration.status in ACTIVE and not registration.erased_at:
            sent += roster.send_link(registration, catalogue.load(registration.meetup_id, consistent=True))
    return sent


def _registrations_of(email_hash: str) -> list[Registration]:
    with storage_errors():
        keys = [(key.meetup_id, key.sk) for key in Registration.by_email.query(email_hash)]
        found = list(Registration.batch_get(keys, consistent_read=True)) if keys else []
    return [r for r in found if r.email_hash == email_hash and r.sk.startswith(REGISTRATION_PREFIX)]


# --- consent: the follow-up opt-in -------------------------------------------------------------------

def follow_up_expiry(registration: Registration, meetup: Meetup) -> datetime:
    from chalicelib import registration as roster
    return roster.link_expiry(meetup.ends_at)


def follow_up_unsubscribe_url(registration: Registration, meetup: Meetup) -> str:
    from chalicelib import tokens
    token = tokens.sign(FOLLOW_UP_PURPOSE, registration.meetup_id, registration.id,
                        expires=follow_up_expiry(registration, meetup))
    return f"{get_settings().public_base_url}/follow-up/unsubscribe/{token}"


def set_follow_up(registration: Registration, opt_in: bool, now: datetime | None = None) -> Registration:
    """Give or withdraw the follow-up opt-in; each is recorded with its time."""
    stamp = clock.to_storage(now or clock.now())
    actions = [Registration.follow_up_opt_in.set(opt_in), Registration.updated_at.set(stamp)]
    actions.append(Registration.follow_up_consent_at.set(stamp) if opt_in
                   else Registration.follow_up_withdrawn_at.set(stamp))
    if not conditional(lambda: registration.update(actions=actions, condition=Registration.sk.exists()
                                                   & Registration.erased_at.does_not_exist())):
        from chalicelib.errors import NotFound
        raise NotFound(messages.DATA_ERASED)
    logger.info("follow-up opt-in changed", extra={"registration_id": registration.id, "opt_in": opt_in})
    return registration


def change_follow_up(token: str, payload: dict) -> Registration:
    from chalicelib import registration as roster
    registration = roster.by_token(token)
    f = Fields(payload, allowed=("follow_up_opt_in", "language"))
    opt_in = f.boolean("follow_up_opt_in", required=True)
    f.check()
    if bool(registration.follow_up_opt_in) == opt_in:
        return registration
    return set_follow_up(registration, opt_in)


def follow_up_subscription(token: str) -> Registration | None:
    """The registration a one-click link is for; None once erased (the link then does nothing)."""
    from chalicelib import registration as roster
    from chalicelib.errors import NotFound
    try:
        return roster.by_token(token, FOLLOW_UP_PURPOSE)
    except NotFound:
        from chalicelib import tokens
        tokens.verify(FOLLOW_UP_PURPOSE, token, 2)  # a bad link stays a 404
        return None


def follow_up_unsubscribe(token: str) -> None:
    """One click (RFC 8058): no more follow-up invitations. Again, or when erased: the same."""
    registration = follow_up_subscription(token)
    if registration is not None and registration.follow_up_opt_in:
        set_follow_up(registration, False)


# --- access -------------------------------------------------------------------------------------

def _plain(value):
    if isinstance(value, datetime):
        return clock.to_public(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value


def export(token: str) -> dict:
    """Everything stored about the registration a manage link is for (the right of access)."""
    from chalicelib import catalogue, registration as roster
    registration = roster.by_token(token)
    meetup = catalogue.load(registration.meetup_id)
    stored = {name: _plain(value) for name, value in registration.attribute_values.items()}
    guard = None
    if registration.email:
        with storage_errors():
            try:
                found = EmailGuard.get(guard_partition(registration.meetup_id), roster.guard_key(registration.email), consistent_read=True)
                guard = {name: _plain(value) for name, value in found.attribute_values.items()}
            except DoesNotExist:
                pass
    activity = [{"day": item.day, "sk": item.sk, "type": item.type, "meetup_id": item.meetup_id,
                 "details": item.details, "expires_at": _plain(item.expires_at)}
                for item in _activity_of(registration)]
    queued = [{"id": msg.id, "template": msg.template, "state": msg.state, "recipient": msg.recipient,
               "created_at": msg.created_at, "context": msg.context}
              for msg in _queued_mail(registration.email_hash)
              if (msg.context or {}).get("registration_id") == registration.id]
    return {
        "exported_at": clock.to_public(clock.now()),
        "controller": get_settings().privacy_controller,
        "privacy_statement": f"{get_settings().public_base_url}/privacy",
        "privacy_version": get_settings().privacy_version,
        "registration": stored,
        "waitlist_position": roster.waitlist_position(registration),
        "meetup": {"id": meetup.id, "title": meetup.title, "starts_at": clock.to_public(meetup.starts_at),
                   "ends_at": clock.to_public(meetup.ends_at)},
        "email_guard": guard,
        "activity": activity,
        "queued_mail": queued,
        "retention": {"erased_after": clock.to_public(erase_moment(registration, meetup))},
    }


def erase_moment(registration: Registration, meetup: Meetup) -> datetime:
    ends = clock.from_storage(meetup.ends_at) + get_settings().retention
    if registration.erase_after:
        return min(ends, clock.from_storage(registration.erase_after))
    return ends


# --- erasure ------------------------------------------------------------------------------------

@dataclass
class Erased:
    registrations: int = 0
    cancelled: int = 0
    activity_records: int = 0
    queued_mail: int = 0
    organisers: int = 0
    meetup_hosts: int = 0
    meetups: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"registrations": self.registrations, "cancelled": self.cancelled,
                "activity_records": self.activity_records, "queued_mail": self.queued_mail,
                "organisers": self.organisers, "meetup_hosts": self.meetup_hosts, "meetups": self.meetups}


def _anonymise_actions(stamp: str) -> list:
    return [getattr(Registration, name).remove() for name in PERSONAL_FIELDS] + [
        Registration.follow_up_opt_in.set(False), Registration.erased_at.set(stamp),
        Registration.updated_at.set(stamp)]


def _activity_of(registration: Registration) -> list[Activity]:
    """The activity records that name a registration's person: written with its sign-up, its
    promotion and its cancellation, each stamped with the moment the registration keeps
    (`created_at`, `promoted_at`, `cancelled_at`, to the second). So only the records of those
    seconds are read, whatever the day's activity elsewhere in the country."""
    moments = sorted({value for value in (registration.created_at, registration.promoted_at,
                                          registration.cancelled_at) if value})
    found = []
    with storage_errors():
        for moment in moments:
            second = clock.stamp(clock.from_storage(moment)).split(".")[0] + "."  # "YYYY-MM-DDTHH:MM:SS."
            for partition in activity_partitions(moment[:10]):
                found += [item for item in Activity.query(partition, Activity.sk.startswith(second), consistent_read=True)
                          if (item.details or {}).get("registration_id") == registration.id]
    return found


def _scrub_activity(registration: Registration) -> int:
    """The digest keeps counting the change; the name and organisation go."""
    scrubbed = 0
    for item in _activity_of(registration):
        details = {"registration_id": registration.id, "role": (item.details or {}).get("role"),
                   "was": (item.details or {}).get("was"), "name": None, "organisation": None, "erased": True}
        if item.details.get("erased"):
            continue
        if conditional(lambda: item.update(actions=[Activity.details.set(details)], condition=Activity.sk.exists())):
            scrubbed += 1
    return scrubbed


def _queued_mail(email_hash: str | None) -> list[OutboxMessage]:
    if not email_hash:
        return []
    with storage_errors():
        ids = [key.id for key in OutboxMessage.by_recipient.query(email_hash)]
        found = list(OutboxMessage.batch_get(ids, consistent_read=True)) if ids else []
    return [msg for msg in found if msg.recipient_hash == email_hash]


def _delete_queued_mail(email_hash: str | None, registration_id: str | None = None) -> int:
    """Mail not sent yet to the address (of one registration, or all of it)."""
    deleted = 0
    for msg in _queued_mail(email_hash):
        if registration_id and (msg.context or {}).get("registration_id") != registration_id:
            continue
        if conditional(lambda: msg.delete(condition=OutboxMessage.recipient_hash == email_hash)):  # not if sent meanwhile
            deleted += 1
    return deleted


def _audit(tx: Transaction | None, *, actor: str, reason: str, erased: dict, now: datetime,
           email_hash: str | None = None, registration_id: str | None = None) -> ErasureRecord:
    record = ErasureRecord(sk=f"{ERASURE_AUDIT_PREFIX}{clock.stamp(now)}#{secrets.token_hex(4)}",
                           address_hash=email_hash, registration_id=registration_id, actor=actor, reason=reason,
                           erased=erased, at=clock.to_storage(now),
                           expires_at=now + timedelta(days=AUDIT_RETENTION_DAYS))
    if tx is not None:
        tx.put("audit", record, ErasureRecord.sk.does_not_exist())
    else:
        with storage_errors():
            record.save(condition=ErasureRecord.sk.does_not_exist())
    return record


def _erase_one(registration: Registration, erased: Erased, *, all_mail_of_address: bool) -> None:
    """Cancel an active place (promotion as usual, no cancellation email), remove the names from
    the activity log and its queued mail, then remove its personal fields and its email guard
    (one transaction, conditioned on not being erased already)."""
    from chalicelib import registration as roster
    if registration.erased_at:
        return
    if registration.status in ACTIVE:
        registration = roster.cancel_registration(registration, notify=False).registration
        registration.refresh(consistent_read=True)
        erased.cancelled += 1
    erased.activity_records += _scrub_activity(registration)
    if not all_mail_of_address:
        erased.queued_mail += _delete_queued_mail(registration.email_hash, registration.id)
    stamp = clock.to_storage(clock.now())
    tx = Transaction()
    tx.update("registration", registration, _anonymise_actions(stamp), Registration.erased_at.does_not_exist())
    if registration.email:
        tx.delete("guard", EmailGuard(meetup_id=guard_partition(registration.meetup_id), sk=roster.guard_key(registration.email)),
                  EmailGuard.sk.does_not_exist() | (EmailGuard.registration_id == registration.id))
    try:
        tx.commit()
    except TransactionCancelled:
        registration.refresh(consistent_read=True)
        if not registration.erased_at:
            from chalicelib.errors import ServiceUnavailable
            raise ServiceUnavailable(messages.TRY_AGAIN) from None
        return
    erased.registrations += 1
    erased.meetups.append(registration.meetup_id)


def erase_by_token(token: str, payload: dict, *, actor: str = "self (manage link)") -> dict:
    """The person erases the registration their manage link is for, after confirming."""
    from chalicelib import registration as roster
    f = Fields(payload, allowed=("confirm", "language"))
    if not f.boolean("confirm", required=True) and "confirm" not in f.errors:
        f.fail("confirm", "confirm_erasure")
    f.check()
    registration = roster.by_token(token)
    email_hash, registration_id = registration.email_hash, registration.id
    erased = Erased()
    _erase_one(registration, erased, all_mail_of_address=False)
    _audit(None, actor=actor, reason="request", erased=erased.as_dict(), now=clock.now(), email_hash=email_hash,
           registration_id=registration_id)
    logger.info("registration erased on request", extra={"registration_id": registration_id, **erased.as_dict()})
    return erased.as_dict()


def read_erasure_request(payload: dict) -> str:
    f = Fields(payload, allowed=("email",))
    email = f.email("email", required=True)
    f.check()
    return email


def erase_address(email: str, *, actor: str) -> dict:
    """Erase everything held about an address: its registrations in every meetup (cancelled
    first), their names in the activity log, organiser subscriptions, queued mail, and the address
    as a meetup's host. Answered with what was erased; audited with a hash of the address only."""
    email_hash = address_hash(email)
    erased = Erased()
    for registration in _registrations_of(email_hash):
        _erase_one(registration, erased, all_mail_of_address=True)
    with storage_errors():
        organiser_ids = [key.id for key in Organiser.by_email.query(email_hash)]
        organisers = list(Organiser.batch_get(organiser_ids, consistent_read=True)) if organiser_ids else []
    for organiser in organisers:
        if conditional(lambda: organiser.delete(condition=Organiser.email_hash == email_hash)):
            erased.organisers += 1
    erased.queued_mail += _delete_queued_mail(email_hash)
    erased.meetup_hosts += _erase_host(email_hash)
    erased.meetups = sorted(set(erased.meetups))
    record = _audit(None, actor=actor, reason="request", erased=erased.as_dict(), now=clock.now(),
                    email_hash=email_hash)
    logger.info("address erased", extra={"audit": record.sk, **erased.as_dict()})
    return {"erased": erased.as_dict(), "audit_id": record.sk.removeprefix(ERASURE_AUDIT_PREFIX),
            "email_hash": email_hash}


def _erase_host(email_hash: str) -> int:
    """The tour is small and read whole by its listing index (a Query): hosts are found there."""
    count = 0
    with storage_errors():
        for meetup in catalogue.tour():
            if meetup.host_email and address_hash(meetup.host_email) == email_hash:
                if conditional(lambda: meetup.update(actions=[Meetup.host_email.remove()],
                                                     condition=Meetup.host_email == meetup.host_email)):
                    count += 1
    return count


# --- retention: the scheduled job -------------------------------------------------------------------

def run_retention(now: datetime | None = None, *, time_budget: float = JOB_TIME_BUDGET_SECONDS,
                  activity_lookback_days: int = ACTIVITY_LOOKBACK_DAYS) -> dict:
    """Erase what has been kept long enough. Safe to run at any time and concurrently (every
    change is conditional); what the time budget leaves is done by the next run."""
    started = _time.monotonic()
    now = now or clock.now()
    cutoff = now - get_settings().retention
    result = {"meetups": 0, "registrations": 0, "guards": 0, "cancelled": 0, "activity_records": 0}

    def out_of_time() -> bool:
        return _time.monotonic() - started > time_budget

    _erase_ended_meetups(cutoff, now, result, out_of_time)
    if not out_of_time():
        _erase_cancelled(now, result, out_of_time)
    if not out_of_time():
        _expire_activity(cutoff, result, out_of_time, activity_lookback_days)
    if result["registrations"] or result["meetups"]:
        _audit(None, actor="retention job", reason="retention", erased=dict(result), now=now)
    logger.info("retention run", extra=result)
    return result


def _erase_ended_meetups(cutoff: datetime, now: datetime, result: dict, out_of_time) -> None:
    cutoff_stamp = clock.to_storage(cutoff)
    with storage_errors():
        ended = [m for m in catalogue.tour(MeetupsByStart.starts_at <= cutoff_stamp)
                 if m.ends_at <= cutoff_stamp and not m.personal_data_erased_at]
    for meetup in ended:
        if out_of_time():
            return
        _erase_meetup(meetup, now, result)


def _erase_meetup(meetup: Meetup, now: datetime, result: dict) -> None:
    stamp = clock.to_storage(now)
    with storage_errors():
        items = list(Registration.query(meetup.id, Registration.sk.startswith(REGISTRATION_PREFIX),
                                        consistent_read=True, filter_condition=Registration.erased_at.does_not_exist()))
        guards = list(EmailGuard.query(guard_partition(meetup.id), EmailGuard.sk.startswith(EMAIL_GUARD_PREFIX),
                                       consistent_read=True))
    for start in range(0, len(items), 25):
        tx = Transaction()
        for registration in items[start:start + 25]:
            tx.update(registration.id, registration, _anonymise_actions(stamp), Registration.erased_at.does_not_exist())
        try:
            tx.commit()
            result["registrations"] += len(items[start:start + 25])
        except TransactionCancelled:  # another run, or an erasure on request, got there first: one by one
            for registration in items[start:start + 25]:
                if conditional(lambda: registration.update(actions=_anonymise_actions(stamp),
                                                           condition=Registration.erased_at.does_not_exist())):
                    result["registrations"] += 1
    with storage_errors():
        with EmailGuard.batch_write() as batch:
            for guard in guards:
                batch.delete(guard)
        result["guards"] += len(guards)
    if conditional(lambda: meetup.update(  # done, unless an admin moved the meetup meanwhile
            actions=[Meetup.personal_data_erased_at.set(stamp), Meetup.host_email.remove()],
            condition=(Meetup.ends_at == meetup.ends_at) & Meetup.personal_data_erased_at.does_not_exist())):
        result["meetups"] += 1


def _erase_cancelled(now: datetime, result: dict, out_of_time) -> None:
    from chalicelib.models import ERASURE_DUE
    stamp = clock.to_storage(now)
    with storage_errors():
        keys = [(key.meetup_id, key.sk) for key in
                Registration.by_erasure.query(ERASURE_DUE, RegistrationsByErasure.erase_after <= stamp, limit=500)]
        due = list(Registration.batch_get(keys, consistent_read=True)) if keys else []
    for registration in due:
        if out_of_time():
            return
        if registration.erased_at or not registration.erase_after or registration.erase_after > stamp:
            continue
        if conditional(lambda: registration.update(actions=_anonymise_actions(stamp), condition=(
                Registration.erase_after == registration.erase_after) & Registration.erased_at.does_not_exist())):
            result["cancelled"] += 1
            result["registrations"] += 1


def _expire_activity(cutoff: datetime, result: dict, out_of_time, lookback_days: int) -> None:
    """The activity log's TTL deletes records some time after they expire; this deletes those
    still there. A record's sort key starts with its time: a range condition reads only them."""
    cutoff_stamp = clock.stamp(cutoff)
    for back in range(lookback_days, -1, -1):
        if out_of_time():
            return
        day = (cutoff - timedelta(days=back)).strftime("%Y-%m-%d")
        with storage_errors():
            expired = [item for partition in activity_partitions(day)
                       for item in Activity.query(partition, Activity.sk < cutoff_stamp, attributes_to_get=["day", "sk"])]
            if not expired:
                continue
            with Activity.batch_write() as batch:
                for item in expired:
                    batch.delete(item)
        result["activity_records"] += len(expired)


# --- backfill (records written before this module) -------------------------------------------------

def backfill(now: datetime | None = None) -> dict:
    """Once after deploying: hashes for the lookups of registrations and organisers written before,
    when-to-erase for cancelled ones, and the activity log's old 120-day records. Queries only."""
    from chalicelib import digest
    from chalicelib.models import ERASURE_DUE
    now = now or clock.now()
    counts = {"registrations": 0, "organisers": 0}
    with storage_errors():
        for meetup in catalogue.tour():
            for registration in Registration.query(meetup.id, Registration.sk.startswith(REGISTRATION_PREFIX)):
                if registration.erased_at or not registration.email or registration.email_hash:
                    continue
                actions = [Registration.email_hash.set(address_hash(registration.email))]
                if registration.status == RegistrationStatus.CANCELLED:
                    cancelled = clock.from_storage(registration.cancelled_at or registration.updated_at)
                    actions += [Registration.erase_due.set(ERASURE_DUE),
                                Registration.erase_after.set(clock.to_storage(cancelled + get_settings().retention))]
                registration.update(actions=actions)
                counts["registrations"] += 1
        for organiser in digest.list_organisers():
            if not organiser.email_hash:
                organiser.update(actions=[Organiser.email_hash.set(address_hash(organiser.email))])
                counts["organisers"] += 1
    counts["retention"] = run_retention(now, time_budget=600, activity_lookback_days=130)
    return counts
