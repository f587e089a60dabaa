"""Host-to-host handover through the HTTP routes (and the service, for races), against DynamoDB
Local, with the `file` mail backend."""
from __future__ import annotations

import json
import os
import re
import secrets
import threading
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest

from chalicelib import clock, handover as handovers
from chalicelib.errors import Conflict
from chalicelib.models import Activity, Handover, Meetup, OutboxMessage, activity_partitions
from tests.factories import make_meetup
from tests.mailbox import html_of, messages_to, text_of

JSON = {"Content-Type": "application/json"}
ACCEPT_LINK = re.compile(r"http://testserver(/handovers/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")


def unique_email(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}@example.nl"


def outgoing_meetup(**overrides):
    """A regional meetup in Lelystad (a month ahead unless said otherwise) with its own host address."""
    overrides.setdefault("host", {"name": "Gemeente Lelystad", "email": unique_email("lelystad")})
    overrides.setdefault("mode", "in_person")
    return make_meetup(**overrides)


def handover_body(outgoing, **overrides) -> dict:
    starts = clock.from_storage(outgoing.starts_at) + timedelta(days=60)
    if starts <= clock.now():
        starts = clock.now() + timedelta(days=30)
    body = {"city": "Almere", "host_name": "Gemeente Almere", "host_email": unique_email("almere"),
            "starts_at": clock.to_public(starts), "ends_at": clock.to_public(starts + timedelta(hours=2)),
            "mode": "in_person", "capacity": 80, "venue": "Stadhuis Almere"}
    body.update(overrides)
    return body


def post_handover(client, headers, meetup_id, body, key=None):
    headers = dict(headers, **({"Idempotency-Key": key} if key else {}))
    return client.http.post(f"/admin/meetups/{meetup_id}/handover", headers=headers,
                            body=body if isinstance(body, str) else json.dumps(body))


def chain_ids(client, meetup_id) -> list[str]:
    response = client.http.get(f"/meetups/{meetup_id}/chain")
    assert response.status_code == 200
    return [m["id"] for m in response.json_body["chain"]]


def stored_handover(meetup_id) -> Handover | None:
    try:
        return Handover.get(meetup_id, consistent_read=True)
    except Handover.DoesNotExist:
        return None


def mail_count() -> int:
    return len(list(Path(os.environ["MAIL_DIR"]).glob("*.eml")))


def snapshot(client, meetup_id) -> tuple:
    """What a refused request must leave as it was."""
    handover = stored_handover(meetup_id)
    return (Meetup.get(meetup_id, consistent_read=True).serialize(), chain_ids(client, meetup_id),
            handover.serialize() if handover else None, mail_count())


def accept_path(address: str) -> str:
    mails = messages_to(address)
    assert len(mails) == 1
    found = ACCEPT_LINK.search(text_of(mails[0]))
    assert found, text_of(mails[0])
    return found.group(1)


def sign_up(client, meetup_id, **overrides):
    body = {"name": "Deelnemer", "email": unique_email("deelnemer"), "role": "teacher", "consent": True}
    body.update(overrides)
    response = client.http.post(f"/meetups/{meetup_id}/registrations", headers=JSON, body=json.dumps(body))
    assert response.status_code == 201, response.json_body
    return body, response.json_body


def handed_over(client, admin_headers, **meetup):
    outgoing = outgoing_meetup(**meetup)
    body = handover_body(outgoing)
    response = post_handover(client, admin_headers, outgoing.id, body)
    assert response.status_code == 201, response.json_body
    return outgoing, body, response.json_body


# --- creating ----------------------------------------------------------------------------------

def test_handover_creates_the_follow_up_in_contract_shape(client, admin_headers):
    outgoing = outgoing_meetup()
    body = handover_body(outgoing)
    response = post_handover(client, admin_headers, outgoing.id, body)
    assert response.status_code == 201, response.json_body
    created = response.json_body
    assert set(created) == {"handover", "meetup"}
    assert set(created["handover"]) == {"id", "from_meetup_id", "to_meetup_id", "status"}
    meetup = created["meetup"]
    assert created["handover"]["from_meetup_id"] == outgoing.id
    assert created["handover"]["to_meetup_id"] == meetup["id"] != outgoing.id
    assert created["handover"]["status"] == "proposed"
    assert set(meetup) >= {"id", "title", "kind", "province", "city", "host", "starts_at", "ends_at", "mode",
                           "capacity", "confirmed", "seats_left", "waitlist", "status", "follows"}
    assert meetup["kind"] == "follow_up" and meetup["follows"] == outgoing.id
    assert meetup["province"] == "Flevoland", "the province is carried over"
    assert (meetup["city"], meetup["capacity"], meetup["mode"]) == ("Almere", 80, "in_person")
    assert meetup["starts_at"] == body["starts_at"]
    assert meetup["status"] == "closed", "announced: sign-up opens when the new host accepts"
    assert meetup["waitlist"] == {"enabled": True, "length": 0, "max_length": None}, "the waitlist setting is carried over"
    assert meetup["host"] == {"name": "Gemeente Almere"}, "host contact details are never public"
    assert meetup["title"] == "Klassen vervolgmeetup Almere"

    assert client.http.get(f"/meetups/{meetup['id']}").json_body == meetup
    stored = Meetup.get(meetup["id"], consistent_read=True)
    assert stored.chain_id == outgoing.id and stored.host_email == body["host_email"]
    record = stored_handover(outgoing.id)
    assert (record.id, record.to_meetup_id, record.status) == (created["handover"]["id"], meetup["id"], "proposed")
    assert [(e.action, e.actor) for e in record.audit][:1] == [("proposed", "admin local-admin")]


