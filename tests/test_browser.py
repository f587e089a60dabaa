"""The sign-up pages in a real browser: Debian's Chromium driven by Playwright, against the service
as `make run` starts it (tests/e2e_support.py). No browser is ever downloaded."""
from __future__ import annotations

import os
import re
import secrets
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import requests

pytest_plugins = ["tests.e2e_support"]  # the session's one `live_service`, shared with test_e2e_http.py

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"Debian's Chromium is not installed at {CHROMIUM} (`make test` installs it)"),
]


def tour_year() -> int:
    today = datetime.now(ZoneInfo("Europe/Amsterdam")).date()
    return today.year if today < date(today.year, 2, 1) else today.year + 1


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="nl-NL")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page_without_javascript(browser):
    context = browser.new_context(locale="nl-NL", java_script_enabled=False)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def fresh_email(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(5)}@e2e.example.nl"


def submit(page, button_name: str):
    """Clicks the submit button; returns the answer to the form's POST (before any redirect)."""
    with page.expect_response(lambda r: r.request.method == "POST" and "/registrations" in r.url) as posted:
        with page.expect_navigation():
            page.get_by_role("button", name=button_name).click()
    return posted.value


REQUIRED = ("name", "email", "role", "consent")


def assert_form_errors(page, response):
    """A 422 page that still shows the form, with each bad field marked and its message beside it."""
    assert response.status == 422, f"an empty form should be answered 422, got {response.status}"
    assert page.locator("form[method=post]").count() == 1
    assert page.get_by_role("alert").count() == 1
    for name in REQUIRED:
        field = page.locator(f"#{name}")
        assert field.get_attribute("aria-invalid") == "true", name
        assert field.get_attribute("aria-describedby") == f"{name}-error", name
        message = page.locator(f"#{name}-error")
        assert message.is_visible(), name
        assert message.inner_text().strip(), name
        # Beside the field: the message comes right after it in the form (for the checkbox, after its label).
        follows = page.locator(f"#{name} + #{name}-error, label:has(#{name}) + #{name}-error")
        assert follows.count() == 1, f"the error for {name} is not next to its field"
    for name in ("organisation", "municipality", "theme"):
        assert page.locator(f"#{name}").get_attribute("aria-invalid") is None, name


def fill_form(page, name: str, email: str):
    page.locator("#name").fill(name)
    page.locator("#email").fill(email)
    page.locator("#role").select_option("teacher")
    page.locator("#municipality").fill("Utrecht")
    page.locator("#consent").check()


def assert_registered(page, lang: str = "nl"):
    """The result page after the 303: a confirmed place, or the waitlist with a position."""
    assert re.search(r"/registrations/[^/?]+", page.url), page.url
    assert page.locator("html").get_attribute("lang") == lang
    status = page.locator("#registration-status")
    confirmed, waitlisted = (("Je plek is bevestigd", "Je staat op de wachtlijst") if lang == "nl"
                             else ("Your place is confirmed", "You are on the waiting list"))
    if status.get_attribute("data-status") == "waitlisted":
        assert waitlisted in status.inner_text()
        assert int(page.locator("#waitlist-position").inner_text()) >= 1
    else:
        assert status.get_attribute("data-status") == "confirmed"
        assert confirmed in status.inner_text()


def test_sign_up_through_the_pages(page, live_service, tmp_path):
    year = tour_year()
    meetup_id = f"utrecht-{year}"
    address = fresh_email("browser")

    page.goto(f"{live_service.base_url}/meetups")
    assert page.locator("html").get_attribute("lang") == "nl"
    assert page.get_by_role("link", name=re.compile("^Klassen Meetup")).count() >= 12
    page.get_by_role("link", name="Klassen Meetup Utrecht", exact=True).click()
    page.wait_for_url(f"**/meetups/{meetup_id}")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Klassen Meetup Utrecht")

    page.get_by_role("link", name="Aanmelden", exact=True).click()
    page.wait_for_url(f"**/meetups/{meetup_id}/register")
    assert page.locator("html").get_attribute("lang") == "nl"

    # Accessible: every field a person fills in has a label bound to it and an accessible name.
    fields = page.locator("form input:not([type=hidden]):not(#website), form select, form textarea")
    assert fields.count() >= 8
    for i in range(fields.count()):
        field = fields.nth(i)
        described = field.evaluate(
            "el => ({name: el.name, id: el.id, labels: Array.from(el.labels || []).map(l => l.textContent.trim())})")
        assert described["labels"] and all(described["labels"]), f"field {described['name']} has no label"
        if described["id"]:
            assert page.locator(f"label[for='{described['id']}']").count() + \
                page.locator(f"label:has(#{described['id']})").count() >= 1, described
    for name in ("name", "email", "role", "organisation", "municipality", "theme"):
        assert page.locator(f"label[for='{name}']").count() == 1, f"no <label for={name}>"
    assert page.get_by_label("Naam", exact=False).count() >= 1
    # The honeypot is there for bots only: off screen, out of the tab order and the accessibility tree.
    honeypot = page.locator("#website")
    assert honeypot.count() == 1
    box = honeypot.bounding_box()
    viewport = page.viewport_size
    assert box is None or box["x"] + box["width"] <= 0 or box["y"] + box["height"] <= 0 \
        or box["x"] >= viewport["width"], f"the honeypot is on screen at {box}"
    assert honeypot.get_attribute("tabindex") == "-1"
    assert page.get_by_role("textbox", name="Website").count() == 0

    # Empty first: 422, the form again, errors beside the fields.
    assert_form_errors(page, submit(page, "Aanmelden"))
    assert page.locator("html").get_attribute("lang") == "nl"

    fill_form(page, "Browser Deelnemer", address)
    posted = submit(page, "Aanmelden")
    assert posted.status == 303, posted.status
    assert_registered(page, "nl")
    assert "Browser Deelnemer" in page.locator("main").inner_text()

    shot = tmp_path / "aangemeld.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert len(data) > 1000 and data.startswith(b"\x89PNG\r\n\x1a\n")

    # Stored as sent by the browser.
    listing = requests.get(f"{live_service.base_url}/admin/meetups/{meetup_id}/registrations",
                           headers=live_service.admin_headers, timeout=30).json()["registrations"]
    mine = [r for r in listing if r["email"] == address]
    assert len(mine) == 1
    assert mine[0]["name"] == "Browser Deelnemer" and mine[0]["role"] == "teacher"
    assert mine[0]["municipality"] == "Utrecht" and mine[0]["language"] == "nl"

    # Cancel from the manage page: the confirmation step, then a form post, 303, back to the same page, now cancelled.
    manage_url = page.url
    page.get_by_role("link", name="Aanmelding annuleren").click()
    page.wait_for_url("**/cancel*")
    cancelled = submit(page, "Ja, annuleer")
    assert cancelled.status == 303, cancelled.status
    assert page.url.split("?")[0] == manage_url.split("?")[0]
    assert page.locator("#registration-status").get_attribute("data-status") == "cancelled"
    assert "Je aanmelding is geannuleerd" in page.locator("#registration-status").inner_text()
    assert page.get_by_role("button", name="Aanmelding annuleren").count() == 0


