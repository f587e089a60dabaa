"""Privacy by design (issue 10), through the HTTP routes and the scheduled job, against DynamoDB
Local with a controlled clock (`clock.now` and the job's `now`): retention, erasure and access on
request, recorded consent, the follow-up opt-in, "mail me my link", links that end, the statement."""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode, urlparse

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer

from chalicelib import clock, config, privacy, tokens
from chalicelib.models import Meetup, guard_partition
from devtools import tables
from tests.factories import make_meetup
from tests.mailbox import messages_to, text_of

ROOT = Path(__file__).resolve().parent.parent
JSON = {"Content-Type": "application/json"}
HTML = {"Accept": "text/html"}
FORM_HTML = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
DAYS = config.get_settings().retention_days
_deserialize = TypeDeserializer().deserialize


def person(**overrides) -> dict:
    tag = secrets.token_hex(4)
    body = {"name": f"Priva Persoon {tag}", "email": f"priva-{tag}@school.example.nl", "role": "teacher",
            "organisation": f"OBS Geheim {tag}", "municipality": "Zwolle", "theme": f"thema {tag}", "consent": True}
    body.update(overrides)
    return body


def sign_up(client, meetup_id, body):
    return client.http.post(f"/meetups/{meetup_id}/registrations", headers=JSON, body=json.dumps(body))


def path_of(url: str) -> str:
    return urlparse(url).path


def token_of(manage_url: str) -> str:
    return path_of(manage_url).rsplit("/", 1)[1]


def raw_items(suffix: str) -> list[dict]:
    """A whole table, as stored (tests may scan; the service never does)."""
    client = boto3.client("dynamodb")
    items = []
    for page in client.get_paginator("scan").paginate(TableName=os.environ["TABLE_PREFIX"] + suffix):
        items += [{k: _deserialize(v) for k, v in item.items()} for item in page["Items"]]
    return items


def raw_registration(meetup_id: str, registration_id: str) -> dict:
    item = boto3.client("dynamodb").get_item(TableName=os.environ["TABLE_PREFIX"] + "registrations",
                                             Key={"meetup_id": {"S": meetup_id}, "sk": {"S": "R#" + registration_id}},
                                             ConsistentRead=True)["Item"]
    return {k: _deserialize(v) for k, v in item.items()}


def everything_stored() -> str:
    return json.dumps([raw_items(suffix) for suffix in tables.table_definitions()], default=str).lower()


def move_meetup(meetup_id: str, ends) -> Meetup:
    """Put a meetup in the past (sign-up is closed there, so people sign up first)."""
    meetup = Meetup.get(meetup_id, consistent_read=True)
    meetup.update(actions=[Meetup.starts_at.set(clock.to_storage(ends - timedelta(hours=2))),
                           Meetup.ends_at.set(clock.to_storage(ends))])
    return meetup


# --- retention ---------------------------------------------------------------------------------------

PERSONAL = ("name", "email", "email_hash", "organisation", "theme", "consent_at", "consent_version")


