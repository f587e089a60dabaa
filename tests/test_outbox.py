"""The mail outbox against DynamoDB Local: committed with the change, sent once, retried."""
from __future__ import annotations

import secrets
import threading
from datetime import timedelta

import pytest
from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import clock, mail, outbox
from chalicelib.models import OutboxMessage, outbox_due_key
from tests.mailfixtures import *  # noqa: F401,F403
from tests.mailfixtures import CollectingBackend, FailingBackend, registration_context

RECIPIENT = "outbox-test@mail.example.nl"


def _connection() -> Connection:
    return Connection(region=OutboxMessage.Meta.region, host=OutboxMessage.Meta.host)


def _commit(*messages: OutboxMessage) -> None:
    with TransactWrite(connection=_connection()) as tx:
        for msg in messages:
            tx.save(msg, condition=OutboxMessage.id.does_not_exist())


def _due_message(template="registration_confirmed", minutes_ago=10, **context) -> OutboxMessage:
    """A committed message that the request did not deliver and whose grace is over."""
    msg = outbox.message(RECIPIENT, template, "nl", registration_context(**context),
                         now=clock.now() - timedelta(minutes=minutes_ago))
    _commit(msg)
    return msg


def _stored(msg: OutboxMessage) -> OutboxMessage:
    return OutboxMessage.get(msg.id, consistent_read=True)


def _message_id(msg: OutboxMessage) -> str:
    return f"<{msg.id}@klassen.example.nl>"


def test_message_is_an_unsaved_pending_item_due_after_the_grace():
    before = clock.stamp()
    msg = outbox.message(RECIPIENT, "registration_waitlisted", "en", registration_context(waitlist_position=2))
    assert (msg.state, msg.due, msg.attempts, msg.language) == ("pending", outbox_due_key(msg.id), 0, "en")
    assert msg.next_attempt_at > clock.stamp(clock.now() + outbox.GRACE - timedelta(seconds=5))
    assert msg.created_at >= before
    assert len(msg.next_attempt_at) == len("2027-04-12T17:30:00.000000Z") and msg.next_attempt_at.endswith("Z")
    with pytest.raises(DoesNotExist):
        OutboxMessage.get(msg.id, consistent_read=True)
    assert outbox.message(RECIPIENT, "registration_cancelled", "xx", registration_context()).language == "nl"
    with pytest.raises(ValueError):
        outbox.message(RECIPIENT, "no_such_template", "nl", registration_context())


def test_message_exists_only_if_the_transaction_commits():
    msg = outbox.message(RECIPIENT, "registration_confirmed", "nl", registration_context())
    taken = outbox.message(RECIPIENT, "registration_cancelled", "nl", registration_context())
    _commit(taken)
    with pytest.raises(TransactWriteError):
        with TransactWrite(connection=_connection()) as tx:
            tx.save(msg, condition=OutboxMessage.id.does_not_exist())
            tx.condition_check(OutboxMessage, taken.id, condition=OutboxMessage.id.does_not_exist())
    with pytest.raises(DoesNotExist):
        _stored(msg)


def test_committed_message_is_delivered_once_and_marked_sent(tmp_path, empty_tables):
    msg = outbox.message(RECIPIENT, "registration_confirmed", "nl", registration_context())
    _commit(msg)
    backend = mail.FileBackend(tmp_path)

    assert outbox.deliver_now([msg], backend=backend) == 1

    received = mail.read_mail_dir(tmp_path)
    assert len(received) == 1
    assert received[0]["Message-ID"] == _message_id(msg)
    assert received[0]["To"].addresses[0].addr_spec == RECIPIENT
    stored = _stored(msg)
    assert stored.state == "sent" and stored.sent_at and stored.attempts == 0
    assert stored.due is None and stored.next_attempt_at is None and stored.lease_until is None
    assert stored.expires_at > clock.now() + timedelta(days=29)
    assert outbox.deliver_now([msg], backend=backend) == 0  # a second call does not send again

    # The retry job, however late, leaves it alone.
    later = CollectingBackend()
    assert outbox.deliver_due(now=clock.now() + timedelta(days=1), backend=later) == {"sent": 0, "failed": 0}
    assert later.messages == []
    assert len(list(tmp_path.glob("*.eml"))) == 1


def test_configured_backend_is_used_by_default():
    from chalicelib.config import get_settings
    # The configured backend writes to the session's MAIL_DIR, shared with other tests: a unique address.
    recipient = f"outbox-{secrets.token_hex(4)}@mail.example.nl"
    msg = outbox.message(recipient, "registration_cancelled", "en", registration_context())
    _commit(msg)
    assert outbox.deliver_now(msg) == 1
    ids = [m["Message-ID"] for m in mail.read_mail_dir(get_settings().mail_dir)]
    assert ids.count(_message_id(msg)) == 1


