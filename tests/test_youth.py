"""The youth council's ideas: a council code (revocable), no personal data, an admin's approval
before an idea appears anywhere."""
from __future__ import annotations

import json
import os

import boto3

from chalicelib import outcomes
from tests.factories import make_meetup

IDEA = {"title": "Huiswerkklas op school", "text": "Iedereen moet op school huiswerk kunnen maken, met hulp.",
        "age_band": "14-15", "province": "Flevoland", "tag": "kansengelijkheid"}


def _code(client, admin_headers) -> str:
    made = client.http.post("/admin/council-codes", headers=admin_headers, body=json.dumps({"label": "jeugdraad 2027"}))
    assert made.status_code == 201, made.body
    return made.json_body["code"]


def _submit(client, body, **headers):
    return client.http.post("/jeugdraad", headers={"Content-Type": "application/json", **headers},
                            body=json.dumps(body))


def test_a_submitted_idea_stores_only_the_listed_fields(client, admin_headers):
    code = _code(client, admin_headers)
    sent = _submit(client, dict(IDEA, code=code), **{"User-Agent": "Kid's phone", "X-Forwarded-For": "203.0.113.7"})
    assert sent.status_code == 201, sent.body
    idea = sent.json_body["idea"]
    assert idea["status"] == "pending"
    table = os.environ["TABLE_PREFIX"] + "outcomes"
    raw = boto3.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "IDEAS#flevoland"},
                                                                   "sk": {"S": "I#" + idea["id"]}})["Item"]
    assert set(raw) == {"pk", "sk", "id", "title", "text", "age_band", "province", "tag", "status", "submitted_on"}
    stored = json.dumps(raw)
    for trace in ("203.0.113.7", "Kid's phone", code, "T"):
        if trace == "T":
            assert len(raw["submitted_on"]["S"]) == 10  # the day, no time
        else:
            assert trace not in stored


def test_bad_input_names_the_field_and_stores_nothing(client, admin_headers):
    code = _code(client, admin_headers)
    before = client.http.get("/admin/ideas", headers=admin_headers).json_body["ideas"]
    for body, field in ((dict(IDEA, text="x" * 1001), "text"), (dict(IDEA, age_band="11"), "age_band"),
                        (dict(IDEA, text="Mail me op kid@example.nl"), "text"), (dict(IDEA, name="Sam"), "name"),
                        (dict(IDEA, province="Atlantis"), "province"), (dict(IDEA, tag="geen-tag"), "tag")):
        refused = _submit(client, dict(body, code=code))
        assert refused.status_code == 422 and field in refused.json_body["fields"], (field, refused.body)
    assert client.http.get("/admin/ideas", headers=admin_headers).json_body["ideas"] == before


def test_a_revoked_or_unknown_code_is_refused(client, admin_headers):
    code = _code(client, admin_headers)
    assert client.http.delete(f"/admin/council-codes/{code}", headers=admin_headers).status_code == 200
    for attempt in (code, "jr-verzonnen", ""):
        refused = _submit(client, dict(IDEA, code=attempt))
        assert refused.status_code == 403 and refused.json_body["error"] == "code_refused"
    english = _submit(client, dict(IDEA, code=code), **{"Accept-Language": "en"})
    assert "does not work" in english.json_body["message"]
    assert client.http.delete(f"/admin/council-codes/{code}", headers=admin_headers).status_code == 404


def test_ideas_appear_only_once_approved_and_an_edit_keeps_no_removed_text(client, admin_headers):
    code = _code(client, admin_headers)
    secret_name = "Juf Annemieke van De Zonnebloem"
    idea = _submit(client, dict(IDEA, title="Minder toetsen", text=f"{secret_name} zegt: minder toetsen.",
                                code=code)).json_body["idea"]
    meetup = make_meetup(province="Flevoland")
    host = outcomes.link_url(meetup).rsplit("/", 1)[1]

    def everywhere() -> str:
        return (json.dumps(client.http.get(f"/outcomes/{host}").json_body)
                + client.http.get(f"/outcomes/{host}", headers={"Accept": "text/html"}).body.decode()
                + client.http.get("/admin/bundle?format=json", headers=admin_headers).body.decode()
                + client.http.get("/admin/bundle?format=csv", headers=admin_headers).body.decode())
    assert "Minder toetsen" not in everywhere()
    edited = client.http.patch(f"/admin/ideas/{idea['id']}", headers=admin_headers,
                               body=json.dumps({"text": "Iemand zegt: minder toetsen."}))
    assert edited.status_code == 200 and secret_name not in edited.body.decode()
    approved = client.http.post(f"/admin/ideas/{idea['id']}/approve", headers=admin_headers)
    assert approved.json_body["status"] == "approved"
    shown = everywhere()
    assert "Minder toetsen" in shown and secret_name not in shown
    audit = client.http.get(f"/admin/ideas/{idea['id']}/audit", headers=admin_headers).json_body["audit"]
    assert [(a["action"], a["fields"]) for a in audit] == [("edited", ["text"]), ("approved", [])]
    assert secret_name not in json.dumps(audit)
    client.http.post(f"/admin/ideas/{idea['id']}/reject", headers=admin_headers)
    assert "Minder toetsen" not in everywhere()


def test_the_page_tells_a_twelve_year_old_what_is_kept_dutch_first(client):
    page = client.http.get("/jeugdraad", headers={"Accept": "text/html"}).body.decode()
    assert "Schrijf geen namen op" in page and "niet</strong> om je naam" in page
    assert "Do not write any names" in client.http.get("/jeugdraad?lang=en", headers={"Accept": "text/html"}).body.decode()
