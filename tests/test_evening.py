"""The evening itself (issue 11, first part): the personal join link, calendars that follow every
change, and the tour as a calendar. Against DynamoDB Local, mail through the `file` backend, with a
controlled clock where the moment matters."""
from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timedelta, timezone

import pytest
from icalendar import Calendar

from chalicelib import clock, joining
from chalicelib.models import Activity, Registration, REGISTRATION_PREFIX, activity_partitions
from tests.factories import make_meetup
from tests.mailbox import attachments_of, html_of, messages_to, text_of

JSON = {"Content-Type": "application/json"}
JOIN_URL = "https://zoom.example.nl/j/secret-meeting-123"
JOIN_LINK = re.compile(r"http://testserver(/join/[A-Za-z0-9_\-.]+)")


def person(**overrides) -> dict:
    body = {"name": "Anna de Vries", "email": f"anna-{secrets.token_hex(4)}@school.example.nl",
            "role": "teacher", "consent": True}
    body.update(overrides)
    return body


def sign_up(client, meetup_id, body=None):
    body = body or person()
    answer = client.http.post(f"/meetups/{meetup_id}/registrations", headers=JSON, body=json.dumps(body))
    assert answer.status_code == 201, answer.body
    return body["email"], answer.json_body


def invitation_of(message) -> "Calendar | None":
    for part in attachments_of(message):
        if part.get_content_type() == "text/calendar":
            return Calendar.from_ical(part.get_content())
    return None


def event_of(calendar):
    return next(iter(calendar.walk("VEVENT")))


def join_path(address: str) -> str:
    found = JOIN_LINK.search(text_of(messages_to(address)[0]))
    assert found, "the confirmation carries the personal join link"
    return found.group(1)


class Clock:
    def __init__(self, monkeypatch, moment: datetime):
        self.moment = moment
        monkeypatch.setattr(clock, "now", lambda: self.moment)


# --- the personal join link ---------------------------------------------------------------------

def test_emails_carry_the_personal_link_never_the_meetups_join_url(client):
    meetup = make_meetup(join_url=JOIN_URL)
    address, _ = sign_up(client, meetup.id)
    message = messages_to(address)[0]
    assert JOIN_URL not in text_of(message) and JOIN_URL not in html_of(message)
    assert JOIN_URL not in event_of(invitation_of(message)).to_ical().decode()
    path = join_path(address)
    assert path in html_of(message) and path in str(event_of(invitation_of(message))["LOCATION"])
    assert JOIN_URL not in client.http.get(f"/meetups/{meetup.id}", headers={"Accept": "text/html"}).body.decode()
    assert JOIN_URL not in json.dumps(client.http.get(f"/meetups/{meetup.id}").json_body)


def test_the_link_opens_only_in_its_window_and_records_the_first_click_once(client, monkeypatch, admin_headers):
    starts = datetime(2031, 3, 4, 19, 30, tzinfo=timezone.utc)
    fake = Clock(monkeypatch, starts - timedelta(days=10))
    meetup = make_meetup(join_url=JOIN_URL, starts_at=clock.to_public(starts),
                         ends_at=clock.to_public(starts + timedelta(hours=2)))
    address, _ = sign_up(client, meetup.id)
    path = join_path(address)

    fake.moment = starts - timedelta(minutes=31)
    early = client.http.get(path, headers={"Accept": "text/html"})
    assert early.status_code == 200 and 'data-door="not_yet"' in early.body.decode()
    assert "meetups.ics?meetup=" in early.body.decode(), "when it opens, with an .ics"
    assert client.http.get(path).json_body["door"] == "not_yet"

    fake.moment = starts - timedelta(minutes=30)
    opened = client.http.get(path, headers={"Accept": "text/html"})
    assert opened.status_code == 303 and opened.headers["Location"] == JOIN_URL
    fake.moment = starts + timedelta(minutes=5)
    assert client.http.get(path).headers["Location"] == JOIN_URL  # again: still open, not counted twice

    stored = Registration.query(meetup.id, Registration.sk.startswith(REGISTRATION_PREFIX), consistent_read=True)
    joined = [r.joined_at for r in stored]
    assert joined == [clock.to_storage(starts - timedelta(minutes=30))]
    days = {(starts - timedelta(minutes=30)).strftime("%Y-%m-%d")}
    records = [a for day in days for part in activity_partitions(day)
               for a in Activity.query(part, consistent_read=True)
               if a.type == "joined" and a.meetup_id == meetup.id]
    assert len(records) == 1 and "name" not in records[0].details
    listing = client.http.get(f"/admin/meetups/{meetup.id}/registrations", headers=admin_headers).json_body
    assert listing["registrations"][0]["joined_at"] is not None

    fake.moment = starts + timedelta(hours=2)
    ended = client.http.get(path, headers={"Accept": "text/html"})
    assert ended.status_code == 410 and 'data-door="ended"' in ended.body.decode()


