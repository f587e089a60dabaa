"""Sign-up, waitlist, manage link, cancellation and promotion, through the HTTP routes,
against DynamoDB Local, with the `file` mail backend."""
import json
import secrets
from urllib.parse import urlparse

import pytest

from chalicelib import catalogue
from tests.factories import make_meetup
from tests.mailbox import attachments_of, messages_to, text_of

JSON = {"Content-Type": "application/json"}


def person(**overrides):
    body = {"name": "Anna de Vries", "email": f"anna-{secrets.token_hex(4)}@school.example.nl",
            "role": "teacher", "organisation": "OBS De Klimop", "municipality": "Lelystad",
            "consent": True}
    body.update(overrides)
    return body


def sign_up(client, meetup_id, body, headers=JSON):
    data = json.dumps(body) if headers.get("Content-Type") == "application/json" else body
    return client.http.post(f"/meetups/{meetup_id}/registrations", headers=headers, body=data)


def path_of(url):
    return urlparse(url).path


def counts(meetup_id):
    meetup = catalogue.load(meetup_id, consistent=True)
    return int(meetup.confirmed), int(meetup.waitlist_length)


def test_free_seat_confirms_and_sends_confirmation_with_invitation(client):
    meetup = make_meetup(capacity=2)
    body = person()
    response = sign_up(client, meetup.id, body)
    assert response.status_code == 201
    registration = response.json_body["registration"]
    assert registration["status"] == "confirmed" and registration["waitlist_position"] is None
    assert registration["meetup_id"] == meetup.id
    assert response.json_body["manage_url"].startswith("http://testserver/registrations/")
    assert counts(meetup.id) == (1, 0)

    mails = messages_to(body["email"])
    assert len(mails) == 1
    assert "bevestigd" in str(mails[0]["Subject"]).lower() or "bevestigd" in text_of(mails[0]).lower()
    assert any(part.get_content_type() == "text/calendar" for part in attachments_of(mails[0]))
    assert response.json_body["manage_url"] in text_of(mails[0])


def test_full_meetup_waitlists_in_order_with_positions(client):
    meetup = make_meetup(capacity=1)
    assert sign_up(client, meetup.id, person()).json_body["registration"]["status"] == "confirmed"
    positions = []
    for _ in range(3):
        body = person()
        reg = sign_up(client, meetup.id, body).json_body["registration"]
        assert reg["status"] == "waitlisted"
        positions.append(reg["waitlist_position"])
        mail = messages_to(body["email"])
        expected = "eerstvolgende" if reg["waitlist_position"] == 1 else f"{reg['waitlist_position']}"
        assert len(mail) == 1 and expected in text_of(mail[0])
    assert positions == [1, 2, 3]
    assert counts(meetup.id) == (1, 3)
    public = client.http.get(f"/meetups/{meetup.id}").json_body
    assert public["status"] == "full" and public["waitlist"] == {"enabled": True, "length": 3, "max_length": None}


def test_full_without_waitlist_is_409_full(client):
    meetup = make_meetup(capacity=1, waitlist={"enabled": False})
    sign_up(client, meetup.id, person())
    body = person()
    response = sign_up(client, meetup.id, body)
    assert response.status_code == 409 and response.json_body["error"] == "full"
    assert messages_to(body["email"]) == []
    assert counts(meetup.id) == (1, 0)


@pytest.mark.parametrize("setup", ["past", "closed", "cancelled"])
def test_past_closed_or_cancelled_meetup_is_409_closed(client, admin_headers, setup):
    if setup == "past":
        meetup = make_meetup(days_ahead=-1)
    else:
        meetup = make_meetup()
        client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers, body=json.dumps({"status": setup}))
    response = sign_up(client, meetup.id, person())
    assert response.status_code == 409 and response.json_body["error"] == "closed"
    assert counts(meetup.id) == (0, 0)


