"""Organisers' digests against DynamoDB Local: subscriptions, periods across daylight-saving
changes, one digest per organiser and period however often (and however concurrently) the job
fires, content and scope, failures, crashes, and the unsubscribe link.

Changes are made through the real sign-up and cancel services. Time is a fake clock (every
service reads `clock.now()`), and each test lives in its own stretch of it, so that tests do
not see each other's activity; `run()` gets its `now` and an in-memory mail backend."""
from __future__ import annotations

import itertools
import json
import secrets
import threading
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from urllib.parse import urlparse

import pytest

from chalicelib import clock, digest, registration
from chalicelib.models import Organiser
from tests.factories import make_meetup
from tests.mailfixtures import CollectingBackend, FailingBackend
from tests.mailbox import html_of, messages_to, text_of

AMS = clock.AMSTERDAM
UTC = timezone.utc
JSON = {"Content-Type": "application/json"}
_stretch = itertools.count()


class FakeClock:
    def __init__(self, moment: datetime):
        self.moment = moment.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.moment

    def set(self, moment: datetime) -> datetime:
        self.moment = moment.astimezone(UTC)
        return self.moment

    def advance(self, **delta) -> datetime:
        self.moment += timedelta(**delta)
        return self.moment


@pytest.fixture
def fake_clock(monkeypatch):
    """A Wednesday 10:00 in Amsterdam, 60 days after the previous test's: meetups (30 days
    ahead) and activity of one test are in the past for the next one."""
    fake = FakeClock(datetime(2031, 1, 8, 10, 0, tzinfo=AMS) + timedelta(days=63 * next(_stretch)))
    monkeypatch.setattr(clock, "now", fake)
    return fake


@pytest.fixture(autouse=True)
def no_organisers():
    """Every test starts without organisers (the run serves all of them)."""
    for organiser in digest.list_organisers():
        organiser.delete()
    yield


def person(**overrides) -> dict:
    body = {"name": f"Deelnemer {secrets.token_hex(3)}", "email": f"p-{secrets.token_hex(5)}@school.example.nl",
            "role": "teacher", "organisation": "OBS De Klimop", "consent": True}
    body.update(overrides)
    return body


def sign_up(meetup, **overrides):
    body = person(**overrides)
    outcome = registration.sign_up(meetup.id, body)
    return body, outcome


def subscribe(client, admin_headers, scope="all", frequency="daily", **body):
    body = {"email": f"org-{secrets.token_hex(5)}@gemeente.example.nl", "name": "Olga Organisator",
            "scope": scope, "frequency": frequency, **body}
    response = client.http.post("/admin/organisers", headers=admin_headers, body=json.dumps(body))
    assert response.status_code == 201, response.json_body
    return response.json_body


def next_period(frequency: str = "daily", minutes: int = 30) -> datetime:
    """A moment in the next period, `minutes` after it starts."""
    return digest.period_at(frequency, clock.now()).ends + timedelta(minutes=minutes)


def run(at: datetime, backend, **options) -> dict:
    options.setdefault("sleep", lambda seconds: None)
    return digest.run(now=at, backend=backend, **options)


