"""Delivery apart from the request: the batch deliverer (make run's background worker), the
claimed deliverer (the outbox stream, deployed) and dispatch."""
from __future__ import annotations

import secrets
from datetime import timedelta

from chalicelib import clock, outbox
from chalicelib.models import OutboxMessage, outbox_due_key
from chalicelib.storage import Transaction
from tests.mailfixtures import CollectingBackend, FailingBackend, registration_context

RECIPIENT = "delivery-test@mail.example.nl"


def committed(count: int, *, minutes_ago: float = 0) -> list[OutboxMessage]:
    messages = [outbox.message(RECIPIENT, "registration_waitlisted", "nl",
                               registration_context(waitlist_position=n + 1, registration_id=secrets.token_hex(4)),
                               now=clock.now() - timedelta(minutes=minutes_ago)) for n in range(count)]
    for start in range(0, count, 20):
        tx = Transaction()
        for msg in messages[start:start + 20]:
            tx.put(msg.id, msg, OutboxMessage.id.does_not_exist())
        tx.commit()
    return messages


def stored(msg):
    return OutboxMessage.get(msg.id, consistent_read=True)


def test_batch_sends_each_once_and_marks_all_sent():
    messages = committed(30)
    backend = CollectingBackend()
    assert outbox.deliver_batch(messages, backend=backend) == 30
    assert len(backend.messages) == 30
    assert {stored(m).state for m in messages} == {"sent"}
    assert all(stored(m).due is None for m in messages), "sent messages leave the retry index"
    assert outbox.deliver_batch(messages, backend=backend) == 0 or len(backend.messages) == 30
    assert len(backend.messages) == 30, "a second batch over the same messages sends nothing"


def test_batch_failure_leaves_message_for_retry():
    [msg] = committed(1)
    assert outbox.deliver_batch([msg], backend=FailingBackend()) == 0
    again = stored(msg)
    assert (again.state, again.attempts, again.due) == ("pending", 1, outbox_due_key(again.id))


def test_batch_claims_a_message_near_the_end_of_its_grace():
    """Past most of its grace the retry job may take it: the batch deliverer claims it first,
    so a message the retry job has already claimed is not sent again."""
    [msg] = committed(1, minutes_ago=10)
    assert outbox.deliver_due(backend=CollectingBackend(delay=0)) == {"sent": 1, "failed": 0}
    backend = CollectingBackend()
    assert outbox.deliver_batch([msg], backend=backend) == 0
    assert backend.messages == []


def test_stream_records_deliver_new_messages_once():
    messages = committed(3)
    records = [{"eventName": "INSERT", "dynamodb": {"NewImage": m.serialize()}} for m in messages]
    records.append({"eventName": "MODIFY", "dynamodb": {"NewImage": messages[0].serialize()}})
    backend = CollectingBackend()
    assert outbox.deliver_stream_records(records, backend=backend) == 3
    assert outbox.deliver_stream_records(records, backend=backend) == 0, "a redelivered batch sends nothing"
    assert len(backend.messages) == 3


def test_dispatch_background_delivers_without_the_request(monkeypatch):
    from chalicelib import config
    messages = committed(2)
    settings = config.get_settings()
    monkeypatch.setattr(config, "get_settings", lambda: type(settings)(**{**settings.__dict__,
                                                                           "mail_delivery": "background"}))
    monkeypatch.setattr(outbox, "get_settings", config.get_settings)
    outbox.dispatch(messages)
    deadline = clock.now() + timedelta(seconds=20)
    while clock.now() < deadline and {stored(m).state for m in messages} != {"sent"}:
        import time
        time.sleep(0.1)
    assert {stored(m).state for m in messages} == {"sent"}


def test_background_mail_waits_while_the_server_serves_requests(monkeypatch):
    """`make run`'s deliverer defers to requests: while the server is serving some, queued mail
    waits (composing it takes the CPU they need); once none is, it goes out."""
    import threading
    import time

    from chalicelib import config
    settings = config.get_settings()
    monkeypatch.setattr(config, "get_settings", lambda: type(settings)(**{**settings.__dict__,
                                                                           "mail_delivery": "background"}))
    monkeypatch.setattr(outbox, "get_settings", config.get_settings)
    serving = threading.Event()
    serving.set()
    monkeypatch.setattr(outbox, "_serving", serving.is_set)
    messages = committed(2)
    outbox.dispatch(messages)
    time.sleep(outbox._BackgroundWorker.QUIET * 6)  # well past the quiet it would otherwise wait
    assert {stored(m).state for m in messages} == {"pending"}, "nothing sent while requests are served"
    serving.clear()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and {stored(m).state for m in messages} != {"sent"}:
        time.sleep(0.1)
    assert {stored(m).state for m in messages} == {"sent"}


def test_the_servers_count_of_requests_in_flight():
    from devtools.serve import RequestsInFlight
    in_flight = RequestsInFlight()
    assert not in_flight.serving()
    with in_flight:
        assert in_flight.serving()
        with in_flight:
            assert in_flight.serving()
        assert in_flight.serving(), "one request still in flight"
    assert not in_flight.serving()
    try:
        with in_flight:
            raise RuntimeError("the request failed")
    except RuntimeError:
        pass
    assert not in_flight.serving(), "a failed request is no longer in flight"
