"""The waitlist as one item per waiting person: tickets, exact positions after departures and
promotions, the optional limit, no refusal from a stale cache, the seat-freeing rule, the
migration of old one-item lines, and the waitlisted email's position through the outbox stream."""
import json
import secrets
from datetime import datetime, timezone

import boto3
import pytest

from chalicelib import catalogue, clock, migrate_waitlists, outbox, registration
from chalicelib.errors import Conflict
from chalicelib.models import (EMAIL_GUARD_PREFIX, REGISTRATION_PREFIX, WAITLIST_KEY, EmailGuard, LegacyWaitlist,
                               Meetup, Registration, guard_partition)
from tests import invariants
from tests.factories import make_meetup
from tests.mailbox import messages_to, text_of

JSON = {"Content-Type": "application/json"}


def person(n, tag):
    return {"name": f"Wachtende {n}", "email": f"w{n}-{tag}@example.nl", "role": "teacher", "consent": True}


def token_of(outcome):
    return outcome.manage_url.rsplit("/", 1)[1]


def test_positions_stay_exact_after_people_ahead_leave_and_are_promoted(client):
    meetup = make_meetup(capacity=1)
    tag = secrets.token_hex(3)
    holder = registration.sign_up(meetup.id, person(0, tag))
    waiting = [registration.sign_up(meetup.id, person(n, tag)) for n in range(1, 7)]
    assert [o.position for o in waiting] == [1, 2, 3, 4, 5, 6]
    assert [o.registration.waitlist_ticket for o in waiting] == [1, 2, 3, 4, 5, 6]
    registration.cancel(token_of(waiting[1]))  # ticket 2 leaves: a departure ahead of 3..6
    registration.cancel(token_of(waiting[3]))  # ticket 4 leaves
    registration.cancel(token_of(holder))  # ticket 1 is promoted
    invariants.check(meetup.id)
    shown = [client.http.get(f"/registrations/{token_of(o)}").json_body["registration"]["waitlist_position"]
             for o in (waiting[2], waiting[4], waiting[5])]
    assert shown == [1, 2, 3]
    late = registration.sign_up(meetup.id, person(9, tag))
    assert (late.position, late.registration.waitlist_ticket) == (4, 7)
    assert registration.waitlist_position(late.registration) == 4


def test_a_full_waitlist_is_409_waitlist_full_in_both_languages(client, admin_headers):
    meetup = make_meetup(capacity=1, waitlist={"enabled": True, "max_length": 2})
    assert client.http.get(f"/meetups/{meetup.id}").json_body["waitlist"]["max_length"] == 2
    tag = secrets.token_hex(3)
    for n in range(3):
        registration.sign_up(meetup.id, person(n, tag))
    body = person(3, tag)
    response = client.http.post(f"/meetups/{meetup.id}/registrations", headers=JSON, body=json.dumps(body))
    assert response.status_code == 409 and response.json_body["error"] == "waitlist_full"
    assert "wachtlijst" in response.json_body["message"]
    english = client.http.post(f"/meetups/{meetup.id}/registrations?lang=en", headers=JSON,
                               body=json.dumps(dict(body, language="en")))
    assert english.status_code == 409 and "waitlist" in english.json_body["message"]
    assert messages_to(body["email"]) == []
    invariants.check(meetup.id)
    # Raising the limit lets the next one in; null removes it.
    changed = client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers,
                                body=json.dumps({"waitlist": {"max_length": None}}))
    assert changed.status_code == 200 and changed.json_body["waitlist"]["max_length"] is None
    assert registration.sign_up(meetup.id, body).position == 3


@pytest.mark.parametrize("value", [0, -1, "5", 1.5, True, 1_000_001])
def test_a_bad_waitlist_limit_is_422_naming_the_field(client, admin_headers, value):
    meetup = make_meetup(capacity=1)
    response = client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers,
                                 body=json.dumps({"waitlist": {"max_length": value}}))
    assert response.status_code == 422 and "waitlist.max_length" in response.json_body["fields"]
    assert catalogue.load(meetup.id, consistent=True).waitlist_max_length is None


