"""The admin console in Chromium against the service as `make run` serves it: an organiser signs in
with the admin token, creates a meetup, finds it listed, reads its registrations, hands it over,
sees the follow-up in the chain, runs the digests and signs out; then the newer pages: the youth
council's ideas and codes, a background job's progress, the outcomes (overview, a meetup's, the
admin's corrections) and the bundle. Every console page fits 320 px and passes axe-core; the
session cookie is HttpOnly and SameSite=Strict.

It adds meetups to the session's one live service, so like test_pages_browser.py it runs after
test_e2e_http.py's checks of the bare demo tour (pytest runs the files in name order)."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import pytest
import requests

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, browser, fresh_email  # noqa: F401
from tests.test_pages_browser import AXE, new_meetup, page, sign_up_by_api  # noqa: F401

pytest_plugins = ["tests.e2e_support"]
pytestmark = [pytest.mark.browser]


def click(page, name: str):
    """Clicks a button and waits for the page it leads to; the answer to the POST."""
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        with page.expect_navigation():
            page.get_by_role("button", name=name, exact=True).click()
    return posted.value


def check_page(page, failures: list[str]) -> None:
    """No sideways scroll at 320 px and no axe-core violations on the page shown."""
    label = page.url.split("/admin/console", 1)[-1] or "/"
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > 320:
        failures.append(f"{label}: {width} px wide at 320 px")
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document)).violations.map("
                          "v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))")
    failures += [f"{label}: {violation}" for violation in found]


def local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def test_an_organiser_runs_a_meetup_from_the_console(page, live_service):
    assert AXE.exists(), f"{AXE} is missing: `make axe` installs axe-core (devtools/axe)"
    page.set_viewport_size({"width": 320, "height": 800})
    failures: list[str] = []

    page.goto(live_service.url("/admin/"))
    page.wait_for_url("**/admin/console/login")
    assert page.locator("h1").inner_text() == "Aanmelden voor beheer"
    check_page(page, failures)
    page.get_by_label("Beheertoken").fill("kma_verkeerd")
    assert click(page, "Aanmelden").status == 401
    assert "Dit beheertoken klopt niet" in page.locator("#form-errors").inner_text()
    assert page.get_by_label("Beheertoken").get_attribute("aria-invalid") == "true"
    check_page(page, failures)

    page.get_by_label("Beheertoken").fill(live_service.admin_token)
    assert click(page, "Aanmelden").status == 303
    cookie = next(c for c in page.context.cookies() if c["name"] == "klassen_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert live_service.admin_token not in page.content()
    check_page(page, failures)

    # Create a meetup: first with a mistake, answered in the page with the field marked.
    page.get_by_role("link", name="Nieuwe meetup").first.click()
    page.wait_for_url("**/meetups/new")
    title = f"Console Meetup {secrets.token_hex(3)}"
    starts = datetime.now().replace(second=0, microsecond=0) + timedelta(days=30)
    page.get_by_label("Titel").fill(title)
    page.get_by_label("Provincie").select_option("Utrecht")
    page.locator("#f-city").fill("Amersfoort")
    page.get_by_label("Naam gastheer of gastvrouw").fill("Gastvrouw Amersfoort")
    page.get_by_label("Begint").fill(local(starts))
    page.get_by_label("Eindigt").fill(local(starts - timedelta(hours=1)))
    page.get_by_label("Aantal plekken").fill("20")
    check_page(page, failures)
    assert click(page, "Meetup aanmaken").status == 422
    assert page.get_by_label("Eindigt").get_attribute("aria-invalid") == "true"
    check_page(page, failures)
    page.get_by_label("Eindigt").fill(local(starts + timedelta(hours=2)))
    assert click(page, "Meetup aanmaken").status == 303
    meetup_id = page.url.split("/meetups/")[1].split("?")[0]
    check_page(page, failures)

    # Listed, with its fill level; then its registrations.
    page.get_by_role("link", name="Meetups", exact=True).click()
    row = page.locator(f"tr[data-meetup='{meetup_id}']")
    assert row.locator(".fill").inner_text() == "0 / 20"
    sign_up_by_api(live_service, meetup_id, fresh_email("console"))
    page.reload()
    assert row.locator(".fill").inner_text() == "1 / 20"
    check_page(page, failures)
    row.get_by_role("link", name=title).click()
    page.get_by_role("link", name="Aanmeldingen").click()
    page.wait_for_url("**/registrations")
    assert page.locator("#console-registrations tbody tr").count() == 1
    assert "Pagina Tester" in page.locator("#console-registrations").inner_text()
    assert page.locator("#registrations-csv").get_attribute("href").endswith(f"/meetups/{meetup_id}/registrations.csv")
    check_page(page, failures)

    # Theme tables page (read and set).
    page.goto(live_service.url(f"/admin/console/meetups/{meetup_id}/tables"))
    check_page(page, failures)

    # Hand it over and see the follow-up in the chain.
    page.goto(live_service.url(f"/admin/console/meetups/{meetup_id}/handover"))
    check_page(page, failures)
    page.get_by_label("Plaats", exact=True).fill("Zwolle")
    page.get_by_label("Naam nieuwe gastheer of gastvrouw").fill("Gastheer Zwolle")
    page.get_by_label("E-mailadres nieuwe gastheer of gastvrouw").fill(fresh_email("zwolle"))
    page.get_by_label("Begint").fill(local(starts + timedelta(days=60)))
    page.get_by_label("Eindigt").fill(local(starts + timedelta(days=60, hours=2)))
    page.get_by_label("Aantal plekken").fill("30")
    assert click(page, "Overdragen").status == 303
    assert page.locator("#handover-status").get_attribute("data-status") == "proposed"
    chain = page.locator("#chain li")
    assert chain.count() == 2
    assert "Zwolle" in chain.nth(1).inner_text()
    check_page(page, failures)

    # Organisers: add one, run the digests, and read why nothing was sent.
    page.get_by_role("link", name="Organisatoren en digests").click()
    check_page(page, failures)
    page.get_by_label("Naam", exact=True).fill("Organisator Console")
    page.get_by_label("E-mailadres", exact=True).fill(fresh_email("organiser"))
    page.get_by_label("Frequentie").select_option("daily")
    assert click(page, "Toevoegen").status == 303
    assert click(page, "Digests nu versturen").status == 200
    run = page.locator("#digest-run").inner_text()
    assert "Organisator Console: nieuw in deze periode: de eerste digest komt in de volgende periode" in run
    check_page(page, failures)

    page.get_by_role("link", name="Gegevens wissen").click()
    check_page(page, failures)

    # Sign out: the console leads to the sign-in page again.
    assert click(page, "Afmelden").status == 303
    page.wait_for_url("**/admin/console/login")
    page.goto(live_service.url("/admin/console"))
    page.wait_for_url("**/admin/console/login")
    assert not [c for c in page.context.cookies() if c["name"] == "klassen_admin"]
    assert not failures, "\n".join(failures)


def sign_in(page, live_service) -> None:
    page.goto(live_service.url("/admin/console/login"))
    page.get_by_label("Beheertoken").fill(live_service.admin_token)
    assert click(page, "Aanmelden").status == 303


def test_the_newer_console_pages_work_and_pass_axe(page, live_service):
    """The youth council's ideas (approve, reject) and codes (make, revoke), a background job's
    progress, the outcomes overview and a meetup's outcomes (add with a mistake, make final,
    correct, reopen, the audit trail) and the bundle: each at 320 px, each through axe-core."""
    assert AXE.exists(), f"{AXE} is missing: `make axe` installs axe-core (devtools/axe)"
    page.set_viewport_size({"width": 320, "height": 800})
    failures: list[str] = []
    sign_in(page, live_service)

    # The youth council: make a code, an idea comes in with it, approve and reject it, revoke the code.
    page.get_by_role("link", name="Jeugdraad").click()
    page.wait_for_url("**/admin/console/ideas")
    check_page(page, failures)
    page.get_by_label("Notitie bij de code (geen naam van een kind)").fill("jeugdraad browsertest")
    assert click(page, "Nieuwe code maken").status == 200
    code = page.locator("#new-code strong").inner_text()
    check_page(page, failures)
    title = f"Huiswerkklas {secrets.token_hex(3)}"
    answer = requests.post(live_service.url("/jeugdraad"), timeout=30, json={
        "code": code, "title": title, "text": "Na school samen huiswerk maken.", "age_band": "14-15"})
    assert answer.status_code == 201, answer.text
    page.reload()
    idea = page.locator("article.idea", has=page.get_by_role("heading", name=title))
    assert idea.get_attribute("data-status") == "pending"
    with page.expect_navigation():
        idea.get_by_role("button", name="Goedkeuren").click()
    assert idea.get_attribute("data-status") == "approved"
    check_page(page, failures)
    with page.expect_navigation():
        idea.get_by_role("button", name="Afwijzen").click()
    assert idea.get_attribute("data-status") == "rejected"
    page.get_by_label("Code intrekken").fill(code)
    assert click(page, "Intrekken").status == 303
    assert page.locator("#revoked").inner_text() == "De code is ingetrokken."
    check_page(page, failures)
    again = requests.post(live_service.url("/jeugdraad"), timeout=30, json={
        "code": code, "title": "Nog een idee", "text": "Met een ingetrokken code.", "age_band": "16"})
    assert again.status_code == 403 and again.json()["error"] == "code_refused", again.text

    # A cancellation from the console: its emails go out as a background job, whose progress shows.
    cancelled = new_meetup(live_service, title=f"Console Afgelast {secrets.token_hex(3)}")
    sign_up_by_api(live_service, cancelled["id"], fresh_email("job"))
    page.goto(live_service.url(f"/admin/console/meetups/{cancelled['id']}"))
    page.get_by_label("Status", exact=True).select_option("cancelled")
    assert click(page, "Opslaan").status == 303
    page.wait_for_url("**/admin/console/jobs/**")
    assert page.locator("h1").inner_text() == "Achtergrondtaak: afzeggingen versturen"
    assert page.locator("#job").get_attribute("data-state")
    check_page(page, failures)

    # Outcomes: a meetup with two theme tables, found through the overview.
    meetup = new_meetup(live_service, title=f"Console Uitkomsten {secrets.token_hex(3)}")
    two = [{"name": name, "moderator": {"name": moderator, "email": fresh_email(moderator)}, "capacity": 10}
           for name, moderator in (("Taal en lezen", "Mo"), ("Kinderopvang", "Kim"))]
    tables = requests.put(live_service.url(f"/admin/meetups/{meetup['id']}/tables"), headers=live_service.admin_headers,
                          timeout=30, json={"tables": two})
    assert tables.status_code == 200, tables.text
    page.get_by_role("link", name="Uitkomsten", exact=True).click()
    page.wait_for_url("**/admin/console/outcomes")
    row = page.locator(f"#console-outcomes tr[data-meetup='{meetup['id']}']")
    assert row.get_attribute("data-status") == "draft"
    check_page(page, failures)
    row.get_by_role("link", name=meetup["title"]).click()
    page.wait_for_url(f"**/meetups/{meetup['id']}/outcomes")
    assert page.locator("#outcomes-status").get_attribute("data-status") == "draft"
    check_page(page, failures)

    taal = page.locator("section.outcome-table", has=page.get_by_role("heading", name="Taal en lezen"))
    taal.get_by_text("Voorwaarde of oplossing toevoegen").click()
    taal.get_by_label("Korte titel").fill("Gelijk schooladvies")
    taal.get_by_label("school", exact=True).check()
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        with page.expect_navigation():
            taal.get_by_role("button", name="Punt toevoegen").click()
    assert posted.value.status == 422, "no theme chosen"
    assert page.locator("#form-errors").is_visible()
    taal = page.locator("section.outcome-table", has=page.get_by_role("heading", name="Taal en lezen"))
    assert taal.get_by_label("Korte titel").input_value() == "Gelijk schooladvies", "kept as typed"
    check_page(page, failures)
    page.locator("#form-errors a").first.click()
    taal.get_by_label("schooladvies", exact=True).check()
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        with page.expect_navigation():
            taal.get_by_role("button", name="Punt toevoegen").click()
    assert posted.value.status == 303
    assert page.locator("#saved").inner_text() == "De uitkomsten zijn bijgewerkt."
    assert "Voorwaarde: Gelijk schooladvies" in taal.locator(".outcome-items").inner_text()

    assert click(page, "Uitkomsten vaststellen").status == 303
    assert page.locator("#outcomes-status").get_attribute("data-status") == "final"
    item = taal.locator(".outcome-items > li").first
    item.get_by_text("Wijzigen: Gelijk schooladvies").click()
    item.get_by_label("Korte titel").fill("Eén schooladvies voor iedereen")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        with page.expect_navigation():
            item.get_by_role("button", name="Wijziging opslaan").click()
    assert posted.value.status == 303
    assert page.locator("#outcomes-status").get_attribute("data-status") == "final", "a correction keeps them final"
    item.get_by_text("Wijzigen: Eén schooladvies voor iedereen").click()
    check_page(page, failures)
    assert click(page, "Weer openzetten als concept").status == 303
    assert page.locator("#outcomes-status").get_attribute("data-status") == "draft"
    audit = page.locator("#outcome-audit > li")
    assert [audit.nth(i).get_attribute("data-action") for i in range(audit.count())] == [
        "reopened", "changed", "finalised", "added"]
    assert "Gelijk schooladvies → Eén schooladvies voor iedereen" in audit.nth(1).inner_text()
    check_page(page, failures)

    # The printable bundle of the meetup's province.
    page.locator("#bundle-link").click()
    page.wait_for_url("**/admin/console/bundle?province=*")
    assert page.locator("h1").count() == 1
    check_page(page, failures)
    assert not failures, "\n".join(failures)