def test_same_email_again_tells_nothing_of_the_registration_and_mails_its_link_once_per_10_minutes(
        client, monkeypatch):
    import re
    from datetime import timedelta

    from chalicelib import clock
    meetup = make_meetup(capacity=5)
    body = person()
    first = sign_up(client, meetup.id, body).json_body
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start)
    for _ in range(3):
        again = sign_up(client, meetup.id, dict(body, email=body["email"].upper(), name="Someone Else"))
        assert again.status_code == 200
        assert set(again.json_body) == {"already_registered", "message"}
        assert again.json_body["already_registered"] is True and again.json_body["message"]
        answer = json.dumps(again.json_body)
        for secret in (first["registration"]["id"], "confirmed", "waitlist", body["name"], "manage_url", "/registrations/"):
            assert secret not in answer
    assert counts(meetup.id) == (1, 0)
    mails = messages_to(body["email"])
    assert len(mails) == 2, "the confirmation, then the link once, however often it is asked"
    link = re.search(r"http://testserver/registrations/\S+", text_of(mails[1])).group(0)
    assert client.http.get(path_of(link)).json_body["registration"]["id"] == first["registration"]["id"]

    monkeypatch.setattr(clock, "now", lambda: start + timedelta(minutes=10, seconds=1))
    assert sign_up(client, meetup.id, body).status_code == 200
    assert len(messages_to(body["email"])) == 3, "again after 10 minutes"


def test_manage_link_shows_and_never_changes(client):
    meetup = make_meetup(capacity=1)
    sign_up(client, meetup.id, person())
    created = sign_up(client, meetup.id, person()).json_body
    path = path_of(created["manage_url"])
    for _ in range(2):
        shown = client.http.get(path)
        assert shown.status_code == 200
        assert shown.json_body["registration"]["status"] == "waitlisted"
        assert shown.json_body["registration"]["waitlist_position"] == 1
    assert counts(meetup.id) == (1, 1)
    html = client.http.get(path, headers={"Accept": "text/html"}).body.decode()
    assert 'lang="nl"' in html and "wachtlijst" in html


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: "x" + t,
    lambda t: "garbage",
    lambda t: t.split(".")[0] + "." ,
])
def test_tampered_token_is_404(client, mangle):
    meetup = make_meetup()
    created = sign_up(client, meetup.id, person()).json_body
    token = path_of(created["manage_url"]).rsplit("/", 1)[1]
    assert client.http.get(f"/registrations/{mangle(token)}").status_code == 404
    assert client.http.post(f"/registrations/{mangle(token)}/cancel", headers=JSON, body="{}").status_code == 404
    assert counts(meetup.id) == (1, 0)


def test_cancel_promotes_first_in_line_and_others_move_up(client):
    meetup = make_meetup(capacity=1)
    holder = sign_up(client, meetup.id, person()).json_body
    waiting = [person() for _ in range(3)]
    links = [sign_up(client, meetup.id, body).json_body["manage_url"] for body in waiting]

    cancelled = client.http.post(path_of(holder["manage_url"]) + "/cancel", headers=JSON, body="{}")
    assert cancelled.status_code == 200
    assert cancelled.json_body["registration"]["status"] == "cancelled"
    assert counts(meetup.id) == (1, 2)

    first = client.http.get(path_of(links[0])).json_body["registration"]
    assert first["status"] == "confirmed" and first["waitlist_position"] is None
    assert [client.http.get(path_of(link)).json_body["registration"]["waitlist_position"]
            for link in links[1:]] == [1, 2]
    promoted_mail = messages_to(waiting[0]["email"])
    assert len(promoted_mail) == 2  # waitlisted, then promoted
    assert any(p.get_content_type() == "text/calendar" for p in attachments_of(promoted_mail[-1]))

    again = client.http.post(path_of(holder["manage_url"]) + "/cancel", headers=JSON, body="{}")
    assert again.status_code == 200 and again.json_body == cancelled.json_body
    assert counts(meetup.id) == (1, 2), "a second cancel changes nothing"


def test_cancel_waitlisted_moves_others_up(client):
    meetup = make_meetup(capacity=1)
    sign_up(client, meetup.id, person())
    links = [sign_up(client, meetup.id, person()).json_body["manage_url"] for _ in range(3)]
    client.http.post(path_of(links[0]) + "/cancel", headers=JSON, body="{}")
    assert [client.http.get(path_of(link)).json_body["registration"]["waitlist_position"]
            for link in links[1:]] == [1, 2]
    assert counts(meetup.id) == (1, 2)


def test_cancelled_person_can_sign_up_again(client):
    meetup = make_meetup(capacity=3)
    body = person()
    first = sign_up(client, meetup.id, body).json_body
    client.http.post(path_of(first["manage_url"]) + "/cancel", headers=JSON, body="{}")
    again = sign_up(client, meetup.id, body)
    assert again.status_code == 201 and again.json_body["registration"]["id"] != first["registration"]["id"]
    assert counts(meetup.id) == (1, 0)


