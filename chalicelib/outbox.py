"""The mail outbox: an email exists if and only if the change that caused it committed, a
mail backend that is down never blocks or loses a registration, and a message is sent once.

How a caller uses it::

    msg = outbox.message(reg.email, "registration_confirmed", reg.language, context)
    with TransactWrite(connection=...) as tx:
        ...                                   # the change itself
        tx.save(msg, condition=OutboxMessage.id.does_not_exist())
    outbox.deliver_now([msg])                 # after the commit; never raises

Life of a message (table `outbox`, sparse GSI `by_due` on (due, next_attempt_at))::

    pending --deliver_now--------------------------------------------> sent
    pending --deliver_due: claim--> sending --send--> sent
                                            --failure--> pending (backoff) ... --> failed
    pending|sending, recipient suppressed (hard bounce, complaint) -----> suppressed (never sent)
    sending whose lease ran out (crashed sender) is due again and can be claimed again.

`next_attempt_at` (and every other time here) is `clock.stamp()`: UTC with microseconds,
"2027-04-12T17:30:00.000000Z", fixed width, so the strings compare like the times.
A new message is due GRACE after its creation: the request delivers it itself first,
the scheduled `deliver_due` only takes what the request could not send. While a message is
claimed, `next_attempt_at` = `lease_until`, so it comes back by itself if the sender dies.
Sent and failed messages lose `due` (they leave the index), and their address and content
(privacy: they leave `by_recipient` too); the bare record expires by TTL after the retention period.
"""
from __future__ import annotations

import queue
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import Callable, Iterable

from pynamodb.exceptions import PynamoDBException, UpdateError

from chalicelib import clock, mail, messages, storage
from chalicelib.config import get_settings
from chalicelib.models import OUTBOX_DUE_KEYS, OutboxByDue, OutboxMessage, outbox_due_key
from chalicelib.observability import logger
from chalicelib.addresses import address_hash
from chalicelib.statuses import OutboxState
from chalicelib.storage import Transaction, TransactionCancelled, conditional, new_outbox_message, retry_pause

GRACE = timedelta(minutes=2)
SAFETY_MARGIN = timedelta(seconds=30)  # a message this close to its grace's end is claimed first
LEASE = timedelta(minutes=5)
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
THROTTLE_BACKOFF = timedelta(minutes=2)
MAX_ATTEMPTS = 12  # about 6 hours of retries; then the message is `failed` (and logged)
# deliver_due stops a batch after this many failures in a row (the backend is likely down)
# or when its time budget is spent, and leaves the rest for the next run.
MAX_CONSECUTIVE_FAILURES = 3
TIME_BUDGET_SECONDS = 45.0


def new_id() -> str:
    return secrets.token_hex(12)


def message(recipient: str, template: str, language: str, context: dict, *,
            now: datetime | None = None, message_id: str | None = None) -> OutboxMessage:
    """An UNSAVED outbox message: save it in the caller's own transaction.

    `message_id`: a deterministic id (letters, digits, - and _) for a message that a re-run may
    queue again; saved with `attribute_not_exists`, the second one is refused, not sent twice."""
    if template not in mail.TEMPLATES:
        raise ValueError(f"unknown email template {template!r}")
    now = now or clock.now()
    message_id = message_id or new_id()
    return new_outbox_message(message_id, due=outbox_due_key(message_id), next_attempt_at=clock.stamp(now + GRACE),
                              recipient=recipient, recipient_hash=address_hash(recipient), template=template,
                              language=language if language in mail.LANGUAGES else "nl", context=context, now=now)


def backoff(attempts: int) -> timedelta:
    """Delay before attempt `attempts + 1`: 1, 2, 4 ... minutes, at most an hour, plus jitter."""
    delay = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)
    return delay + delay * (secrets.randbelow(200) / 1000)  # + 0..20 %: spread out retries


def _compose(msg: OutboxMessage, meetups: dict | None = None):
    """The email as it is sent now: a waitlist place is told as it stands when the email is
    composed (whoever sends it: the request, the worker, the stream or the retry job), not as
    it was queued. `meetups`: the meetups read for this batch of emails (one read a meetup)."""
    context = msg.context
    if msg.template == "registration_waitlisted" and (context or {}).get("waitlist_ticket"):
        from chalicelib import line
        context = line.position_for_mail(context, meetups)
    return mail.compose(msg.template, msg.language, msg.recipient, context, message_id=msg.id)