def test_the_handover_writes_its_activity_record(client, admin_headers):
    outgoing, _, created = handed_over(client, admin_headers)
    today = clock.now()
    days = {(today - timedelta(days=n)).strftime("%Y-%m-%d") for n in (0, 1)}
    found = [a for day in days for part in activity_partitions(day)
             for a in Activity.query(part, consistent_read=True)
             if a.type == "handover" and a.meetup_id == outgoing.id]
    assert len(found) == 1
    assert found[0].province == "Flevoland"
    for key, value in {"from_meetup_id": outgoing.id, "to_meetup_id": created["meetup"]["id"],
                       "from_city": "Lelystad", "to_city": "Almere", "handover_id": created["handover"]["id"]}.items():
        assert found[0].details[key] == value


def test_given_province_title_and_waitlist_override_the_defaults(client, admin_headers):
    outgoing = outgoing_meetup()
    body = handover_body(outgoing, province="noord-holland", city="Amsterdam", title="Klassen in Amsterdam",
                         waitlist={"enabled": False}, mode="online", join_url="https://meet.example.nl/x")
    meetup = post_handover(client, admin_headers, outgoing.id, body).json_body["meetup"]
    assert (meetup["province"], meetup["title"], meetup["waitlist"]["enabled"]) == (
        "Noord-Holland", "Klassen in Amsterdam", False)
    assert meetup["kind"] == "follow_up" and meetup["follows"] == outgoing.id


def test_a_second_handover_is_409_and_changes_nothing(client, admin_headers):
    outgoing, body, created = handed_over(client, admin_headers)
    before = snapshot(client, outgoing.id)
    again = post_handover(client, admin_headers, outgoing.id, handover_body(outgoing, city="Dronten"))
    assert again.status_code == 409 and again.json_body["error"] == "already_handed_over"
    same = post_handover(client, admin_headers, outgoing.id, body)
    assert same.status_code == 409 and same.json_body["error"] == "already_handed_over"
    assert snapshot(client, outgoing.id) == before
    assert chain_ids(client, outgoing.id) == [outgoing.id, created["meetup"]["id"]]


def test_racing_handovers_of_one_meetup_exactly_one_wins(client):
    outgoing = outgoing_meetup()
    racers = 6
    barrier = threading.Barrier(racers)
    results, errors = [], []

    def race(number):
        body = handover_body(outgoing, city=f"Stad {number}")
        barrier.wait()
        try:
            results.append(handovers.hand_over(outgoing.id, body, actor="test"))
        except Conflict as conflict:
            errors.append(conflict)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 1, results
    assert len(errors) == racers - 1 and {e.code for e in errors} == {"already_handed_over"}
    assert {e.status for e in errors} == {409}
    assert chain_ids(client, outgoing.id) == [outgoing.id, results[0]["meetup"]["id"]]
    assert stored_handover(outgoing.id).to_meetup_id == results[0]["meetup"]["id"]


# --- Idempotency-Key ---------------------------------------------------------------------------

def test_same_idempotency_key_gives_the_same_answer_and_creates_nothing(client, admin_headers):
    outgoing = outgoing_meetup()
    body = handover_body(outgoing)
    key = "retry-" + secrets.token_hex(8)
    first = post_handover(client, admin_headers, outgoing.id, body, key)
    assert first.status_code == 201
    after_first = snapshot(client, outgoing.id)
    again = post_handover(client, admin_headers, outgoing.id, body, key)
    assert again.status_code == 201 and again.json_body == first.json_body
    assert snapshot(client, outgoing.id) == after_first
    assert len(chain_ids(client, outgoing.id)) == 2
    assert len(messages_to(body["host_email"])) == 1, "the incoming host is emailed once"

    other_body = post_handover(client, admin_headers, outgoing.id, dict(body, capacity=81), key)
    assert other_body.status_code == 422 and other_body.json_body["error"] == "idempotency_key_reused"
    other_key = post_handover(client, admin_headers, outgoing.id, body, key + "-new")
    assert other_key.status_code == 409 and other_key.json_body["error"] == "already_handed_over"
    assert snapshot(client, outgoing.id) == after_first


def test_a_refused_request_does_not_use_up_its_key(client, admin_headers):
    outgoing = outgoing_meetup()
    key = secrets.token_hex(8)
    refused = post_handover(client, admin_headers, outgoing.id, handover_body(outgoing, city="Lelystad"), key)
    assert refused.status_code == 422
    corrected = post_handover(client, admin_headers, outgoing.id, handover_body(outgoing), key)
    assert corrected.status_code == 201


def test_a_lost_answer_is_given_again_from_the_handover_itself(client, admin_headers):
    """The handover committed but its idempotency record is gone (a crash before it was saved,
    or it expired): the same request with the same key still gets its 201, not a 409."""
    outgoing = outgoing_meetup()
    body = handover_body(outgoing)
    key = secrets.token_hex(8)
    first = post_handover(client, admin_headers, outgoing.id, body, key).json_body
    table = os.environ["TABLE_PREFIX"] + "idempotency"
    dynamodb = boto3.client("dynamodb")
    items = dynamodb.scan(TableName=table)["Items"]  # a test may look at a whole table
    mine = [i for i in items if json.loads(i.get("data", {}).get("S", "{}")).get("handover", {}).get("id")
            == first["handover"]["id"]]
    assert len(mine) == 1
    dynamodb.delete_item(TableName=table, Key={"id": mine[0]["id"]})
    again = post_handover(client, admin_headers, outgoing.id, body, key)
    assert again.status_code == 201 and again.json_body["handover"] == first["handover"]
    assert len(chain_ids(client, outgoing.id)) == 2
    assert post_handover(client, admin_headers, outgoing.id, dict(body, capacity=5), key).status_code == 422
    assert post_handover(client, admin_headers, outgoing.id, body, key + "-other").status_code == 409


