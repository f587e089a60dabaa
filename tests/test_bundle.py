"""The bundle for the final meeting: exactly the final outcomes, by province and chain, the
national ranking by tag, the youth council's approved ideas, and the meetups still without."""
from __future__ import annotations

import csv
import io
import json
import os

import pytest

from chalicelib import catalogue, outcomes, youth
from chalicelib.models import Meetup
from tests.factories import make_meetup


def _item(meetup, title, tags, kind="condition"):
    return outcomes.add(meetup, None, {"kind": kind, "title": title, "explanation": "Toelichting – één",
                                       "actors": ["gemeente"], "tags": tags}, "host")


@pytest.fixture
def tour(empty_tables):
    """Three provinces; Utrecht's chain has a follow-up; Limburg's outcomes are only a draft."""
    utrecht = make_meetup(province="Utrecht", city="Utrecht", title="Klassen Meetup Utrecht", days_ahead=-20)
    follow = make_meetup(province="Utrecht", city="Amersfoort", title="Vervolg Amersfoort", days_ahead=-10)
    follow.update(actions=[Meetup.follows.set(utrecht.id), Meetup.chain_id.set(utrecht.id)])
    friesland = make_meetup(province="Friesland", city="Leeuwarden", title="Klassen Meetup Fryslân", days_ahead=-15)
    limburg = make_meetup(province="Limburg", city="Maastricht", title="Klassen Meetup Limburg", days_ahead=-5)
    _item(utrecht, "Kinderopvang voor elk kind", ["kinderopvang", "kansengelijkheid"])
    _item(follow, "Eerlijk schooladvies", ["schooladvies"])
    _item(follow, "Brede brugklas", ["schooladvies"], kind="solution")
    _item(friesland, "Genoeg leraren in de regio", ["lerarentekort", "kansengelijkheid"])
    _item(limburg, "Concept dat niet meetelt", ["kansengelijkheid"])
    for m in (utrecht, follow, friesland):
        outcomes.finalise(m, "host")
    code = youth.create_code({})["code"]
    approved = youth.submit({"code": code, "title": "Gratis bijles", "text": "Bijles voor iedereen.",
                             "age_band": "12-13", "province": "Utrecht"})
    youth.decide(approved["id"], "approve", "admin t")
    youth.submit({"code": code, "title": "Nog niet goedgekeurd", "text": "Wacht.", "age_band": "16"})
    return {"utrecht": utrecht, "follow": catalogue.load(follow.id), "friesland": friesland, "limburg": limburg}


def test_the_bundle_holds_exactly_the_final_outcomes_grouped_and_ranked(client, admin_headers, tour):
    body = client.http.get("/admin/bundle?format=json", headers=admin_headers).json_body
    assert [p["province"] for p in body["provinces"]] == ["Friesland", "Limburg", "Utrecht"]
    utrecht = next(p for p in body["provinces"] if p["province"] == "Utrecht")
    [chain] = utrecht["chains"]
    assert [m["city"] for m in chain["meetups"]] == ["Utrecht", "Amersfoort"]
    assert chain["meetups"][1]["handed_over_from"]["city"] == "Utrecht"
    titles = json.dumps(body)
    assert "Concept dat niet meetelt" not in titles and "Nog niet goedgekeurd" not in titles
    national = body["national"]["conditions_by_tag"]
    assert [(r["tag"], r["province_count"]) for r in national] == [
        ("kansengelijkheid", 2), ("kinderopvang", 1), ("lerarentekort", 1), ("schooladvies", 1)]
    assert all(c["title"] != "Brede brugklas" for r in national for c in r["conditions"])  # solutions are not ranked
    assert [i["title"] for i in body["youth_ideas"]] == ["Gratis bijles"]
    assert [m["city"] for m in body["without_final_outcomes"]] == ["Maastricht"]

    only = client.http.get("/admin/bundle?format=json&province=utrecht", headers=admin_headers).json_body
    assert [p["province"] for p in only["provinces"]] == ["Utrecht"]
    assert client.http.get("/admin/bundle?format=doc", headers=admin_headers).status_code == 422
    assert client.http.get("/admin/bundle?province=Atlantis", headers=admin_headers).status_code == 422
    assert client.http.get("/admin/bundle").status_code == 401


