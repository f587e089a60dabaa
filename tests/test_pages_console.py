"""The admin console in Chromium against the service as `make run` serves it: an organiser signs in
with the admin token, creates a meetup, finds it listed, reads its registrations, hands it over,
sees the follow-up in the chain, runs the digests and signs out; every console page fits 320 px and
passes axe-core; the session cookie is HttpOnly and SameSite=Strict.

It adds meetups to the session's one live service, so like test_pages_browser.py it runs after
test_e2e_http.py's checks of the bare demo tour (pytest runs the files in name order)."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, browser, fresh_email  # noqa: F401
from tests.test_pages_browser import AXE, page, sign_up_by_api  # noqa: F401

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