def test_the_link_refuses_waitlisted_cancelled_and_cancelled_meetups(client, monkeypatch, admin_headers):
    starts = datetime(2031, 5, 6, 19, 30, tzinfo=timezone.utc)
    fake = Clock(monkeypatch, starts - timedelta(days=3))
    meetup = make_meetup(capacity=1, join_url=JOIN_URL, starts_at=clock.to_public(starts),
                         ends_at=clock.to_public(starts + timedelta(hours=2)))
    seated, first = sign_up(client, meetup.id)
    waiting, _ = sign_up(client, meetup.id)
    seated_path = join_path(seated)
    fake.moment = starts - timedelta(minutes=10)
    # Waitlisted people get no join link at all (no place yet): a link of theirs would say why not.
    assert JOIN_LINK.search(text_of(messages_to(waiting)[0])) is None
    cancel = client.http.post(first["manage_url"].replace("http://testserver", "") + "/cancel", headers=JSON, body="{}")
    assert cancel.status_code == 200
    refused = client.http.get(seated_path, headers={"Accept": "text/html"})
    assert refused.status_code == 403 and "geannuleerd" in refused.body.decode()
    assert "Location" not in refused.headers
    # The waiting person was promoted into the freed seat: their promotion mail's link works.
    promoted_path = JOIN_LINK.search(text_of(messages_to(waiting)[-1])).group(1)
    assert client.http.get(promoted_path).headers["Location"] == JOIN_URL
    client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers, body=json.dumps({"status": "cancelled"}))
    gone = client.http.get(promoted_path, headers={"Accept": "text/html"})
    assert gone.status_code == 410 and "gaat niet door" in gone.body.decode()
    assert client.http.get(promoted_path[:-3] + "abc").status_code == 404


def test_door_rule_unit():
    from chalicelib.models import Meetup
    starts = datetime(2031, 1, 1, 19, 0, tzinfo=timezone.utc)
    m = Meetup(id="m", title="t", kind="regional", host_name="h", starts_at=clock.to_storage(starts),
               ends_at=clock.to_storage(starts + timedelta(hours=2)), mode="online", capacity=1,
               created_at="x", updated_at="x", join_url=JOIN_URL)
    r = Registration(meetup_id="m", sk="R#r", id="r", status="confirmed", role="teacher", created_at="x", updated_at="x")
    assert joining.door(r, m, starts - timedelta(minutes=31)) is joining.Door.NOT_YET
    assert joining.door(r, m, starts - timedelta(minutes=30)) is joining.Door.OPEN
    assert joining.door(r, m, starts + timedelta(hours=2)) is joining.Door.ENDED
    r.status = "waitlisted"
    assert joining.door(r, m, starts) is joining.Door.NOT_CONFIRMED
    r.status, m.join_url = "confirmed", None
    assert joining.door(r, m, starts) is joining.Door.NO_LINK
    m.state = "cancelled"
    assert joining.door(r, m, starts) is joining.Door.MEETUP_CANCELLED


# --- calendars that follow ----------------------------------------------------------------------