def test_racing_repeats_with_one_key_create_one_follow_up(client):
    outgoing = outgoing_meetup()
    body = handover_body(outgoing)
    racers = 5
    barrier = threading.Barrier(racers)
    answers, errors = [], []

    def race():
        barrier.wait()
        try:
            answers.append(handovers.hand_over(outgoing.id, body, actor="test", idempotency_key="same-key-race"))
        except Conflict as conflict:
            errors.append(conflict.code)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers and all(answer == answers[0] for answer in answers)
    assert set(errors) <= {"idempotency_in_progress"} and len(answers) + len(errors) == racers
    assert len(chain_ids(client, outgoing.id)) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\tkey", "ключ"])
def test_a_malformed_idempotency_key_is_400(client, admin_headers, key):
    outgoing = outgoing_meetup()
    headers = dict(admin_headers, **{"Idempotency-Key": key})
    before = snapshot(client, outgoing.id)
    response = client.http.post(f"/admin/meetups/{outgoing.id}/handover", headers=headers,
                                body=json.dumps(handover_body(outgoing)))
    assert response.status_code == 400 and response.json_body["error"] == "invalid_idempotency_key"
    assert snapshot(client, outgoing.id) == before


# --- refusals ------------------------------------------------------------------------------------

REFUSALS = [
    ({"city": "Lelystad"}, "city"),
    ({"city": "  lelystad "}, "city"),
    ({"city": "LELYSTAD"}, "city"),
    ({"starts_at": "before"}, "starts_at"),
    ({"starts_at": "same"}, "starts_at"),
    ({"city": None}, "city"),
    ({"city": ""}, "city"),
    ({"host_name": None}, "host_name"),
    ({"host_name": 12}, "host_name"),
    ({"host_email": None}, "host_email"),
    ({"host_email": "not-an-address"}, "host_email"),
    ({"host_email": "a@example.nl\r\nBcc: x@example.com"}, "host_email"),
    ({"starts_at": "tomorrow-ish"}, "starts_at"),
    ({"ends_at": "earlier"}, "ends_at"),
    ({"mode": "boat"}, "mode"),
    ({"capacity": -1}, "capacity"),
    ({"capacity": "many"}, "capacity"),
    ({"province": "Atlantis"}, "province"),
    ({"title": "x" * 201}, "title"),
    ({"join_url": "ftp://example.nl"}, "join_url"),
    ({"waitlist": {"enabled": "yes"}}, "waitlist.enabled"),
    ({"kind": "regional"}, "kind"),
    ({"follows": "somewhere"}, "follows"),
]


@pytest.mark.parametrize("change, field", REFUSALS)
def test_invalid_handover_is_422_naming_the_field_and_changes_nothing(client, admin_headers, change, field):
    outgoing = outgoing_meetup()
    body = handover_body(outgoing)
    starts = clock.from_storage(outgoing.starts_at)
    if change.get("starts_at") == "before":
        change = dict(change, starts_at=clock.to_public(starts - timedelta(hours=1)))
    elif change.get("starts_at") == "same":
        change = dict(change, starts_at=clock.to_public(starts))
    if change.get("ends_at") == "earlier":
        change = dict(change, ends_at=body["starts_at"])
    before = snapshot(client, outgoing.id)
    response = post_handover(client, admin_headers, outgoing.id, dict(body, **change))
    assert response.status_code == 422, response.json_body
    assert field in response.json_body["fields"], response.json_body
    assert snapshot(client, outgoing.id) == before
    assert messages_to(body["host_email"]) == []


def test_one_422_names_every_bad_field(client, admin_headers):
    outgoing = outgoing_meetup()
    body = handover_body(outgoing, city="Lelystad", capacity=-5, mode="boat", host_email="nope", colour="red")
    response = post_handover(client, admin_headers, outgoing.id, body)
    assert response.status_code == 422
    assert set(response.json_body["fields"]) >= {"city", "capacity", "mode", "host_email", "colour"}


def test_a_follow_up_in_the_past_is_422(client, admin_headers):
    outgoing = outgoing_meetup(days_ahead=-30)
    starts = clock.now() - timedelta(days=1)
    body = handover_body(outgoing, starts_at=clock.to_public(starts),
                         ends_at=clock.to_public(starts + timedelta(hours=2)))
    response = post_handover(client, admin_headers, outgoing.id, body)
    assert response.status_code == 422 and "starts_at" in response.json_body["fields"]


def test_a_cancelled_meetup_is_not_handed_over(client, admin_headers):
    outgoing = outgoing_meetup()
    assert client.http.patch(f"/admin/meetups/{outgoing.id}", headers=admin_headers,
                             body=json.dumps({"status": "cancelled"})).status_code == 200
    before = snapshot(client, outgoing.id)
    body = handover_body(outgoing)
    response = post_handover(client, admin_headers, outgoing.id, body)
    assert response.status_code == 422 and "meetup" in response.json_body["fields"]
    assert snapshot(client, outgoing.id) == before
    assert messages_to(body["host_email"]) == []