def test_capacity_growth_promotes_at_once(client, admin_headers):
    meetup = make_meetup(capacity=1)
    sign_up(client, meetup.id, person())
    links = [sign_up(client, meetup.id, person()).json_body["manage_url"] for _ in range(12)]
    response = client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers,
                                 body=json.dumps({"capacity": 11}))
    assert response.status_code == 200
    assert response.json_body["confirmed"] == 11 and response.json_body["waitlist"]["length"] == 2
    statuses = [client.http.get(path_of(link)).json_body["registration"] for link in links]
    assert [s["status"] for s in statuses] == ["confirmed"] * 10 + ["waitlisted"] * 2
    assert [s["waitlist_position"] for s in statuses[10:]] == [1, 2]


def test_capacity_below_confirmed_is_409(client, admin_headers):
    meetup = make_meetup(capacity=3)
    for _ in range(2):
        sign_up(client, meetup.id, person())
    response = client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers,
                                 body=json.dumps({"capacity": 1, "title": "Changed"}))
    assert response.status_code == 409
    assert catalogue.load(meetup.id).capacity == 3 and catalogue.load(meetup.id).title == meetup.title


BAD_SIGN_UPS = [
    ({"name": None}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 10_000}, "name"),
    ({"name": "Anna\r\nBcc: victim@example.com"}, "name"),
    ({"email": None}, "email"),
    ({"email": "not-an-email"}, "email"),
    ({"email": "anna@example.nl\r\nBcc: x@example.com"}, "email"),
    ({"role": "pirate"}, "role"),
    ({"role": None}, "role"),
    ({"consent": False}, "consent"),
    ({"consent": None}, "consent"),
    ({"consent": "maybe"}, "consent"),
    ({"organisation": "y" * 201}, "organisation"),
    ({"municipality": "Lely\nstad"}, "municipality"),
    ({"theme": 42}, "theme"),
    ({"language": "de"}, "language"),
    ({"name": 12}, "name"),
]


@pytest.mark.parametrize("change, field", BAD_SIGN_UPS)
def test_bad_sign_up_is_422_naming_the_field_and_stores_nothing(client, change, field):
    meetup = make_meetup()
    body = person(**change)
    response = sign_up(client, meetup.id, body)
    assert response.status_code == 422, response.json_body
    assert field in response.json_body["fields"]
    assert counts(meetup.id) == (0, 0)
    if isinstance(body.get("email"), str) and "@" in body["email"]:
        assert messages_to(body["email"].split("\r")[0]) == []


@pytest.mark.parametrize("raw, content_type, status", [
    ("{broken", "application/json", 400),
    ("[]", "application/json", 400),
    ("name=x", "text/plain", 415),
])
def test_malformed_sign_up_bodies(client, raw, content_type, status):
    meetup = make_meetup()
    response = client.http.post(f"/meetups/{meetup.id}/registrations", headers={"Content-Type": content_type},
                                body=raw)
    assert response.status_code == status
    assert "error" in json.loads(response.body)
    assert counts(meetup.id) == (0, 0)


def test_sign_up_for_unknown_meetup_is_404(client):
    assert sign_up(client, "nope", person()).status_code == 404


def test_honeypot_looks_like_success_and_stores_nothing(client):
    meetup = make_meetup()
    body = person(website="http://spam.example")
    response = sign_up(client, meetup.id, body)
    assert response.status_code == 201
    assert response.json_body["registration"]["status"] == "confirmed"
    assert counts(meetup.id) == (0, 0)
    assert messages_to(body["email"]) == []


def test_form_post_redirects_to_result_page(client):
    meetup = make_meetup(capacity=1)
    sign_up(client, meetup.id, person())
    from urllib.parse import urlencode
    body = person()
    form = urlencode({**body, "consent": "true"})
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
    response = client.http.post(f"/meetups/{meetup.id}/registrations", headers=headers, body=form)
    assert response.status_code == 303
    location = response.headers["Location"]
    page = client.http.get(path_of(location), headers={"Accept": "text/html"}).body.decode()
    assert "wachtlijst" in page and 'id="waitlist-position">1<' in page


def test_form_errors_are_shown_beside_the_fields(client):
    meetup = make_meetup()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
    response = client.http.post(f"/meetups/{meetup.id}/registrations", headers=headers,
                                body="name=&email=bad&role=teacher")
    assert response.status_code == 422
    html = response.body.decode()
    assert 'id="name-error"' in html and 'id="email-error"' in html and 'id="consent-error"' in html
    assert 'value="bad"' in html, "what was typed is kept"