def test_a_stale_hint_never_refuses_a_free_seat():
    meetup = make_meetup(capacity=1, waitlist={"enabled": False})
    tag = secrets.token_hex(3)
    holder = registration.sign_up(meetup.id, person(0, tag))
    full = catalogue.load(meetup.id, consistent=True)
    registration.hints.put(full)  # this process believes the meetup is full (and has no waitlist)
    # The seat is freed behind the process's back (another process, or the table itself).
    Meetup(id=meetup.id).update(actions=[Meetup.confirmed.add(-1)])
    Registration(meetup_id=meetup.id, sk=REGISTRATION_PREFIX + holder.registration.id).update(
        actions=[Registration.status.set("cancelled")])
    EmailGuard(meetup_id=guard_partition(meetup.id), sk=registration.guard_key(holder.registration.email)).delete()
    registration.hints.put(full)
    outcome = registration.sign_up(meetup.id, person(1, tag))
    assert outcome.created and outcome.registration.status == "confirmed"


def test_a_stale_hint_never_refuses_a_reopened_meetup(client, admin_headers):
    meetup = make_meetup(capacity=3)
    client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers, body=json.dumps({"status": "closed"}))
    registration.hints.put(catalogue.load(meetup.id, consistent=True))
    Meetup(id=meetup.id).update(actions=[Meetup.state.set("open")])  # reopened elsewhere
    assert registration.sign_up(meetup.id, person(1, secrets.token_hex(3))).registration.status == "confirmed"


def test_a_join_slipped_in_between_cancels_read_and_commit_gets_the_seat(monkeypatch):
    """The seat-freeing rule: a confirmed person's seat is only freed on the condition that
    nobody waits. A join that commits after cancel read the meetup must get the seat."""
    meetup = make_meetup(capacity=1)
    tag = secrets.token_hex(3)
    holder = registration.sign_up(meetup.id, person(0, tag))
    real_read = registration._read_meetup
    joined = []

    def read_then_someone_joins(meetup_id):
        found = real_read(meetup_id)
        if not joined:
            joined.append(registration.sign_up(meetup.id, person(1, tag)))
        return found

    monkeypatch.setattr(registration, "_read_meetup", read_then_someone_joins)
    registration.cancel(token_of(holder))
    assert joined and joined[0].registration.status == "waitlisted"  # the read saw nobody waiting
    monkeypatch.undo()
    confirmed, waiting = invariants.check(meetup.id)
    assert [r.id for r in confirmed] == [joined[0].registration.id] and waiting == []


def test_fill_free_seats_promotes_in_order_bounded_per_call():
    meetup = make_meetup(capacity=1)
    tag = secrets.token_hex(3)
    outcomes = [registration.sign_up(meetup.id, person(n, tag)) for n in range(5)]
    Meetup(id=meetup.id).update(actions=[Meetup.capacity.set(4)])  # three seats, no promotion yet
    mails = registration.fill_free_seats(meetup.id)
    assert [m.context["registration_id"] for m in mails] == [o.registration.id for o in outcomes[1:4]]
    assert registration.fill_free_seats(meetup.id) == []
    _, waiting = invariants.check(meetup.id)
    assert [r.id for r in waiting] == [outcomes[4].registration.id]


def _old_format(meetup, tag, count):
    """A meetup as the old code left it: full, `count` waiting in a one-item line."""
    holder = registration.sign_up(meetup.id, person(0, tag))
    ids = []
    for n in range(1, count + 1):
        stamp = clock.to_storage(clock.now())
        rid = f"old{n}-{tag}"
        body = person(n, tag)
        Registration(meetup_id=meetup.id, sk=REGISTRATION_PREFIX + rid, id=rid, status="waitlisted",
                     name=body["name"], email=body["email"], role="teacher", created_at=stamp,
                     updated_at=stamp).save()
        EmailGuard(meetup_id=guard_partition(meetup.id), sk=registration.guard_key(body["email"]), registration_id=rid).save()
        ids.append(rid)
    LegacyWaitlist(meetup_id=meetup.id, line=ids).save()
    Meetup(id=meetup.id).update(actions=[Meetup.waitlist_length.set(count), Meetup.waitlist_seq.remove(),
                                         Meetup.waitlist_promoted.remove()])
    return holder, ids


