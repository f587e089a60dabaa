"""Theme tables in a real browser (issue 11): pick a table on the sign-up form and change it on the
manage page. In a file of its own that runs after test_e2e_http.py, which expects the bare demo tour
of the shared live service."""
from __future__ import annotations

import pytest
import requests

from tests.test_browser import (CHROMIUM, CHROMIUM_ARGS, assert_registered, browser, fill_form,  # noqa: F401
                                fresh_email, page, submit, tour_year)

pytest_plugins = ["tests.e2e_support"]
pytestmark = [pytest.mark.browser]


def test_pick_a_theme_table_on_the_form_and_change_it_on_the_manage_page(page, live_service):
    """Issue 11: the form offers the tables (a full one disabled), and the manage page changes table."""
    import json as json_module
    created = requests.post(f"{live_service.base_url}/admin/meetups", headers=live_service.admin_headers, timeout=30,
                            data=json_module.dumps({
                                "title": "Meetup met thematafels", "kind": "extra", "province": "Utrecht",
                                "host": {"name": "Gemeente Utrecht"}, "mode": "online", "capacity": 20,
                                "starts_at": f"{tour_year()}-04-12T19:30:00+02:00",
                                "ends_at": f"{tour_year()}-04-12T21:30:00+02:00"})).json()
    tables = requests.put(f"{live_service.base_url}/admin/meetups/{created['id']}/tables",
                          headers=live_service.admin_headers, timeout=30,
                          data=json_module.dumps({"tables": [
                              {"name": "Schooladvies", "capacity": 5, "moderator": {"name": "Mo Derator"}},
                              {"name": "Kinderopvang", "capacity": 5}]})).json()["tables"]
    advice, childcare = tables[0]["id"], tables[1]["id"]

    page.goto(f"{live_service.base_url}/meetups/{created['id']}/register")
    fill_form(page, "Tafel Kiezer", fresh_email("table"))
    assert page.get_by_label("Aan welke thematafel wil je praten?").count() == 1
    page.locator("#table_id").select_option(advice)
    assert submit(page, "Aanmelden").status == 303
    assert_registered(page, "nl")
    assert page.locator("#current-table").get_attribute("data-table") == advice
    assert "Schooladvies" in page.locator("#current-table").inner_text()

    page.locator("#table-choice select").select_option(childcare)
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/table")) as posted:
        page.get_by_role("button", name="Tafel wijzigen").click()
    assert posted.value.status == 303
    page.wait_for_load_state()
    assert page.locator("#current-table").get_attribute("data-table") == childcare
    listing = requests.get(f"{live_service.base_url}/admin/meetups/{created['id']}/tables",
                           headers=live_service.admin_headers, timeout=30).json()
    assert [len(t["people"]) for t in listing["tables"]] == [0, 1]