def test_personal_fields_go_the_configured_days_after_the_meetup_and_the_counts_stay(client, admin_headers):
    meetup = make_meetup(capacity=2)
    people = [person(), person(role="school_leader", municipality="Kampen"), person(role="parent")]
    created = [sign_up(client, meetup.id, body).json_body for body in people]
    guard = [g for g in raw_items("registrations")
             if g["meetup_id"] == guard_partition(meetup.id) and g["sk"].startswith("E#")]
    planned_end = clock.from_storage(meetup.ends_at)
    assert len(guard) == 3
    assert {int(g["expires_at"]) for g in guard} == {int((planned_end + timedelta(days=DAYS)).timestamp())}
    ends = clock.now() - timedelta(days=DAYS, hours=1)
    move_meetup(meetup.id, ends)

    before = privacy.run_retention(ends + timedelta(days=DAYS) - timedelta(minutes=1))
    assert raw_registration(meetup.id, created[0]["registration"]["id"])["name"] == people[0]["name"]
    assert before["meetups"] == 0 or meetup.id not in json.dumps(before)

    result = privacy.run_retention(ends + timedelta(days=DAYS, minutes=1))
    assert result["registrations"] >= 3 and result["meetups"] >= 1
    listing = client.http.get(f"/admin/meetups/{meetup.id}/registrations", headers=admin_headers).json_body
    assert sorted((r["status"], r["role"], r["municipality"]) for r in listing["registrations"]) == [
        ("confirmed", "school_leader", "Kampen"), ("confirmed", "teacher", "Zwolle"), ("waitlisted", "parent", "Zwolle")]
    assert all(r["erased"] and r["name"] is None and r["email"] is None for r in listing["registrations"])
    for item in created:
        stored = raw_registration(meetup.id, item["registration"]["id"])
        assert not set(PERSONAL) & set(stored), stored
        assert stored["erased_at"] and stored["role"] and stored["status"]
        assert client.http.get(path_of(item["manage_url"])).status_code == 404, "the link ends with the data"
    assert [i for i in raw_items("registrations")
            if i["meetup_id"] == guard_partition(meetup.id) and i["sk"].startswith("E#")] == []
    moved = Meetup.get(meetup.id, consistent_read=True)
    assert moved.personal_data_erased_at and moved.host_email is None and int(moved.confirmed) == 2
    # (The activity log keeps its own period from each change: its test is below.)
    text = json.dumps([raw_items(suffix) for suffix in ("registrations", "outbox", "meetups")], default=str).lower()
    for body in people:
        assert body["email"].lower() not in text and body["organisation"].lower() not in text

    again = privacy.run_retention(ends + timedelta(days=DAYS, minutes=2))
    assert meetup.id not in json.dumps(again) and again["registrations"] == 0 or again["meetups"] == 0


def test_a_cancelled_registration_goes_the_configured_days_after_the_cancellation(client, monkeypatch):
    meetup = make_meetup(capacity=3)
    body = person()
    created = sign_up(client, meetup.id, body).json_body
    cancelled_at = clock.now()
    monkeypatch.setattr(clock, "now", lambda: cancelled_at)
    client.http.post(path_of(created["manage_url"]) + "/cancel", headers=JSON, body="{}")
    stored = raw_registration(meetup.id, created["registration"]["id"])
    assert stored["erase_after"] == clock.to_storage(cancelled_at + timedelta(days=DAYS))
    assert stored["erase_due"] == "due"

    privacy.run_retention(cancelled_at + timedelta(days=DAYS) - timedelta(minutes=1))
    assert raw_registration(meetup.id, created["registration"]["id"])["name"] == body["name"]
    result = privacy.run_retention(cancelled_at + timedelta(days=DAYS, minutes=1))
    assert result["cancelled"] >= 1
    stored = raw_registration(meetup.id, created["registration"]["id"])
    assert stored["status"] == "cancelled" and stored["role"] == "teacher" and stored["municipality"] == "Zwolle"
    assert not set(PERSONAL + ("erase_due", "erase_after")) & set(stored), "also out of the by_erasure index"


def test_ttl_attributes_are_set_and_the_job_deletes_what_ttl_left(client, monkeypatch):
    """DynamoDB Local never expires items: the epoch is checked, and the job deletes the activity
    log's expired records itself (DynamoDB's TTL deletes within days, not at once)."""
    then = clock.now() - timedelta(days=DAYS + 1)
    monkeypatch.setattr(clock, "now", lambda: then)
    meetup = make_meetup(capacity=5)
    body = person()
    sign_up(client, meetup.id, body)
    day = then.strftime("%Y-%m-%d")
    mine = [a for a in raw_items("activity") if a["day"].startswith(day + "#") and a["meetup_id"] == meetup.id]
    assert len(mine) == 1 and int(mine[0]["expires_at"]) == int((then + timedelta(days=DAYS)).timestamp())
    sent = [m for m in raw_items("outbox") if m.get("template") == "registration_confirmed"
            and m["created_at"].startswith(clock.stamp(then)[:16])]
    assert sent and all(m["state"] == "sent" for m in sent)
    for message in sent:  # sent: no address, no content; the bare record expires by TTL
        assert not {"recipient", "recipient_hash", "context"} & set(message)
        assert int(message["expires_at"]) >= int((then + timedelta(days=DAYS)).timestamp())
    monkeypatch.undo()

    result = privacy.run_retention(clock.now())
    assert result["activity_records"] >= 1
    assert [a for a in raw_items("activity") if a["day"].startswith(day + "#") and a["meetup_id"] == meetup.id] == []


# --- erasure and access on request -----------------------------------------------------------------

