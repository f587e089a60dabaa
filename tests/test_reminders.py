"""Reminders before a meetup (issue 11): at its offsets, to confirmed people only, each person at
most once per reminder however often the schedule fires; the day before, one message to everyone
waiting with their place. Against DynamoDB Local with a controlled clock."""
from __future__ import annotations

import itertools
import json
import secrets
import threading
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import clock, outbox, reminders
from tests.factories import make_meetup
from tests.mailbox import messages_to, text_of

JSON = {"Content-Type": "application/json"}
# Each test in a week of its own, years ahead: no other test's meetups fall within two weeks.
_weeks = itertools.count()


class Clock:
    def __init__(self, monkeypatch, moment: datetime):
        self.moment = moment
        monkeypatch.setattr(clock, "now", lambda: self.moment)


@pytest.fixture
def starts(monkeypatch):
    moment = datetime(2033, 1, 5, 18, 30, tzinfo=timezone.utc) + timedelta(weeks=3 * next(_weeks))
    return moment, Clock(monkeypatch, moment - timedelta(days=5))


def meetup_at(moment: datetime, **overrides):
    return make_meetup(starts_at=clock.to_public(moment), ends_at=clock.to_public(moment + timedelta(hours=2)),
                       join_url="https://zoom.example.nl/j/1", **overrides)


def sign_up(client, meetup_id) -> str:
    address = f"remind-{secrets.token_hex(4)}@example.nl"
    body = {"name": "Rita Herinnering", "email": address, "role": "teacher", "consent": True}
    assert client.http.post(f"/meetups/{meetup_id}/registrations", headers=JSON, body=json.dumps(body)).status_code == 201
    return address


def reminders_to(address: str, word: str = "Herinnering") -> list:
    return [m for m in messages_to(address) if str(m["Subject"]).startswith(word)]


def test_each_confirmed_person_gets_each_reminder_once_at_its_minute(client, starts):
    moment, fake = starts
    meetup = meetup_at(moment, capacity=2)
    seated = [sign_up(client, meetup.id) for _ in range(2)]
    waiting = sign_up(client, meetup.id)

    fake.moment = moment - timedelta(hours=24, minutes=1)
    reminders.run()
    assert all(reminders_to(a) == [] for a in seated)
    fake.moment = moment - timedelta(hours=24)
    reminders.run()
    reminders.run()  # the schedule fires again: nothing twice
    assert [len(reminders_to(a)) for a in seated] == [1, 1]
    assert "/join/" in text_of(reminders_to(seated[0])[0]) and "zoom.example.nl" not in text_of(reminders_to(seated[0])[0])
    assert reminders_to(waiting) == [], "confirmed people only"
    notice = reminders_to(waiting, "Morgen")
    assert len(notice) == 1 and "nummer 1" in text_of(notice[0])

    fake.moment = moment - timedelta(minutes=60)
    reminders.run()
    assert [len(reminders_to(a)) for a in seated] == [2, 2]
    fake.moment = moment + timedelta(minutes=1)
    reminders.run()
    assert [len(reminders_to(a)) for a in seated] == [2, 2] and len(reminders_to(waiting, "Morgen")) == 1


def test_two_runs_at_once_and_a_crash_between_people_send_nobody_two(client, starts, monkeypatch):
    moment, fake = starts
    meetup = meetup_at(moment, capacity=60, reminders=[90])
    people = [sign_up(client, meetup.id) for _ in range(60)]
    fake.moment = moment - timedelta(minutes=90)

    real_queue_once, calls = outbox.queue_once, itertools.count()

    def crash_after_first_batch(batch, *args, **kwargs):
        if next(calls) == 1:
            raise RuntimeError("the Lambda ran out of time")
        return real_queue_once(batch, *args, **kwargs)
    monkeypatch.setattr(outbox, "queue_once", crash_after_first_batch)
    with pytest.raises(RuntimeError):
        reminders.run()
    monkeypatch.setattr(outbox, "queue_once", real_queue_once)
    assert 0 < sum(len(reminders_to(a)) for a in people) < 60

    threads = [threading.Thread(target=reminders.run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [len(reminders_to(a)) for a in people] == [1] * 60


def test_nobody_who_got_a_place_after_the_moment_gets_that_reminder_late(client, starts):
    moment, fake = starts
    meetup = meetup_at(moment, capacity=5)
    early = sign_up(client, meetup.id)
    fake.moment = moment - timedelta(hours=23)  # after the day-before moment, before the run
    late = sign_up(client, meetup.id)
    reminders.run()
    assert len(reminders_to(early)) == 1 and reminders_to(late) == []
    fake.moment = moment - timedelta(minutes=59)
    reminders.run()
    assert len(reminders_to(early)) == 2 and len(reminders_to(late)) == 1


def test_offsets_per_meetup_and_their_validation(client, admin_headers, starts):
    moment, fake = starts
    meetup = meetup_at(moment)
    answer = client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers, body=json.dumps({"reminders": [15]}))
    assert answer.status_code == 200 and answer.json_body["reminders"] == [15]
    person = sign_up(client, meetup.id)
    fake.moment = moment - timedelta(hours=24)
    reminders.run()
    assert reminders_to(person) == [], "the meetup's own offsets replace the default"
    fake.moment = moment - timedelta(minutes=15)
    reminders.run()
    assert len(reminders_to(person)) == 1
    for bad in ([0], [1.5], ["60"], [60] * 6, "60", [True]):
        refused = client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers,
                                    body=json.dumps({"reminders": bad}))
        assert refused.status_code == 422 and "reminders" in refused.json_body["fields"], bad


def test_a_cancelled_meetup_sends_no_reminders(client, admin_headers, starts):
    moment, fake = starts
    meetup = meetup_at(moment)
    person = sign_up(client, meetup.id)
    client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers, body=json.dumps({"status": "cancelled"}))
    fake.moment = moment - timedelta(minutes=30)
    reminders.run()
    assert reminders_to(person) == []
