"""Dutch first: validation and error messages in Dutch by default and in English when asked,
each naming its field; the form's errors in the page's language."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from chalicelib.messages import LABELS, PROBLEMS, problem
from tests.factories import make_meetup

JSON = {"Content-Type": "application/json"}


def sign_up(client, meetup_id, body, headers=JSON, query=""):
    return client.http.post(f"/meetups/{meetup_id}/registrations{query}", headers=headers, body=json.dumps(body))


def test_every_problem_names_its_field_in_both_languages():
    for code, (nl, en) in PROBLEMS.items():
        message = problem(code, "email", options="a, b", maximum=3, minimum=1)
        assert message.nl and message.en and message.nl != message.en, code
        if "{label}" in nl.lower():
            assert "e-mailadres" in message.nl.lower() and "email address" in message.en.lower(), code


def test_json_validation_messages_are_dutch_by_default_and_name_the_field(client):
    meetup = make_meetup()
    answer = sign_up(client, meetup.id, {"email": "nope", "name": "", "consent": True})
    assert answer.status_code == 422
    fields = answer.json_body["fields"]
    assert fields["name"] == "Vul je naam in."
    assert fields["email"] == "Je e-mailadres is geen geldig e-mailadres."
    assert fields["role"] == "Vul je rol in."
    assert answer.json_body["message"].startswith("Controleer ")


@pytest.mark.parametrize("how", [{"query": "?lang=en"}, {"headers": dict(JSON, **{"Accept-Language": "en-GB,en;q=0.9"})}])
def test_json_validation_messages_in_english_when_asked(client, how):
    meetup = make_meetup()
    answer = sign_up(client, meetup.id, {"email": "nope", "role": "teacher", "name": "Anna", "consent": True}, **how)
    assert answer.status_code == 422
    assert answer.json_body["fields"] == {"email": "Your email address is not a valid email address."}
    assert answer.json_body["message"] == "Please check your email address."


def test_dutch_form_errors_are_dutch_marked_and_linked(client):
    meetup = make_meetup()
    page = client.http.post(f"/meetups/{meetup.id}/registrations",
                            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
                            body=urlencode({"name": "", "email": "x", "language": "nl"}))
    html = page.body.decode()
    assert page.status_code == 422
    assert "<title>Fout: " in html
    for field, message in [("name", "Vul je naam in."), ("email", "Je e-mailadres is geen geldig e-mailadres."),
                           ("consent", "Ga akkoord met de privacyverklaring om je aan te melden.")]:
        assert f'<a href="#{field}">{message}</a>' in html
        assert f'id="{field}-error">{message}<' in html
        assert f'aria-describedby="{field}-error"' in html
    assert "is required" not in html and "must be" not in html


def test_english_form_errors_are_english(client):
    meetup = make_meetup()
    page = client.http.post(f"/meetups/{meetup.id}/registrations?lang=en",
                            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
                            body=urlencode({"name": "", "email": "x", "language": "en"}))
    html = page.body.decode()
    assert "<title>Error: " in html and "Please fill in your name." in html and "Vul" not in html


def test_error_pages_speak_the_page_language(client, admin_headers):
    meetup = make_meetup()
    client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers, body=json.dumps({"status": "closed"}))
    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
    body = urlencode({"name": "Anna", "email": "anna-closed@example.nl", "role": "teacher", "consent": "true"})
    dutch = client.http.post(f"/meetups/{meetup.id}/registrations", headers=form, body=body)
    assert dutch.status_code == 409 and "de aanmelding is gesloten" in dutch.body.decode()
    english = client.http.post(f"/meetups/{meetup.id}/registrations?lang=en", headers=form, body=body)
    assert english.status_code == 409 and "Sign-up for this meetup is closed." in english.body.decode()
    missing = client.http.get("/registrations/not-a-token", headers={"Accept": "text/html"})
    assert missing.status_code == 404 and "Deze link is niet (meer) geldig." in missing.body.decode()


def test_labels_cover_every_field_the_public_form_has():
    for field in ("name", "email", "role", "organisation", "municipality", "theme", "consent", "language"):
        assert field in LABELS