def test_migration_turns_old_lines_into_entries_in_order_and_is_safe_twice():
    meetup = make_meetup(capacity=1)
    tag = secrets.token_hex(3)
    holder, ids = _old_format(meetup, tag, 4)
    assert migrate_waitlists.migrate_meetup(meetup) == 4
    assert migrate_waitlists.migrate_meetup(meetup) == 0  # again: nothing to do, nothing changed
    assert migrate_waitlists.migrate_all().get(meetup.id) is None
    with pytest.raises(LegacyWaitlist.DoesNotExist):
        LegacyWaitlist.get(meetup.id, WAITLIST_KEY, consistent_read=True)
    _, waiting = invariants.check(meetup.id)
    assert [r.id for r in waiting] == ids
    assert int(catalogue.load(meetup.id, consistent=True).waitlist_seq) == 4
    registration.cancel(token_of(holder))  # the first of the old line is promoted
    late = registration.sign_up(meetup.id, person(9, tag))
    assert (late.position, late.registration.waitlist_ticket) == (4, 5)
    _, waiting = invariants.check(meetup.id)
    assert [r.id for r in waiting] == ids[1:] + [late.registration.id]


def test_migration_resumes_after_an_interruption(monkeypatch):
    meetup = make_meetup(capacity=1)
    holder, ids = _old_format(meetup, secrets.token_hex(3), 3)
    from chalicelib import storage

    def crash(self):
        raise RuntimeError("interrupted before the last step")
    monkeypatch.setattr(storage.Transaction, "commit", crash)
    with pytest.raises(RuntimeError):
        migrate_waitlists.migrate_meetup(meetup)
    monkeypatch.undo()
    assert migrate_waitlists.migrate_meetup(meetup) == 3
    _, waiting = invariants.check(meetup.id)
    assert [r.id for r in waiting] == ids


# --- the waitlisted email through the outbox's DynamoDB stream, as deployed -------------------------