def _log_extra(msg: OutboxMessage, **more) -> dict:
    return {"outbox_id": msg.id, "template": msg.template, "attempts": msg.attempts, **more}


def _forget_personal_data(now: datetime) -> list:
    """A message that is sent or given up keeps no address and no content (names, links)."""
    return [OutboxMessage.recipient.remove(), OutboxMessage.recipient_hash.remove(),
            OutboxMessage.context.remove(), OutboxMessage.expires_at.set(now + get_settings().retention)]


def _sent_actions(now: datetime) -> list:
    return [OutboxMessage.state.set(OutboxState.SENT), OutboxMessage.sent_at.set(clock.stamp(now)),
            OutboxMessage.due.remove(), OutboxMessage.next_attempt_at.remove(),
            OutboxMessage.lease_until.remove(), *_forget_personal_data(now)]


def _mark_sent(msg: OutboxMessage, condition, now: datetime) -> bool:
    try:
        msg.update(actions=_sent_actions(now), condition=condition)
        return True
    except PynamoDBException as exc:
        # Sent but not recorded: a later run may send it again once its lease/grace is over.
        logger.warning("outbox message sent but not marked sent", exc_info=exc,
                       extra=_log_extra(msg, condition_failed=storage.is_condition_failure(exc)))
        return False


def error_code(exc: Exception) -> str:
    """What is kept of a failure (logs, last_error): the backends' errors carry only a code
    (never a provider's text, which can name the recipient); anything else only its type."""
    if isinstance(exc, mail.MailDeliveryFailed):
        return f"{type(exc).__name__}: {exc}"[:200]
    return type(exc).__name__


def suppressed_ids(messages: Iterable[OutboxMessage]) -> set[str]:
    """Ids of the messages whose recipient is suppressed (one read for the lot)."""
    from chalicelib import suppression
    messages = list(messages)
    if not messages:
        return set()
    found = suppression.suppressed_among(m.recipient for m in messages)
    return {m.id for m in messages if m.recipient in found}


def _mark_suppressed(msg: OutboxMessage, condition, now: datetime) -> None:
    """Never sent: SES reported the address as a hard bounce or a complaint."""
    try:
        msg.update(actions=[OutboxMessage.state.set(OutboxState.SUPPRESSED), OutboxMessage.due.remove(),
                            OutboxMessage.next_attempt_at.remove(), OutboxMessage.lease_until.remove(),
                            OutboxMessage.last_error.set("suppressed"), *_forget_personal_data(now)],
                  condition=condition)
        logger.info("outbox message suppressed", extra=_log_extra(msg))
    except PynamoDBException as exc:
        logger.warning("outbox message suppressed but not recorded", extra=_log_extra(
            msg, condition_failed=storage.is_condition_failure(exc)))


def _record_failure(msg: OutboxMessage, exc: Exception, condition, now: datetime) -> None:
    attempts = (msg.attempts or 0) + 1
    throttled = isinstance(exc, mail.MailDeliveryFailed) and exc.throttled
    error = error_code(exc)
    actions = [OutboxMessage.attempts.add(1), OutboxMessage.last_error.set(error),
               OutboxMessage.lease_until.remove()]
    if attempts >= MAX_ATTEMPTS:
        actions += [OutboxMessage.state.set(OutboxState.FAILED), OutboxMessage.due.remove(),
                    OutboxMessage.next_attempt_at.remove(), *_forget_personal_data(now)]
        logger.error("outbox message given up", extra=_log_extra(msg, error=error))
    else:
        delay = max(backoff(attempts), THROTTLE_BACKOFF) if throttled else backoff(attempts)
        actions += [OutboxMessage.state.set(OutboxState.PENDING), OutboxMessage.due.set(outbox_due_key(msg.id)),
                    OutboxMessage.next_attempt_at.set(clock.stamp(now + delay))]
        logger.warning("outbox message not delivered; will retry",
                       extra=_log_extra(msg, error=error, throttled=throttled,
                                        retry_in_seconds=int(delay.total_seconds())))
    try:
        msg.update(actions=actions, condition=condition)
    except PynamoDBException as update_exc:
        # Not recorded: the message stays due (grace or lease runs out) and is retried anyway.
        logger.warning("outbox failure not recorded", exc_info=update_exc,
                       extra=_log_extra(msg, condition_failed=storage.is_condition_failure(update_exc)))