def test_a_meetup_cancelled_between_reading_and_writing_is_not_handed_over(client, admin_headers, monkeypatch):
    """The transaction itself checks the outgoing meetup: a change after validation is re-validated."""
    outgoing = outgoing_meetup()
    stale = Meetup.get(outgoing.id, consistent_read=True)
    client.http.patch(f"/admin/meetups/{outgoing.id}", headers=admin_headers, body=json.dumps({"status": "cancelled"}))
    real_load = handovers.catalogue.load
    calls = []

    def first_load_is_stale(meetup_id, consistent=False):  # the read before the admin's change
        calls.append(meetup_id)
        return stale if len(calls) == 1 else real_load(meetup_id, consistent=consistent)

    monkeypatch.setattr(handovers.catalogue, "load", first_load_is_stale)
    with pytest.raises(handovers.ValidationFailed) as refused:
        handovers.hand_over(outgoing.id, handover_body(outgoing), actor="test")
    monkeypatch.undo()
    assert "meetup" in refused.value.fields and len(calls) >= 2
    assert chain_ids(client, outgoing.id) == [outgoing.id] and stored_handover(outgoing.id) is None


def test_unknown_meetup_is_404(client, admin_headers):
    outgoing = outgoing_meetup()
    response = post_handover(client, admin_headers, "no-such-meetup", handover_body(outgoing))
    assert response.status_code == 404 and response.json_body["error"] == "not_found"
    assert client.http.get("/admin/meetups/no-such-meetup/handover", headers=admin_headers).status_code == 404
    assert client.http.post("/admin/handovers/no-such-meetup/complete", headers=admin_headers,
                            body="{}").status_code == 404


@pytest.mark.parametrize("raw", ["{broken", "[]", ""])
def test_malformed_body_is_400(client, admin_headers, raw):
    outgoing = outgoing_meetup()
    before = snapshot(client, outgoing.id)
    assert post_handover(client, admin_headers, outgoing.id, raw).status_code == 400
    assert snapshot(client, outgoing.id) == before


def test_admin_routes_without_a_valid_token_are_401_and_change_nothing(client, admin_headers):
    outgoing = outgoing_meetup()
    body = handover_body(outgoing)
    before = snapshot(client, outgoing.id)
    for headers in (JSON, dict(JSON, Authorization="Bearer wrong"), dict(JSON, Authorization="Basic abc")):
        assert post_handover(client, headers, outgoing.id, body).status_code == 401
        assert post_handover(client, headers, outgoing.id, body, key="k1").status_code == 401
    assert snapshot(client, outgoing.id) == before

    handed, _, _ = handed_over(client, admin_headers, days_ahead=-10)
    client.http.post(accept_path_of(handed), headers=JSON, body="{}")
    # accepted now; the outgoing meetup has ended, so only the admin's complete would change it
    handover_before = stored_handover(handed.id).serialize()
    for headers in (JSON, dict(JSON, Authorization="Bearer wrong")):
        assert client.http.get(f"/admin/meetups/{handed.id}/handover", headers=headers).status_code == 401
        assert client.http.post(f"/admin/handovers/{handed.id}/complete", headers=headers,
                                body="{}").status_code == 401
    assert stored_handover(handed.id).serialize() == handover_before


def accept_path_of(outgoing) -> str:
    record = stored_handover(outgoing.id)
    return urlparse(handovers.accept_url(record)).path + "/accept"


# --- accepting and completing ---------------------------------------------------------------------

def test_accept_link_shows_without_changing_and_post_accepts(client, admin_headers):
    outgoing, body, created = handed_over(client, admin_headers)
    path = accept_path(body["host_email"])
    before = stored_handover(outgoing.id).serialize()
    for _ in range(2):
        shown = client.http.get(path)
        assert shown.status_code == 200
        assert shown.json_body["handover"] == created["handover"]
        assert shown.json_body["to_meetup"]["id"] == created["meetup"]["id"]
        assert shown.json_body["from_meetup"]["id"] == outgoing.id
    page = client.http.get(path, headers={"Accept": "text/html"})
    html = page.body.decode()
    assert page.status_code == 200 and '<html lang="nl">' in html
    assert f'action="{path}/accept' in html and "<button" in html and 'data-status="proposed"' in html
    assert stored_handover(outgoing.id).serialize() == before, "looking never changes anything"

    accepted = client.http.post(path + "/accept", headers=JSON, body="{}")
    assert accepted.status_code == 200 and accepted.json_body["handover"]["status"] == "accepted"
    again = client.http.post(path + "/accept", headers=JSON, body="{}")
    assert again.status_code == 200 and again.json_body == accepted.json_body
    record = stored_handover(outgoing.id)
    assert record.status == "accepted"
    assert [e.action for e in record.audit].count("accepted") == 1
    accepted_entry = [e for e in record.audit if e.action == "accepted"][0]
    assert body["host_email"] in accepted_entry.actor
    html = client.http.get(path, headers={"Accept": "text/html"}).body.decode()
    assert 'data-status="accepted"' in html and "<button" not in html