def text(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def to(message: EmailMessage) -> str:
    return message["To"].addresses[0].addr_spec


def stored(organiser_id: str) -> Organiser:
    return Organiser.get(organiser_id, consistent_read=True)


def path_of(url: str) -> str:
    return urlparse(url).path


# --- subscriptions --------------------------------------------------------------------------------

def test_admin_adds_lists_and_removes_organisers(client, admin_headers, fake_clock):
    meetup = make_meetup(province="Utrecht", city="Utrecht")
    created = subscribe(client, admin_headers, scope={"province": "utrecht"}, frequency="weekly", language="en",
                        email="Olga@Gemeente.example.nl")
    assert created["scope"] == {"province": "Utrecht"}
    assert created["email"] == "Olga@gemeente.example.nl" and created["name"] == "Olga Organisator"
    assert (created["frequency"], created["language"]) == ("weekly", "en")
    assert created["created_at"] == clock.to_public(fake_clock())
    assert created["unsubscribe_url"].startswith("http://testserver/organisers/unsubscribe/")
    by_meetup = subscribe(client, admin_headers, scope={"meetup_id": meetup.id})
    assert by_meetup["scope"] == {"meetup_id": meetup.id} and by_meetup["language"] == "nl"
    everything = subscribe(client, admin_headers)
    assert everything["scope"] == "all" and everything["frequency"] == "daily"

    again = client.http.post("/admin/organisers", headers=admin_headers, body=json.dumps(
        {"email": "olga@gemeente.example.nl", "name": "Olga", "scope": {"province": "Utrecht"}, "frequency": "weekly"}))
    assert again.status_code == 200 and again.json_body["id"] == created["id"]

    listed = client.http.get("/admin/organisers", headers=admin_headers).json_body["organisers"]
    assert sorted(o["id"] for o in listed) == sorted([created["id"], by_meetup["id"], everything["id"]])

    removed = client.http.delete(f"/admin/organisers/{created['id']}", headers=admin_headers)
    assert removed.status_code == 200 and removed.json_body["organiser"]["id"] == created["id"]
    assert client.http.delete(f"/admin/organisers/{created['id']}", headers=admin_headers).status_code == 404
    assert client.http.get(f"/admin/organisers/{created['id']}", headers=admin_headers).status_code == 404
    listed = client.http.get("/admin/organisers", headers=admin_headers).json_body["organisers"]
    assert sorted(o["id"] for o in listed) == sorted([by_meetup["id"], everything["id"]])


@pytest.mark.parametrize("body, fields", [
    ({"email": "not-an-email"}, {"email"}),
    ({"scope": {"province": "Atlantis"}}, {"scope.province"}),
    ({"scope": {"meetup_id": "no-such-meetup"}}, {"scope.meetup_id"}),
    ({"scope": {"city": "Lelystad"}}, {"scope"}),
    ({"scope": "everything"}, {"scope"}),
    ({"frequency": "hourly", "language": "fr"}, {"frequency", "language"}),
    ({"name": "", "email": None}, {"name", "email"}),
    ({"sneaky": 1}, {"sneaky"}),
])
def test_invalid_subscription_is_422_naming_the_fields_and_stores_nothing(client, admin_headers, fake_clock,
                                                                          body, fields):
    payload = {"email": "o@example.nl", "name": "Olga", "scope": "all", "frequency": "daily", **body}
    response = client.http.post("/admin/organisers", headers=admin_headers, body=json.dumps(payload))
    assert response.status_code == 422
    assert set(response.json_body["fields"]) == fields
    assert client.http.get("/admin/organisers", headers=admin_headers).json_body["organisers"] == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_admin_routes_need_a_token_and_change_nothing(client, admin_headers, fake_clock, headers):
    meetup = make_meetup()
    organiser = subscribe(client, admin_headers)
    fake_clock.set(next_period(minutes=-60))
    sign_up(meetup)
    fake_clock.set(next_period())
    headers = dict(headers, **JSON)
    attempts = [
        client.http.post("/admin/organisers", headers=headers,
                         body=json.dumps({"email": "x@example.nl", "name": "X", "scope": "all", "frequency": "daily"})),
        client.http.get("/admin/organisers", headers=headers),
        client.http.get(f"/admin/organisers/{organiser['id']}", headers=headers),
        client.http.delete(f"/admin/organisers/{organiser['id']}", headers=headers),
        client.http.post("/admin/digests/run", headers=headers, body="{}"),
    ]
    assert [r.status_code for r in attempts] == [401] * 5
    assert all(r.json_body["error"] == "unauthorized" for r in attempts)
    assert [o.id for o in digest.list_organisers()] == [organiser["id"]]
    assert stored(organiser["id"]).last_period != digest.period_at("daily", fake_clock()).id
    assert messages_to(organiser["email"]) == []


# --- periods ------------------------------------------------------------------------------------

@pytest.mark.parametrize("moment, frequency, period", [
    # Spring forward on Sunday 2027-03-28 (02:00 CET -> 03:00 CEST): 07:00 is 06:00Z before, 05:00Z after.
    ("2027-03-27T05:59:59Z", "daily", "daily:2027-03-26"),
    ("2027-03-27T06:00:00Z", "daily", "daily:2027-03-27"),
    ("2027-03-28T04:59:59Z", "daily", "daily:2027-03-27"),
    ("2027-03-28T05:00:00Z", "daily", "daily:2027-03-28"),
    ("2027-03-29T04:59:59Z", "weekly", "weekly:2027-W12"),
    ("2027-03-29T05:00:00Z", "weekly", "weekly:2027-W13"),
    # Fall back on Sunday 2027-10-31 (03:00 CEST -> 02:00 CET): 07:00 is 05:00Z before, 06:00Z after.
    ("2027-10-30T05:00:00Z", "daily", "daily:2027-10-30"),
    ("2027-10-31T05:59:59Z", "daily", "daily:2027-10-30"),
    ("2027-10-31T06:00:00Z", "daily", "daily:2027-10-31"),
    ("2027-11-01T05:59:59Z", "weekly", "weekly:2027-W43"),
    ("2027-11-01T06:00:00Z", "weekly", "weekly:2027-W44"),
    # ISO weeks across the turn of the year: Monday 2027-01-04 is in week 1 of 2027.
    ("2027-01-04T05:59:00Z", "weekly", "weekly:2026-W53"),
    ("2027-01-04T06:00:00Z", "weekly", "weekly:2027-W01"),
])
def test_periods_start_at_seven_in_amsterdam_across_daylight_saving(moment, frequency, period):
    assert digest.period_at(frequency, clock.from_storage(moment)).id == period


def test_period_bounds_are_seven_local_on_both_sides_of_a_change():
    week = digest.period_at("weekly", datetime(2027, 3, 30, 12, tzinfo=UTC))
    assert week.starts.isoformat() == "2027-03-29T07:00:00+02:00"
    assert (week.ends - week.starts) == timedelta(days=7)
    spring_day = digest.period_at("daily", datetime(2027, 3, 27, 12, tzinfo=UTC))
    assert spring_day.ends.isoformat() == "2027-03-28T07:00:00+02:00"
    assert spring_day.ends.astimezone(UTC) - spring_day.starts.astimezone(UTC) == timedelta(hours=23)
    autumn_day = digest.period_at("daily", datetime(2027, 10, 30, 12, tzinfo=UTC))
    assert autumn_day.ends.astimezone(UTC) - autumn_day.starts.astimezone(UTC) == timedelta(hours=25)


@pytest.mark.parametrize("created, change, too_early, due, period", [
    # Daily 07:00, spring forward: 07:00 CEST on Sunday is 05:00Z (06:00Z would be 08:00).
    ("2027-03-27T10:00:00+01:00", "2027-03-27T14:00:00+01:00", "2027-03-28T04:55:00Z", "2027-03-28T05:05:00Z",
     "daily:2027-03-28"),
    # Daily 07:00, fall back: 07:00 CET on Sunday is 06:00Z (05:30Z is still 06:30).
    ("2027-10-30T10:00:00+02:00", "2027-10-30T14:00:00+02:00", "2027-10-31T05:30:00Z", "2027-10-31T06:00:00Z",
     "daily:2027-10-31"),
])
def test_daily_digest_at_seven_local_in_a_daylight_saving_week(client, admin_headers, fake_clock,
                                                               created, change, too_early, due, period):
    fake_clock.set(datetime.fromisoformat(created))
    meetup = make_meetup(title=f"DST {period}")
    organiser = subscribe(client, admin_headers, scope={"meetup_id": meetup.id})
    fake_clock.set(datetime.fromisoformat(change))
    body, _ = sign_up(meetup)
    backend = CollectingBackend()
    assert run(clock.from_storage(too_early), backend)["sent"] == 0
    assert run(clock.from_storage(due), backend)["sent"] == 1
    assert run(clock.from_storage(due) + timedelta(hours=3), backend)["sent"] == 0
    assert [to(m) for m in backend.messages] == [organiser["email"]]
    assert body["name"] in text(backend.messages[0])
    assert stored(organiser["id"]).last_period == period


@pytest.mark.parametrize("created, change, too_early, due, period, week", [
    # Monday 07:00 after the spring change: 05:00Z.
    ("2027-03-24T10:00:00+01:00", "2027-03-28T12:00:00+02:00", "2027-03-29T04:59:00Z", "2027-03-29T05:00:00Z",
     "weekly:2027-W13", "13"),
    # Monday 07:00 after the autumn change: 06:00Z (05:30Z is 06:30 CET).
    ("2027-10-27T10:00:00+02:00", "2027-10-31T12:00:00+01:00", "2027-11-01T05:30:00Z", "2027-11-01T06:00:00Z",
     "weekly:2027-W44", "44"),
])
def test_weekly_digest_on_monday_seven_local_in_a_daylight_saving_week(client, admin_headers, fake_clock,
                                                                       created, change, too_early, due, period, week):
    fake_clock.set(datetime.fromisoformat(created))
    meetup = make_meetup(title=f"DST {period}")
    organiser = subscribe(client, admin_headers, scope={"meetup_id": meetup.id}, frequency="weekly")
    fake_clock.set(datetime.fromisoformat(change))
    body, _ = sign_up(meetup)
    backend = CollectingBackend()
    for hours in (-12, -1, 0):  # Sunday noon, Monday before seven: still last week's period
        assert run(clock.from_storage(too_early) + timedelta(hours=hours), backend)["sent"] == 0
    assert run(clock.from_storage(due), backend)["sent"] == 1
    assert run(clock.from_storage(due) + timedelta(days=2), backend)["sent"] == 0
    assert [to(m) for m in backend.messages] == [organiser["email"]]
    assert f"week {week}" in str(backend.messages[0]["Subject"]).lower()
    assert body["name"] in text(backend.messages[0])
    assert stored(organiser["id"]).last_period == period


# --- one digest per period ----------------------------------------------------------------------

def test_one_digest_per_period_however_often_the_job_fires(client, admin_headers, fake_clock):
    meetup = make_meetup()
    organiser = subscribe(client, admin_headers)
    fake_clock.advance(hours=1)
    first, _ = sign_up(meetup)
    backend = CollectingBackend()
    at = next_period()
    assert run(at, backend) == {"sent": 1, "skipped": 0, "failed": 0, "busy": 0, "deferred": 0}
    for later in (timedelta(0), timedelta(minutes=1), timedelta(hours=5), timedelta(hours=23)):
        assert run(at + later, backend)["sent"] == 0
    assert len(backend.messages) == 1 and first["name"] in text(backend.messages[0])

    fake_clock.set(at + timedelta(hours=2))
    second, _ = sign_up(meetup)
    tomorrow = at + timedelta(days=1)
    assert run(tomorrow, backend)["sent"] == 1
    assert run(tomorrow + timedelta(minutes=10), backend)["sent"] == 0
    assert len(backend.messages) == 2
    latest = text(backend.messages[1])
    assert second["name"] in latest and first["name"] not in latest  # only what changed since the last one
    assert stored(organiser["id"]).covered_until == clock.stamp(tomorrow - digest.SETTLE)


def test_nothing_changed_no_email_but_the_period_is_served(client, admin_headers, fake_clock):
    make_meetup()
    organiser = subscribe(client, admin_headers)
    backend = CollectingBackend()
    at = next_period()
    assert run(at, backend) == {"sent": 0, "skipped": 1, "failed": 0, "busy": 0, "deferred": 0}
    assert run(at, backend) == {"sent": 0, "skipped": 0, "failed": 0, "busy": 0, "deferred": 0}
    assert backend.messages == []
    assert stored(organiser["id"]).last_period == digest.period_at("daily", at).id


def test_first_digest_covers_what_changed_since_the_organiser_was_added(client, admin_headers, fake_clock):
    meetup = make_meetup()
    before, _ = sign_up(meetup)
    fake_clock.advance(minutes=5)
    organiser = subscribe(client, admin_headers)
    assert stored(organiser["id"]).last_period == digest.period_at("daily", fake_clock()).id
    # Added after today's digests went out: the first one comes tomorrow at seven, not at once.
    backend = CollectingBackend()
    assert run(fake_clock() + timedelta(hours=1), backend)["sent"] == 0
    fake_clock.advance(minutes=5)
    after, _ = sign_up(meetup)
    assert run(next_period(), backend)["sent"] == 1
    body = text(backend.messages[0])
    assert after["name"] in body and before["name"] not in body


def test_two_firings_at_once_send_one_digest_each(client, admin_headers, fake_clock):
    meetups = [make_meetup(province="Drenthe", city="Assen"), make_meetup(province="Groningen", city="Groningen")]
    organisers = [subscribe(client, admin_headers), subscribe(client, admin_headers, scope={"province": "Drenthe"}),
                  subscribe(client, admin_headers, scope={"province": "Groningen"}, frequency="weekly"),
                  subscribe(client, admin_headers, scope={"meetup_id": meetups[0].id})]
    fake_clock.advance(minutes=10)
    for meetup in meetups:
        sign_up(meetup)
    at = next_period("weekly")
    backend = CollectingBackend(delay=0.05)  # sends overlap
    results, errors = [], []
    barrier = threading.Barrier(2)

    def fire():
        try:
            barrier.wait()
            results.append(run(at, backend))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(to(m) for m in backend.messages) == sorted(o["email"] for o in organisers)
    assert sum(r["sent"] for r in results) == 4
    assert run(at + timedelta(minutes=30), backend)["sent"] == 0 and len(backend.messages) == 4


class Crash(BaseException):
    """The process dies (a Lambda timeout): nothing in the run catches it."""


class CrashOnSecond(CollectingBackend):
    def send(self, message):
        if len(self.messages) == 1:
            raise Crash()
        super().send(message)


def test_a_run_that_crashed_between_organisers_is_resumed_without_duplicates(client, admin_headers, fake_clock):
    meetup = make_meetup()
    organisers = [subscribe(client, admin_headers) for _ in range(3)]
    fake_clock.advance(minutes=10)
    sign_up(meetup)
    at = next_period()
    crashing = CrashOnSecond()
    with pytest.raises(Crash):
        run(at, crashing)
    assert len(crashing.messages) == 1
    served = {to(m) for m in crashing.messages}

    # The next firing, within the crashed run's lease: the third organiser, not the claimed second.
    backend = CollectingBackend()
    again = run(at + timedelta(minutes=5), backend)
    assert again["sent"] == 1 and len(backend.messages) == 1
    served_now = {to(m) for m in backend.messages}
    assert not served & served_now

    # After the lease: the one the crash left claimed, and nobody twice.
    after_lease = at + digest.LEASE + timedelta(minutes=1)
    assert run(after_lease, backend)["sent"] == 1
    assert run(after_lease + timedelta(minutes=30), backend)["sent"] == 0
    everyone = [to(m) for m in crashing.messages + backend.messages]
    assert sorted(everyone) == sorted(o["email"] for o in organisers)


def test_a_failed_send_is_retried_then_leaves_the_period_open_for_the_next_firing(client, admin_headers,
                                                                                     fake_clock):
    meetup = make_meetup()
    organiser = subscribe(client, admin_headers)
    fake_clock.advance(minutes=10)
    body, _ = sign_up(meetup)
    at = next_period()
    failing, delays = FailingBackend(), []
    result = run(at, failing, sleep=delays.append)
    assert result["sent"] == 0 and result["failed"] == 1
    assert failing.calls == digest.SEND_ATTEMPTS
    assert len(delays) == digest.SEND_ATTEMPTS - 1
    assert all(later > earlier for earlier, later in zip(delays, delays[1:]))  # exponential
    assert max(delays) <= digest.RETRY_BASE_SECONDS * 2 ** (digest.SEND_ATTEMPTS - 1)  # bounded
    item = stored(organiser["id"])
    assert item.last_period != digest.period_at("daily", at).id
    assert item.claimed_period is None and item.claim_until is None  # released, not left to the lease

    backend = CollectingBackend()
    assert run(at + timedelta(hours=1), backend)["sent"] == 1
    assert [to(m) for m in backend.messages] == [organiser["email"]] and body["name"] in text(backend.messages[0])


class FlakyBackend(CollectingBackend):
    def __init__(self, failures: int, throttled: bool = True):
        super().__init__()
        self.failures, self.throttled, self.calls = failures, throttled, 0

    def send(self, message):
        from chalicelib.mail import MailDeliveryFailed
        self.calls += 1
        if self.calls <= self.failures:
            raise MailDeliveryFailed("Maximum sending rate exceeded", throttled=self.throttled)
        super().send(message)


def test_a_throttle_is_backed_off_within_the_run(client, admin_headers, fake_clock):
    meetup = make_meetup()
    subscribe(client, admin_headers)
    fake_clock.advance(minutes=10)
    sign_up(meetup)
    backend, delays = FlakyBackend(failures=2), []
    assert run(next_period(), backend, sleep=delays.append)["sent"] == 1
    assert len(backend.messages) == 1 and len(delays) == 2 and delays[1] > delays[0]


def test_a_lasting_throttle_stops_the_run_and_the_next_firing_serves_everyone(client, admin_headers, fake_clock):
    meetup = make_meetup()
    organisers = [subscribe(client, admin_headers) for _ in range(3)]
    fake_clock.advance(minutes=10)
    sign_up(meetup)
    at = next_period()
    throttled = FailingBackend(throttled=True)
    result = run(at, throttled)
    assert result == {"sent": 0, "skipped": 0, "failed": 1, "busy": 0, "deferred": 2}
    assert throttled.calls == digest.SEND_ATTEMPTS
    backend = CollectingBackend()
    assert run(at + timedelta(hours=1), backend)["sent"] == 3
    assert sorted(to(m) for m in backend.messages) == sorted(o["email"] for o in organisers)


# --- content and scope --------------------------------------------------------------------------

def test_each_organiser_gets_the_changes_in_their_scope(client, admin_headers, fake_clock):
    lelystad = make_meetup(title="Meetup Lelystad", province="Flevoland", city="Lelystad")
    almere = make_meetup(title="Meetup Almere", province="Flevoland", city="Almere", days_ahead=31)
    utrecht = make_meetup(title="Meetup Utrecht", province="Utrecht", city="Utrecht", days_ahead=32)
    province = subscribe(client, admin_headers, scope={"province": "Flevoland"})
    one = subscribe(client, admin_headers, scope={"meetup_id": lelystad.id})
    everything = subscribe(client, admin_headers)
    fake_clock.advance(minutes=10)
    names = {m.id: sign_up(m)[0]["name"] for m in (lelystad, almere, utrecht)}
    backend = CollectingBackend()
    assert run(next_period(), backend)["sent"] == 3
    got = {to(m): text(m) for m in backend.messages}

    def shown(email):
        return {meetup_id for meetup_id, name in names.items() if name in got[email]}

    assert shown(province["email"]) == {lelystad.id, almere.id}
    assert shown(one["email"]) == {lelystad.id}
    assert shown(everything["email"]) == {lelystad.id, almere.id, utrecht.id}
    assert "Meetup Utrecht" not in got[one["email"]]


def test_digest_content_changes_seats_next_sessions_and_no_attendee_emails(client, admin_headers, fake_clock):
    meetup = make_meetup(title="Meetup Middelburg", province="Zeeland", city="Middelburg", capacity=2)
    make_meetup(title="Meetup Goes", province="Zeeland", city="Goes", days_ahead=40, capacity=4)
    dutch = subscribe(client, admin_headers, scope={"province": "Zeeland"})
    english = subscribe(client, admin_headers, scope={"province": "Zeeland"}, language="en", frequency="weekly")
    fake_clock.advance(minutes=10)
    holder, held = sign_up(meetup, name="Anna de Vries", role="school_leader", organisation="CBS De Wegwijzer")
    second, _ = sign_up(meetup, name="Bram Bakker", organisation=None)
    waiting, _ = sign_up(meetup, name="Cor Claassen", role="parent", organisation="MR De Wegwijzer")
    registration.cancel(held.manage_url.rsplit("/", 1)[1])  # Anna cancels: Cor is promoted
    attendees = [holder["email"], second["email"], waiting["email"]]

    backend = CollectingBackend()
    assert run(next_period("weekly"), backend)["sent"] == 2
    by_recipient = {to(m): m for m in backend.messages}
    nl, en = by_recipient[dutch["email"]], by_recipient[english["email"]]

    body = text(nl)
    assert "Aangemeld: Anna de Vries, Schoolleider, CBS De Wegwijzer" in body
    assert "Aangemeld: Bram Bakker, Docent / leerkracht" in body
    assert "Op de wachtlijst: Cor Claassen, Ouder, MR De Wegwijzer" in body
    assert "Van de wachtlijst naar een plek: Cor Claassen" in body
    assert "Afgemeld: Anna de Vries" in body
    assert "Nieuwe aanmeldingen: 2" in body and "Afmeldingen: 1" in body
    assert "Bezetting: 2 van 2 (100%), nog 0 plekken vrij, wachtlijst: 0" in body
    assert "Volgende sessies" in body and "Meetup Goes" in body
    assert body.index("Meetup Middelburg", body.index("Volgende sessies")) < body.index("Meetup Goes")
    assert "Dagoverzicht" in str(nl["Subject"]) and "5 wijzigingen" in str(nl["Subject"])
    assert 'width:100%' in html(nl)  # the fill bar of a full meetup
    assert 'width:0%' in html(nl)  # the next session nobody signed up for yet
    assert "Anna de Vries" in html(nl) and "Hoi Olga Organisator" in html(nl)

    english_body = text(en)
    assert "Signed up: Anna de Vries, School leader, CBS De Wegwijzer" in english_body
    assert "Promoted from the waiting list: Cor Claassen" in english_body
    assert "Weekly digest" in str(en["Subject"]) and en["Content-Language"] == "en"
    assert "Next sessions" in english_body

    for message in backend.messages:
        raw = message.as_string()
        for address in attendees:  # an organiser sees names, roles and organisations only
            assert address not in raw
            assert address not in text(message) and address not in html(message)


def test_a_long_digest_names_the_first_changes_and_counts_the_rest(client, admin_headers, fake_clock, monkeypatch):
    monkeypatch.setattr(digest, "MAX_ENTRIES_PER_MEETUP", 2)
    meetup = make_meetup(capacity=20)
    subscribe(client, admin_headers, scope={"meetup_id": meetup.id})
    fake_clock.advance(minutes=10)
    names = []
    for _ in range(5):
        names.append(sign_up(meetup)[0]["name"])
        fake_clock.advance(seconds=1)
    backend = CollectingBackend()
    assert run(next_period(), backend)["sent"] == 1
    body = text(backend.messages[0])
    assert [name in body for name in names] == [True, True, False, False, False]
    assert "... en nog 3 wijzigingen" in body and "Nieuwe aanmeldingen: 5" in body
    assert "Bezetting: 5 van 20 (25%), nog 15 plekken vrij" in body
    assert "width:25%" in html(backend.messages[0])


def test_handovers_and_follow_ups_are_in_the_digest_of_the_meetup_organiser(client, admin_headers, fake_clock):
    origin = make_meetup(title="Meetup Zwolle", province="Overijssel", city="Zwolle", mode="in_person")
    organiser = subscribe(client, admin_headers, scope={"meetup_id": origin.id})
    fake_clock.advance(minutes=10)
    starts = clock.from_storage(origin.starts_at) + timedelta(days=30)
    handover = client.http.post(f"/admin/meetups/{origin.id}/handover", headers=admin_headers, body=json.dumps({
        "city": "Deventer", "host_name": "Gemeente Deventer", "host_email": "host@deventer.example.nl",
        "starts_at": clock.to_public(starts), "ends_at": clock.to_public(starts + timedelta(hours=2)),
        "mode": "in_person", "capacity": 40}))
    assert handover.status_code == 201, handover.json_body
    follow_up = handover.json_body["meetup"]
    from urllib.parse import urlparse
    from chalicelib import handover as handovers
    from chalicelib.models import Handover
    accept = urlparse(handovers.accept_url(Handover.get(origin.id, consistent_read=True))).path + "/accept"
    assert client.http.post(accept, headers={"Content-Type": "application/json"}, body="{}").status_code == 200
    fake_clock.advance(minutes=1)
    outcome = registration.sign_up(follow_up["id"], person())
    backend = CollectingBackend()
    assert run(next_period(), backend)["sent"] == 1
    message = text(backend.messages[0])
    assert "Overdrachten: 1" in message
    assert f"Meetup Zwolle (Zwolle) is overgedragen aan {follow_up['title']} (Deventer) op " in message
    assert outcome.registration.name in message  # the follow-up handed over from their meetup is in scope
    assert f"/meetups/{follow_up['id']}" in html(backend.messages[0])
    assert to(backend.messages[0]) == organiser["email"]


def test_the_run_reads_only_the_activity_log_organisers_and_meetups(client, admin_headers, fake_clock):
    """Cost grows with the changes: no Scan anywhere, and not a single read of registrations."""
    from chalicelib.models import ALL_MODELS
    meetup = make_meetup()
    subscribe(client, admin_headers)
    fake_clock.advance(minutes=10)
    sign_up(meetup)
    calls = []

    def record(params, model, **kwargs):
        for table in [params["TableName"]] if "TableName" in params else list(params.get("RequestItems", {})):
            calls.append((model.name, table))

    clients = {id(m._get_connection().connection.client): m._get_connection().connection.client for m in ALL_MODELS}
    for botocore_client in clients.values():
        botocore_client.meta.events.register("before-parameter-build.dynamodb.*", record)
    try:
        assert run(next_period(), CollectingBackend())["sent"] == 1
    finally:
        for botocore_client in clients.values():
            botocore_client.meta.events.unregister("before-parameter-build.dynamodb.*", record)
    operations = {op for op, _ in calls}
    tables = {table.rsplit("-", 1)[-1] for _, table in calls}
    assert "Scan" not in operations
    # Besides those, one key read per organiser: whether SES suppressed the address.
    assert tables <= {"organisers", "activity", "meetups", "suppressions"}, calls
    assert {op for op, table in calls if table.endswith("-suppressions")} <= {"GetItem", "BatchGetItem"}
    assert {"activity", "organisers", "meetups"} <= tables


# --- the run over HTTP and the unsubscribe link ---------------------------------------------------

def test_admin_runs_the_digests_now(client, admin_headers, fake_clock):
    meetup = make_meetup()
    organiser = subscribe(client, admin_headers)
    fake_clock.advance(minutes=10)
    sign_up(meetup)
    fake_clock.set(next_period())
    response = client.http.post("/admin/digests/run", headers=admin_headers, body="{}")
    assert response.status_code == 200
    assert response.json_body["sent"] == 1 and response.json_body["skipped"] == 0
    again = client.http.post("/admin/digests/run", headers=admin_headers, body="{}")
    assert again.json_body["sent"] == 0
    sent = messages_to(organiser["email"])  # the configured (file) backend
    assert len(sent) == 1
    # Signed when the digest is sent (each link carries its own expiry), for the same subscription.
    import re

    from chalicelib import tokens
    link = re.search(r"http://testserver/organisers/unsubscribe/\S+", text_of(sent[0])).group(0)
    assert link in html_of(sent[0]) and sent[0]["List-Unsubscribe"] == f"<{link}>"
    # As a mail client reads it: a plain <http...> header, not an RFC 2047 encoded word.
    from tests.mailbox import raw_messages_to
    (raw,) = raw_messages_to(organiser["email"])
    headers = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].replace(b"\n ", b" ").replace(b"\n\t", b" ")
    (line,) = [h for h in headers.split(b"\n") if h.lower().startswith(b"list-unsubscribe:")]
    assert line.startswith(b"List-Unsubscribe: <http://testserver/organisers/unsubscribe/"), line
    assert b"=?" not in line and line.rstrip().endswith(b">"), line
    assert tokens.verify(digest.UNSUBSCRIBE_PURPOSE, link.rsplit("/", 1)[1], 2) == tokens.verify(
        digest.UNSUBSCRIBE_PURPOSE, organiser["unsubscribe_url"].rsplit("/", 1)[1], 2)


