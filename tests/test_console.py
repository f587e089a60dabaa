"""The admin console's pages through the Chalice client against DynamoDB Local: signing in with an
admin token (a wrong one refused in Dutch), the session cookie's flags, CSRF on every POST (403 and
nothing changed), a revoked token ending the session, and the pages using the JSON API's functions."""
from __future__ import annotations

import re
import secrets
from urllib.parse import urlencode

import pytest

from chalicelib import auth, catalogue, console, digest
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


# --- outcomes ------------------------------------------------------------------------------------------

def _with_two_tables(meetup):
    from chalicelib import theme_tables
    theme_tables.set_tables(meetup.id, {"tables": [
        {"name": "Taal en lezen", "moderator": {"name": "Mo Derator", "email": "mo@example.nl"}, "capacity": 10},
        {"name": "Kinderopvang", "moderator": {"name": "Kim Opvang", "email": "kim@example.nl"}, "capacity": 10}]})
    from chalicelib import outcomes
    return [t["id"] for t in outcomes.admin_show(meetup.id)["tables"]]


def test_outcomes_are_corrected_from_the_console_through_the_admin_functions_and_audited(client):
    from chalicelib import outcomes
    cookie = sign_in(client)
    meetup = make_meetup(title=f"Uitkomsten Console {secrets.token_hex(2)}")
    taal, opvang = _with_two_tables(meetup)
    path = f"/admin/console/meetups/{meetup.id}/outcomes"
    page = get(client, path, cookie)
    assert page.status_code == 200
    shown = page.body.decode()
    assert 'data-status="draft"' in shown and "Taal en lezen" in shown and "Kinderopvang" in shown
    assert "Nog niets vastgelegd." in shown and "/admin/console/bundle?province=" in shown
    csrf = csrf_of(page)
    item = {"kind": "condition", "title": "Gelijk schooladvies", "explanation": "Elk kind een eerlijke kans",
            "actor_school": "on", "actor_rijk": "on", "tag_schooladvies": "on", "table_id": taal}

    # Without the CSRF token (or with another session's) nothing is added.
    assert post(client, f"{path}/items", item, cookie).status_code == 403
    assert post(client, f"{path}/items", dict(item, csrf=csrf_of(get(client, path, sign_in(client)))),
                cookie).status_code == 403
    assert outcomes.load(meetup.id)[1] == []

    # A mistake: the page again, the add form of that table open and its fields marked.
    no_title_no_tag = {k: v for k, v in dict(item, csrf=csrf, title="").items() if k != "tag_schooladvies"}
    bad = post(client, f"{path}/items", no_title_no_tag, cookie)
    assert bad.status_code == 422
    refused = bad.body.decode()
    title_id, tags_id = console.field_id(f"new-{taal}.title"), console.field_id(f"new-{taal}.tags")
    assert 'id="form-errors"' in refused and f'href="#{title_id}"' in refused and f'href="#{tags_id}"' in refused
    assert re.search(rf'id="{title_id}" name="title"[^>]*aria-invalid="true"', refused)
    assert f'id="{tags_id}"' in refused and "Elk kind een eerlijke kans" in refused, "shown again as typed"
    assert outcomes.load(meetup.id)[1] == []

    added = post(client, f"{path}/items", dict(item, csrf=csrf), cookie)
    assert added.status_code == 303 and added.headers["Location"] == f"{path}?saved=1"
    [stored] = outcomes.load(meetup.id)[1]
    assert (stored.table_id, stored.title, list(stored.actors), list(stored.tags)) == (
        taal, "Gelijk schooladvies", ["school", "rijk"], ["schooladvies"])

    # Final: the host's links may no longer change anything; the admin still corrects, audited.
    assert post(client, f"{path}/finalise", {"csrf": csrf}, cookie).status_code == 303
    assert outcomes.is_final(outcomes.load(meetup.id)[0])
    changed = post(client, f"{path}/items/{stored.id}", {
        "csrf": csrf, "kind": "solution", "title": "Eén schooladvies", "explanation": "", "actor_gemeente": "on",
        "tag_schooladvies": "on", "table_id": opvang}, cookie)
    assert changed.status_code == 303
    [fixed] = outcomes.load(meetup.id)[1]
    assert (fixed.kind, fixed.title, fixed.explanation, list(fixed.actors), fixed.table_id) == (
        "solution", "Eén schooladvies", None, ["gemeente"], opvang)
    assert post(client, f"{path}/items/{fixed.id}/remove", {}, cookie).status_code == 403
    assert post(client, f"{path}/items/{fixed.id}/remove", {"csrf": csrf}, cookie).status_code == 303
    assert outcomes.load(meetup.id)[1] == []
    assert post(client, f"{path}/reopen", {"csrf": csrf}, cookie).status_code == 303
    assert not outcomes.is_final(outcomes.load(meetup.id)[0])

    audit = outcomes.load(meetup.id)[2]
    assert [e.action for e in audit] == ["added", "finalised", "changed", "removed", "reopened"]
    assert {e.actor for e in audit} == {"admin local-admin"}, "the session's admin, as the JSON routes name them"
    assert audit[2].changes["title"] == {"before": "Gelijk schooladvies", "after": "Eén schooladvies"}
    trail = get(client, path, cookie).body.decode()
    assert 'id="outcome-audit"' in trail and trail.count('data-action="') == 5
    assert "Gelijk schooladvies → Eén schooladvies" in trail and "weer concept" in trail