def test_a_follow_up_opens_for_sign_up_only_when_its_new_host_accepts(client, admin_headers):
    outgoing, body, created = handed_over(client, admin_headers)
    follow_up_id = created["meetup"]["id"]
    person = {"name": "Vroeg", "email": unique_email("vroeg"), "role": "teacher", "consent": True}
    for lang, words in (("nl", "nieuwe gastheer of gastvrouw"), ("en", "new host")):
        refused = client.http.post(f"/meetups/{follow_up_id}/registrations?lang={lang}", headers=JSON,
                                   body=json.dumps(person))
        assert refused.status_code == 409, refused.json_body
        assert refused.json_body["error"] == "awaiting_host" and words in refused.json_body["message"]
    # A form post (the honeypot too) is refused the same way.
    bot = client.http.post(f"/meetups/{follow_up_id}/registrations", headers=JSON,
                           body=json.dumps(dict(person, website="spam")))
    assert bot.status_code == 409 and bot.json_body["error"] == "awaiting_host"
    page = client.http.get(f"/meetups/{follow_up_id}", headers={"Accept": "text/html"}).body.decode()
    assert 'data-phase="announced"' in page and "/register" not in page
    form = client.http.get(f"/meetups/{follow_up_id}/register", headers={"Accept": "text/html"}).body.decode()
    assert "<form method=\"post\"" not in form and "Aangekondigd" in form
    assert Meetup.get(follow_up_id, consistent_read=True).confirmed == 0

    accepted = client.http.post(accept_path(body["host_email"]) + "/accept", headers=JSON, body="{}")
    assert accepted.status_code == 200, accepted.json_body
    assert accepted.json_body["to_meetup"]["status"] == "open"
    assert Meetup.get(follow_up_id, consistent_read=True).awaiting_host is None
    sign_up(client, follow_up_id, email=person["email"])
    page = client.http.get(f"/meetups/{follow_up_id}", headers={"Accept": "text/html"}).body.decode()
    assert 'data-phase="open"' in page and f"/meetups/{follow_up_id}/register" in page


def test_accept_by_form_post_redirects_to_the_page(client, admin_headers):
    outgoing, body, _ = handed_over(client, admin_headers)
    path = accept_path(body["host_email"])
    response = client.http.post(path + "/accept?lang=en", body="",
                                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert response.status_code == 303 and response.headers["Location"] == f"{path}?lang=en"
    assert stored_handover(outgoing.id).status == "accepted"
    page = client.http.get(response.headers["Location"], headers={"Accept": "text/html"}).body.decode()
    assert '<html lang="en">' in page and 'data-status="accepted"' in page


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: "x" + t,
    lambda t: "garbage",
    lambda t: t.split(".")[0] + ".",
])
def test_tampered_accept_token_is_404_and_changes_nothing(client, admin_headers, mangle):
    outgoing, body, _ = handed_over(client, admin_headers)
    token = accept_path(body["host_email"]).rsplit("/", 1)[1]
    bad = f"/handovers/{mangle(token)}"
    assert client.http.get(bad).status_code == 404
    assert client.http.post(bad + "/accept", headers=JSON, body="{}").status_code == 404
    assert stored_handover(outgoing.id).status == "proposed"


def test_a_token_for_another_purpose_is_404(client, admin_headers):
    from chalicelib import tokens
    outgoing, _, created = handed_over(client, admin_headers)
    foreign = tokens.sign("registration", outgoing.id, created["handover"]["id"])
    assert client.http.post(f"/handovers/{foreign}/accept", headers=JSON, body="{}").status_code == 404
    assert stored_handover(outgoing.id).status == "proposed"


def test_completion_needs_acceptance_and_the_outgoing_meetup_to_have_taken_place(client, admin_headers):
    outgoing, body, _ = handed_over(client, admin_headers)  # the outgoing meetup is a month ahead
    complete = f"/admin/handovers/{outgoing.id}/complete"
    not_accepted = client.http.post(complete, headers=admin_headers, body="{}")
    assert not_accepted.status_code == 409 and not_accepted.json_body["error"] == "not_accepted"
    path = accept_path(body["host_email"])
    client.http.post(path + "/accept", headers=JSON, body="{}")
    too_early = client.http.post(complete, headers=admin_headers, body="{}")
    assert too_early.status_code == 409 and too_early.json_body["error"] == "not_taken_place"
    assert stored_handover(outgoing.id).status == "accepted"

    # The outgoing meetup takes place (its times move into the past).
    past = clock.now() - timedelta(days=2)
    client.http.patch(f"/admin/meetups/{outgoing.id}", headers=admin_headers, body=json.dumps(
        {"starts_at": clock.to_public(past), "ends_at": clock.to_public(past + timedelta(hours=2))}))
    done = client.http.post(complete, headers=admin_headers, body="{}")
    assert done.status_code == 200 and done.json_body["handover"]["status"] == "completed"
    again = client.http.post(complete, headers=admin_headers, body="{}")
    assert again.status_code == 200 and again.json_body["handover"]["status"] == "completed"
    record = stored_handover(outgoing.id)
    assert [(e.action, e.actor) for e in record.audit if e.action == "completed"] == [
        ("completed", "admin local-admin")]
    assert client.http.get(path).json_body["handover"]["status"] == "completed"


