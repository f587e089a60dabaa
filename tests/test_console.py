"""The admin console's pages through the Chalice client against DynamoDB Local: signing in with an
admin token (a wrong one refused in Dutch), the session cookie's flags, CSRF on every POST (403 and
nothing changed), a revoked token ending the session, and the pages using the JSON API's functions."""
from __future__ import annotations

import re
import secrets
from urllib.parse import urlencode

import pytest

from chalicelib import auth, catalogue, digest
from tests.conftest import ADMIN_TOKEN
from tests.factories import make_meetup

HTML = {"Accept": "text/html"}
FORM = {"Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"}


def post(client, path, fields, cookie=None):
    headers = dict(FORM, **({"Cookie": cookie} if cookie else {}))
    return client.http.post(path, body=urlencode(fields), headers=headers)


def get(client, path, cookie=None):
    return client.http.get(path, headers=dict(HTML, **({"Cookie": cookie} if cookie else {})))


def sign_in(client, token=ADMIN_TOKEN) -> str:
    answer = post(client, "/admin/console/login", {"token": token})
    assert answer.status_code == 303, answer.body
    return answer.headers["Set-Cookie"].split(";")[0]


def csrf_of(page) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.body.decode()).group(1)


def test_admin_redirects_to_the_console_which_asks_to_sign_in_first(client):
    assert get(client, "/admin").headers["Location"] == "/admin/console"
    answer = get(client, "/admin/console")
    assert answer.status_code == 303 and answer.headers["Location"] == "/admin/console/login"
    page = get(client, "/admin/console/login").body.decode()
    assert '<html lang="nl">' in page and "Beheertoken" in page
    assert "Admin token" in get(client, "/admin/console/login?lang=en").body.decode()


def test_a_wrong_token_is_refused_in_dutch_with_the_field_marked(client):
    answer = post(client, "/admin/console/login", {"token": "kma_not-a-token"})
    assert answer.status_code == 401
    assert "Set-Cookie" not in answer.headers
    page = answer.body.decode()
    assert "Dit beheertoken klopt niet" in page
    assert 'aria-invalid="true"' in page and "kma_not-a-token" not in page


def test_the_session_cookie_is_httponly_strict_expiring_and_names_no_token(client):
    answer = post(client, "/admin/console/login", {"token": ADMIN_TOKEN})
    cookie = answer.headers["Set-Cookie"]
    flags = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Max-Age=28800" in flags
    assert "Path=/admin/console" in flags
    assert ADMIN_TOKEN not in cookie
    page = get(client, "/admin/console", cookie.split(";")[0])
    assert page.status_code == 200 and ADMIN_TOKEN not in page.body.decode()


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(client):
    cookie = sign_in(client)
    meetup = make_meetup(title="CSRF Proef")
    path = f"/admin/console/meetups/{meetup.id}"
    for fields in ({"title": "Gekaapt"}, {"title": "Gekaapt", "csrf": "x.y.z"},
                   {"title": "Gekaapt", "csrf": csrf_of(get(client, path, sign_in(client)))}):  # another session's
        answer = post(client, path, fields, cookie)
        assert answer.status_code == 403, fields
        assert "Dit formulier is verlopen" in answer.body.decode()
    assert post(client, path, {"title": "Gekaapt"}).status_code == 403  # no session at all
    assert catalogue.load(meetup.id).title == "CSRF Proef"
    before = len(digest.list_organisers())
    assert post(client, "/admin/console/organisers", {"name": "X", "email": "x@example.org", "scope": "all",
                                                      "frequency": "daily"}, cookie).status_code == 403
    assert len(digest.list_organisers()) == before


def test_a_revoked_admin_token_ends_the_session(client):
    token = auth.create_token(f"console-{secrets.token_hex(3)}")
    cookie = sign_in(client, token)
    assert get(client, "/admin/console", cookie).status_code == 200
    page = get(client, "/admin/console/erasures", cookie)
    auth.revoke_token(token)
    answer = get(client, "/admin/console", cookie)
    assert answer.status_code == 303 and answer.headers["Location"] == "/admin/console/login"
    assert post(client, "/admin/console/erasures", {"email": "a@example.org", "csrf": csrf_of(page)},
                cookie).status_code == 403


def test_sign_out_clears_the_cookie(client):
    cookie = sign_in(client)
    page = get(client, "/admin/console", cookie)
    answer = post(client, "/admin/console/logout", {"csrf": csrf_of(page)}, cookie)
    assert answer.status_code == 303 and answer.headers["Location"] == "/admin/console/login"
    assert "Max-Age=0" in answer.headers["Set-Cookie"] and answer.headers["Set-Cookie"].startswith("klassen_admin=;")