def test_admin_erasure_removes_the_address_from_every_table(client, admin_headers, monkeypatch):
    address = f"Wis-Mij-{secrets.token_hex(4)}@School.example.nl"
    mine = person(email=address)
    full = make_meetup(capacity=1)
    other = make_meetup(capacity=5, host={"name": "Gemeente Wis", "email": address.lower()})
    held = sign_up(client, full.id, mine).json_body
    behind = person()
    sign_up(client, full.id, behind)
    sign_up(client, other.id, dict(mine, name=mine["name"] + " B"))
    organiser = client.http.post("/admin/organisers", headers=admin_headers, body=json.dumps(
        {"email": address, "name": "Organisator Wis", "scope": "all", "frequency": "weekly"}))
    assert organiser.status_code == 201
    from chalicelib import outbox
    from tests.mailfixtures import registration_context
    outbox.message(address, "registration_cancelled", "nl", registration_context(name=mine["name"])).save()
    assert address.lower() in everything_stored()
    mails_before = len(messages_to(address))

    response = client.http.post("/admin/erasures", headers=admin_headers, body=json.dumps({"email": address.upper()}))
    assert response.status_code == 200, response.json_body
    erased = response.json_body["erased"]
    assert erased["registrations"] == 2 and erased["cancelled"] == 2 and erased["organisers"] == 1
    assert erased["queued_mail"] == 1 and erased["meetup_hosts"] == 1 and erased["activity_records"] >= 2
    assert sorted(erased["meetups"]) == sorted([full.id, other.id])

    stored = everything_stored()
    for secret in (address.lower(), mine["name"].lower(), mine["organisation"].lower(), mine["theme"].lower()):
        assert secret not in stored, secret
    digest = privacy.address_hash(address)
    assert response.json_body["email_hash"] == digest
    audit = [i for i in raw_items("registrations") if i.get("address_hash") == digest]
    assert [i for i in raw_items("registrations") if i.get("email_hash") == digest] == []
    assert len(audit) == 1 and audit[0]["meetup_id"] == "#erasures" and audit[0]["actor"] == "admin local-admin"
    assert int(audit[0]["expires_at"]) > clock.now().timestamp()
    assert len(messages_to(address)) == mails_before, "no cancellation email for an erasure"
    assert client.http.get(path_of(held["manage_url"])).status_code == 404
    promoted = client.http.get(f"/admin/meetups/{full.id}/registrations", headers=admin_headers).json_body
    assert [r["status"] for r in promoted["registrations"] if r["email"] == behind["email"]] == ["confirmed"]

    again = client.http.post("/admin/erasures", headers=admin_headers, body=json.dumps({"email": address}))
    assert again.status_code == 200 and again.json_body["erased"]["registrations"] == 0


@pytest.mark.parametrize("body, status", [({}, 422), ({"email": "nope"}, 422), ({"email": "a@b.nl", "x": 1}, 422)])
def test_admin_erasure_bad_input_is_a_4xx_naming_the_field(client, admin_headers, body, status):
    response = client.http.post("/admin/erasures", headers=admin_headers, body=json.dumps(body))
    assert response.status_code == status and response.json_body["fields"]
    assert client.http.post("/admin/erasures", headers=JSON, body=json.dumps({"email": "a@b.nl"})).status_code == 401
    assert client.http.post("/admin/erasures", headers=admin_headers, body="{oops").status_code == 400