def test_unsubscribe_link_shows_then_unsubscribes_and_answers_the_same_again(client, admin_headers, fake_clock):
    meetup = make_meetup()
    organiser = subscribe(client, admin_headers)
    other = subscribe(client, admin_headers, scope={"meetup_id": meetup.id})
    link = path_of(organiser["unsubscribe_url"])
    for _ in range(2):  # showing changes nothing (mail scanners open links)
        shown = client.http.get(link)
        assert shown.status_code == 200 and shown.json_body["subscribed"] is True
        assert shown.json_body["subscription"]["email"] == organiser["email"]
    page = client.http.get(link, headers={"Accept": "text/html"}).body.decode()
    assert 'lang="nl"' in page and "Afmelden" in page and f'action="{link}' in page
    assert "de hele tour" in page
    assert sorted(o.id for o in digest.list_organisers()) == sorted([organiser["id"], other["id"]])

    first = client.http.post(link, headers=JSON, body="{}")
    second = client.http.post(link, headers=JSON, body="{}")
    assert first.status_code == second.status_code == 200
    assert first.json_body == second.json_body == {"subscribed": False}
    assert client.http.get(link).json_body == {"subscribed": False}
    assert [o.id for o in digest.list_organisers()] == [other["id"]]
    done = client.http.get(link + "?lang=en", headers={"Accept": "text/html"}).body.decode()
    assert "You are unsubscribed" in done

    fake_clock.advance(minutes=10)
    sign_up(meetup)
    backend = CollectingBackend()
    run(next_period(), backend)
    assert [to(m) for m in backend.messages] == [other["email"]]