def deliver_now(messages: OutboxMessage | Iterable[OutboxMessage], *, backend: mail.Backend | None = None) -> int:
    """Send messages a request has just committed. Never raises: whatever fails stays pending
    for `deliver_due`. Returns how many were sent."""
    if isinstance(messages, OutboxMessage):
        messages = [messages]
    messages = list(messages)
    sent = 0
    throttled = False
    blocked = suppressed_ids(m for m in messages if m.state == OutboxState.PENDING and not m.attempts)
    for msg in messages:
        if throttled:  # leave the rest to the scheduled run, which backs off
            continue
        if msg.state != OutboxState.PENDING or msg.attempts:  # already handled (the update refreshes the instance)
            continue
        now = clock.now()
        if msg.id in blocked:
            _mark_suppressed(msg, OutboxMessage.state == OutboxState.PENDING, now)
            continue
        try:
            mail.send(_compose(msg), backend)
        except Exception as exc:  # noqa: BLE001 - a request must never fail because of mail
            throttled = isinstance(exc, mail.MailDeliveryFailed) and exc.throttled
            _record_failure(msg, exc, OutboxMessage.state == OutboxState.PENDING, now)
            continue
        if _mark_sent(msg, OutboxMessage.state == OutboxState.PENDING, clock.now()):
            sent += 1
            logger.info("outbox message sent", extra=_log_extra(msg, via="request"))
    return sent


def queue_once(batch: dict[str, OutboxMessage], attempts: int = 20) -> list[OutboxMessage]:
    """Commit messages with deterministic ids (at most 25) in one transaction, leaving out those
    an earlier run queued already; returns those this call queued. For mail sent after a
    change rather than with it (invitations, notices to many), so that a re-run sends nobody a
    second one."""
    from chalicelib.errors import ServiceUnavailable
    pending = dict(batch)
    for attempt in range(attempts):
        if not pending:
            return []
        tx = Transaction()
        for message_id, msg in pending.items():
            tx.put(message_id, msg, OutboxMessage.id.does_not_exist())
        try:
            tx.commit()
        except TransactionCancelled as cancelled:
            queued_before = [message_id for message_id in pending if cancelled.failed(message_id)]
            for message_id in queued_before:
                del pending[message_id]
            if not queued_before:
                retry_pause(attempt)
            continue
        return list(pending.values())
    raise ServiceUnavailable(messages.BUSY)


QUEUE_THREADS = 8


def queue_each(batch: dict[str, OutboxMessage]) -> list[OutboxMessage]:
    """Put messages with deterministic ids, each with `attribute_not_exists` (one write unit each
    for a small message, half a transaction's), leaving out those queued before; returns those
    this call queued. For a background job's page of notices: any number, a few at a time."""
    from concurrent.futures import ThreadPoolExecutor

    def put(msg: OutboxMessage) -> OutboxMessage | None:
        if conditional(lambda: msg.save(condition=OutboxMessage.id.does_not_exist())):
            return msg
        return None  # queued before (a redone page, another runner)

    messages = list(batch.values())
    if len(messages) <= 1:
        return [m for m in map(put, messages) if m is not None]
    with ThreadPoolExecutor(max_workers=min(QUEUE_THREADS, len(messages))) as pool:
        return [m for m in pool.map(put, messages) if m is not None]


def dispatch(messages: list[OutboxMessage]) -> None:
    """Hand freshly committed messages to whoever delivers them in this deployment (settings:
    `mail_delivery`), so that sending mail never holds up the request that caused it."""
    if not messages:
        return
    mode = get_settings().mail_delivery
    if mode == "inline":
        deliver_now(messages)
    elif mode == "background":
        _background_worker().queue.put(list(messages))
    # "stream": the outbox table's stream invokes `deliver_stream_records`.