def test_the_console_answers_409_when_the_outcome_rules_refuse(client):
    from chalicelib import outcomes
    cookie = sign_in(client)
    meetup = make_meetup()
    path = f"/admin/console/meetups/{meetup.id}/outcomes"
    csrf = csrf_of(get(client, path, cookie))
    refused = post(client, f"{path}/reopen", {"csrf": csrf}, cookie)  # still a draft
    assert refused.status_code == 409
    assert 'id="form-problem"' in refused.body.decode() and "nog niet vastgesteld" in refused.body.decode()
    assert post(client, f"{path}/finalise", {"csrf": csrf}, cookie).status_code == 303
    again = post(client, f"{path}/finalise?lang=en", {"csrf": csrf}, cookie)  # e.g. from a second tab
    assert again.status_code == 409 and "The outcomes of this meetup are final" in again.body.decode()
    assert [e.action for e in outcomes.load(meetup.id)[2]] == ["finalised"]
    gone = post(client, f"{path}/items/0123456789abcdef/remove", {"csrf": csrf}, cookie)
    assert gone.status_code == 404 and "Dit punt bestaat niet" in gone.body.decode()


def test_the_outcomes_overview_shows_each_meetups_state(client):
    from chalicelib import outcomes
    cookie = sign_in(client)
    draft, final = make_meetup(), make_meetup()
    outcomes.admin_finalise(final.id, "test")
    page = get(client, "/admin/console/outcomes", cookie).body.decode()
    assert re.search(rf'data-meetup="{draft.id}" data-status="draft"', page)
    assert re.search(rf'data-meetup="{final.id}" data-status="final"', page)
    assert f"/admin/console/meetups/{final.id}/outcomes" in page
    assert "vastgesteld" in page and "Bundel" in page
    bundle = get(client, "/admin/console/bundle?province=Noord-Holland", cookie).body.decode()
    assert 'id="bundle-console-links"' in bundle and "/admin/console/bundle?province=Noord-Holland&amp;format=pdf" in bundle
    pdf = client.http.get("/admin/console/bundle?province=Noord-Holland&format=pdf",
                          headers={"Accept": "text/html,*/*;q=0.8", "Cookie": cookie})  # as a browser's link asks
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    english = get(client, f"/admin/console/meetups/{draft.id}/outcomes?lang=en", cookie).body.decode()
    assert '<html lang="en">' in english and "Add a condition or solution" in english and "Plenary" in english