def test_a_time_change_sends_one_update_per_confirmed_person_with_a_higher_sequence(client, admin_headers):
    meetup = make_meetup(capacity=2, join_url=JOIN_URL)
    confirmed = [sign_up(client, meetup.id)[0] for _ in range(2)]
    waiting, _ = sign_up(client, meetup.id)
    uids = {a: str(event_of(invitation_of(messages_to(a)[0]))["UID"]) for a in confirmed}
    assert all(int(event_of(invitation_of(messages_to(a)[0])).get("SEQUENCE", 0)) == 0 for a in confirmed)

    later = clock.from_storage(meetup.starts_at) + timedelta(hours=1)
    change = {"starts_at": clock.to_public(later), "ends_at": clock.to_public(later + timedelta(hours=2))}
    assert client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers, body=json.dumps(change)).status_code == 200
    for address in confirmed:
        updates = [m for m in messages_to(address) if "Gewijzigd" in str(m["Subject"])]
        assert len(updates) == 1
        event = event_of(invitation_of(updates[0]))
        assert str(event["UID"]) == uids[address] and int(event["SEQUENCE"]) == 1
        assert event.decoded("DTSTART") == later.astimezone(clock.AMSTERDAM)
    assert not [m for m in messages_to(waiting) if "Gewijzigd" in str(m["Subject"])]

    # The same values again change nothing and send nothing; a new place raises the sequence again.
    client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers, body=json.dumps(change))
    client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers, body=json.dumps({"title": "Nieuwe titel"}))
    assert all(len([m for m in messages_to(a) if "Gewijzigd" in str(m["Subject"])]) == 1 for a in confirmed)
    client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers,
                      body=json.dumps({"join_url": "https://zoom.example.nl/j/other"}))
    for address in confirmed:
        updates = [m for m in messages_to(address) if "Gewijzigd" in str(m["Subject"])]
        assert [int(event_of(invitation_of(m))["SEQUENCE"]) for m in updates] == [1, 2]
        assert "zoom.example.nl" not in text_of(updates[-1])


def test_cancellations_carry_method_cancel_for_the_same_uid(client, admin_headers):
    meetup = make_meetup(capacity=2)
    leaving, answer = sign_up(client, meetup.id)
    staying, _ = sign_up(client, meetup.id)
    waiting, _ = sign_up(client, meetup.id)
    uid = str(event_of(invitation_of(messages_to(leaving)[0]))["UID"])
    client.http.post(answer["manage_url"].replace("http://testserver", "") + "/cancel", headers=JSON, body="{}")
    cancelled = invitation_of(messages_to(leaving)[-1])
    assert str(cancelled["METHOD"]) == "CANCEL"
    assert str(event_of(cancelled)["UID"]) == uid and str(event_of(cancelled)["STATUS"]) == "CANCELLED"
    assert int(event_of(cancelled)["SEQUENCE"]) >= 1

    client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers, body=json.dumps({"status": "cancelled"}))
    # The waiting person was promoted when `leaving` cancelled: both seated people get a CANCEL.
    for address in (staying, waiting):
        told = invitation_of(messages_to(address)[-1])
        assert str(told["METHOD"]) == "CANCEL" and str(event_of(told)["STATUS"]) == "CANCELLED"


def test_a_waitlisted_person_s_cancellation_carries_no_calendar(client):
    meetup = make_meetup(capacity=0)
    address, answer = sign_up(client, meetup.id)
    client.http.post(answer["manage_url"].replace("http://testserver", "") + "/cancel", headers=JSON, body="{}")
    assert invitation_of(messages_to(address)[-1]) is None


# --- the tour as a calendar ----------------------------------------------------------------------

def test_the_tour_calendar_lists_meetups_with_stable_uids_and_no_join_links(client, admin_headers):
    province = "Zeeland"
    kept = make_meetup(province=province, join_url=JOIN_URL, title=f"Zeeuwse meetup {secrets.token_hex(2)}")
    dropped = make_meetup(province=province, title="Gaat niet door")
    client.http.patch(f"/admin/meetups/{dropped.id}", headers=admin_headers, body=json.dumps({"status": "cancelled"}))
    answer = client.http.get(f"/meetups.ics?province={province}")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/calendar")
    assert JOIN_URL not in answer.body.decode()
    events = {str(e["UID"]): e for e in Calendar.from_ical(answer.body).walk("VEVENT")}
    assert f"meetup-{kept.id}@klassen-meetups" in events
    assert str(events[f"meetup-{dropped.id}@klassen-meetups"]["STATUS"]) == "CANCELLED"
    assert all(str(e["UID"]).startswith("meetup-") for e in events.values())
    one = Calendar.from_ical(client.http.get(f"/meetups.ics?meetup={kept.id}").body)
    assert [str(e["SUMMARY"]) for e in one.walk("VEVENT")] == [kept.title]
    assert client.http.get("/meetups.ics?province=Atlantis").status_code == 422
    assert client.http.get("/meetups.ics?meetup=nope").status_code == 404