def deliver_claimed(messages: Iterable[OutboxMessage], *, backend: mail.Backend | None = None) -> int:
    """Claim each still-pending message (so no other deliverer sends it too), send it, mark it
    sent. For deliverers that run apart from the request: the background worker, the stream."""
    messages = list(messages)
    sent, meetups = 0, {}
    blocked = suppressed_ids(messages)
    for msg in messages:
        now = clock.now()
        if msg.id in blocked:
            _mark_suppressed(msg, (OutboxMessage.state == OutboxState.PENDING) & (OutboxMessage.attempts == 0), now)
            continue
        lease = storage.lease_until(now, LEASE)
        try:
            if not storage.claim(msg, [OutboxMessage.state.set(OutboxState.SENDING), OutboxMessage.lease_until.set(lease),
                                      OutboxMessage.next_attempt_at.set(lease)],
                                (OutboxMessage.state == OutboxState.PENDING) & (OutboxMessage.attempts == 0)):
                continue  # taken or sent by another deliverer
        except UpdateError as exc:
            logger.warning("outbox claim failed; the retry job will send it", exc_info=exc, extra=_log_extra(msg))
            continue
        mine = (OutboxMessage.state == OutboxState.SENDING) & (OutboxMessage.lease_until == lease)
        try:
            mail.send(_compose(msg, meetups), backend)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the others
            _record_failure(msg, exc, mine, clock.now())
            continue
        if _mark_sent(msg, mine, clock.now()):
            sent += 1
            logger.info("outbox message sent", extra=_log_extra(msg, via="claimed"))
    return sent


def deliver_stream_records(records: Iterable[dict], *, backend: mail.Backend | None = None) -> int:
    """The outbox table's DynamoDB stream (new images): deliver every newly inserted message."""
    fresh = [OutboxMessage.from_raw_data(record["dynamodb"]["NewImage"]) for record in records
             if record.get("eventName") == "INSERT" and "NewImage" in record.get("dynamodb", {})]
    return deliver_claimed([msg for msg in fresh if msg.state == OutboxState.PENDING], backend=backend)


BATCH = 25  # messages marked sent in one transaction


def deliver_batch(messages: list[OutboxMessage], *, backend: mail.Backend | None = None) -> int:
    """Send fresh messages and mark them sent together, in one transaction per BATCH: the
    bookkeeping of a rush of sign-ups costs a few writes instead of one per message.

    No claim: only for the one deliverer that holds messages within their grace period (the
    retry job leaves a message alone until then); one that is older is claimed as usual."""
    fresh_until = clock.stamp(clock.now() + SAFETY_MARGIN)
    late = [m for m in messages if m.state == OutboxState.PENDING and not m.attempts and m.next_attempt_at <= fresh_until]
    sent = deliver_claimed(late, backend=backend) if late else 0
    fresh = [m for m in messages if m not in late and m.state == OutboxState.PENDING and not m.attempts]
    delivered, meetups = [], {}
    blocked = suppressed_ids(fresh)
    for msg in fresh:
        if msg.id in blocked:
            _mark_suppressed(msg, OutboxMessage.state == OutboxState.PENDING, clock.now())
            continue
        try:
            mail.send(_compose(msg, meetups), backend)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the others
            _record_failure(msg, exc, OutboxMessage.state == OutboxState.PENDING, clock.now())
            continue
        delivered.append(msg)
    for start in range(0, len(delivered), BATCH):
        chunk, now = delivered[start:start + BATCH], clock.now()
        tx = Transaction()
        for msg in chunk:
            tx.update(msg.id, msg, _sent_actions(now), OutboxMessage.state == OutboxState.PENDING)
        try:
            tx.commit()
            sent += len(chunk)
            for msg in chunk:
                msg.state = OutboxState.SENT  # a transaction does not refresh the instances, as update() does
        except (TransactionCancelled, Exception):  # noqa: BLE001 - fall back to one by one
            sent += sum(_mark_sent(msg, OutboxMessage.state == OutboxState.PENDING, now) for msg in chunk)
    if delivered:
        logger.info("outbox batch sent", extra={"sent": len(delivered), "via": "batch"})
    return sent


class _BackgroundWorker(threading.Thread):
    """`make run`'s deliverer: one daemon thread sending what requests queued, in batches."""

    def __init__(self):
        super().__init__(name="outbox-delivery", daemon=True)
        self.queue: queue.Queue = queue.Queue()

    # Requests come first: while they keep coming (a rush) or are being served (joins waiting
    # for their turn at a line queue no mail for a while), mail waits, up to MAX_DELAY after
    # its oldest message, well within the grace before the retry job would take it.
    QUIET = 0.3
    MAX_DELAY = 20.0

    def run(self):
        while True:
            messages = list(self.queue.get())
            started = time.monotonic()
            while time.monotonic() - started < self.MAX_DELAY:
                try:
                    messages += self.queue.get(timeout=self.QUIET)
                except queue.Empty:
                    if not _serving():
                        break
            for start in range(0, len(messages), BATCH):
                try:
                    deliver_batch(messages[start:start + BATCH])
                except Exception:  # noqa: BLE001 - the retry job sends whatever this missed
                    logger.exception("background delivery failed")


