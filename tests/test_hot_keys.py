"""No key shared by the whole country: the activity log's day and the outbox's `due` are spread
over shards, the tour index holds no counter, and records under the old keys are moved."""
import secrets
from collections import Counter
from datetime import timedelta

from chalicelib import catalogue, clock, digest, migrate_keys, outbox, registration
from chalicelib.models import (ACTIVITY_SHARDS, DEPARTURE_PREFIX, EMAIL_GUARD_PREFIX, OUTBOX_DUE_KEYS, OUTBOX_DUE_SHARDS,
                               WAITLIST_PREFIX, Activity, Departure, EmailGuard, Meetup, OutboxMessage, WaitlistEntry,
                               activity_keys, activity_partitions, guard_partition, line_partition, outbox_due_key)
from tests import invariants
from tests.factories import make_meetup


def person(n: int, tag: str) -> dict:
    return {"name": f"Sharde {n}", "email": f"s{n}-{tag}@example.nl", "role": "teacher", "consent": True}


def test_activity_keys_spread_a_day_over_every_shard():
    now = clock.now()
    day = now.strftime("%Y-%m-%d")
    keys = [activity_keys(now) for _ in range(800)]
    counts = Counter(k["day"] for k in keys)
    assert set(counts) == set(activity_partitions(day)) and len(counts) == ACTIVITY_SHARDS
    assert max(counts.values()) < 2 * 800 / ACTIVITY_SHARDS  # roughly even, none takes the day
    assert all(k["sk"].startswith(clock.stamp(now)) for k in keys)


def test_outbox_due_keys_spread_messages_and_stay_with_the_message():
    ids = [outbox.new_id() for _ in range(800)]
    counts = Counter(outbox_due_key(i) for i in ids)
    assert set(counts) == set(OUTBOX_DUE_KEYS) and len(counts) == OUTBOX_DUE_SHARDS
    assert max(counts.values()) < 2 * 800 / OUTBOX_DUE_SHARDS
    assert all(outbox_due_key(i) == outbox_due_key(i) for i in ids[:10])


def test_sign_ups_land_in_several_activity_partitions_and_the_digest_reads_them_all_in_order():
    meetup = make_meetup(capacity=100)
    tag = secrets.token_hex(3)
    started = clock.now()
    people = [registration.sign_up(meetup.id, person(n, tag)).registration for n in range(24)]
    day = started.strftime("%Y-%m-%d")
    stored = [a for p in activity_partitions(day) for a in Activity.query(p, consistent_read=True)
              if a.meetup_id == meetup.id]
    assert len(stored) == 24 and len({a.day for a in stored}) > 1
    window = digest.ActivityWindow(clock.stamp(clock.now() + timedelta(seconds=1)))
    window.cover(clock.stamp(started - timedelta(seconds=1)))
    mine = [c for c in window.items if c.meetup_id == meetup.id]
    assert [c.details["registration_id"] for c in mine] == [p.id for p in people]
    assert window.keys == sorted(window.keys)


def test_a_sign_up_writes_no_copy_of_the_meetup_into_the_tour_index():
    """The tour index projects keys only: a counter change leaves it as it was, and the listing
    still shows the live counts (read from the items)."""
    meetup = make_meetup(capacity=5)
    conn = Meetup._get_connection().connection.client
    index = conn.describe_table(TableName=Meetup.Meta.table_name)["Table"]["GlobalSecondaryIndexes"]
    assert all(i["Projection"]["ProjectionType"] == "KEYS_ONLY" for i in index)
    registration.sign_up(meetup.id, person(0, secrets.token_hex(3)))
    listed = {m.id: m for m in catalogue.tour()}
    assert int(listed[meetup.id].confirmed) == 1 and listed[meetup.id].title == meetup.title