def test_a_broken_backend_leaves_the_message_pending_for_the_retry_job(closed_port, empty_tables):
    msg = outbox.message(RECIPIENT, "registration_promoted", "nl", registration_context())
    _commit(msg)
    started = clock.now()

    assert outbox.deliver_now([msg], backend=mail.SmtpBackend("127.0.0.1", closed_port, timeout=2)) == 0

    stored = _stored(msg)
    assert stored.state == "pending" and stored.attempts == 1 and stored.due == outbox_due_key(stored.id)
    assert "SMTP" in stored.last_error
    assert stored.next_attempt_at >= clock.stamp(started + outbox.BACKOFF_BASE)

    retry = CollectingBackend()
    assert outbox.deliver_due(backend=retry) == {"sent": 0, "failed": 0}  # not due yet
    assert retry.messages == []

    assert outbox.deliver_due(now=clock.now() + timedelta(minutes=5), backend=retry) == {"sent": 1, "failed": 0}
    assert retry.message_ids() == [_message_id(msg)]
    stored = _stored(msg)
    assert stored.state == "sent" and stored.due is None and stored.lease_until is None
    assert outbox.deliver_due(now=clock.now() + timedelta(hours=2), backend=retry) == {"sent": 0, "failed": 0}
    assert len(retry.messages) == 1


def test_retry_job_sends_through_a_real_smtp_server(smtp_server, empty_tables):
    host, port, collector = smtp_server
    msg = _due_message("registration_waitlisted", status="waitlisted", waitlist_position=1)
    assert outbox.deliver_due(backend=mail.SmtpBackend(host, port)) == {"sent": 1, "failed": 0}
    received = collector.messages()
    assert [m["Message-ID"] for m in received] == [_message_id(msg)]
    assert "wachtlijst" in received[0]["Subject"]


def test_two_concurrent_runs_send_each_message_exactly_once(empty_tables):
    messages = [_due_message(minutes_ago=10 + i) for i in range(20)]
    backend = CollectingBackend(delay=0.01)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(outbox.deliver_due(backend=backend))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(backend.message_ids()) == sorted(_message_id(m) for m in messages)
    assert sum(r["sent"] for r in results) == 20 and sum(r["failed"] for r in results) == 0
    assert {_stored(m).state for m in messages} == {"sent"}


def test_a_crashed_senders_message_comes_back_after_its_lease(empty_tables):
    msg = _due_message()
    now = clock.now()
    assert outbox._claim(_stored(msg), now) is not None  # a run claimed it, then died
    backend = CollectingBackend()

    assert outbox.deliver_due(now=now + timedelta(minutes=1), backend=backend) == {"sent": 0, "failed": 0}
    assert _stored(msg).state == "sending"

    after_lease = now + outbox.LEASE + timedelta(seconds=1)
    assert outbox.deliver_due(now=after_lease, backend=backend) == {"sent": 1, "failed": 0}
    assert backend.message_ids() == [_message_id(msg)]
    assert _stored(msg).state == "sent"


def test_throttling_stops_the_batch_and_backs_off(empty_tables):
    messages = [_due_message(minutes_ago=20 - i) for i in range(5)]  # oldest first
    backend = FailingBackend(throttled=True)
    now = clock.now()

    assert outbox.deliver_due(now=now, backend=backend) == {"sent": 0, "failed": 1}
    assert backend.calls == 1

    first = _stored(messages[0])
    assert first.state == "pending" and first.attempts == 1 and first.lease_until is None
    assert first.next_attempt_at >= clock.stamp(now + outbox.THROTTLE_BACKOFF)
    assert [(_stored(m).state, _stored(m).attempts) for m in messages[1:]] == [("pending", 0)] * 4

    later = CollectingBackend()
    assert outbox.deliver_due(now=now + timedelta(minutes=10), backend=later) == {"sent": 5, "failed": 0}
    assert sorted(later.message_ids()) == sorted(_message_id(m) for m in messages)


def test_a_failing_backend_stops_the_batch_after_a_few_failures(empty_tables):
    messages = [_due_message(minutes_ago=20 - i) for i in range(5)]
    backend = FailingBackend()
    assert outbox.deliver_due(backend=backend) == {"sent": 0, "failed": outbox.MAX_CONSECUTIVE_FAILURES}
    assert [_stored(m).attempts for m in messages] == [1, 1, 1, 0, 0]


def test_deliver_now_never_raises_and_stops_after_a_throttle(empty_tables):
    messages = [outbox.message(RECIPIENT, "registration_cancelled", "nl", registration_context()) for _ in range(3)]
    _commit(*messages)
    backend = FailingBackend(throttled=True)
    assert outbox.deliver_now(messages, backend=backend) == 0
    assert backend.calls == 1
    assert [_stored(m).attempts for m in messages] == [1, 0, 0]
    assert {_stored(m).state for m in messages} == {"pending"}


def test_a_message_that_keeps_failing_is_given_up(empty_tables):
    msg = _due_message()
    stored = _stored(msg)
    stored.update(actions=[OutboxMessage.attempts.set(outbox.MAX_ATTEMPTS - 1)])
    assert outbox.deliver_due(backend=FailingBackend()) == {"sent": 0, "failed": 1}
    stored = _stored(msg)
    assert stored.state == "failed" and stored.due is None and stored.next_attempt_at is None
    assert stored.attempts == outbox.MAX_ATTEMPTS and stored.expires_at is not None
    assert outbox.deliver_due(now=clock.now() + timedelta(days=1), backend=CollectingBackend()) == {"sent": 0, "failed": 0}


def test_no_scans_in_the_outbox_code():
    import inspect
    assert ".scan(" not in inspect.getsource(outbox) and ".scan(" not in inspect.getsource(mail)