def test_a_cancelled_outgoing_meetup_does_not_complete(client, admin_headers):
    outgoing, body, _ = handed_over(client, admin_headers)
    client.http.post(accept_path(body["host_email"]) + "/accept", headers=JSON, body="{}")
    past = clock.now() - timedelta(days=2)
    client.http.patch(f"/admin/meetups/{outgoing.id}", headers=admin_headers, body=json.dumps(
        {"status": "cancelled", "starts_at": clock.to_public(past),
         "ends_at": clock.to_public(past + timedelta(hours=2))}))
    response = client.http.post(f"/admin/handovers/{outgoing.id}/complete", headers=admin_headers, body="{}")
    assert response.status_code == 409 and response.json_body["error"] == "outgoing_cancelled"
    assert client.http.get(f"/admin/meetups/{outgoing.id}/handover",
                           headers=admin_headers).json_body["handover"]["status"] == "accepted"


def test_completion_happens_lazily_once_the_outgoing_meetup_has_taken_place(client, admin_headers):
    outgoing, body, _ = handed_over(client, admin_headers, days_ahead=-10)  # took place ten days ago
    path = accept_path(body["host_email"])
    shown = client.http.get(f"/admin/meetups/{outgoing.id}/handover", headers=admin_headers).json_body
    assert shown["handover"]["status"] == "proposed", "not completed before it is accepted"
    accepted = client.http.post(path + "/accept", headers=JSON, body="{}").json_body
    assert accepted["handover"]["status"] == "completed", "accepted after the meetup: completed at once"
    actions = [e.action for e in stored_handover(outgoing.id).audit]
    assert actions[-2:] == ["accepted", "completed"]


def test_an_accepted_handover_completes_when_an_admin_looks_after_the_meetup(client, admin_headers):
    outgoing, body, _ = handed_over(client, admin_headers)
    client.http.post(accept_path(body["host_email"]) + "/accept", headers=JSON, body="{}")
    past = clock.now() - timedelta(days=1)
    client.http.patch(f"/admin/meetups/{outgoing.id}", headers=admin_headers, body=json.dumps(
        {"starts_at": clock.to_public(past), "ends_at": clock.to_public(past + timedelta(hours=2))}))
    assert stored_handover(outgoing.id).status == "accepted"
    shown = client.http.get(f"/admin/meetups/{outgoing.id}/handover", headers=admin_headers).json_body
    assert shown["handover"]["status"] == "completed"
    assert shown["handover"]["audit"][-1]["action"] == "completed"
    assert shown["handover"]["audit"][-1]["actor"] == "system"


def test_admin_sees_the_handover_with_its_audit_trail(client, admin_headers):
    outgoing, body, created = handed_over(client, admin_headers, days_ahead=-3)
    client.http.post(accept_path(body["host_email"]) + "/accept", headers=JSON, body="{}")
    response = client.http.get(f"/admin/meetups/{outgoing.id}/handover", headers=admin_headers)
    assert response.status_code == 200
    shown = response.json_body
    assert shown["handover"]["id"] == created["handover"]["id"]
    assert shown["handover"]["accept_url"].startswith("http://testserver/handovers/")
    assert shown["to_meetup"]["host"]["email"] == body["host_email"], "admins see the host's address"
    audit = shown["handover"]["audit"]
    assert [e["action"] for e in audit] == ["proposed", "invited", "accepted", "completed"]
    assert all(set(e) == {"at", "actor", "action", "note"} for e in audit)
    assert audit[0]["actor"] == "admin local-admin" and audit[0]["note"] == "Lelystad -> Almere"
    assert body["host_email"] in audit[2]["actor"] and audit[3]["actor"] == "system"
    times = [datetime.fromisoformat(e["at"]) for e in audit]
    assert times == sorted(times) and all(t.utcoffset() is not None for t in times)
    assert client.http.get(f"/admin/meetups/{make_meetup().id}/handover", headers=admin_headers).status_code == 404


# --- emails --------------------------------------------------------------------------------------

def test_hosts_are_emailed_with_the_accept_link_and_the_summary(client, admin_headers):
    outgoing = outgoing_meetup(capacity=2)
    for _ in range(3):
        sign_up(client, outgoing.id)  # two confirmed, one on the waiting list
    body = handover_body(outgoing, starts_at="2099-04-14T19:30:00+02:00", ends_at="2099-04-14T21:30:00+02:00")
    created = post_handover(client, admin_headers, outgoing.id, body).json_body

    incoming = messages_to(body["host_email"])
    assert len(incoming) == 1
    mail = incoming[0]
    text, html = text_of(mail), html_of(mail)
    assert "stokje" in str(mail["Subject"]) and "Klassen vervolgmeetup Almere" in str(mail["Subject"])
    assert "Beste gastheer of gastvrouw namens Gemeente Almere," in text and "Hoi Gemeente" not in text and "Jij bent" not in text
    assert "dinsdag 14 april 2099 om 19:30" in text and "dinsdag 14 april 2099 om 19:30" in html
    assert "Bevestigde plekken: 2 van 2" in text and "Op de wachtlijst: 1" in text
    assert "<strong>2</strong> van 2" in html and "<strong>1</strong>" in html
    link = ACCEPT_LINK.search(text).group(0)
    assert link in html
    assert urlparse(link).path.rsplit("/", 1)[1] == urlparse(
        handovers.accept_url(stored_handover(outgoing.id))).path.rsplit("/", 1)[1]
    assert f"/meetups/{created['meetup']['id']}" in text

    outgoing_mail = messages_to(outgoing.host_email)
    assert len(outgoing_mail) == 1
    out_text = text_of(outgoing_mail[0])
    assert "doorgegeven" in str(outgoing_mail[0]["Subject"])
    assert "Beste gastheer of gastvrouw namens Gemeente Lelystad," in out_text and "Gemeente Almere" in out_text and "Almere" in out_text
    assert "/handovers/" not in out_text, "the accept link goes to the incoming host only"