def test_form_page_dutch_and_english(client):
    meetup = make_meetup()
    nl = client.http.get(f"/meetups/{meetup.id}/register", headers={"Accept": "text/html"}).body.decode()
    assert '<html lang="nl">' in nl and 'for="name"' in nl and 'name="website"' in nl and "privacyverklaring" in nl
    assert 'href="/privacy"' in nl
    statement = client.http.get("/privacy", headers={"Accept": "text/html"})
    assert statement.status_code == 200 and "<h1>Privacyverklaring</h1>" in statement.body.decode()
    assert "<h1>Privacy statement</h1>" in client.http.get("/privacy?lang=en").body.decode()
    en = client.http.get(f"/meetups/{meetup.id}/register?lang=en", headers={"Accept": "text/html"}).body.decode()
    assert '<html lang="en">' in en and "privacy statement" in en


def test_admin_lists_registrations_as_json_and_csv(client, admin_headers):
    meetup = make_meetup(capacity=1)
    a, b = person(name="=HYPERLINK(1)"), person(name="Bert", language="en", role="youth_work")
    sign_up(client, meetup.id, a)
    sign_up(client, meetup.id, b)
    listed = client.http.get(f"/admin/meetups/{meetup.id}/registrations", headers=admin_headers).json_body
    assert [(r["email"], r["status"], r["waitlist_position"]) for r in listed["registrations"]] == [
        (a["email"], "confirmed", None), (b["email"], "waitlisted", 1)]
    assert {"email", "role", "organisation", "municipality", "theme"} <= set(listed["registrations"][0])
    csv_response = client.http.get(f"/admin/meetups/{meetup.id}/registrations?format=csv", headers=admin_headers)
    assert csv_response.headers["Content-Type"].startswith("text/csv")
    raw = csv_response.body if isinstance(csv_response.body, bytes) else csv_response.body.encode()
    assert raw.startswith(b"\xef\xbb\xbf"), "a UTF-8 BOM, so that Excel reads UTF-8"
    text = raw.decode("utf-8-sig")
    assert b["email"] in text and "'=HYPERLINK(1)" in text
    import csv
    import io
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert text.splitlines()[0].startswith("id;status;"), "`;` between cells, as Dutch Excel expects"
    roles = {row["email"]: row["role"] for row in rows}
    assert roles == {a["email"]: "Docent / leerkracht", b["email"]: "Youth work / childcare"}, "labels in the row's language"
    comma = client.http.get(f"/admin/meetups/{meetup.id}/registrations?format=csv&separator=,", headers=admin_headers)
    assert comma.status_code == 200
    assert [row["email"] for row in csv.DictReader(io.StringIO(comma.body.decode("utf-8-sig")))] == [a["email"], b["email"]]
    wrong = client.http.get(f"/admin/meetups/{meetup.id}/registrations?format=csv&separator=x", headers=admin_headers)
    assert wrong.status_code == 422 and "separator" in wrong.json_body["fields"]
    assert client.http.get(f"/admin/meetups/{meetup.id}/registrations").status_code == 401


def test_cancelling_a_meetup_tells_everyone_registered_once(client, admin_headers):
    meetup = make_meetup(capacity=1)
    holder, waiting, gone = person(), person(language="en"), person()
    sign_up(client, meetup.id, holder)
    sign_up(client, meetup.id, waiting)
    cancelled_link = sign_up(client, meetup.id, gone).json_body["manage_url"]
    client.http.post(path_of(cancelled_link) + "/cancel", headers=JSON, body="{}")
    for _ in range(2):  # a repeated cancellation tells nobody twice
        response = client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers,
                                     body=json.dumps({"status": "cancelled"}))
        assert response.status_code == 200 and response.json_body["cancelled"] is True
    notices = {address: [m for m in messages_to(address) if "niet door" in str(m["Subject"])
                         or "Cancelled" in str(m["Subject"])] for address in
               (holder["email"], waiting["email"], gone["email"])}
    assert len(notices[holder["email"]]) == 1 and "gaat niet door" in text_of(notices[holder["email"]][0])
    assert len(notices[waiting["email"]]) == 1 and "will not take place" in text_of(notices[waiting["email"]][0])
    assert notices[gone["email"]] == [], "someone who cancelled is not told again"
    assert counts(meetup.id) == (1, 1), "registrations stay, so the meetup can be opened again"