def test_browser_unsubscribe_and_one_click(client, admin_headers, fake_clock):
    organiser = subscribe(client, admin_headers, language="en")
    link = path_of(organiser["unsubscribe_url"])
    page = client.http.get(link, headers={"Accept": "text/html"}).body.decode()
    assert 'lang="en"' in page and "Unsubscribe" in page
    answer = client.http.post(link + "?lang=en", headers={"Content-Type": "application/x-www-form-urlencoded",
                                                          "Accept": "text/html"}, body="")
    assert answer.status_code == 303 and answer.headers["Location"] == f"{link}?lang=en"
    assert digest.list_organisers() == []
    # RFC 8058 one-click from a mail client: a form post, no browser.
    again = client.http.post(link, headers={"Content-Type": "application/x-www-form-urlencoded"},
                             body="List-Unsubscribe=One-Click")
    assert again.status_code == 200 and again.json_body == {"subscribed": False}


def test_an_old_link_does_nothing_to_a_new_subscription(client, admin_headers, fake_clock):
    body = {"email": "olga@gemeente.example.nl", "name": "Olga", "scope": "all", "frequency": "daily"}
    old = subscribe(client, admin_headers, **body)
    client.http.post(path_of(old["unsubscribe_url"]), headers=JSON, body="{}")
    fake_clock.advance(minutes=1)
    new = subscribe(client, admin_headers, **body)
    assert new["id"] == old["id"] and new["unsubscribe_url"] != old["unsubscribe_url"]
    assert client.http.get(path_of(old["unsubscribe_url"])).json_body == {"subscribed": False}
    client.http.post(path_of(old["unsubscribe_url"]), headers=JSON, body="{}")
    assert [o.id for o in digest.list_organisers()] == [new["id"]]


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: "x" + t,
    lambda t: "garbage",
])
def test_tampered_unsubscribe_link_is_404_and_changes_nothing(client, admin_headers, fake_clock, mangle):
    organiser = subscribe(client, admin_headers)
    token = path_of(organiser["unsubscribe_url"]).rsplit("/", 1)[1]
    assert client.http.get(f"/organisers/unsubscribe/{mangle(token)}").status_code == 404
    response = client.http.post(f"/organisers/unsubscribe/{mangle(token)}", headers=JSON, body="{}")
    assert response.status_code == 404 and response.json_body["error"] == "not_found"
    # A token signed for another purpose (a registration's manage link) is no unsubscribe link.
    from chalicelib import tokens
    foreign = tokens.sign(registration.MANAGE_PURPOSE, organiser["id"], stored(organiser["id"]).created_at)
    assert client.http.post(f"/organisers/unsubscribe/{foreign}", headers=JSON, body="{}").status_code == 404
    assert [o.id for o in digest.list_organisers()] == [organiser["id"]]


def test_a_suppressed_organiser_gets_no_digest(client, admin_headers, fake_clock):
    """Issue 12: an address SES reported as a hard bounce or a complaint gets no more mail at all."""
    from chalicelib.models import Suppression
    from chalicelib import suppression
    meetup = make_meetup()
    organiser = subscribe(client, admin_headers)
    Suppression(address_hash=suppression.address_key(organiser["email"]), reason="bounce",
                suppressed_at=clock.stamp()).save()
    fake_clock.advance(hours=1)
    sign_up(meetup)
    backend = CollectingBackend()
    assert run(next_period(), backend) == {"sent": 0, "skipped": 1, "failed": 0, "busy": 0, "deferred": 0}
    assert backend.messages == []
