"""Host-to-host handover: after a meetup its host passes the baton to another city, which hosts
the follow-up meetup. The follow-ups of a first meetup form its chain.

Rules, and how the database enforces them:
- One handover per meetup: the Handover item is keyed by the outgoing meetup's id and put with
  `attribute_not_exists`, so a second handover is refused (409) however close in time it comes.
- Both or neither: the follow-up meetup, the handover, its activity record (read by the digest)
  and the emails to both hosts are one transaction. It also checks that the outgoing meetup
  still exists, is not cancelled and has not changed since the request was validated against it.
- `proposed` -> `accepted` (the incoming host, through the signed link in their email) ->
  `completed` (once the outgoing meetup has taken place): each transition is one update,
  conditioned on the status it leaves, that appends its entry to the audit trail.
- The invitations to the opted-in participants of the outgoing meetup can be many: a background
  job (chalicelib/jobs.py, one per handover) queues them after the commit, page by page, with ids
  derived from (handover, registration), so queueing them again never sends anyone a second one.
- A repeated request with the same `Idempotency-Key` (Powertools Idempotency, table
  `idempotency`) answers the first answer and changes nothing. The key is scoped to the
  outgoing meetup; the same key with a different body is 422 `idempotency_key_reused`.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
from datetime import datetime

from pynamodb.exceptions import DoesNotExist

from chalicelib import catalogue, clock, jobs, messages, tokens
from chalicelib.config import get_settings
from chalicelib.errors import Conflict, MalformedRequest, NotFound, ServiceUnavailable, ValidationFailed
from chalicelib.messages import Message
from chalicelib.models import Activity, AuditEntry, Handover, Meetup, OutboxMessage, Registration
from chalicelib.observability import logger
from chalicelib.statuses import ACTIVE, HandoverStatus, JobState, MeetupState
from chalicelib.storage import (Transaction, TransactionCancelled, conditional, new_activity, retry_pause,
                                storage_errors)
from chalicelib.validation import Fields

PURPOSE = "handover"  # of the signed accept link
FIELDS = ("city", "host_name", "host_email", "starts_at", "ends_at", "mode", "capacity", "province", "title",
          "venue", "join_url", "waitlist", "description")
_CATALOGUE_NAMES = {"host.name": "host_name", "host.email": "host_email"}  # catalogue's name -> ours
SYSTEM = "system"
MAX_ATTEMPTS = 8
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
IDEMPOTENCY_KEY_MAX = 255


class IdempotencyKeyReused(ValidationFailed):
    """The same Idempotency-Key came with a different request body."""

    code = "idempotency_key_reused"


def new_id() -> str:
    return secrets.token_urlsafe(9)


# --- views ---------------------------------------------------------------------------------------

ACCEPT_LINK_DAYS = 120  # an accept link works this long after the handover was proposed


def accept_url(handover: Handover) -> str:
    from datetime import timedelta
    token = tokens.sign(PURPOSE, handover.from_meetup_id, handover.id,
                        expires=clock.from_storage(handover.created_at) + timedelta(days=ACCEPT_LINK_DAYS))
    return f"{get_settings().public_base_url}/handovers/{token}"


def view(handover: Handover) -> dict:
    return {"id": handover.id, "from_meetup_id": handover.from_meetup_id, "to_meetup_id": handover.to_meetup_id,
            "status": handover.status}


def _audit_view(entry: AuditEntry) -> dict:
    return {"at": clock.to_public(entry.at), "actor": entry.actor, "action": entry.action, "note": entry.note}


def admin_view(handover: Handover) -> dict:
    return view(handover) | {
        "created_at": clock.to_public(handover.created_at), "updated_at": clock.to_public(handover.updated_at),
        "accept_url": accept_url(handover), "invitations_queued": _int_or_none(handover.invitations_queued),
        "audit": [_audit_view(entry) for entry in handover.audit or []]}


def _int_or_none(value) -> int | None:
    return None if value is None else int(value)


def _meetups(handover: Handover) -> tuple[Meetup, Meetup]:
    return (catalogue.load(handover.from_meetup_id, consistent=True),
            catalogue.load(handover.to_meetup_id, consistent=True))


def _public_body(handover: Handover) -> dict:
    outgoing, follow_up = _meetups(handover)
    return {"handover": view(handover), "from_meetup": catalogue.view(outgoing),
            "to_meetup": catalogue.view(follow_up)}


def _admin_body(handover: Handover, outgoing: Meetup, follow_up: Meetup) -> dict:
    return {"handover": admin_view(handover), "from_meetup": catalogue.admin_view(outgoing),
            "to_meetup": catalogue.admin_view(follow_up)}


def _created_body(handover: Handover, follow_up: Meetup) -> dict:
    return {"handover": view(handover), "meetup": catalogue.view(follow_up)}


# --- reads -------------------------------------------------------------------------------------

def _load(from_meetup_id: str) -> Handover | None:
    if not from_meetup_id or len(from_meetup_id) > 100:
        return None
    with storage_errors():
        try:
            return Handover.get(from_meetup_id, consistent_read=True)
        except DoesNotExist:
            return None


def load(from_meetup_id: str) -> Handover:
    handover = _load(from_meetup_id)
    if handover is None:
        catalogue.load(from_meetup_id)  # an unknown meetup says so
        raise NotFound(Message(f"Meetup {from_meetup_id!r} is niet overgedragen.", f"Meetup {from_meetup_id!r} has not been handed over."))
    return handover


def _by_token(token: str) -> Handover:
    from_meetup_id, handover_id = tokens.verify(PURPOSE, token, 2)
    handover = _load(from_meetup_id)
    if handover is None or handover.id != handover_id:
        raise NotFound(messages.LINK_INVALID)
    return handover


def chain(meetup_id: str) -> list[dict]:
    """The handover chain a meetup belongs to, oldest first: one query of the `by_chain` index
    (every member carries the id of the chain's first meetup; the first carries its own)."""
    meetup = catalogue.load(meetup_id)
    with storage_errors():
        member_ids = [key.id for key in Meetup.by_chain.query(meetup.chain_id or meetup.id)]
    members = catalogue.load_many(member_ids)
    if all(member.id != meetup.id for member in members):  # an index is updated a moment later
        members = sorted(members + [meetup], key=lambda m: m.starts_at)
    return [catalogue.view(member) for member in members]


# --- the request -------------------------------------------------------------------------------

def _same_city(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _read(outgoing: Meetup, payload: dict, *, now: datetime, meetup_id: str | None, demo: bool) -> Meetup:
    """Validate a handover request against the outgoing meetup; the UNSAVED follow-up meetup.
    The meetup fields are catalogue's (one set of rules); one 422 names every problem."""
    f = Fields(payload, allowed=FIELDS)
    if outgoing.state == MeetupState.CANCELLED:
        f.fail("meetup", Message("Deze meetup gaat niet door en kan niet worden overgedragen.",
                                 "This meetup is cancelled: a cancelled meetup cannot be handed over."))
    city = f.text("city", required=True, max_length=100)
    f.text("host_name", required=True, max_length=200, person=True)
    f.email("host_email", required=True)
    starts = f.moment("starts_at", required=True)
    if city and outgoing.city and _same_city(city, outgoing.city):
        f.fail("city", Message(f"De vervolgmeetup moet in een andere plaats zijn dan {outgoing.city}.",
                               f"The follow-up must be in another city than {outgoing.city}."))
    if starts is not None:
        if clock.to_storage(starts) <= outgoing.starts_at:
            shown = clock.to_public(outgoing.starts_at)
            f.fail("starts_at", Message(f"De begintijd moet na de begintijd van de huidige meetup ({shown}) liggen.",
                                        f"The start time must be after the start of the outgoing meetup ({shown})."))
        elif starts <= now:
            f.fail("starts_at", Message("De begintijd moet in de toekomst liggen.", "The start time must be in the future."))

    title = payload.get("title")
    if title is None or (isinstance(title, str) and not title.strip()):
        title = f"Klassen vervolgmeetup {city or ''}".strip()
    fields = {"kind": "follow_up", "follows": outgoing.id, "title": title,
              "host": {"name": payload.get("host_name") or "", "email": payload.get("host_email") or ""},
              "waitlist": {"enabled": bool(outgoing.waitlist_enabled)}}
    fields |= {name: payload[name] for name in ("city", "starts_at", "ends_at", "mode", "capacity", "venue",
                                                "join_url", "description", "waitlist") if name in payload}
    if payload.get("province") is not None:  # else the outgoing meetup's
        fields["province"] = payload["province"]
    try:
        follow_up = catalogue.build_meetup(fields, meetup_id=meetup_id, demo=demo, origin=outgoing)
    except ValidationFailed as failed:
        for name, problem in failed.fields.items():
            f.fail(_CATALOGUE_NAMES.get(name, name), problem)
        follow_up = None
    f.check()
    return follow_up


def _request_key(from_meetup_id: str, key: str, payload: dict) -> str:
    """What makes two requests the same one: the meetup, the Idempotency-Key and the body."""
    text = json.dumps({"meetup": from_meetup_id, "key": key, "body": payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _checked_key(key: str) -> str:
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX or not all(" " <= ch <= "~" for ch in key):
        raise MalformedRequest(f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters",
                               code="invalid_idempotency_key")
    return key


# --- records written with the handover -----------------------------------------------------------

def _entry(now: datetime, actor: str, action: str, note: str | None = None) -> AuditEntry:
    return AuditEntry(at=clock.stamp(now), actor=actor[:200], action=action, note=note)


def _activity(handover: Handover, outgoing: Meetup, follow_up: Meetup, now: datetime) -> Activity:
    return new_activity("handover", outgoing, now, {
        "from_meetup_id": outgoing.id, "to_meetup_id": follow_up.id, "from_city": outgoing.city,
        "to_city": follow_up.city, "handover_id": handover.id, "to_starts_at": follow_up.starts_at})


def _meetup_context(meetup: Meetup) -> dict:
    base = get_settings().public_base_url
    return {"id": meetup.id, "title": meetup.title, "starts_at": meetup.starts_at, "ends_at": meetup.ends_at,
            "mode": meetup.mode, "city": meetup.city, "venue": meetup.venue,
            "url": f"{base}/meetups/{meetup.id}"}


def _handover_context(handover: Handover, outgoing: Meetup, follow_up: Meetup) -> dict:
    return {"id": handover.id, "accept_url": accept_url(handover),
            "from": {"id": outgoing.id, "title": outgoing.title, "city": outgoing.city,
                     "province": outgoing.province, "starts_at": outgoing.starts_at,
                     "host_name": outgoing.host_name, "confirmed": int(outgoing.confirmed),
                     "capacity": int(outgoing.capacity), "waitlist_enabled": bool(outgoing.waitlist_enabled),
                     "waitlist_length": int(outgoing.waitlist_length)},
            "to": {"id": follow_up.id, "host_name": follow_up.host_name, "city": follow_up.city}}


def _host_mails(handover: Handover, outgoing: Meetup, follow_up: Meetup) -> list[OutboxMessage]:
    from chalicelib import outbox
    shared = {"meetup": _meetup_context(follow_up), "handover": _handover_context(handover, outgoing, follow_up)}
    mails = [outbox.message(follow_up.host_email, "handover_incoming", "nl", {"name": follow_up.host_name, **shared})]
    if outgoing.host_email:
        mails.append(outbox.message(outgoing.host_email, "handover_outgoing", "nl",
                                    {"name": outgoing.host_name, **shared}))
    return mails


# --- handing over --------------------------------------------------------------------------------

def hand_over(from_meetup_id: str, payload: dict, *, actor: str, idempotency_key: str | None = None,
              lambda_context=None, meetup_id: str | None = None, demo: bool = False) -> dict:
    """Create the follow-up meetup and the handover of `from_meetup_id`; the 201 body.

    With `idempotency_key` the answer is remembered (Powertools Idempotency) and a repeat of the
    request gets it again without running anything."""
    if idempotency_key is None:
        return _hand_over(from_meetup_id, payload, actor=actor, request_key=None, meetup_id=meetup_id, demo=demo)
    return _idempotent(from_meetup_id, payload, _checked_key(idempotency_key), actor=actor,
                       lambda_context=lambda_context, meetup_id=meetup_id, demo=demo)


_persistence = None
_persistence_lock = threading.Lock()


def _persistence_store():
    """One Powertools DynamoDB persistence layer per container. Its client is built from
    settings, like the models' connection: the endpoint comes from AWS_ENDPOINT_URL_DYNAMODB
    locally (boto3 reads that variable too; this keeps one source for it) and the region is ours."""
    global _persistence
    with _persistence_lock:
        if _persistence is None:
            import boto3
            from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
            from botocore.config import Config
            settings = get_settings()
            client = boto3.session.Session().client(
                "dynamodb", region_name=settings.region, endpoint_url=settings.dynamodb_endpoint,
                config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"}))
            _persistence = DynamoDBPersistenceLayer(table_name=settings.table_name("idempotency"),
                                                    boto3_client=client)
        return _persistence


class _OutsideLambda:
    """Outside Lambda (scripts, tests) a run's claim on its key lapses after this long, as a
    Lambda's lapses when its invocation times out (Powertools reads this from the context)."""

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def _idempotent(from_meetup_id: str, payload: dict, key: str, *, actor: str, lambda_context,
                meetup_id: str | None, demo: bool) -> dict:
    # Imported here, not at the top: only this route needs Powertools' idempotency (cold starts).
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError, IdempotencyValidationError)
    from aws_lambda_powertools.utilities.idempotency.exceptions import BaseError as IdempotencyError

    # The record's key: the outgoing meetup and the client's key; the body is the payload that
    # Powertools validates, so the same key with another body is refused, not answered.
    config = IdempotencyConfig(event_key_jmespath="[meetup_id, key]", payload_validation_jmespath="body",
                               expires_after_seconds=IDEMPOTENCY_TTL_SECONDS, hash_function="sha256",
                               # an unfinished run's claim on the key ends with its invocation
                               lambda_context=lambda_context or _OutsideLambda())
    run = idempotent_function(_run_request, data_keyword_argument="request", persistence_store=_persistence_store(),
                              config=config, key_prefix="handover")
    try:
        return run(request={"meetup_id": from_meetup_id, "key": key, "body": payload}, actor=actor,
                   meetup_id=meetup_id, demo=demo)
    except IdempotencyValidationError:
        raise IdempotencyKeyReused({"Idempotency-Key": "was used before with a different request body"},
                                   "This Idempotency-Key was used for a different request; use a new key") from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict(Message("Een verzoek met deze Idempotency-Key loopt nog; probeer het zo nog eens.",
                               "A request with this Idempotency-Key is still running; try again in a moment."),
                       code="idempotency_in_progress") from None
    except IdempotencyError as exc:
        logger.warning("idempotency store failed", exc_info=exc)
        raise ServiceUnavailable(messages.DATABASE_DOWN) from exc


def _run_request(*, request: dict, actor: str, meetup_id: str | None, demo: bool) -> dict:
    key = _request_key(request["meetup_id"], request["key"], request["body"])
    return _hand_over(request["meetup_id"], request["body"], actor=actor, request_key=key, meetup_id=meetup_id,
                      demo=demo)


def _hand_over(from_meetup_id: str, payload: dict, *, actor: str, request_key: str | None,
               meetup_id: str | None, demo: bool) -> dict:
    outgoing = catalogue.load(from_meetup_id, consistent=True)
    for attempt in range(MAX_ATTEMPTS):
        now = clock.now()
        stamp = clock.to_storage(now)
        follow_up = _read(outgoing, payload, now=now, meetup_id=meetup_id, demo=demo)
        follow_up.awaiting_host = True  # announced; sign-up opens when the new host accepts
        handover = Handover(from_meetup_id=outgoing.id, id=new_id(), to_meetup_id=follow_up.id, status=HandoverStatus.PROPOSED,
                            audit=[_entry(now, actor, "proposed",
                                          f"{outgoing.city or 'online'} -> {follow_up.city}")],
                            created_at=stamp, updated_at=stamp, request_key=request_key)
        mails = _host_mails(handover, outgoing, follow_up)
        tx = Transaction()
        tx.check("outgoing", Meetup, outgoing.id,
                 condition=Meetup.id.exists() & (Meetup.state != MeetupState.CANCELLED)
                 & (Meetup.updated_at == outgoing.updated_at))
        tx.put("meetup", follow_up, Meetup.id.does_not_exist())
        tx.put("handover", handover, Handover.from_meetup_id.does_not_exist())
        tx.put("activity", _activity(handover, outgoing, follow_up, now))
        for number, mail in enumerate(mails):
            tx.put(f"mail {number}", mail, OutboxMessage.id.does_not_exist())
        try:
            tx.commit()
        except TransactionCancelled as cancelled:
            if cancelled.failed("handover"):
                return _handed_over_already(outgoing.id, request_key)
            if cancelled.failed("meetup") and meetup_id:
                raise Conflict(Message(f"Er is al een meetup met id {meetup_id!r}.", f"A meetup with id {meetup_id!r} exists already."),
                               code="exists") from cancelled
            if cancelled.failed("outgoing"):  # changed meanwhile: validate against what it is now
                outgoing = catalogue.load(from_meetup_id, consistent=True)
                continue
            retry_pause(attempt)  # another transaction on the same items, or a random id collided
            continue
        logger.info("meetup handed over", extra={"from_meetup_id": outgoing.id, "to_meetup_id": follow_up.id,
                                                 "handover_id": handover.id, "attempts": attempt + 1})
        from chalicelib import outbox
        outbox.dispatch(mails)
        _invite_safely(handover, outgoing, follow_up)
        return _created_body(handover, follow_up)
    raise ServiceUnavailable(messages.BUSY)


def _handed_over_already(from_meetup_id: str, request_key: str | None) -> dict:
    """409, unless this very request made the handover (its answer was lost): then that answer."""
    existing = _load(from_meetup_id)
    if existing is not None and request_key and existing.request_key == request_key:
        return _created_body(existing, catalogue.load(existing.to_meetup_id, consistent=True))
    raise Conflict(Message(f"Meetup {from_meetup_id!r} is al overgedragen.", f"Meetup {from_meetup_id!r} has been handed over already."),
                   code="already_handed_over")


# --- invitations to the follow-up ------------------------------------------------------------------

def invitation_id(handover: Handover, registration: Registration) -> str:
    """The outbox id of one invitation: the same on every run, so it is queued once."""
    return "fu-" + hashlib.sha256(f"{handover.id}:{registration.id}".encode()).hexdigest()[:24]


def _invitation(handover: Handover, outgoing: Meetup, follow_up: Meetup, registration: Registration) -> OutboxMessage:
    from chalicelib import outbox, privacy
    context = {"name": registration.name, "registration_id": registration.id,
               "meetup": _meetup_context(follow_up),
               # One click ends the follow-up mail (RFC 8058 headers, and a link in the footer).
               "list_unsubscribe_url": privacy.follow_up_unsubscribe_url(registration, outgoing),
               "handover": {"id": handover.id, "from": {"id": outgoing.id, "title": outgoing.title,
                                                        "city": outgoing.city, "starts_at": outgoing.starts_at}}}
    return outbox.message(registration.email, "follow_up_invitation", registration.language or "nl", context,
                          message_id=invitation_id(handover, registration))


def invitations_job_id(handover: Handover) -> str:
    """One invitations job per handover: starting it again finds the one there is."""
    return f"invitations-{handover.id}"


def invite(handover: Handover, outgoing: Meetup, follow_up: Meetup):
    """Start (once) the background job that invites every active registration of the outgoing
    meetup that opted in (`invitations_page`), then notes it on the handover. Returns the job."""
    return jobs.start("invitations", outgoing.id, params={"handover_id": handover.id, "to_meetup_id": follow_up.id},
                      job_id=invitations_job_id(handover), actor=SYSTEM)


def invitations_page(job, size: int) -> tuple[int, str | None, bool, list[OutboxMessage]]:
    """One page of the invitations job: the next `size` registrations of the outgoing meetup
    (`job.meetup_id`), an invitation to each that is active and opted in, each queued once.
    Once the last page is done, the count is noted on the handover."""
    from chalicelib import outbox
    handover = load(job.meetup_id)
    outgoing, follow_up = _meetups(handover)
    page, cursor, more = jobs.registrations_page(outgoing.id, job.cursor, size)
    people = [r for r in page if r.status in ACTIVE and r.follow_up_opt_in and not r.erased_at]
    queued = outbox.queue_each({invitation_id(handover, person): _invitation(handover, outgoing, follow_up, person)
                                for person in people})
    if not more:
        _note_invited(handover, int(job.done or 0) + len(people))
    return len(people), cursor, not more, queued


def _note_invited(handover: Handover, invited: int) -> None:
    now = clock.now()
    conditional(lambda: handover.update(actions=[  # False: another run noted it first
        Handover.invitations_queued.set(invited),
        Handover.audit.set((Handover.audit | []).append([
            _entry(now, SYSTEM, "invited", f"{invited} opted-in participants invited")])),
    ], condition=Handover.invitations_queued.does_not_exist()))
    logger.info("follow-up invitations queued", extra={"handover_id": handover.id, "invited": invited})


def _invite_safely(handover: Handover, outgoing: Meetup, follow_up: Meetup) -> None:
    """After the handover committed, nothing may fail its request: a job not started now is
    started by the next look at the handover (`_catch_up`)."""
    from chalicelib.errors import DomainError
    try:
        job = invite(handover, outgoing, follow_up)
    except DomainError as exc:
        logger.warning("follow-up invitations not started yet", exc_info=exc, extra={"handover_id": handover.id})
        return
    if job.state in (JobState.DONE, JobState.FAILED):
        with storage_errors():
            handover.refresh(consistent_read=True)


# --- the life of a handover ----------------------------------------------------------------------

def _taken_place(outgoing: Meetup, now: datetime) -> bool:
    return outgoing.state != MeetupState.CANCELLED and clock.from_storage(outgoing.ends_at) <= now


def _transition(handover: Handover, leaving: str, status: str, entries: list[AuditEntry], now: datetime) -> bool:
    """One conditional update: `leaving` -> `status`, its audit entries appended. False when the
    handover was no longer `leaving` (then `handover` holds what it is now)."""
    if conditional(lambda: handover.update(
            actions=[Handover.status.set(status), Handover.updated_at.set(clock.to_storage(now)),
                     Handover.audit.set((Handover.audit | []).append(entries))],
            condition=(Handover.status == leaving) & (Handover.id == handover.id))):
        return True
    with storage_errors():
        handover.refresh(consistent_read=True)
    return False


def _accept(handover: Handover, follow_up: Meetup, status: str, entries: list[AuditEntry], now: datetime) -> bool:
    """`proposed` -> `status` and the follow-up meetup opens for sign-up (its `awaiting_host`
    goes), in one transaction. False when the handover was no longer proposed (then `handover`
    holds what it is now)."""
    stamp = clock.to_storage(now)
    for attempt in range(MAX_ATTEMPTS):
        tx = Transaction()
        tx.update("handover", handover, [Handover.status.set(status), Handover.updated_at.set(stamp),
                                         Handover.audit.set((Handover.audit | []).append(entries))],
                  (Handover.status == HandoverStatus.PROPOSED) & (Handover.id == handover.id))
        tx.update("meetup", follow_up, [Meetup.awaiting_host.remove(), Meetup.updated_at.set(stamp)],
                  Meetup.id.exists())
        try:
            tx.commit()
        except TransactionCancelled as cancelled:
            if cancelled.failed("handover"):
                with storage_errors():
                    handover.refresh(consistent_read=True)
                return False
            if cancelled.failed("meetup"):
                raise NotFound(messages.LINK_INVALID) from cancelled
            retry_pause(attempt)
            continue
        handover.status = status
        from chalicelib import registration
        registration.hints.forget(follow_up.id)
        return True
    raise ServiceUnavailable(messages.BUSY)


def _completion(now: datetime, actor: str = SYSTEM) -> AuditEntry:
    return _entry(now, actor, "completed", "the outgoing meetup has taken place")


def _catch_up(handover: Handover, outgoing: Meetup, follow_up: Meetup, now: datetime) -> None:
    """What happens lazily when a handover is looked at: completion once the outgoing meetup
    has taken place, and invitations that a failed request did not queue."""
    if handover.status == HandoverStatus.ACCEPTED and _taken_place(outgoing, now):
        if _transition(handover, HandoverStatus.ACCEPTED, HandoverStatus.COMPLETED, [_completion(now)], now):
            logger.info("handover completed", extra={"handover_id": handover.id, "by": SYSTEM})
    if handover.invitations_queued is None:
        _invite_safely(handover, outgoing, follow_up)


def find_by_token(token: str) -> dict:
    """The handover behind an accept link. Shows, never changes: mail scanners open links."""
    return _public_body(_by_token(token))


def accept(token: str) -> dict:
    """The incoming host accepts; again (or later) answers the same. Accepted after the
    outgoing meetup took place, the handover is completed in the same update."""
    handover = _by_token(token)
    if handover.status == HandoverStatus.PROPOSED:
        outgoing, follow_up = _meetups(handover)
        now = clock.now()
        entries = [_entry(now, f"incoming host {follow_up.host_email or follow_up.host_name}", "accepted")]
        status = HandoverStatus.ACCEPTED
        if _taken_place(outgoing, now):
            entries.append(_completion(now))
            status = HandoverStatus.COMPLETED
        if _accept(handover, follow_up, status, entries, now):
            logger.info("handover accepted", extra={"handover_id": handover.id, "status": status})
            if handover.invitations_queued is None:
                _invite_safely(handover, outgoing, follow_up)
    return _public_body(handover)


def admin_handover(from_meetup_id: str) -> dict:
    """The handover of a meetup with its audit trail, for admins (catching up lazily first)."""
    handover = load(from_meetup_id)
    outgoing, follow_up = _meetups(handover)
    _catch_up(handover, outgoing, follow_up, clock.now())
    return _admin_body(handover, outgoing, follow_up)


def complete(from_meetup_id: str, *, actor: str) -> dict:
    """Mark a handover completed: it must be accepted and the outgoing meetup must have taken place.
    Again on a completed one answers the same."""
    handover = load(from_meetup_id)
    outgoing, follow_up = _meetups(handover)
    now = clock.now()
    if handover.status == HandoverStatus.ACCEPTED:
        if outgoing.state == MeetupState.CANCELLED:
            raise Conflict(Message("De huidige meetup ging niet door.", "The outgoing meetup was cancelled: it did not take place."),
                           code="outgoing_cancelled")
        if not _taken_place(outgoing, now):
            raise Conflict(f"The outgoing meetup ends at {clock.to_public(outgoing.ends_at)}; a handover is "
                           "completed after it has taken place", code="not_taken_place")
        if _transition(handover, HandoverStatus.ACCEPTED, HandoverStatus.COMPLETED, [_completion(now, actor)], now):
            logger.info("handover completed", extra={"handover_id": handover.id, "by": actor})
    if handover.status != HandoverStatus.COMPLETED:
        raise Conflict(f"The handover is {handover.status}: the incoming host has not accepted it yet",
                       code="not_accepted")
    if handover.invitations_queued is None:
        _invite_safely(handover, outgoing, follow_up)
    return _admin_body(handover, outgoing, follow_up)


def _invitations_step(job) -> "jobs.Step":
    processed, cursor, finished, queued = invitations_page(job, jobs.PAGE)
    return jobs.Step(processed, cursor, finished, queued)


jobs.register_step("invitations", _invitations_step)
