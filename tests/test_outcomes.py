"""Outcomes per meetup: moderators draft their own table through their link, the host reviews and
makes them final (then only an admin changes them, audited), and the links are mailed once."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from chalicelib import clock, outcomes
from chalicelib.models import Meetup, ThemeTable
from tests.factories import make_meetup


def _with_tables(meetup):
    meetup.update(actions=[Meetup.tables.set([
        ThemeTable(id="taal", name="Taal en lezen", moderator_name="Mo Derator", moderator_email="mo@example.nl"),
        ThemeTable(id="opvang", name="Kinderopvang", moderator_name="Kim Opvang", moderator_email="kim@example.nl")])])
    return Meetup.get(meetup.id)


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


ITEM = {"kind": "condition", "title": "Gelijk schooladvies", "explanation": "Élk kind een eerlijke kans",
        "actors": ["school", "rijk"], "tags": ["schooladvies"]}


def _post(client, path, body):
    return client.http.post(path, headers={"Content-Type": "application/json"}, body=json.dumps(body))


def test_a_meetup_without_tables_has_one_plenary_table_led_by_its_host():
    meetup = make_meetup()
    [table] = outcomes.tables_of(meetup)
    assert table["id"] == "plenair" and table["name"] == "Plenair" and table["name_en"] == "Plenary"
    assert table["moderator_email"] == meetup.host_email and table["implicit"]


def test_a_moderators_link_edits_only_their_table(client):
    meetup = _with_tables(make_meetup())
    taal = _token(outcomes.link_url(meetup, "taal"))
    opvang = _token(outcomes.link_url(meetup, "opvang"))
    added = _post(client, f"/outcomes/{taal}/items", ITEM)
    assert added.status_code == 201, added.body
    item = added.json_body
    assert item["table_id"] == "taal"
    # another table through the body: refused; another table's item: not found, unchanged
    assert _post(client, f"/outcomes/{taal}/items", dict(ITEM, table_id="opvang")).status_code == 422
    assert _post(client, f"/outcomes/{opvang}/items/{item['id']}", {"title": "Overgenomen"}).status_code == 404
    assert client.http.post(f"/outcomes/{opvang}/items/{item['id']}/delete").status_code == 404
    seen = client.http.get(f"/outcomes/{opvang}").json_body
    assert [t["id"] for t in seen["tables"]] == ["opvang"] and seen["tables"][0]["items"] == []
    state, items, _ = outcomes.load(meetup.id)
    assert [(i.table_id, i.title) for i in items] == [("taal", "Gelijk schooladvies")]
    # an unknown tag or actor is a 422 naming the field, nothing stored
    bad = _post(client, f"/outcomes/{taal}/items", dict(ITEM, tags=["onbekend"], actors=["paus"]))
    assert bad.status_code == 422 and set(bad.json_body["fields"]) == {"tags", "actors"}
    assert len(outcomes.load(meetup.id)[1]) == 1


def test_after_the_host_finalises_only_an_admin_changes_and_that_is_audited(client, admin_headers):
    meetup = _with_tables(make_meetup())
    taal = _token(outcomes.link_url(meetup, "taal"))
    host = _token(outcomes.link_url(meetup))
    item = _post(client, f"/outcomes/{taal}/items", ITEM).json_body
    changed = _post(client, f"/outcomes/{host}/items/{item['id']}", {"title": "Eén schooladvies voor iedereen"})
    assert changed.status_code == 200 and changed.json_body["title"] == "Eén schooladvies voor iedereen"
    assert client.http.post(f"/outcomes/{taal}/finalise").status_code == 403  # moderators do not finalise
    final = client.http.post(f"/outcomes/{host}/finalise")
    assert final.status_code == 200 and final.json_body["status"] == "final"

    for path, body in ((f"/outcomes/{taal}/items", ITEM), (f"/outcomes/{taal}/items/{item['id']}", {"title": "x y"}),
                       (f"/outcomes/{host}/items/{item['id']}", {"title": "x y"})):
        refused = _post(client, path, body)
        assert refused.status_code == 409 and refused.json_body["error"] == "outcomes_final"
        assert "vastgesteld" in refused.json_body["message"]
    english = client.http.post(f"/outcomes/{host}/finalise?lang=en")
    assert english.status_code == 409 and "final" in english.json_body["message"]
    assert outcomes.load(meetup.id)[1][0].title == "Eén schooladvies voor iedereen"

    fixed = client.http.patch(f"/admin/meetups/{meetup.id}/outcomes/items/{item['id']}", headers=admin_headers,
                              body=json.dumps({"title": "Schooladvies pas in groep 8"}))
    assert fixed.status_code == 200, fixed.body
    view = client.http.get(f"/admin/meetups/{meetup.id}/outcomes", headers=admin_headers).json_body
    assert view["status"] == "final"
    actions = [(a["actor"], a["action"]) for a in view["audit"]]
    assert actions == [("moderator taal", "added"), ("host", "changed"), ("host", "finalised"),
                       ("admin local-admin", "changed")]
    last = view["audit"][-1]
    assert last["changes"] == {"title": {"before": "Eén schooladvies voor iedereen", "after": "Schooladvies pas in groep 8"}}
    assert "@" not in json.dumps(view["audit"])  # the audit keeps no addresses
    assert client.http.patch(f"/admin/meetups/{meetup.id}/outcomes/items/{item['id']}",
                             body=json.dumps({"title": "x"})).status_code == 401


def test_the_host_page_is_dutch_first_and_a_form_post_returns_to_it(client):
    meetup = make_meetup()
    host = _token(outcomes.link_url(meetup))
    page = client.http.get(f"/outcomes/{host}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Uitkomsten vaststellen" in page.body.decode()
    posted = client.http.post(f"/outcomes/{host}/items", headers={
        "Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"},
        body="kind=solution&title=Brugklas+voor+iedereen&explanation=&actor_gemeente=on&tag_segregatie=on")
    assert posted.status_code == 303, posted.body
    [item] = outcomes.load(meetup.id)[1]
    assert (item.kind, item.actors, item.tags, item.table_id) == ("solution", ["gemeente"], ["segregatie"], "plenair")
    assert "Plenary" in client.http.get(f"/outcomes/{host}?lang=en", headers={"Accept": "text/html"}).body.decode()


def test_tags_are_the_admins_list(client, admin_headers):
    assert "schooladvies" in client.http.get("/admin/tags", headers=admin_headers).json_body["tags"]
    bad = client.http.put("/admin/tags", headers=admin_headers, body=json.dumps({"tags": ["Geen Tag!"]}))
    assert bad.status_code == 422 and "tags" in bad.json_body["fields"]
    tags = list(outcomes.DEFAULT_TAGS) + ["digitale-geletterdheid"]
    assert client.http.put("/admin/tags", headers=admin_headers, body=json.dumps({"tags": tags})).json_body["tags"] == tags
    assert client.http.get("/admin/tags", headers=admin_headers).json_body["tags"] == tags


def test_after_a_meetup_ends_host_and_moderators_get_their_link_once(tmp_path):
    from chalicelib import mail
    import secrets
    meetup = _with_tables(make_meetup(days_ahead=-1, title=f"Klassen Meetup afgelopen {secrets.token_hex(3)}"))
    first = outcomes.send_links(clock.now())
    assert first["queued"] >= 3  # other tests' ended meetups may get theirs in the same run
    again = outcomes.send_links(clock.now() + timedelta(minutes=5))
    assert again["queued"] == 0
    sent = [m for m in mail.read_mail_dir() if meetup.title in (m["Subject"] or "")]
    assert sorted(m["To"] for m in sent) == sorted(["mo@example.nl", "kim@example.nl", meetup.host_email])
    text = next(m for m in sent if m["To"] == "mo@example.nl").get_body(("plain",)).get_content()
    assert text.index("Dank je wel") < text.index("Thank you")  # Dutch first
    assert "Taal en lezen" in text