def test_no_email_to_an_outgoing_meetup_without_host_address(client, admin_headers):
    outgoing = outgoing_meetup(host={"name": "Gemeente Zonder Adres"})
    before = mail_count()
    body = handover_body(outgoing)
    assert post_handover(client, admin_headers, outgoing.id, body).status_code == 201
    assert mail_count() == before + 1 and len(messages_to(body["host_email"])) == 1


def test_opted_in_active_participants_are_invited_to_the_follow_up(client, admin_headers):
    outgoing = outgoing_meetup(capacity=2)
    confirmed_in, _ = sign_up(client, outgoing.id, follow_up_opt_in=True, language="en", name="Ann")
    confirmed_out, _ = sign_up(client, outgoing.id)  # did not tick the box
    waiting_in, _ = sign_up(client, outgoing.id, follow_up_opt_in="true", name="Wim")
    leaving_in, left = sign_up(client, outgoing.id, follow_up_opt_in=True, name="Lex")
    client.http.post(urlparse(left["manage_url"]).path + "/cancel", headers=JSON, body="{}")
    before = {p["email"]: len(messages_to(p["email"])) for p in (confirmed_in, confirmed_out, waiting_in, leaving_in)}

    created = post_handover(client, admin_headers, outgoing.id, handover_body(outgoing)).json_body
    register = f"http://testserver/meetups/{created['meetup']['id']}/register"
    new = {email: messages_to(email)[count:] for email, count in before.items()}
    assert new[confirmed_out["email"]] == [] and new[leaving_in["email"]] == []
    assert len(new[confirmed_in["email"]]) == 1 and len(new[waiting_in["email"]]) == 1
    english, dutch = new[confirmed_in["email"]][0], new[waiting_in["email"]][0]
    assert "Invitation" in str(english["Subject"]) and register in text_of(english)
    assert "Hi Ann," in text_of(english)
    assert "Uitnodiging" in str(dutch["Subject"]) and register in text_of(dutch) and register in html_of(dutch)
    assert "Hoi Wim," in text_of(dutch)

    record = stored_handover(outgoing.id)
    assert record.invitations_queued == 2
    # Queueing again (a re-run after a failure) queues and sends nobody a second invitation.
    follow_up = Meetup.get(created["meetup"]["id"])
    job = handovers.invite(record, Meetup.get(outgoing.id), follow_up)
    assert (job.id, job.state, job.done) == (handovers.invitations_job_id(record), "done", 2), "one job per handover"
    from chalicelib.models import Job
    redone = Job(id="redo", kind="invitations", meetup_id=outgoing.id, done=0)  # the job's page, from the start
    assert handovers.invitations_page(redone, 250)[3] == []
    assert len(messages_to(confirmed_in["email"])) == before[confirmed_in["email"]] + 1
    assert stored_handover(outgoing.id).audit[-1].action == "invited"
    assert [e.action for e in stored_handover(outgoing.id).audit].count("invited") == 1


def test_many_invitations_are_queued_in_batches_once_each(client, admin_headers):
    outgoing = outgoing_meetup(capacity=40)
    people = [sign_up(client, outgoing.id, follow_up_opt_in=True)[0]["email"] for _ in range(27)]
    created = post_handover(client, admin_headers, outgoing.id, handover_body(outgoing)).json_body
    assert all(len(messages_to(email)) == 2 for email in people), "confirmation, then one invitation"
    record = stored_handover(outgoing.id)
    ids = {handovers.invitation_id(record, r) for r in
           handovers.Registration.query(outgoing.id, handovers.Registration.sk.startswith("R#"))}
    assert len(ids) == 27
    assert all(OutboxMessage.get(i, consistent_read=True).state == "sent" for i in ids)
    assert record.invitations_queued == 27 and created["meetup"]["follows"] == outgoing.id


def test_invitations_a_failed_request_did_not_queue_are_queued_on_the_next_look(client, admin_headers,
                                                                                  monkeypatch):
    outgoing = outgoing_meetup()
    person, _ = sign_up(client, outgoing.id, follow_up_opt_in=True)

    def storage_down(*args, **kwargs):
        raise handovers.ServiceUnavailable("down")

    monkeypatch.setattr(handovers, "invite", storage_down)
    response = post_handover(client, admin_headers, outgoing.id, handover_body(outgoing))
    monkeypatch.undo()
    assert response.status_code == 201, "the handover stands, whatever happens to its invitations"
    assert stored_handover(outgoing.id).invitations_queued is None
    assert len(messages_to(person["email"])) == 1
    client.http.get(f"/admin/meetups/{outgoing.id}/handover", headers=admin_headers)
    assert len(messages_to(person["email"])) == 2
    assert stored_handover(outgoing.id).invitations_queued == 1


# --- the chain ----------------------------------------------------------------------------------