def test_the_english_pages(page, live_service):
    year = tour_year()
    meetup_id = f"limburg-{year}"
    page.goto(f"{live_service.base_url}/meetups?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("link", name="Klassen Meetup Limburg", exact=True).click()
    page.wait_for_url(f"**/meetups/{meetup_id}?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("link", name="Sign up", exact=True).click()
    page.wait_for_url(f"**/meetups/{meetup_id}/register?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"

    response = submit(page, "Sign up")
    assert_form_errors(page, response)
    assert page.locator("html").get_attribute("lang") == "en"

    address = fresh_email("english")
    fill_form(page, "English Participant", address)
    assert submit(page, "Sign up").status == 303
    assert_registered(page, "en")

    mails = live_service.wait_for_mail(address, timeout=10)
    assert len(mails) == 1 and str(mails[0]["Content-Language"]) == "en"


def test_sign_up_works_without_javascript(page_without_javascript, live_service):
    page = page_without_javascript
    meetup_id = f"gelderland-{tour_year()}"
    page.goto(f"{live_service.base_url}/meetups")
    page.get_by_role("link", name="Klassen Meetup Gelderland", exact=True).click()
    page.wait_for_url(f"**/meetups/{meetup_id}")
    page.get_by_role("link", name="Aanmelden", exact=True).click()
    page.wait_for_url(f"**/meetups/{meetup_id}/register")

    assert_form_errors(page, submit(page, "Aanmelden"))
    address = fresh_email("nojs")
    fill_form(page, "Zonder Script", address)
    assert submit(page, "Aanmelden").status == 303
    assert_registered(page, "nl")

    # The same address again: no second place, a page that says so.
    page.goto(f"{live_service.base_url}/meetups/{meetup_id}/register")
    fill_form(page, "Zonder Script", address)
    assert submit(page, "Aanmelden").status == 303
    assert "already=1" in page.url
    assert "al aangemeld" in page.get_by_role("status").inner_text()
    listing = requests.get(f"{live_service.base_url}/admin/meetups/{meetup_id}/registrations",
                           headers=live_service.admin_headers, timeout=30).json()["registrations"]
    assert [r["status"] for r in listing if r["email"] == address] == ["confirmed"]


def test_erase_my_data_from_the_manage_page(page, live_service):
    """The manage page's "erase my data": a confirmation page first (nothing changes), then a form
    post that cancels the place and erases; the link ends with the data."""
    meetup_id = f"drenthe-{tour_year()}"
    address = fresh_email("erase")
    page.goto(f"{live_service.base_url}/meetups/{meetup_id}/register")
    fill_form(page, "Wis Mij Maar", address)
    assert submit(page, "Aanmelden").status == 303
    assert_registered(page, "nl")
    manage_url = page.url.split("?")[0]

    # Accessible: the data section has its heading; the consent and its version are shown.
    assert page.get_by_role("heading", level=2, name="Je gegevens").count() == 1
    assert "versie" in page.locator("#consent").inner_text()
    assert page.get_by_role("link", name="Download mijn gegevens (JSON)").count() == 1

    page.get_by_role("link", name="Mijn gegevens wissen").click()
    page.wait_for_url("**/erase")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Mijn gegevens wissen")
    assert requests.get(manage_url, timeout=30).status_code == 200, "the confirmation step changes nothing"

    erased = submit(page, "Ja, wis mijn gegevens")
    assert erased.status == 303, erased.status
    assert "/registrations/erased" in page.url
    assert page.locator("html").get_attribute("lang") == "nl"
    assert "gewist" in page.get_by_role("status").inner_text()
    assert page.get_by_role("heading", level=1).inner_text() == "Je gegevens zijn gewist"

    assert requests.get(manage_url, timeout=30).status_code == 404
    listing = requests.get(f"{live_service.base_url}/admin/meetups/{meetup_id}/registrations",
                           headers=live_service.admin_headers, timeout=30).json()["registrations"]
    assert [r for r in listing if r["email"] == address] == []
    assert any(r["erased"] and r["status"] == "cancelled" and r["municipality"] == "Utrecht" for r in listing)

