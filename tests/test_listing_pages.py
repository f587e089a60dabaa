"""The admin listing and CSV export in pages that fit Lambda's limits (6 MB per response)."""
from __future__ import annotations

import csv
import io
from collections import Counter

from tests.factories import make_meetup

LAMBDA_LIMIT = 6 * 1024 * 1024


def walk(client, headers, meetup_id, *, fmt=None, limit=None):
    pages, cursor = [], None
    while True:
        query = [f"{k}={v}" for k, v in (("format", fmt), ("limit", limit)) if v]
        if cursor:
            query.append(f"cursor={cursor}")
        response = client.http.get(f"/admin/meetups/{meetup_id}/registrations?{'&'.join(query)}", headers=headers)
        assert response.status_code == 200, response.body
        assert len(response.body) < LAMBDA_LIMIT / 4, f"a page of {len(response.body)} bytes"
        pages.append(response)
        cursor = response.headers.get("X-Next-Cursor") if fmt == "csv" else response.json_body["next_cursor"]
        if not cursor:
            return pages


def test_25000_registrations_in_pages_each_row_once_in_status_order(bulk_roster, client, admin_headers):
    meetup = make_meetup(capacity=20000)
    roster = bulk_roster(meetup, confirmed=20000, waiting=4000, cancelled=1000)
    pages = walk(client, admin_headers, meetup.id, limit=1000)
    rows = [row for page in pages for row in page.json_body["registrations"]]
    assert len(pages) >= 25 and all(len(p.json_body["registrations"]) <= 1000 for p in pages)
    seen = Counter(row["id"] for row in rows)
    assert len(seen) == 25000 and set(seen.values()) == {1}, "every row exactly once"
    statuses = [row["status"] for row in rows]
    assert statuses == ["confirmed"] * 20000 + ["waitlisted"] * 4000 + ["cancelled"] * 1000
    positions = {row["id"]: row["waitlist_position"] for row in rows if row["status"] == "waitlisted"}
    assert positions == {r.id: n for n, r in enumerate(roster["waitlisted"], start=1)}

    default = walk(client, admin_headers, meetup.id, fmt="csv")
    assert all(len(list(csv.reader(io.StringIO(p.body if isinstance(p.body, str) else p.body.decode())))) <= 501
               for p in default), "500 rows a page by default"
    exported = "".join(p.body if isinstance(p.body, str) else p.body.decode() for p in default)
    assert exported.startswith("\ufeff") and exported.count("\ufeff") == 1, "one BOM: the first page's"
    records = list(csv.DictReader(io.StringIO(exported.lstrip("\ufeff")), delimiter=";"))
    assert len(records) == 25000 and len({r["id"] for r in records}) == 25000, "the pages put together: one CSV"
    assert default[0].headers["Link"].endswith('rel="next"')


def test_a_bad_cursor_or_limit_is_a_400_naming_it(bulk_roster, client, admin_headers):
    meetup = make_meetup(capacity=3)
    other = make_meetup(capacity=3)
    bulk_roster(meetup, confirmed=3)
    bulk_roster(other, confirmed=3)
    first = client.http.get(f"/admin/meetups/{meetup.id}/registrations?limit=2", headers=admin_headers).json_body
    assert len(first["registrations"]) == 2 and first["next_cursor"]
    last = client.http.get(f"/admin/meetups/{meetup.id}/registrations?limit=2&cursor={first['next_cursor']}",
                           headers=admin_headers).json_body
    assert len(last["registrations"]) == 1 and last["next_cursor"] is None
    for query in ("cursor=nonsense", f"cursor={first['next_cursor'][:-3]}xyz", "limit=0", "limit=1001", "limit=abc"):
        response = client.http.get(f"/admin/meetups/{meetup.id}/registrations?{query}", headers=admin_headers)
        assert response.status_code == 400, query
        assert set(response.json_body["fields"]) == {query.split("=")[0]}
    foreign = client.http.get(f"/admin/meetups/{other.id}/registrations?cursor={first['next_cursor']}",
                              headers=admin_headers)
    assert foreign.status_code == 400 and "cursor" in foreign.json_body["fields"], "a cursor is for one meetup"