def test_a_chain_of_three_cities_reads_back_oldest_first_from_any_member(client, admin_headers):
    first = outgoing_meetup(days_ahead=5)
    second = post_handover(client, admin_headers, first.id, handover_body(first)).json_body["meetup"]
    second_meetup = Meetup.get(second["id"])
    third_body = handover_body(second_meetup, city="Dronten", host_name="Gemeente Dronten")
    third = post_handover(client, admin_headers, second["id"], third_body).json_body["meetup"]
    assert third["follows"] == second["id"] and third["province"] == "Flevoland"
    expected = [first.id, second["id"], third["id"]]
    for member in expected:
        assert chain_ids(client, member) == expected
    chain = client.http.get(f"/meetups/{third['id']}/chain").json_body["chain"]
    assert [m["city"] for m in chain] == ["Lelystad", "Almere", "Dronten"]
    assert [m["starts_at"] for m in chain] == sorted(m["starts_at"] for m in chain)
    assert "email" not in json.dumps(chain), "host contact details are never public"
    # Back to the first city is allowed further down the chain: only the handing-over city differs.
    fourth = post_handover(client, admin_headers, third["id"],
                           handover_body(Meetup.get(third["id"]), city="Lelystad"))
    assert fourth.status_code == 201


def test_a_meetup_without_handover_is_a_chain_of_one_and_unknown_is_404(client):
    alone = outgoing_meetup()
    assert chain_ids(client, alone.id) == [alone.id]
    response = client.http.get("/meetups/no-such-meetup/chain")
    assert response.status_code == 404 and response.json_body["error"] == "not_found"


def test_the_chain_is_read_by_index_not_scanned():
    source = Path(handovers.__file__).read_text()
    assert ".scan(" not in source and "by_chain.query(" in source


# --- demo data ------------------------------------------------------------------------------------

def test_the_demo_tour_hands_over_as_the_sources_tell_and_loads_once(client):
    from devtools import demo_tour
    year = 2095  # a tour year of its own (demo ids are per year); every test session has fresh tables
    assert demo_tour.load(year) == len(demo_tour.demo_meetups(year)) + 2
    assert demo_tour.load(year) == 0, "a second load changes nothing"
    flevoland = client.http.get(f"/meetups/flevoland-{year}/chain").json_body["chain"]
    brabant = client.http.get(f"/meetups/noord-brabant-{year}/chain").json_body["chain"]
    assert [(m["city"], m["kind"]) for m in flevoland] == [("Lelystad", "regional"), ("Almere", "follow_up")]
    assert [(m["city"], m["kind"]) for m in brabant] == [("Helmond", "regional"), ("'s-Hertogenbosch", "follow_up")]
    for chain in (flevoland, brabant):
        regional, follow_up = chain
        assert follow_up["follows"] == regional["id"] and follow_up["province"] == regional["province"]
        gap = datetime.fromisoformat(follow_up["starts_at"]) - datetime.fromisoformat(regional["starts_at"])
        assert timedelta(days=45) < gap < timedelta(days=90), "about two months later"
        assert datetime.fromisoformat(follow_up["starts_at"]).year == year and follow_up["demo"] is True


# --- the templates ------------------------------------------------------------------------------

def _handover_context() -> dict:
    follow_up = {"id": "m-almere", "title": "Klassen vervolgmeetup Almere", "starts_at": "2027-04-13T17:30:00Z",
                 "ends_at": "2027-04-13T19:30:00Z", "mode": "in_person", "city": "Almere", "venue": "Stadhuis",
                 "join_url": None, "url": "http://testserver/meetups/m-almere"}
    return {"name": "Gemeente Almere", "meetup": follow_up,
            "handover": {"id": "h1", "accept_url": "http://testserver/handovers/abc.def",
                         "from": {"id": "m-lelystad", "title": "Klassen Meetup Flevoland", "city": "Lelystad",
                                  "province": "Flevoland", "starts_at": "2027-02-01T18:30:00Z",
                                  "host_name": "Gemeente Lelystad", "confirmed": 148, "capacity": 150,
                                  "waitlist_enabled": True, "waitlist_length": 7},
                         "to": {"id": "m-almere", "host_name": "Gemeente Almere", "city": "Almere"}}}


@pytest.mark.parametrize("template", ["handover_incoming", "handover_outgoing", "follow_up_invitation"])
@pytest.mark.parametrize("language", ["nl", "en"])
def test_handover_emails_have_text_and_html_in_the_recipients_language(template, language):
    from email import policy
    from email.parser import BytesParser

    from chalicelib import mail
    assert template in mail.TEMPLATES
    message = BytesParser(policy=policy.default).parsebytes(
        mail.compose(template, language, "host@example.nl", _handover_context()).as_bytes())
    text, html = text_of(message), html_of(message)
    assert message["Content-Language"] == language and "<html" in html
    assert "Klassen vervolgmeetup Almere" in message["Subject"]
    if template == "follow_up_invitation":  # to a participant
        greeting = "Hoi Gemeente Almere," if language == "nl" else "Hi Gemeente Almere,"
    else:  # to a host: its contact person, not the institution as a friend
        greeting = "Beste gastheer of gastvrouw namens Gemeente Almere," if language == "nl" else "Dear host at Gemeente Almere,"
        assert "Hoi " not in text and "Jij bent" not in text
    assert greeting in text and greeting in html
    date = "dinsdag 13 april 2027 om 19:30" if language == "nl" else "Tuesday 13 April 2027 at 19:30"
    assert date in text and date in html
    assert "Klassen Meetup Flevoland" in text and "Klassen Meetup Flevoland" in html
    if template == "handover_incoming":
        assert "http://testserver/handovers/abc.def" in text and "http://testserver/handovers/abc.def" in html
        assert "148" in text and "150" in text and "7" in text
    else:
        assert "/handovers/" not in text + html
    if template == "follow_up_invitation":
        assert "http://testserver/meetups/m-almere/register" in text
        assert "http://testserver/meetups/m-almere/register" in html
