"""The tour catalogue over HTTP, against DynamoDB Local."""
import json

import pytest

from tests.factories import make_meetup, meetup_payload


def post_meetup(client, headers, payload):
    return client.http.post("/admin/meetups", headers=headers, body=json.dumps(payload))


def test_admin_creates_meetup_in_contract_shape(client, admin_headers):
    response = post_meetup(client, admin_headers, meetup_payload(capacity=150))
    assert response.status_code == 201
    body = response.json_body
    assert set(body) >= {"id", "title", "kind", "province", "city", "host", "starts_at", "ends_at", "mode",
                         "capacity", "confirmed", "seats_left", "waitlist", "status", "follows"}
    assert body["capacity"] == 150 and body["confirmed"] == 0 and body["seats_left"] == 150
    assert body["status"] == "open" and body["follows"] is None
    assert body["waitlist"] == {"enabled": True, "length": 0, "max_length": None}

    public = client.http.get(f"/meetups/{body['id']}").json_body
    assert public["host"] == {"name": "Gemeente Lelystad"}, "host contact details are never public"
    assert "email" not in json.dumps(public)


def test_times_are_amsterdam_with_offset(client, admin_headers):
    payload = meetup_payload(starts_at="2030-04-12T19:30:00+02:00", ends_at="2030-04-12T21:30:00+02:00")
    body = post_meetup(client, admin_headers, payload).json_body
    assert body["starts_at"] == "2030-04-12T19:30:00+02:00"
    winter = post_meetup(client, admin_headers, meetup_payload(starts_at="2030-02-01T19:30:00",
                                                               ends_at="2030-02-01T21:00:00")).json_body
    assert winter["starts_at"] == "2030-02-01T19:30:00+01:00", "wall time without offset is Amsterdam time"


def test_listing_sorted_and_filtered(client, empty_tables):
    late = make_meetup(title="Late", days_ahead=60, province="Groningen", city="Groningen")
    early = make_meetup(title="Early", days_ahead=10, kind="extra", province=None, city=None)
    past = make_meetup(title="Past", days_ahead=-10, province="Groningen", city="Groningen")

    ids = [m["id"] for m in client.http.get("/meetups").json_body["meetups"]]
    assert ids == [past.id, early.id, late.id]
    groningen = client.http.get("/meetups?province=groningen").json_body["meetups"]
    assert [m["id"] for m in groningen] == [past.id, late.id]
    extra = client.http.get("/meetups?kind=extra").json_body["meetups"]
    assert [m["id"] for m in extra] == [early.id]
    upcoming = client.http.get("/meetups?upcoming=true").json_body["meetups"]
    assert [m["id"] for m in upcoming] == [early.id, late.id]
    assert client.http.get(f"/meetups/{past.id}").json_body["status"] == "closed"


@pytest.mark.parametrize("query, field", [("province=Atlantis", "province"), ("kind=party", "kind")])
def test_listing_rejects_unknown_filter_values(client, query, field):
    response = client.http.get(f"/meetups?{query}")
    assert response.status_code == 422
    assert field in response.json_body["fields"]


def test_unknown_meetup_is_404(client):
    response = client.http.get("/meetups/does-not-exist")
    assert response.status_code == 404
    assert response.json_body["error"] == "not_found"


def test_html_listing_is_dutch_and_escaped(client, empty_tables):
    make_meetup(title="<script>alert(1)</script>", starts_at="2030-04-12T19:30:00+02:00",
                ends_at="2030-04-12T21:30:00+02:00")
    response = client.http.get("/meetups", headers={"Accept": "text/html"})
    assert response.status_code == 200
    html = response.body.decode()
    assert '<html lang="nl">' in html
    assert "vrijdag 12 april 2030 om 19:30" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    english = client.http.get("/meetups?lang=en", headers={"Accept": "text/html"}).body.decode()
    assert '<html lang="en">' in english and "Friday 12 April 2030 at 19:30" in english