def test_a_meetup_is_created_and_edited_through_the_catalogue_rules(client):
    cookie = sign_in(client)
    csrf = csrf_of(get(client, "/admin/console/meetups/new", cookie))
    fields = {"csrf": csrf, "title": "Console Meetup", "kind": "regional", "province": "Utrecht", "mode": "in_person",
              "city": "", "host.name": "Gastvrouw", "starts_at": "2031-03-01T19:30", "ends_at": "2031-03-01T19:00",
              "capacity": "25", "waitlist.enabled": "true", "status": "open"}
    bad = post(client, "/admin/console/meetups", fields, cookie)
    assert bad.status_code == 422
    page = bad.body.decode()
    assert "moet na de begintijd liggen" in page, re.findall(r"field-error[^<]*<", page)
    assert 'id="f-ends-at"' in page and 'aria-invalid="true"' in page
    fields.update(ends_at="2031-03-01T21:30", city="Utrecht", reminders="1440, 60")
    created = post(client, "/admin/console/meetups", fields, cookie)
    assert created.status_code == 303
    meetup_id = created.headers["Location"].rsplit("/", 1)[1]
    stored = catalogue.load(meetup_id)
    assert (stored.title, stored.city, int(stored.capacity), stored.starts_at) == (
        "Console Meetup", "Utrecht", 25, "2031-03-01T18:30:00Z")
    assert [int(v) for v in stored.reminder_offsets] == [1440, 60]
    edit = get(client, f"/admin/console/meetups/{meetup_id}", cookie)
    assert 'value="2031-03-01T19:30"' in edit.body.decode()
    changed = post(client, f"/admin/console/meetups/{meetup_id}",
                   dict(fields, csrf=csrf_of(edit), capacity="30", title="Console Meetup 2"), cookie)
    assert changed.status_code == 303
    stored = catalogue.load(meetup_id)
    assert (stored.title, int(stored.capacity)) == ("Console Meetup 2", 30)


def test_a_new_organisers_first_digest_is_explained_after_a_run(client):
    cookie = sign_in(client)
    csrf = csrf_of(get(client, "/admin/console/organisers", cookie))
    name = f"Organisator {secrets.token_hex(3)}"
    added = post(client, "/admin/console/organisers", {"csrf": csrf, "name": name, "email": f"{secrets.token_hex(4)}@example.org",
                                                       "scope": "all", "frequency": "daily", "language": "nl"}, cookie)
    assert added.status_code == 303
    run = post(client, "/admin/console/digests/run", {"csrf": csrf}, cookie)
    assert run.status_code == 200
    page = run.body.decode()
    assert f"{name}: nieuw in deze periode: de eerste digest komt in de volgende periode" in page


def test_an_erasure_answers_what_was_erased(client):
    cookie = sign_in(client)
    csrf = csrf_of(get(client, "/admin/console/erasures", cookie))
    assert post(client, "/admin/console/erasures", {"csrf": csrf, "email": "geen adres"}, cookie).status_code == 422
    answer = post(client, "/admin/console/erasures", {"csrf": csrf, "email": f"{secrets.token_hex(4)}@example.org"}, cookie)
    assert answer.status_code == 200
    assert "Er was niets opgeslagen over dit adres" in answer.body.decode()


def test_the_console_approves_youth_ideas_makes_and_revokes_council_codes(client):
    from chalicelib import youth
    cookie = sign_in(client)
    page = get(client, "/admin/console/ideas", cookie)
    assert page.status_code == 200 and "Ideeën van de jeugdraad" in page.body.decode()
    made = post(client, "/admin/console/council-codes", {"csrf": csrf_of(page), "label": "jeugdraad test"}, cookie)
    code = re.search(r'id="new-code">[^<]*<strong>([^<]+)</strong>', made.body.decode()).group(1)
    youth.check_code(code)  # the new code works
    title = f"Meer mentoren {secrets.token_hex(2)}"
    idea = youth.submit({"code": code, "title": title, "text": "Elke leerling een mentor.", "age_band": "14-15"})
    listed = get(client, "/admin/console/ideas", cookie).body.decode()
    assert title in listed and "wacht op beoordeling" in listed
    assert post(client, f"/admin/console/ideas/{idea['id']}", {"csrf": csrf_of(made), "decision": "approve"},
                cookie).status_code == 303
    assert title in [i.title for i in youth.approved_ideas(everywhere=True)]
    refused = post(client, f"/admin/console/ideas/{idea['id']}", {"decision": "reject"}, cookie)
    assert refused.status_code == 403, "no CSRF token: nothing changes"
    assert title in [i.title for i in youth.approved_ideas(everywhere=True)]
    revoked = post(client, "/admin/console/council-codes/revoke", {"csrf": csrf_of(made), "code": code}, cookie)
    assert revoked.status_code == 303
    with pytest.raises(Exception):
        youth.check_code(code)


def test_the_console_shows_a_background_job_and_the_bundle(client):
    cookie = sign_in(client)
    meetup = make_meetup(capacity=5)
    page = get(client, f"/admin/console/meetups/{meetup.id}", cookie)
    form = {"csrf": csrf_of(page), "title": meetup.title, "kind": meetup.kind, "province": meetup.province or "",
            "city": meetup.city or "", "host.name": meetup.host_name, "starts_at": catalogue.view(meetup)["starts_at"][:16],
            "ends_at": catalogue.view(meetup)["ends_at"][:16], "mode": meetup.mode, "capacity": "5",
            "status": "cancelled", "waitlist.enabled": "true"}
    answer = post(client, f"/admin/console/meetups/{meetup.id}", form, cookie)
    assert answer.status_code == 303, answer.body[:300]
    assert "/admin/console/jobs/" in answer.headers["Location"], "a cancellation's emails run as a job"
    job = get(client, answer.headers["Location"].split("?")[0], cookie).body.decode()
    assert 'id="job"' in job and "afzeggingen versturen" in job
    bundle = get(client, "/admin/console/bundle", cookie)
    assert bundle.status_code == 200 and "<html" in bundle.body.decode()