def test_the_csv_is_utf8_with_bom_and_semicolons(client, admin_headers, tour):
    answer = client.http.get("/admin/bundle?format=csv", headers=admin_headers)
    assert answer.headers["Content-Type"].startswith("text/csv")
    text = answer.body.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    assert rows[0][:3] == ["type", "province", "chain_id"]
    assert sorted(r[8] for r in rows[1:]) == sorted(["Kinderopvang voor elk kind", "Eerlijk schooladvies",
                                                     "Brede brugklas", "Genoeg leraren in de regio", "Gratis bijles"])
    assert "Toelichting – één" in text


def test_the_pdf_opens_and_names_every_province_and_final_condition(client, admin_headers, tour):
    from pypdf import PdfReader

    answer = client.http.get("/admin/bundle?format=pdf", headers={**admin_headers, "Accept": "application/pdf"})
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/pdf"
    assert answer.body.startswith(b"%PDF")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(answer.body)).pages)
    flat = " ".join(text.split())
    for name in ("Utrecht", "Friesland", "Limburg", "Kinderopvang voor elk kind", "Eerlijk schooladvies",
                 "Genoeg leraren in de regio", "Gratis bijles", "Klassen Meetup Fryslân", "Toelichting – één"):
        assert name in flat, name
    assert "Concept dat niet meetelt" not in flat


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's Chromium is not installed")
def test_the_html_bundle_renders_in_chromium_with_its_csp_and_prints(client, admin_headers, tour, tmp_path):
    from playwright.sync_api import sync_playwright

    answer = client.http.get("/admin/bundle?format=html", headers=admin_headers)
    assert answer.status_code == 200 and "Content-Security-Policy" in {k.title(): v for k, v in answer.headers.items()}
    headers = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "content-security-policy")}
    violations = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400})
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            page.route("http://bundle.test/**", lambda route: route.fulfill(status=200, headers=headers,
                                                                             body=answer.body))
            page.goto("http://bundle.test/admin/bundle")
            assert page.locator("h2", has_text="Utrecht").count() == 1
            # the page's own stylesheet applied (CSP allowed it): headings carry its border
            assert page.eval_on_selector(".bundle h2", "e => getComputedStyle(e).borderBottomStyle") == "solid"
            shot = tmp_path / "bundle.png"
            page.screenshot(path=str(shot), full_page=True)
            page.emulate_media(media="print")
            assert page.eval_on_selector("header", "e => getComputedStyle(e).display") == "none"
        finally:
            browser.close()
    assert not violations, violations
    assert shot.stat().st_size > 20_000
    from PIL import Image
    with Image.open(shot) as image:
        assert image.size[0] >= 1000 and image.size[1] > 1400
        assert len(set(image.convert("L").resize((50, 100)).getdata())) > 10  # not a blank page


def test_the_demo_tour_has_final_outcomes_and_approved_ideas_once(client, admin_headers):
    from devtools import demo_tour

    year = 2031
    demo_tour.load(year)
    demo_tour.load(year)  # idempotent
    for province in demo_tour.DEMO_OUTCOMES:
        state, items, _ = outcomes.load(f"{province.lower()}-{year}")
        assert outcomes.is_final(state) and len(items) == len(demo_tour.DEMO_OUTCOMES[province])
    body = client.http.get("/admin/bundle?format=json&province=Groningen", headers=admin_headers).json_body
    titles = json.dumps(body, ensure_ascii=False)
    assert "Genoeg leraren in krimpgebieden" in titles and "Bus naar school betalen" in titles