@pytest.mark.parametrize("change, field", [
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"kind": "party"}, "kind"),
    ({"mode": "hybrid"}, "mode"),
    ({"capacity": "many"}, "capacity"),
    ({"capacity": -1}, "capacity"),
    ({"capacity": True}, "capacity"),
    ({"starts_at": "next tuesday"}, "starts_at"),
    ({"province": "Atlantis"}, "province"),
    ({"host": {"name": "X", "email": "not-an-email"}}, "host.email"),
    ({"host": "Lelystad"}, "host"),
    ({"waitlist": {"enabled": "yes please"}}, "waitlist.enabled"),
    ({"colour": "red"}, "colour"),
    ({"title": "line\r\nbreak"}, "title"),
])
def test_create_rejects_bad_fields_naming_them(client, admin_headers, change, field):
    response = post_meetup(client, admin_headers, meetup_payload(**change))
    assert response.status_code == 422
    assert field in response.json_body["fields"], response.json_body


def test_create_rejects_end_before_start(client, admin_headers):
    payload = meetup_payload(starts_at="2030-04-12T19:30:00+02:00", ends_at="2030-04-12T18:30:00+02:00")
    response = post_meetup(client, admin_headers, payload)
    assert response.status_code == 422 and "ends_at" in response.json_body["fields"]


@pytest.mark.parametrize("body, status", [("{not json", 400), ("[1, 2]", 400), ("", 400)])
def test_malformed_bodies_are_400(client, admin_headers, body, status):
    response = client.http.post("/admin/meetups", headers=admin_headers, body=body)
    assert response.status_code == status
    assert response.json_body["error"] == "malformed_request"


def test_wrong_content_type_is_415(client, admin_headers):
    headers = dict(admin_headers, **{"Content-Type": "text/plain"})
    response = client.http.post("/admin/meetups", headers=headers, body="title=x")
    assert response.status_code == 415
    assert response.json_body["error"] == "unsupported_media_type"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
def test_admin_routes_need_a_token_and_change_nothing(client, empty_tables, headers):
    headers = dict(headers, **{"Content-Type": "application/json"})
    response = post_meetup(client, headers, meetup_payload())
    assert response.status_code == 401
    assert response.json_body["error"] == "unauthorized"
    assert client.http.get("/meetups").json_body["meetups"] == []
    meetup = make_meetup()
    patched = client.http.patch(f"/admin/meetups/{meetup.id}", headers=headers, body=json.dumps({"title": "Hacked"}))
    assert patched.status_code == 401
    assert client.http.get(f"/meetups/{meetup.id}").json_body["title"] == meetup.title


def test_stored_admin_token_works_until_revoked(client):
    from chalicelib import auth
    token = auth.create_token("tester")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert post_meetup(client, headers, meetup_payload()).status_code == 201
    assert auth.revoke_token(token)
    assert post_meetup(client, headers, meetup_payload()).status_code == 401


def test_admin_token_is_stored_only_as_hash():
    import boto3, os
    from chalicelib import auth
    token = auth.create_token("hash-check")
    items = boto3.client("dynamodb").scan(TableName=os.environ["TABLE_PREFIX"] + "admin_tokens")["Items"]
    assert token not in json.dumps(items)
    assert any(item["token_hash"]["S"] == auth.hash_token(token) for item in items)


def test_patch_changes_fields(client, admin_headers):
    meetup = make_meetup()
    response = client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers,
                                 body=json.dumps({"title": "Nieuwe titel", "status": "closed"}))
    assert response.status_code == 200
    assert response.json_body["title"] == "Nieuwe titel"
    assert response.json_body["status"] == "closed"


def test_patch_unknown_meetup_is_404(client, admin_headers):
    response = client.http.patch("/admin/meetups/nope", headers=admin_headers, body=json.dumps({"title": "x"}))
    assert response.status_code == 404


@pytest.mark.parametrize("path, status", [("/meetups/nope", 404), ("/meetups?province=Atlantis", 422)])
def test_a_browser_gets_dutch_error_pages(client, path, status):
    response = client.http.get(path, headers={"Accept": "text/html"})
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    html = response.body.decode()
    assert '<html lang="nl">' in html and 'role="alert"' in html
    if status == 422:
        assert "Kies de provincie: Drenthe" in html  # the message names the field, in Dutch