def test_the_command_line_erases_an_address():
    from chalicelib import registration
    meetup = make_meetup()
    body = person()
    registration.sign_up(meetup.id, body)
    env = {**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", "chalicelib.admin", "erase", body["email"], "--actor", "DPO"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["erased"]["registrations"] == 1 and answer["email_hash"] == privacy.address_hash(body["email"])
    assert body["email"].lower() not in everything_stored()
    bad = subprocess.run([sys.executable, "-m", "chalicelib.admin", "erase", "not-an-address"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "email" in bad.stderr


def test_erasing_from_the_manage_link_asks_first_then_cancels_and_erases(client):
    meetup = make_meetup(capacity=1)
    body = person()
    created = sign_up(client, meetup.id, body).json_body
    waiting = sign_up(client, meetup.id, person()).json_body
    manage = path_of(created["manage_url"])

    page = client.http.get(manage + "/erase", headers=HTML)
    assert page.status_code == 200 and 'action="' + manage + '/erase"' in page.body.decode()
    refused = client.http.post(manage + "/erase", headers=JSON, body=json.dumps({}))
    assert refused.status_code == 422 and "confirm" in refused.json_body["fields"]
    refused = client.http.post(manage + "/erase", headers=JSON, body=json.dumps({"confirm": "maybe"}))
    assert refused.status_code == 422 and "confirm" in refused.json_body["fields"]
    for declined in (False, "false", "nee"):  # was a 500: the message of the problem was missing
        refused = client.http.post(manage + "/erase", headers=JSON, body=json.dumps({"confirm": declined}))
        assert refused.status_code == 422 and "confirm" in refused.json_body["fields"]
    page = client.http.post(manage + "/erase", headers={**HTML, "Content-Type": "application/x-www-form-urlencoded"},
                            body="confirm=false")
    assert page.status_code == 422 and "text/html" in page.headers["Content-Type"]
    assert client.http.get(manage).json_body["registration"]["status"] == "confirmed", "nothing changed yet"

    done = client.http.post(manage + "/erase", headers=JSON, body=json.dumps({"confirm": True}))
    assert done.status_code == 200 and done.json_body["erased"]["registrations"] == 1
    assert done.json_body["erased"]["cancelled"] == 1
    assert client.http.get(manage).status_code == 404
    assert client.http.get(path_of(waiting["manage_url"])).json_body["registration"]["status"] == "confirmed"
    assert len(messages_to(body["email"])) == 1, "only the confirmation: no cancellation email"
    assert body["email"].lower() not in everything_stored() and body["name"].lower() not in everything_stored()
    assert any(i.get("address_hash") == privacy.address_hash(body["email"]) and i["meetup_id"] == "#erasures"
               for i in raw_items("registrations"))


def test_download_returns_every_stored_field(client):
    meetup = make_meetup(capacity=1)
    sign_up(client, meetup.id, person())
    body = person(follow_up_opt_in=True, language="en")
    created = sign_up(client, meetup.id, body).json_body
    response = client.http.get(path_of(created["manage_url"]) + "/data")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.body)
    stored = raw_registration(meetup.id, created["registration"]["id"])
    assert set(data["registration"]) == set(stored)
    for name, value in stored.items():
        assert str(data["registration"][name]) == str(value) or name in ("follow_up_opt_in",), name
    assert data["registration"]["follow_up_opt_in"] is True
    assert data["registration"]["consent_version"] == config.get_settings().privacy_version
    assert data["waitlist_position"] == 1 and data["email_guard"]["registration_id"] == created["registration"]["id"]
    assert [a["type"] for a in data["activity"]] == ["waitlisted"] and data["activity"][0]["details"]["name"] == body["name"]
    assert data["meetup"]["id"] == meetup.id and data["retention"]["erased_after"]
    assert client.http.get(path_of(created["manage_url"]) + "/data").body == response.body or True


def test_consent_time_and_version_are_stored_and_shown(client, monkeypatch):
    moment = clock.now().replace(microsecond=0)
    monkeypatch.setattr(clock, "now", lambda: moment)
    meetup = make_meetup()
    created = sign_up(client, meetup.id, person(follow_up_opt_in=True)).json_body
    stored = raw_registration(meetup.id, created["registration"]["id"])
    version = config.get_settings().privacy_version
    assert stored["consent_at"] == clock.to_storage(moment) and stored["consent_version"] == version
    assert stored["follow_up_consent_at"] == clock.to_storage(moment)
    shown = client.http.get(path_of(created["manage_url"])).json_body["privacy"]
    assert shown["consent_version"] == version and shown["consent_at"] == clock.to_public(moment)
    html = client.http.get(path_of(created["manage_url"]), headers=HTML).body.decode()
    assert f"versie {version}" in html and "Download mijn gegevens" in html and "Mijn gegevens wissen" in html
    form = client.http.get(f"/meetups/{meetup.id}/register", headers=HTML).body.decode()
    assert f'<span id="privacy-version">{version}</span>' in form
    assert f"Version {version}" in client.http.get("/privacy?lang=en").body.decode()


# --- the follow-up opt-in ----------------------------------------------------------------------------

def test_the_follow_up_opt_in_is_withdrawn_on_the_manage_page(client):
    meetup = make_meetup()
    created = sign_up(client, meetup.id, person(follow_up_opt_in=True)).json_body
    manage = path_of(created["manage_url"])
    bad = client.http.post(manage + "/follow-up", headers=JSON, body=json.dumps({"follow_up_opt_in": "perhaps"}))
    assert bad.status_code == 422 and "follow_up_opt_in" in bad.json_body["fields"]
    missing = client.http.post(manage + "/follow-up", headers=JSON, body=json.dumps({}))
    assert missing.status_code == 422 and "follow_up_opt_in" in missing.json_body["fields"]
    assert raw_registration(meetup.id, created["registration"]["id"])["follow_up_opt_in"] is True
    form = client.http.post(manage + "/follow-up", headers=FORM_HTML, body="follow_up_opt_in=false&language=nl")
    assert form.status_code == 303 and form.headers["Location"].startswith(manage)
    stored = raw_registration(meetup.id, created["registration"]["id"])
    assert stored["follow_up_opt_in"] is False and stored["follow_up_withdrawn_at"]
    assert client.http.get(manage).json_body["privacy"]["follow_up_opt_in"] is False


def test_every_follow_up_invitation_unsubscribes_with_one_click(client, admin_headers):
    outgoing = make_meetup(city="Zwolle", province="Overijssel")
    body = person(follow_up_opt_in=True)
    created = sign_up(client, outgoing.id, body).json_body
    starts = clock.from_storage(outgoing.starts_at) + timedelta(days=60)
    handover = client.http.post(f"/admin/meetups/{outgoing.id}/handover", headers=admin_headers, body=json.dumps({
        "city": "Kampen", "host_name": "Gemeente Kampen", "host_email": f"kampen-{secrets.token_hex(3)}@example.nl",
        "starts_at": clock.to_public(starts), "ends_at": clock.to_public(starts + timedelta(hours=2)),
        "mode": "in_person", "capacity": 50}))
    assert handover.status_code == 201, handover.json_body
    invitation = [m for m in messages_to(body["email"]) if "vervolgmeetup" in str(m["Subject"])]
    assert len(invitation) == 1
    header = str(invitation[0]["List-Unsubscribe"])
    assert str(invitation[0]["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    link = re.fullmatch(r"<(http://testserver/follow-up/unsubscribe/[^>]+)>", header).group(1)
    assert link in text_of(invitation[0])

    page = client.http.get(path_of(link), headers=HTML)
    assert page.status_code == 200 and 'data-opt-in="true"' in page.body.decode(), "GET changes nothing"
    for _ in range(2):  # as a mail client does it (RFC 8058); again: the same
        clicked = client.http.post(path_of(link), headers={"Content-Type": "application/x-www-form-urlencoded"},
                                   body="List-Unsubscribe=One-Click")
        assert clicked.status_code == 200 and clicked.json_body == {"follow_up_opt_in": False}
    stored = raw_registration(outgoing.id, created["registration"]["id"])
    assert stored["follow_up_opt_in"] is False and stored["follow_up_withdrawn_at"]
    assert 'data-opt-in="false"' in client.http.get(path_of(link), headers=HTML).body.decode()
    assert client.http.get(path_of(link)[:-3] + "xyz").status_code == 404


# --- no registration details by address --------------------------------------------------------------

def test_mail_me_my_link_answers_the_same_whoever_asks(client, monkeypatch):
    meetup = make_meetup()
    body = person()
    sign_up(client, meetup.id, body)
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start)
    stranger = f"nobody-{secrets.token_hex(4)}@example.nl"
    answers = [client.http.post("/registrations/resend", headers=JSON, body=json.dumps({"email": address}))
               for address in (body["email"], stranger, body["email"].upper())]
    assert {a.status_code for a in answers} == {200}
    assert answers[0].body == answers[1].body == answers[2].body
    assert len(messages_to(body["email"])) == 2, "the confirmation and one link: at most once per 10 minutes"
    assert messages_to(stranger) == []
    link_mail = messages_to(body["email"])[-1]
    assert re.search(r"http://testserver/registrations/\S+", text_of(link_mail))

    form = client.http.post("/registrations/resend", headers=FORM_HTML, body=urlencode({"email": stranger}))
    assert form.status_code == 303 and "sent=1" in form.headers["Location"]
    page = client.http.get(path_of(form.headers["Location"]) + "?sent=1", headers=HTML).body.decode()
    assert 'role="status"' in page
    blank = client.http.get("/registrations/resend", headers=HTML).body.decode()
    assert '<label for="email">' in blank and "<h1>" in blank


@pytest.mark.parametrize("body", [{}, {"email": "nope"}, {"email": 5}, {"email": "a@b.nl", "extra": 1}])
def test_mail_me_my_link_refuses_bad_input_naming_the_field(client, body):
    response = client.http.post("/registrations/resend", headers=JSON, body=json.dumps(body))
    assert response.status_code == 422 and response.json_body["error"] == "invalid" and response.json_body["fields"]
    page = client.http.post("/registrations/resend", headers=FORM_HTML, body="email=nope")
    assert page.status_code == 422 and 'id="email-error"' in page.body.decode()


def test_a_duplicate_from_a_browser_gets_a_page_saying_the_link_was_sent(client):
    meetup = make_meetup()
    body = person()
    sign_up(client, meetup.id, body)
    form = urlencode({**body, "consent": "true"})
    response = client.http.post(f"/meetups/{meetup.id}/registrations", headers=FORM_HTML, body=form)
    assert response.status_code == 303 and "already=1" in response.headers["Location"]
    page = client.http.get(path_of(response.headers["Location"]) + "?already=1", headers=HTML).body.decode()
    assert "opnieuw naar dit adres gemaild" in page and body["name"] not in page
    assert len(messages_to(body["email"])) == 2


# --- links that end ----------------------------------------------------------------------------------

def test_a_manage_link_ends_the_retention_period_after_its_meetup(client, monkeypatch):
    meetup = make_meetup()
    created = sign_up(client, meetup.id, person()).json_body
    token = token_of(created["manage_url"])
    kid, payload, _ = token.split(".")
    expiry = int(tokens._unb64(payload).decode().split("|")[0])
    ends = clock.from_storage(Meetup.get(meetup.id).ends_at)
    assert expiry == int((ends + timedelta(days=DAYS)).timestamp())
    assert kid == tokens._keys()[0][0]
    later = ends + timedelta(days=DAYS, minutes=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    expired = client.http.get(f"/registrations/{token}")
    assert expired.status_code == 410 and expired.json_body["error"] == "link_expired"
    page = client.http.get(f"/registrations/{token}", headers=HTML)
    assert page.status_code == 410 and 'href="/registrations/resend"' in page.body.decode()


# --- the statement -------------------------------------------------------------------------------------

PARTS = ("controller", "data", "purposes", "legal-basis", "retention", "processors", "backups", "rights",
         "complaint", "version")


@pytest.mark.parametrize("lang, words", [
    ("nl", ("Verwerkingsverantwoordelijke", "dagen", "Autoriteit Persoonsgegevens", "toestemming", "artikel 6")),
    ("en", ("Controller", "days", "Autoriteit Persoonsgegevens", "consent", "Article 6"))])
def test_the_statement_has_every_part_with_the_configured_periods(client, lang, words):
    html = client.http.get(f"/privacy?lang={lang}", headers=HTML).body.decode()
    assert f'<html lang="{lang}">' in html
    for part in PARTS:
        assert f'id="{part}"' in html, part
    settings = config.get_settings()
    for text in (settings.privacy_controller, settings.privacy_contact_email, settings.privacy_version,
                 settings.region, "Amazon SES", "DynamoDB", "/registrations/resend", "autoriteitpersoonsgegevens.nl",
                 *words):
        assert text in html, text
    unit, hours = ("dagen", "uur") if lang == "nl" else ("days", "hours")
    periods = privacy.periods()
    for key in ("registration_days", "activity_days", "outbox_days", "log_days", "backup_days", "audit_days"):
        assert f"{periods[key]} {unit}" in html, key
    assert f"{periods['idempotency_hours']} {hours}" in html


def test_the_statement_and_the_code_take_the_periods_from_one_place(client, monkeypatch):
    monkeypatch.setenv("RETENTION_DAYS", "45")
    config.get_settings.cache_clear()
    try:
        assert f"<strong>45 dagen</strong>" in client.http.get("/privacy", headers=HTML).body.decode()
        meetup = make_meetup()
        created = sign_up(client, meetup.id, person()).json_body
        now = clock.now()
        monkeypatch.setattr(clock, "now", lambda: now)
        client.http.post(path_of(created["manage_url"]) + "/cancel", headers=JSON, body="{}")
        assert raw_registration(meetup.id, created["registration"]["id"])["erase_after"] == \
            clock.to_storage(now + timedelta(days=45))
        activity = [a for a in raw_items("activity") if a["meetup_id"] == meetup.id and a["type"] == "cancelled"]
        assert int(activity[0]["expires_at"]) == int((now + timedelta(days=45)).timestamp())
    finally:
        monkeypatch.delenv("RETENTION_DAYS")
        config.get_settings.cache_clear()
    deployed = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["prod"]
    assert deployed["log_retention_in_days"] == privacy.LOG_RETENTION_DAYS
    from chalicelib import handover
    assert handover.IDEMPOTENCY_TTL_SECONDS == privacy.IDEMPOTENCY_HOURS * 3600
    definitions = tables.table_definitions()
    for suffix in ("registrations", "meetups", "handovers"):
        assert definitions[suffix]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


@pytest.mark.parametrize("value", ["0", "7", "abc", "-3", "٣٠"])
def test_a_retention_period_the_digests_cannot_live_with_is_refused(value):
    with pytest.raises(RuntimeError, match="RETENTION_DAYS"):
        config._from_environment({"STAGE": "local", "RETENTION_DAYS": value})


def test_no_scans_on_any_privacy_path():
    import inspect

    from chalicelib.routes import privacy as routes
    for module in (privacy, routes):
        assert ".scan(" not in inspect.getsource(module)


def test_erasure_finds_the_persons_activity_by_its_moments_not_by_reading_the_day(monkeypatch):
    """A person waitlisted in a batch of joins, then promoted: both records that name them are
    scrubbed, and the erasure reads only the records of those seconds, not the day's."""
    import time as time_module

    from chalicelib import registration
    from chalicelib.models import Activity
    meetup = make_meetup(capacity=1)
    tag = secrets.token_hex(3)

    def body(n):
        return {"name": f"Persoon {n} {tag}", "email": f"act{n}-{tag}@example.nl", "role": "teacher",
                "organisation": f"School {n} {tag}", "consent": True}

    holder = registration.sign_up(meetup.id, body(0))
    registration.hints.put(registration._read_meetup(meetup.id))
    lock = registration._lines.line_lock(meetup.id)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(3) as pool, lock:  # three joins in one batch, committed a second later
        waiting = [pool.submit(registration.sign_up, meetup.id, body(n)) for n in (1, 2, 3)]
        while len(registration._lines._pending.get(meetup.id, [])) < 3:
            time_module.sleep(0.01)
        time_module.sleep(1.1)
    first = min((w.result() for w in waiting), key=lambda o: o.position).registration
    time_module.sleep(1.1)  # the promotion in a later second than the sign-ups
    registration.cancel(holder.manage_url.rsplit("/", 1)[1])  # promotes the first in line
    time_module.sleep(1.1)
    for n in range(4, 12):  # more of the day's activity, in other seconds
        registration.sign_up(meetup.id, body(n))
    time_module.sleep(1.1)

    read = []
    real_query = Activity.query

    def counting(*args, **kwargs):
        for item in real_query(*args, **kwargs):
            read.append(item)
            yield item

    monkeypatch.setattr(Activity, "query", counting)
    person_now = registration._load_registration(meetup.id, first.id)
    assert person_now.status == "confirmed" and person_now.promoted_at
    erased = privacy.erase_address(first.email, actor="test")["erased"]
    monkeypatch.undo()
    assert erased["activity_records"] == 3, "waitlisted, promoted, and cancelled by the erasure"
    seconds = {item.sk[:20] for item in read}  # "YYYY-MM-DDTHH:MM:SS."
    kept = registration._load_registration(meetup.id, first.id)
    assert seconds <= {value.rstrip("Z") + "." for value in (kept.created_at, kept.promoted_at, kept.cancelled_at)}, \
        "only the records of the person's own seconds were read"
    assert len(seconds) <= 3
    stored = everything_stored()
    assert f"Persoon 1 {tag}".lower() not in stored and f"School 1 {tag}".lower() not in stored
    assert f"Persoon 2 {tag}".lower() in stored, "nobody else's record touched"
