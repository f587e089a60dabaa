"""End to end over real HTTP: the service as `make run` starts it (see tests/e2e_support.py),
with its demo tour, background mail delivery and rush-ready server."""
from __future__ import annotations

import secrets
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import requests

pytest_plugins = ["tests.e2e_support"]  # the session's one `live_service`, shared with test_browser.py

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
PROVINCES = {"Drenthe", "Flevoland", "Friesland", "Gelderland", "Groningen", "Limburg", "Noord-Brabant",
             "Noord-Holland", "Overijssel", "Utrecht", "Zeeland", "Zuid-Holland"}
TIMEOUT = 30


def tour_year() -> int:
    """Worked out here, not taken from the app: the first year whose tour (from 1 February) is ahead."""
    today = datetime.now(AMSTERDAM).date()
    return today.year if today < date(today.year, 2, 1) else today.year + 1


def local_date(stamp: str) -> date:
    return datetime.fromisoformat(stamp).astimezone(AMSTERDAM).date()


def all_meetups(base_url: str) -> list[dict]:
    answer = requests.get(f"{base_url}/meetups", timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    return answer.json()["meetups"]


def sign_up_body(email: str, **extra) -> dict:
    return {"name": "Test Deelnemer", "email": email, "role": "teacher", "consent": True, **extra}


def unique_email(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(5)}@e2e.example.nl"


# --- the demo tour -------------------------------------------------------------------------------

def test_meetups_lists_the_whole_demo_tour(live_service):
    meetups = all_meetups(live_service.base_url)
    year = tour_year()
    now = datetime.now(AMSTERDAM)
    by_kind = {}
    for meetup in meetups:
        by_kind.setdefault(meetup["kind"], []).append(meetup)

    assert Counter(m["kind"] for m in meetups) == {"regional": 12, "extra": 2, "follow_up": 2, "final": 1}
    assert len({m["id"] for m in meetups}) == len(meetups) == 17

    regional = by_kind["regional"]
    assert sorted(m["province"] for m in regional) == sorted(PROVINCES)  # one per province
    assert all(m["city"] for m in regional)

    extras = sorted(by_kind["extra"], key=lambda m: m["starts_at"])
    assert [local_date(m["starts_at"]) for m in extras] == [date(year, 4, 12), date(year, 4, 19)]
    for extra in extras:
        assert extra["province"] is None and extra["city"] is None
        assert extra["mode"] == "online"
        assert extra["waitlist"]["enabled"] is True

    (final,) = by_kind["final"]
    assert local_date(final["starts_at"]) == date(year, 5, 25)
    assert final["city"] == "Den Haag"

    # The whole tour lies in the coming tour year, in the future, open for sign-up, in order.
    for meetup in meetups:
        starts = datetime.fromisoformat(meetup["starts_at"])
        assert starts.utcoffset() is not None, meetup["starts_at"]
        assert local_date(meetup["starts_at"]).year == year, meetup
        assert starts > now, meetup
        assert datetime.fromisoformat(meetup["ends_at"]) > starts, meetup
        # Sign-up open; only the rush's meetup may be full, if the rush ran first. The demo's
        # follow-ups are announced: closed until their new hosts accept the handovers.
        if meetup["kind"] == "follow_up":
            assert meetup["status"] == "closed", meetup
            continue
        assert meetup["status"] == "open" or (meetup["id"] == RUSH_MEETUP and meetup["status"] == "full"), meetup
        assert meetup["seats_left"] == meetup["capacity"] - meetup["confirmed"]
        assert "email" not in meetup["host"], "host contact details are never public"
    assert [m["starts_at"] for m in meetups] == sorted((m["starts_at"] for m in meetups), key=datetime.fromisoformat)


def test_follow_ups_are_handed_over_from_lelystad_and_helmond(live_service):
    meetups = {m["id"]: m for m in all_meetups(live_service.base_url)}
    follow_ups = {m["city"]: m for m in meetups.values() if m["kind"] == "follow_up"}
    assert set(follow_ups) == {"Almere", "'s-Hertogenbosch"}
    for city, from_city, province in (("Almere", "Lelystad", "Flevoland"),
                                      ("'s-Hertogenbosch", "Helmond", "Noord-Brabant")):
        follow_up = follow_ups[city]
        outgoing = meetups[follow_up["follows"]]
        assert outgoing["city"] == from_city and outgoing["kind"] == "regional"
        assert outgoing["province"] == follow_up["province"] == province
        assert outgoing["follows"] is None
        assert outgoing["starts_at"] < follow_up["starts_at"]
        for member in (outgoing["id"], follow_up["id"]):
            answer = requests.get(f"{live_service.base_url}/meetups/{member}/chain", timeout=TIMEOUT)
            assert answer.status_code == 200, answer.text
            assert [m["id"] for m in answer.json()["chain"]] == [outgoing["id"], follow_up["id"]]
    others = [m for m in meetups.values() if m["kind"] != "follow_up"]
    assert all(m["follows"] is None for m in others)


def test_a_browser_gets_dutch_html(live_service):
    answer = requests.get(f"{live_service.base_url}/meetups", headers={"Accept": "text/html"}, timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert '<html lang="nl">' in answer.text
    assert "Klassen Meetup Groningen" in answer.text and "Landelijke slotbijeenkomst Klassen" in answer.text


# --- one sign-up, its email, the manage link -----------------------------------------------------

def test_sign_up_email_manage_link_and_cancel(live_service):
    meetup_id = f"drenthe-{tour_year()}"
    before = requests.get(f"{live_service.base_url}/meetups/{meetup_id}", timeout=TIMEOUT).json()
    address = unique_email("aanmelding")

    answer = requests.post(f"{live_service.base_url}/meetups/{meetup_id}/registrations",
                           json=sign_up_body(address, municipality="Assen"), timeout=TIMEOUT)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    registration = body["registration"]
    assert registration["status"] == "confirmed" and registration["waitlist_position"] is None
    assert registration["meetup_id"] == meetup_id
    manage_url = body["manage_url"]
    assert manage_url.startswith(f"{live_service.base_url}/registrations/"), manage_url

    after = requests.get(f"{live_service.base_url}/meetups/{meetup_id}", timeout=TIMEOUT).json()
    assert after["confirmed"] == before["confirmed"] + 1

    # The confirmation, delivered by the background thread into MAIL_DIR.
    mails = live_service.wait_for_mail(address, timeout=10)
    assert len(mails) == 1, f"expected one confirmation email to {address} within 10 s, found {len(mails)}"
    (mail,) = mails
    assert "Klassen Meetup Drenthe" in str(mail["Subject"])
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert manage_url in plain.get_content()
    assert manage_url in html.get_content()
    calendars = [part for part in mail.iter_attachments() if part.get_content_type() == "text/calendar"]
    assert len(calendars) == 1
    ics = calendars[0].get_content()
    ics = ics.decode() if isinstance(ics, bytes) else ics
    assert "BEGIN:VEVENT" in ics and "METHOD:REQUEST" in ics

    # The manage link works over HTTP, JSON and HTML.
    shown = requests.get(manage_url, timeout=TIMEOUT)
    assert shown.status_code == 200, shown.text
    assert shown.json()["registration"]["id"] == registration["id"]
    assert shown.json()["registration"]["status"] == "confirmed"
    page = requests.get(manage_url, headers={"Accept": "text/html"}, timeout=TIMEOUT)
    assert page.status_code == 200 and '<html lang="nl">' in page.text and "Je plek is bevestigd" in page.text

    tampered = manage_url[:-2] + ("AA" if not manage_url.endswith("AA") else "BB")
    assert requests.get(tampered, timeout=TIMEOUT).status_code == 404

    # Cancel, and cancel again: the same 200.
    for _ in range(2):
        cancelled = requests.post(f"{manage_url}/cancel", timeout=TIMEOUT)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["registration"]["status"] == "cancelled"
        assert cancelled.json()["registration"]["id"] == registration["id"]
    assert requests.get(manage_url, timeout=TIMEOUT).json()["registration"]["status"] == "cancelled"
    final = requests.get(f"{live_service.base_url}/meetups/{meetup_id}", timeout=TIMEOUT).json()
    assert final["confirmed"] == before["confirmed"]


# --- a rush ----------------------------------------------------------------------------------------

RUSH_SIGN_UPS = 150
RUSH_THREADS = 50
RUSH_CAPACITY = 20
RUSH_MEETUP = f"extra-12-april-{tour_year()}"


@pytest.mark.slow
def test_a_rush_of_sign_ups_over_fresh_connections(live_service):
    meetup_id = RUSH_MEETUP
    base = live_service.base_url
    patched = requests.patch(f"{base}/admin/meetups/{meetup_id}", json={"capacity": RUSH_CAPACITY},
                             headers=live_service.admin_headers, timeout=TIMEOUT)
    assert patched.status_code == 200, patched.text
    assert patched.json()["capacity"] == RUSH_CAPACITY

    start = threading.Barrier(RUSH_THREADS)

    def sign_up(n: int):
        if n < RUSH_THREADS:
            try:
                start.wait(timeout=30)  # the first 50 leave together
            except threading.BrokenBarrierError:
                pass
        try:
            # requests.post without a Session: a fresh connection each time, closed after the answer.
            answer = requests.post(f"{base}/meetups/{meetup_id}/registrations",
                                   json=sign_up_body(f"rush-{n}-{secrets.token_hex(3)}@e2e.example.nl"),
                                   headers={"Connection": "close"}, timeout=120)
        except requests.RequestException as exc:
            return n, exc
        return n, answer

    with ThreadPoolExecutor(max_workers=RUSH_THREADS) as pool:
        results = list(pool.map(sign_up, range(RUSH_SIGN_UPS)))

    failures = [(n, r) for n, r in results if isinstance(r, Exception)]
    assert not failures, f"{len(failures)} sign-ups failed on the connection, e.g. {failures[:3]}"
    statuses = Counter(r.status_code for _, r in results)
    assert statuses == {201: RUSH_SIGN_UPS}, {code: [r.text[:200] for _, r in results if r.status_code == code][:2]
                                               for code in statuses}

    answered = {r.json()["registration"]["id"]: r.json()["registration"] for _, r in results}
    assert len(answered) == RUSH_SIGN_UPS
    assert Counter(reg["status"] for reg in answered.values()) == {
        "confirmed": RUSH_CAPACITY, "waitlisted": RUSH_SIGN_UPS - RUSH_CAPACITY}
    answered_positions = sorted(reg["waitlist_position"] for reg in answered.values() if reg["status"] == "waitlisted")
    assert answered_positions == list(range(1, RUSH_SIGN_UPS - RUSH_CAPACITY + 1))

    listing = requests.get(f"{base}/admin/meetups/{meetup_id}/registrations",
                           headers=live_service.admin_headers, timeout=TIMEOUT)
    assert listing.status_code == 200, listing.text
    registrations = listing.json()["registrations"]
    assert len(registrations) == RUSH_SIGN_UPS
    confirmed = [r for r in registrations if r["status"] == "confirmed"]
    waitlisted = [r for r in registrations if r["status"] == "waitlisted"]
    assert len(confirmed) == RUSH_CAPACITY
    assert all(r["waitlist_position"] is None for r in confirmed)
    assert sorted(r["waitlist_position"] for r in waitlisted) == list(range(1, RUSH_SIGN_UPS - RUSH_CAPACITY + 1))
    # Nobody cancelled: each position is the one the sign-up was told.
    for r in registrations:
        assert answered[r["id"]]["status"] == r["status"], r
        assert answered[r["id"]]["waitlist_position"] == r["waitlist_position"], r

    meetup = requests.get(f"{base}/meetups/{meetup_id}", timeout=TIMEOUT).json()
    assert meetup["confirmed"] == RUSH_CAPACITY and meetup["seats_left"] == 0
    assert meetup["status"] == "full"
    assert meetup["waitlist"] == {"enabled": True, "length": RUSH_SIGN_UPS - RUSH_CAPACITY, "max_length": None}


# --- admin ---------------------------------------------------------------------------------------

def test_admin_routes_refuse_requests_without_a_valid_token(live_service):
    base = live_service.base_url
    meetup_id = f"zeeland-{tour_year()}"
    before = requests.get(f"{base}/meetups/{meetup_id}", timeout=TIMEOUT).json()
    attempts = [
        ("GET", f"/admin/meetups/{meetup_id}/registrations", None),
        ("GET", f"/admin/meetups/{meetup_id}/registrations?format=csv", None),
        ("PATCH", f"/admin/meetups/{meetup_id}", {"capacity": 5}),
        ("POST", "/admin/meetups", {"title": "Niet toegestaan", "kind": "extra"}),
        ("POST", f"/admin/meetups/{meetup_id}/handover", {"city": "Vlissingen"}),
        ("POST", "/admin/organisers", {"email": "o@e2e.example.nl", "name": "O", "scope": "all",
                                       "frequency": "daily"}),
        ("POST", "/admin/digests/run", {}),
    ]
    for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": live_service.admin_token}):
        for method, path, body in attempts:
            answer = requests.request(method, f"{base}{path}", json=body, headers=headers, timeout=TIMEOUT)
            assert answer.status_code == 401, (method, path, headers, answer.status_code, answer.text[:300])
            assert answer.json().keys() >= {"error", "message"}, answer.text
    after = requests.get(f"{base}/meetups/{meetup_id}", timeout=TIMEOUT).json()
    assert after == before
    assert len(all_meetups(base)) == 17
    # The token itself works, so the 401s above are about the token.
    ok = requests.get(f"{base}/admin/meetups/{meetup_id}/registrations", headers=live_service.admin_headers,
                      timeout=TIMEOUT)
    assert ok.status_code == 200, ok.text


# --- a second start ------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_second_start_on_the_same_tables_does_not_duplicate_the_demo_tour(live_service):
    from tests.e2e_support import start_service  # imported here: pytest loads the module as a plugin first

    before = all_meetups(live_service.base_url)
    second = start_service(prefix=live_service.prefix, admin_token=live_service.admin_token,
                           mail_dir=live_service.mail_dir, data_dir=live_service.data_dir)
    try:
        second.wait_until_ready()
        assert "Demo tour: 0 meetups added" in second.log(), second.log()
        again = all_meetups(second.base_url)
        assert sorted(m["id"] for m in again) == sorted(m["id"] for m in before)
        assert len(all_meetups(live_service.base_url)) == len(before) == 17
    finally:
        code = second.interrupt()
        if code is None:
            second.kill()
    assert code == 0, f"the second service did not stop cleanly on Ctrl-C ({code}):\n{second.log()}"


# --- errors for a browser -------------------------------------------------------------------------

def test_a_browser_gets_error_pages_as_4xx_html(live_service):
    base = live_service.base_url
    html = {"Accept": "text/html"}
    attempts = [
        ("GET", "/meetups/no-such-meetup", {}, 404),
        ("GET", "/meetups/no-such-meetup/register", {}, 404),
        ("POST", "/meetups/no-such-meetup/registrations", {"name": "A", "email": "a@e2e.example.nl"}, 404),
        ("GET", "/registrations/not-a-valid-token", {}, 404),
        ("GET", f"/admin/meetups/utrecht-{tour_year()}/registrations", {}, 401),
    ]
    wrong = []
    for method, path, form, status in attempts:
        answer = requests.request(method, f"{base}{path}", data=form or None, headers=html,
                                  allow_redirects=False, timeout=TIMEOUT)
        if (answer.status_code != status or not answer.headers.get("Content-Type", "").startswith("text/html")
                or '<html lang="nl">' not in answer.text):
            wrong.append((method, path, answer.status_code, answer.text[:120]))
    assert not wrong, wrong