def _stream_records(message_ids: set[str]) -> list[dict]:
    """The INSERT records of these messages, read from the outbox table's real stream."""
    import os
    client = boto3.client("dynamodb")
    streams = boto3.client("dynamodbstreams", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    arn = client.describe_table(TableName=os.environ["TABLE_PREFIX"] + "outbox")["Table"]["LatestStreamArn"]
    found = []
    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    for shard in description["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                if record["eventName"] == "INSERT" and record["dynamodb"]["Keys"]["id"]["S"] in message_ids:
                    found.append(dict(record, eventSourceARN=arn))
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return found


def _as_lambda_event(records: list[dict]) -> dict:
    """What Lambda hands the function: the records, times as epoch seconds."""
    def plain(record):
        record = dict(record, dynamodb=dict(record["dynamodb"]))
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            record["dynamodb"]["ApproximateCreationDateTime"] = created.replace(tzinfo=created.tzinfo or timezone.utc).timestamp()
        return record
    return {"Records": [plain(r) for r in records]}


def test_the_stream_sends_the_position_committed_when_it_sends(monkeypatch):
    import app as app_module
    monkeypatch.setattr(outbox, "dispatch", lambda messages: None)  # deployed: nothing sends in the request
    meetup = make_meetup(capacity=1)
    tag = secrets.token_hex(3)
    registration.sign_up(meetup.id, person(0, tag))
    ahead = [registration.sign_up(meetup.id, person(n, tag)) for n in (1, 2, 3)]
    last = registration.sign_up(meetup.id, person(4, tag))
    assert last.position == 4 and last.mail[0].context["waitlist_position"] == 4
    registration.cancel(token_of(ahead[0]))
    registration.cancel(token_of(ahead[2]))
    committed = registration.waitlist_position(Registration.get(meetup.id, REGISTRATION_PREFIX + last.registration.id,
                                                                consistent_read=True))
    assert committed == 2
    records = _stream_records({last.mail[0].id})
    assert len(records) == 1
    app_module.deliver_outbox(_as_lambda_event(records), None)
    sent = messages_to(person(4, tag)["email"])
    assert len(sent) == 1
    assert "nummer 2" in text_of(sent[0]) and "nummer 4" not in text_of(sent[0])
    assert outbox.OutboxMessage.get(last.mail[0].id, consistent_read=True).state == "sent"


def test_honeypot_refuses_like_a_real_sign_up_on_a_full_waitlist():
    meetup = make_meetup(capacity=1, waitlist={"enabled": True, "max_length": 1})
    tag = secrets.token_hex(3)
    registration.sign_up(meetup.id, person(0, tag))
    registration.sign_up(meetup.id, person(1, tag))
    with pytest.raises(Conflict) as refused:
        registration.sign_up(meetup.id, dict(person(2, tag), website="http://spam.example"))
    assert refused.value.code == "waitlist_full"
    assert len(list(EmailGuard.query(guard_partition(meetup.id), EmailGuard.sk.startswith(EMAIL_GUARD_PREFIX)))) == 2


def test_the_mail_position_with_nobody_gone_from_the_line_reads_only_the_meetup(monkeypatch):
    """Nobody left the line: every ticket is promoted (from the front) or waiting, so the meetup's
    counters alone give the place; after a departure the markers are counted."""
    from chalicelib import line
    meetup = make_meetup(capacity=1)
    tag = secrets.token_hex(3)
    holder = registration.sign_up(meetup.id, person(0, tag))
    waiting = [registration.sign_up(meetup.id, person(n, tag)) for n in (1, 2, 3)]
    registration.cancel(token_of(holder))  # the first in line is promoted
    counted = []
    real_count = line.departures_before
    monkeypatch.setattr(line, "departures_before", lambda *a: counted.append(a) or real_count(*a))

    def mailed(outcome):  # the context as queued (a sent message keeps none)
        queued = {"meetup": {"id": meetup.id}, "registration_id": outcome.registration.id,
                  "waitlist_ticket": int(outcome.registration.waitlist_ticket), "waitlist_position": outcome.position}
        return line.position_for_mail(queued)["waitlist_position"]

    assert [mailed(o) for o in waiting[1:]] == [1, 2] and counted == []
    assert mailed(waiting[0]) == 1, "promoted: keeps the position committed with the join"
    registration.cancel(token_of(waiting[1]))  # a departure
    assert mailed(waiting[2]) == 1 and counted, "after a departure the markers are counted"
    stored = catalogue.load(meetup.id, consistent=True)
    assert line.departed(stored) == 1


def test_a_batch_of_waitlisted_emails_reads_its_meetup_once_and_tells_each_place(monkeypatch):
    from chalicelib import line
    monkeypatch.setattr(outbox, "dispatch", lambda messages: None)  # queued, not sent yet
    meetup = make_meetup(capacity=1)
    tag = secrets.token_hex(3)
    registration.sign_up(meetup.id, person(0, tag))
    waiting = [registration.sign_up(meetup.id, person(n, tag)) for n in range(1, 6)]
    reads = []
    real_read = line._meetup
    monkeypatch.setattr(line, "_meetup", lambda meetup_id: reads.append(meetup_id) or real_read(meetup_id))
    assert outbox.deliver_batch([o.mail[0] for o in waiting]) == 5
    assert reads == [meetup.id], "one read of the meetup for the whole batch"
    for n, outcome in enumerate(waiting, start=1):
        sent = messages_to(person(n, tag)["email"])
        told = "Je bent de eerstvolgende" if n == 1 else f"Je staat op nummer {n} van"
        assert len(sent) == 1 and told in text_of(sent[0])