_worker: _BackgroundWorker | None = None
_worker_lock = threading.Lock()
_serving: Callable[[], bool] = lambda: False  # noqa: E731 (replaced by the server, see below)


def defer_to_requests(serving: Callable[[], bool]) -> None:
    """`make run`'s server tells the background deliverer whether it is serving requests
    (`serving()`); while it is, mail waits (up to MAX_DELAY): composing it takes the CPU the
    requests need. Without a server (tests, scripts), mail waits only for QUIET."""
    global _serving
    _serving = serving


def _background_worker() -> _BackgroundWorker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _BackgroundWorker()
            _worker.start()
    return _worker


def _claim(msg: OutboxMessage, now: datetime) -> str | None:
    """Take a due message for this run; returns the lease (the claim's token) or None when
    another run has it or it was sent meanwhile."""
    cutoff, lease = clock.stamp(now), storage.lease_until(now, LEASE)
    claimed = storage.claim(msg, [OutboxMessage.state.set(OutboxState.SENDING), OutboxMessage.lease_until.set(lease),
                                 OutboxMessage.next_attempt_at.set(lease)],
                           OutboxMessage.state.is_in(OutboxState.PENDING, OutboxState.SENDING) & OutboxMessage.due.exists()
                           & (OutboxMessage.next_attempt_at <= cutoff))
    return lease if claimed else None


def backlog_age_seconds(now: datetime | None = None) -> float:
    """How long the oldest due message has been due (0 when none is): one Query of `by_due`."""
    now = now or clock.now()
    oldest = due_keys(clock.stamp(now), 1)
    if not oldest:
        return 0.0
    return max(0.0, (now - clock.from_storage(oldest[0].next_attempt_at)).total_seconds())


def due_keys(cutoff: str, limit: int) -> list:
    """The `limit` messages due longest (next attempt at or before `cutoff`), over every shard of
    `by_due`: one Query per shard, each oldest first."""
    found = []
    for key in OUTBOX_DUE_KEYS:
        found += OutboxMessage.by_due.query(key, OutboxByDue.next_attempt_at <= cutoff, limit=limit)
    return sorted(found, key=lambda k: (k.next_attempt_at, k.id))[:limit]


def deliver_due(limit: int = 100, *, now: datetime | None = None,
                backend: mail.Backend | None = None) -> dict[str, int]:
    """The scheduled retry (every minute): claim and send up to `limit` due messages, oldest
    first. Concurrent runs never send the same message twice. `now` is for tests."""
    fixed_now = now
    started = time.monotonic()
    result = {"sent": 0, "failed": 0}
    cutoff = clock.stamp(fixed_now or clock.now())
    consecutive_failures = 0
    due_ids = [key.id for key in due_keys(cutoff, limit)]
    due = {msg.id: msg for msg in OutboxMessage.batch_get(due_ids, consistent_read=True)} if due_ids else {}
    blocked = suppressed_ids(due.values())
    for msg in (due[i] for i in due_ids if i in due):
        if time.monotonic() - started > TIME_BUDGET_SECONDS:
            break
        lease = _claim(msg, fixed_now or clock.now())
        if lease is None:
            continue
        mine = (OutboxMessage.state == OutboxState.SENDING) & (OutboxMessage.lease_until == lease)
        if msg.id in blocked:
            result["suppressed"] = result.get("suppressed", 0) + 1
            _mark_suppressed(msg, mine, fixed_now or clock.now())
            continue
        try:
            mail.send(_compose(msg), backend)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the others
            result["failed"] += 1
            consecutive_failures += 1
            _record_failure(msg, exc, mine, fixed_now or clock.now())
            if isinstance(exc, mail.MailDeliveryFailed) and exc.throttled:
                logger.warning("mail backend throttles; stopping this batch", extra={"result": result})
                break
            if consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                logger.warning("mail backend keeps failing; stopping this batch", extra={"result": result})
                break
            continue
        consecutive_failures = 0
        if _mark_sent(msg, mine, fixed_now or clock.now()):
            result["sent"] += 1
            logger.info("outbox message sent", extra=_log_extra(msg, via="retry"))
    if result["sent"] or result["failed"]:
        logger.info("outbox run", extra=result)
    return result
