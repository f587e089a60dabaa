"""The public pages in Chromium: states that agree with each other, the cancel confirmation, the
Dutch form's errors, phones (320 px, no sideways scroll) and axe-core (no violations), against
the service as `make run` serves it (tests/e2e_support.py)."""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, browser, fill_form, fresh_email, submit, tour_year  # noqa: F401

pytest_plugins = ["tests.e2e_support"]
pytestmark = [pytest.mark.browser]

AXE = Path(__file__).resolve().parent.parent / "devtools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def page(browser):  # noqa: F811
    # Playwright injects axe-core past the pages' CSP (which allows no script at all).
    context = browser.new_context(locale="nl-NL", bypass_csp=True)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def new_meetup(live, **overrides) -> dict:
    starts = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=40)
    body = {"title": f"Klassen Meetup Test {secrets.token_hex(3)}", "kind": "extra", "province": "Utrecht",
            "city": "Amersfoort", "host": {"name": "Gemeente Amersfoort", "email": "host@amersfoort.example.nl"},
            "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=2)).isoformat(),
            "mode": "in_person", "capacity": 20, "waitlist": {"enabled": True}}
    body.update(overrides)
    answer = requests.post(live.url("/admin/meetups"), json=body, headers=live.admin_headers, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()


def sign_up_by_api(live, meetup_id: str, email: str | None = None) -> str:
    answer = requests.post(live.url(f"/meetups/{meetup_id}/registrations"), timeout=30, json={
        "name": "Pagina Tester", "email": email or fresh_email("pages"), "role": "teacher", "consent": True})
    assert answer.status_code == 201, answer.text
    return answer.json()["manage_url"]


def status_of(manage_url: str) -> str:
    return requests.get(manage_url, timeout=30).json()["registration"]["status"]


def test_cancelling_asks_first_and_a_get_never_cancels(page, live_service):
    meetup = new_meetup(live_service)
    page.goto(live_service.url(f"/meetups/{meetup['id']}/register"))
    fill_form(page, "Bijna Geannuleerd", fresh_email("confirm"))
    assert submit(page, "Aanmelden").status == 303
    manage_url = page.url.split("?")[0]
    assert "Je plek is bevestigd" in page.locator("#registration-status").inner_text()
    assert page.locator("form[action$='/cancel']").count() == 0, "the manage page has no one-click cancel"

    page.get_by_role("link", name="Aanmelding annuleren").click()
    page.wait_for_url("**/cancel")
    assert "Je plek gaat dan naar iemand anders" in page.locator("#cancel-question").inner_text()
    assert status_of(manage_url) == "confirmed", "the confirmation page changes nothing"

    page.get_by_role("link", name="Nee, ik kom").click()
    page.wait_for_url(re.compile(re.escape(manage_url) + r"(\?.*)?$"))
    assert page.locator("#registration-status").get_attribute("data-status") == "confirmed"
    assert status_of(manage_url) == "confirmed"

    page.get_by_role("link", name="Aanmelding annuleren").click()
    page.wait_for_url("**/cancel")
    answer = submit(page, "Ja, annuleer")
    assert answer.status == 303 and answer.request.method == "POST"
    assert page.locator("#registration-status").get_attribute("data-status") == "cancelled"
    assert "Je aanmelding is geannuleerd" in page.locator("#registration-status").inner_text()
    assert page.get_by_role("link", name="Aanmelding annuleren").count() == 0
    assert status_of(manage_url) == "cancelled"


def test_a_waitlisted_person_is_never_told_their_place_goes_to_the_next(page, live_service):
    meetup = new_meetup(live_service, capacity=1)
    sign_up_by_api(live_service, meetup["id"])
    page.goto(live_service.url(f"/meetups/{meetup['id']}"))
    assert page.locator("#meetup-phase").get_attribute("data-phase") == "waitlist"
    page.get_by_role("link", name="Op de wachtlijst", exact=True).click()
    page.wait_for_url("**/register")
    assert "Deze meetup is vol" in page.locator("#meetup-phase").inner_text()
    fill_form(page, "Wachtende", fresh_email("waiting"))
    assert submit(page, "Op de wachtlijst").status == 303
    assert page.locator("#registration-status").get_attribute("data-status") == "waitlisted"
    text = page.locator("main").inner_text()
    assert "Je staat op de wachtlijst" in text and "volgende" not in text and "iemand anders" not in text
    page.get_by_role("link", name="Aanmelding annuleren").click()
    page.wait_for_url("**/cancel")
    question = page.locator("#cancel-question").inner_text()
    assert "van de wachtlijst af" in question and "plek gaat" not in question


def test_a_cancelled_meetup_reads_gaat_niet_door_everywhere(page, live_service):
    meetup = new_meetup(live_service)
    manage_url = sign_up_by_api(live_service, meetup["id"])
    changed = requests.patch(live_service.url(f"/admin/meetups/{meetup['id']}"), json={"status": "cancelled"},
                             headers=live_service.admin_headers, timeout=30)
    assert changed.status_code == 200, changed.text

    page.goto(manage_url)
    status = page.locator("#registration-status")
    assert status.get_attribute("data-state") == "meetup_cancelled"
    assert "Deze meetup gaat niet door" in status.inner_text()
    assert "bevestigd" not in page.locator("main").inner_text()
    assert page.get_by_role("link", name="Aanmelding annuleren").count() == 0
    assert page.get_by_role("button", name=re.compile("annuleer", re.I)).count() == 0
    page.goto(manage_url + "/cancel")
    assert page.get_by_role("button", name="Ja, annuleer").count() == 0

    page.goto(live_service.url(f"/meetups/{meetup['id']}"))
    assert page.locator("#meetup-phase").inner_text().startswith("Gaat niet door")
    assert page.get_by_role("link", name="Aanmelden", exact=True).count() == 0
    page.goto(live_service.url(f"/meetups/{meetup['id']}/register"))
    assert page.locator("form[method=post]").count() == 0
    page.goto(live_service.url("/?province=Utrecht"))
    card = page.locator("li", has=page.get_by_role("link", name=meetup["title"], exact=True))
    assert "Gaat niet door" in card.inner_text() and "gesloten" not in card.inner_text().lower()
    page.goto(live_service.url("/?province=Utrecht&lang=en"))
    card = page.locator("li", has=page.get_by_role("link", name=meetup["title"], exact=True))
    assert "Cancelled" in card.inner_text()


def test_the_dutch_form_errors_name_each_field(page, live_service):
    meetup = new_meetup(live_service)
    page.goto(live_service.url(f"/meetups/{meetup['id']}/register"))
    page.locator("#email").fill("geen-adres")
    answer = submit(page, "Aanmelden")
    assert answer.status == 422
    assert page.title().startswith("Fout:")
    named = {"name": "naam", "email": "e-mailadres", "role": "rol", "consent": "privacyverklaring"}
    summary = page.get_by_role("alert")
    for field, word in named.items():
        message = page.locator(f"#{field}-error").inner_text()
        assert word in message.lower(), (field, message)
        assert not re.search(r"\b(is required|must|valid)\b", message), message
        link = summary.locator(f"a[href='#{field}']")
        assert link.count() == 1 and link.inner_text() == message
        assert page.locator(f"#{field}").get_attribute("aria-invalid") == "true"
    summary.locator("a[href='#email']").click()
    assert page.evaluate("document.activeElement.id") == "email"


def test_the_front_page_introduces_filters_and_says_demo_once(page, live_service):
    page.goto(live_service.url("/"))
    intro = page.locator(".intro").inner_text()
    assert "Klassen" in intro and "twaalf provincies" in intro and "25 mei" in intro and "Den Haag" in intro
    assert page.locator("#demo-banner").count() == 1 and page.locator(".demo").count() == 0
    assert page.locator("main").inner_text().lower().count("demo") == 1
    footer = page.locator("footer")
    assert footer.get_by_role("link", name="Privacyverklaring").count() == 1
    assert footer.locator("a[href^='mailto:']").count() == 1
    page.locator("#province").select_option("Limburg")
    with page.expect_navigation():
        page.get_by_role("button", name="Toon").click()
    assert "province=Limburg" in page.url
    titles = page.locator(".tour h3").all_inner_texts()
    assert titles and all("Limburg" in t or "Maastricht" in t or "Venlo" in t or "Heerlen" in t for t in titles), titles
    page.locator("#province").select_option("")
    with page.expect_navigation():
        page.get_by_role("button", name="Toon").click()
    assert page.locator(".tour h3").count() > len(titles)


def _public_pages(live) -> list[str]:
    meetup = new_meetup(live, capacity=1)
    manage_url = sign_up_by_api(live, meetup["id"])
    waitlisted = sign_up_by_api(live, meetup["id"])
    year = tour_year()
    listing = requests.get(live.url("/meetups"), timeout=30).json()["meetups"]
    announced = [m["id"] for m in listing if m["kind"] == "follow_up"]
    return [
        "/", "/?lang=en", "/?province=Limburg", f"/meetups/utrecht-{year}", f"/meetups/utrecht-{year}?lang=en",
        f"/meetups/{meetup['id']}", f"/meetups/{meetup['id']}/register", f"/meetups/utrecht-{year}/register",
        f"/meetups/utrecht-{year}/register?lang=en", *(f"/meetups/{i}" for i in announced[:1]),
        f"/meetups/utrecht-{year}/registered?already=1", manage_url, waitlisted, manage_url + "/cancel",
        waitlisted + "/cancel?lang=en", manage_url + "/erase", "/privacy", "/privacy?lang=en",
        "/registrations/resend", "/registrations/resend?sent=1", "/no-such-page",
    ]


def test_every_public_page_fits_a_phone_and_passes_axe(page, live_service):
    assert AXE.exists(), f"{AXE} is missing: `make test` installs axe-core (devtools/axe)"
    page.set_viewport_size({"width": 320, "height": 800})
    failures = []
    page.goto(live_service.url("/"))
    page.add_script_tag(path=str(AXE))
    assert page.evaluate("async () => (await axe.run(document)).passes.length") > 10, "axe did not run"
    for path in _public_pages(live_service):
        page.goto(live_service.url(path))
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 320:
            failures.append(f"{path}: {width} px wide at 320 px")
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("async () => (await axe.run(document)).violations.map("
                               "v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))")
        failures += [f"{path}: {violation}" for violation in result]
    # The form with its errors shown, too.
    page.goto(live_service.url(f"/meetups/utrecht-{tour_year()}/register"))
    submit(page, "Aanmelden")
    page.add_script_tag(path=str(AXE))
    failures += [f"form errors: {v}" for v in page.evaluate("async () => (await axe.run(document)).violations.map(v => v.id)")]
    if page.evaluate("document.documentElement.scrollWidth") > 320:
        failures.append("form errors: wider than 320 px")
    assert not failures, "\n".join(failures)