def test_retry_job_finds_due_messages_in_every_shard(empty_tables):
    now = clock.now()
    messages = [outbox.message(f"r{n}@example.nl", "registration_confirmed", "nl", {}, now=now - timedelta(hours=1))
                for n in range(40)]
    for msg in messages:
        msg.save()
    assert len({m.due for m in messages}) > 1
    found = outbox.due_keys(clock.stamp(now), 1000)
    assert {k.id for k in found} == {m.id for m in messages}
    assert [k.next_attempt_at for k in found] == sorted(k.next_attempt_at for k in found)
    assert len(outbox.due_keys(clock.stamp(now), 7)) == 7
    assert outbox.backlog_age_seconds(now) > 0


def test_records_under_the_old_national_keys_are_moved_once(empty_tables):
    now = clock.now()
    day = now.strftime("%Y-%m-%d")
    old_records = []
    for n in range(5):
        keys = activity_keys(now - timedelta(seconds=n))
        record = Activity(day=day, sk=keys["sk"], type="signed_up", meetup_id="m-old", province="Flevoland",
                          details={"registration_id": f"r{n}"}, expires_at=now + timedelta(days=30))
        record.save()
        old_records.append(record)
    pending = outbox.message("oud@example.nl", "registration_confirmed", "nl", {}, now=now - timedelta(hours=1))
    pending.due = migrate_keys.LEGACY_DUE
    pending.save()
    assert outbox.due_keys(clock.stamp(now), 100) == []  # the retry job no longer looks there

    assert migrate_keys.migrate_all() == {"activity_records": 5, "outbox_messages": 1, "meetup_items": 0}
    assert migrate_keys.migrate_all() == {"activity_records": 0, "outbox_messages": 0, "meetup_items": 0}
    assert list(Activity.query(day, consistent_read=True)) == []
    moved = [a for p in activity_partitions(day) for a in Activity.query(p, consistent_read=True)]
    assert sorted(a.sk for a in moved) == sorted(r.sk for r in old_records)
    assert all(a.day == f"{day}#{int(a.sk.rsplit('#', 1)[1], 16) % ACTIVITY_SHARDS}" for a in moved)
    assert OutboxMessage.get(pending.id, consistent_read=True).due == outbox_due_key(pending.id)
    assert [k.id for k in outbox.due_keys(clock.stamp(now), 100)] == [pending.id]


def test_a_meetups_guards_and_line_have_partitions_of_their_own_and_old_ones_are_moved():
    meetup = make_meetup(capacity=1)
    tag = secrets.token_hex(3)
    people = [registration.sign_up(meetup.id, person(n, tag)) for n in range(4)]
    registration.cancel_registration(people[2].registration)  # a departure from the line
    assert list(EmailGuard.query(meetup.id, EmailGuard.sk.startswith(EMAIL_GUARD_PREFIX))) == []
    assert len(list(EmailGuard.query(guard_partition(meetup.id), EmailGuard.sk.startswith(EMAIL_GUARD_PREFIX)))) == 3
    assert len(list(WaitlistEntry.query(line_partition(meetup.id), WaitlistEntry.sk.startswith(WAITLIST_PREFIX)))) == 2
    assert invariants.check(meetup.id)

    # Yesterday's layout: everything in the meetup's own partition.
    for model, prefix, partition in ((EmailGuard, EMAIL_GUARD_PREFIX, guard_partition(meetup.id)),
                                     (WaitlistEntry, WAITLIST_PREFIX, line_partition(meetup.id)),
                                     (Departure, DEPARTURE_PREFIX, line_partition(meetup.id))):
        for item in model.query(partition, model.sk.startswith(prefix)):
            model(**dict({n: getattr(item, n) for n in model.get_attributes()}, meetup_id=meetup.id)).save()
            item.delete()
    assert migrate_keys.migrate_meetup_partitions(meetup.id) == 3 + 2 + 1
    assert migrate_keys.migrate_meetup_partitions(meetup.id) == 0
    _, waiting = invariants.check(meetup.id)
    assert [r.id for r in waiting] == [people[1].registration.id, people[3].registration.id]
    assert registration.waitlist_position(registration._load_registration(meetup.id, people[3].registration.id)) == 2
    again = registration.sign_up(meetup.id, person(0, tag))  # the guard still holds after the move
    assert not again.created and again.registration.id == people[0].registration.id
