"""Theme tables (issue 11, admin side): tables with their seat counters set in one transaction,
each table's list, Zoom's pre-assignment CSV, the spread rule, and the moderators' lists the day
before. Against DynamoDB Local."""
from __future__ import annotations

import csv
import io
import json
import secrets
import threading
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import clock, reminders, theme_tables
from chalicelib.models import TableSeats
from chalicelib.storage import Transaction, TransactionCancelled
from tests.factories import make_meetup
from tests.mailbox import messages_to, text_of

JSON = {"Content-Type": "application/json"}


def moderator(name: str) -> dict:
    return {"name": name, "email": f"{name.lower().replace(' ', '-')}-{secrets.token_hex(3)}@example.nl"}


def tables_body(*capacities, **extra) -> dict:
    names = ["Schooladvies", "Kinderopvang", "Segregatie", "Taal"]
    return {"tables": [{"name": names[i], "description": f"Over {names[i].lower()}", "capacity": c,
                        "moderator": moderator(f"Moderator {i}")} for i, c in enumerate(capacities)], **extra}


def put_tables(client, headers, meetup_id, body):
    return client.http.put(f"/admin/meetups/{meetup_id}/tables", headers=headers, body=json.dumps(body))


def sign_up(client, meetup_id, name="Deelnemer") -> str:
    address = f"tafel-{secrets.token_hex(4)}@example.nl"
    body = {"name": name, "email": address, "role": "teacher", "organisation": "OBS De Tafel", "consent": True}
    assert client.http.post(f"/meetups/{meetup_id}/registrations", headers=JSON, body=json.dumps(body)).status_code == 201
    return address


def test_an_admin_sets_tables_with_their_counters_and_cannot_shrink_below_the_people(client, admin_headers):
    meetup = make_meetup(capacity=20)
    answer = put_tables(client, admin_headers, meetup.id, tables_body(3, 2, change_until="2030-01-01T12:00:00+01:00"))
    assert answer.status_code == 200, answer.body
    tables = answer.json_body["tables"]
    assert [t["name"] for t in tables] == ["Schooladvies", "Kinderopvang"] and tables[0]["capacity"] == 3
    assert answer.json_body["table_change_until"] == "2030-01-01T12:00:00+01:00"
    counters = {s.table_id: s for s in TableSeats.query(meetup.id, TableSeats.sk.startswith("T#"), consistent_read=True)}
    assert {t["id"]: int(counters[t["id"]].capacity) for t in tables} == {tables[0]["id"]: 3, tables[1]["id"]: 2}

    for _ in range(3):
        sign_up(client, meetup.id)
    assert theme_tables.spread(meetup.id) == 3
    first = tables[0] | {"capacity": 1}
    shrunk = put_tables(client, admin_headers, meetup.id, {"tables": [first, tables[1]]})
    assert shrunk.status_code == 409 and shrunk.json_body["error"] == "table_occupied"
    removed = put_tables(client, admin_headers, meetup.id, {"tables": [tables[1]]})
    assert removed.status_code == 409
    from chalicelib import catalogue
    assert [int(t.capacity) for t in catalogue.load(meetup.id, consistent=True).tables] == [3, 2], "nothing changed"


@pytest.mark.parametrize("body, field", [
    ({"tables": "veel"}, "tables"),
    ({"tables": [{"name": "", "capacity": 3}]}, "tables[0].name"),
    ({"tables": [{"name": "A", "capacity": 0}]}, "tables[0].capacity"),
    ({"tables": [{"name": "A", "capacity": "3"}]}, "tables[0].capacity"),
    ({"tables": [{"name": "A"}]}, "tables[0].capacity"),
    ({"tables": [{"name": "A", "capacity": 2}, {"name": "a", "capacity": 2}]}, "tables[1].name"),
    ({"tables": [{"name": "A", "capacity": 2, "moderator": {"email": "nope"}}]}, "tables[0].moderator.email"),
    ({"tables": [{"name": "A", "capacity": 2, "id": "unknown"}]}, "tables[0].id"),
    ({"tables": [], "colour": "red"}, "colour"),
])
def test_bad_tables_are_422_naming_the_field_and_change_nothing(client, admin_headers, body, field):
    meetup = make_meetup()
    answer = put_tables(client, admin_headers, meetup.id, body)
    assert answer.status_code == 422 and field in answer.json_body["fields"], answer.json_body
    assert list(TableSeats.query(meetup.id, TableSeats.sk.startswith("T#"))) == []


def test_the_spread_rule_fills_the_emptiest_table_first():
    assert theme_tables.choose_for({"a": 2, "b": 5, "c": 5}, ["a", "b", "c"]) == "b"
    assert theme_tables.choose_for({"a": 0, "b": 0}, ["a", "b"]) is None
    assert theme_tables.choose_for({"a": 1, "b": 1}, ["b", "a"]) == "b"


def test_lists_zoom_csv_and_the_spread_never_overfill(client, admin_headers):
    meetup = make_meetup(capacity=10)
    tables = put_tables(client, admin_headers, meetup.id, tables_body(2, 3)).json_body["tables"]
    people = [sign_up(client, meetup.id, name=f"Persoon {i}") for i in range(7)]
    assert theme_tables.spread(meetup.id) == 5, "two tables of 2 and 3 seat five"
    listed = client.http.get(f"/admin/meetups/{meetup.id}/tables", headers=admin_headers).json_body
    assert [len(t["people"]) for t in listed["tables"]] == [2, 3] and len(listed["no_table"]) == 2
    assert all("email" not in p for t in listed["tables"] for p in t["people"])
    assert listed["tables"][0]["people"][0]["role"] == "Docent / leerkracht"

    zoom = client.http.get(f"/admin/meetups/{meetup.id}/tables/zoom.csv", headers=admin_headers)
    assert zoom.status_code == 200 and zoom.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(zoom.body.decode())))
    assert rows[0] == ["Pre-assign Room Name", "Email Address"]
    assert len(rows) == 6 and {r[0] for r in rows[1:]} == {t["name"] for t in tables}
    assert {r[1] for r in rows[1:]} <= set(people)

    exported = client.http.get(f"/admin/meetups/{meetup.id}/tables?format=csv", headers=admin_headers).body.decode("utf-8")
    assert exported.startswith("\ufeff") and exported.splitlines()[0] == "\ufefftafel;naam;rol;organisatie;gemeente"


def test_sixty_placements_at_once_never_seat_more_than_ten():
    meetup = make_meetup(capacity=100)
    from chalicelib import catalogue
    put = theme_tables.set_tables(meetup.id, {"tables": [{"name": "Klein", "capacity": 10}]})
    table_id = put.tables[0].id
    wins, barrier = [], threading.Barrier(60)

    def take():
        barrier.wait()
        for _ in range(20):
            tx = Transaction()
            theme_tables.seat(tx, meetup.id, table_id)
            try:
                tx.commit()
                wins.append(1)
                return
            except TransactionCancelled as cancelled:
                if cancelled.failed("table"):
                    return
    threads = [threading.Thread(target=take) for _ in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seats = TableSeats.get(meetup.id, "T#" + table_id, consistent_read=True)
    assert len(wins) == 10 and int(seats.seated) == 10
    assert catalogue.load(meetup.id).tables[0].capacity == 10


def test_moderators_get_their_list_the_day_before_and_again_when_it_changes(client, admin_headers, monkeypatch):
    starts = datetime(2034, 2, 7, 18, 30, tzinfo=timezone.utc)
    now = {"at": starts - timedelta(days=4)}
    monkeypatch.setattr(clock, "now", lambda: now["at"])
    meetup = make_meetup(capacity=10, starts_at=clock.to_public(starts),
                         ends_at=clock.to_public(starts + timedelta(hours=2)))
    body = tables_body(4, 4)
    put_tables(client, admin_headers, meetup.id, body)
    for i in range(3):
        sign_up(client, meetup.id, name=f"Gast {i}")
    moderators = [t["moderator"]["email"] for t in body["tables"]]

    now["at"] = starts - timedelta(hours=25)
    reminders.run()
    assert all(messages_to(m) == [] for m in moderators), "not before the day before"
    now["at"] = starts - timedelta(hours=24)
    reminders.run()
    reminders.run()
    first = [messages_to(m) for m in moderators]
    assert [len(f) for f in first] == [1, 1]
    listed = text_of(first[0][0]) + text_of(first[1][0])
    assert all(f"Gast {i}" in listed for i in range(3)) and "@example.nl" not in listed

    sign_up(client, meetup.id, name="Laatkomer")
    now["at"] = starts - timedelta(hours=2)
    reminders.run()
    again = [len(messages_to(m)) for m in moderators]
    assert sorted(again) == [1, 2], "only the changed table's list is sent again"


def manage_path(client, meetup_id, name="Wisselaar"):
    address = f"wissel-{secrets.token_hex(4)}@example.nl"
    body = {"name": name, "email": address, "role": "teacher", "consent": True}
    answer = client.http.post(f"/meetups/{meetup_id}/registrations", headers=JSON, body=json.dumps(body))
    return answer.json_body["manage_url"].replace("http://testserver", "")


def test_a_person_changes_table_until_the_deadline_and_never_to_a_full_one(client, admin_headers, monkeypatch):
    meetup = make_meetup(capacity=3)
    tables = put_tables(client, admin_headers, meetup.id, tables_body(1, 2)).json_body["tables"]
    small, big = tables[0]["id"], tables[1]["id"]
    first, second = manage_path(client, meetup.id), manage_path(client, meetup.id)

    moved = client.http.post(f"{first}/table", headers=JSON, body=json.dumps({"table_id": small}))
    assert moved.status_code == 200 and moved.json_body == {"table_id": small}
    full = client.http.post(f"{second}/table", headers=JSON, body=json.dumps({"table_id": small}))
    assert full.status_code == 409 and full.json_body["error"] == "table_full"
    page = client.http.get(second, headers={"Accept": "text/html"}).body.decode()
    assert f'value="{small}" disabled' in page and "(vol)" in page

    # Moving on frees the seat for someone else.
    assert client.http.post(f"{first}/table", headers=JSON, body=json.dumps({"table_id": big})).status_code == 200
    assert client.http.post(f"{second}/table", headers=JSON, body=json.dumps({"table_id": small})).status_code == 200
    counters = {s.table_id: int(s.seated) for s in TableSeats.query(meetup.id, TableSeats.sk.startswith("T#"),
                                                                      consistent_read=True)}
    assert counters == {small: 1, big: 1}
    assert client.http.post(f"{first}/table", headers=JSON, body=json.dumps({"table_id": "none"})).json_body == {"table_id": None}
    assert int(TableSeats.get(meetup.id, "T#" + big, consistent_read=True).seated) == 0

    bad = client.http.post(f"{first}/table", headers=JSON, body=json.dumps({"table_id": "nope"}))
    assert bad.status_code == 422 and "table_id" in bad.json_body["fields"]
    form = client.http.post(f"{first}/table", headers={"Content-Type": "application/x-www-form-urlencoded",
                                                         "Accept": "text/html"}, body=f"table_id={big}")
    assert form.status_code == 303 and form.headers["Location"].endswith("#table")

    later = clock.from_storage(meetup.starts_at) + timedelta(minutes=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    closed = client.http.post(f"{first}/table", headers=JSON, body=json.dumps({"table_id": small}))
    assert closed.status_code == 409 and closed.json_body["error"] == "table_change_closed"


def test_a_waiting_person_cannot_take_a_table(client, admin_headers):
    meetup = make_meetup(capacity=0)
    tables = put_tables(client, admin_headers, meetup.id, tables_body(2)).json_body["tables"]
    waiting = manage_path(client, meetup.id)
    answer = client.http.post(f"{waiting}/table", headers=JSON, body=json.dumps({"table_id": tables[0]["id"]}))
    assert answer.status_code == 409 and answer.json_body["error"] == "not_confirmed"


# --- the sign-up side -------------------------------------------------------------------------------

def join(client, meetup_id, table_id=None, name="Tafelgast"):
    body = {"name": name, "email": f"gast-{secrets.token_hex(4)}@example.nl", "role": "teacher", "consent": True}
    if table_id is not None:
        body["table_id"] = table_id
    return client.http.post(f"/meetups/{meetup_id}/registrations", headers=JSON, body=json.dumps(body))


def seated_at(meetup_id, table_id) -> int:
    return int(TableSeats.get(meetup_id, "T#" + table_id, consistent_read=True).seated)


def test_sixty_simultaneous_sign_ups_for_a_table_of_ten_seat_ten(client, admin_headers):
    from chalicelib import registration
    meetup = make_meetup(capacity=100)
    table_id = put_tables(client, admin_headers, meetup.id, tables_body(10)).json_body["tables"][0]["id"]
    outcomes, barrier = [], threading.Barrier(60)

    def sign_up(n):
        barrier.wait()
        try:
            registration.sign_up(meetup.id, {"name": f"Gast {n}", "email": f"zestig-{n}-{secrets.token_hex(3)}@example.nl",
                                             "role": "teacher", "consent": True, "table_id": table_id})
            outcomes.append("seated")
        except Exception as error:  # a full table is a 409
            outcomes.append(getattr(error, "code", repr(error)))
    threads = [threading.Thread(target=sign_up, args=(n,)) for n in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("seated") == 10 and outcomes.count("table_full") == 50, outcomes
    assert seated_at(meetup.id, table_id) == 10
    listed = client.http.get(f"/admin/meetups/{meetup.id}/tables", headers=admin_headers).json_body
    assert len(listed["tables"][0]["people"]) == 10


def test_a_full_table_cannot_be_chosen_and_an_unknown_one_is_422(client, admin_headers):
    meetup = make_meetup(capacity=10)
    table_id = put_tables(client, admin_headers, meetup.id, tables_body(1)).json_body["tables"][0]["id"]
    assert join(client, meetup.id, table_id).status_code == 201
    before = seated_at(meetup.id, table_id)
    full = join(client, meetup.id, table_id)
    assert full.status_code == 409 and full.json_body["error"] == "table_full"
    unknown = join(client, meetup.id, "nope")
    assert unknown.status_code == 422 and "table_id" in unknown.json_body["fields"]
    assert seated_at(meetup.id, table_id) == before
    assert join(client, meetup.id, "none").status_code == 201, "no preference is always possible"
    form = client.http.get(f"/meetups/{meetup.id}/register", headers={"Accept": "text/html"}).body.decode()
    assert f'value="{table_id}" disabled' in form and "Een volle tafel kun je niet kiezen." in form


def test_a_table_change_races_a_sign_up_for_the_last_seat(client, admin_headers):
    from chalicelib import registration
    meetup = make_meetup(capacity=10)
    tables = put_tables(client, admin_headers, meetup.id, tables_body(1, 5)).json_body["tables"]
    small, big = tables[0]["id"], tables[1]["id"]
    mover = join(client, meetup.id, big).json_body["manage_url"].replace("http://testserver", "")
    token = mover.rsplit("/", 1)[1]
    results, barrier = {}, threading.Barrier(2)

    def change():
        barrier.wait()
        try:
            theme_tables.change_table(token, {"table_id": small})
            results["change"] = "won"
        except Exception as error:
            results["change"] = getattr(error, "code", repr(error))

    def sign_up():
        barrier.wait()
        try:
            registration.sign_up(meetup.id, {"name": "Snelle", "email": f"snel-{secrets.token_hex(3)}@example.nl",
                                             "role": "teacher", "consent": True, "table_id": small})
            results["sign_up"] = "won"
        except Exception as error:
            results["sign_up"] = getattr(error, "code", repr(error))
    threads = [threading.Thread(target=change), threading.Thread(target=sign_up)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == ["table_full", "won"], results
    assert seated_at(meetup.id, small) == 1
    assert seated_at(meetup.id, big) == (0 if results["change"] == "won" else 1)


def test_cancelling_gives_the_table_seat_back_and_promotion_honours_the_wish_if_there_is_room(client, admin_headers):
    meetup = make_meetup(capacity=1)
    tables = put_tables(client, admin_headers, meetup.id, tables_body(1, 1)).json_body["tables"]
    first, second = tables[0]["id"], tables[1]["id"]
    seated = join(client, meetup.id, first).json_body
    waiting = join(client, meetup.id, first).json_body
    other_waiting = join(client, meetup.id, second).json_body
    assert waiting["registration"]["status"] == "waitlisted"
    cancelled = client.http.post(seated["manage_url"].replace("http://testserver", "") + "/cancel", headers=JSON, body="{}")
    assert cancelled.status_code == 200, cancelled.body
    assert seated_at(meetup.id, first) == 1, "the seat went back and the promoted person took it"
    from chalicelib.models import Registration, REGISTRATION_PREFIX
    promoted = Registration.get(meetup.id, REGISTRATION_PREFIX + waiting["registration"]["id"], consistent_read=True)
    assert promoted.status == "confirmed" and promoted.table_id == first
    assert Registration.get(meetup.id, REGISTRATION_PREFIX + other_waiting["registration"]["id"]).table_id == second


def test_promotion_to_a_full_table_gives_no_preference(client, admin_headers):
    meetup = make_meetup(capacity=1)
    table_id = put_tables(client, admin_headers, meetup.id, tables_body(1)).json_body["tables"][0]["id"]
    seated = join(client, meetup.id, table_id).json_body
    waiting = join(client, meetup.id, table_id).json_body
    client.http.patch(f"/admin/meetups/{meetup.id}", headers=admin_headers, body=json.dumps({"capacity": 2}))
    from chalicelib import registration
    registration.fill_free_seats(meetup.id)
    from chalicelib.models import Registration, REGISTRATION_PREFIX
    promoted = Registration.get(meetup.id, REGISTRATION_PREFIX + waiting["registration"]["id"], consistent_read=True)
    assert promoted.status == "confirmed" and promoted.table_id is None
    assert seated_at(meetup.id, table_id) == 1
    assert seated["registration"]["status"] == "confirmed"


def test_a_moderator_s_list_carries_the_youth_council_s_approved_ideas_of_the_province(client, admin_headers, monkeypatch):
    from chalicelib import youth
    from chalicelib.models import Idea
    starts = datetime(2034, 9, 5, 18, 30, tzinfo=timezone.utc)
    now = {"at": starts - timedelta(hours=20)}
    monkeypatch.setattr(clock, "now", lambda: now["at"])
    meetup = make_meetup(capacity=5, province="Zeeland", starts_at=clock.to_public(starts),
                         ends_at=clock.to_public(starts + timedelta(hours=2)))
    body = tables_body(3)
    put_tables(client, admin_headers, meetup.id, body)
    title = f"Gratis bijles {secrets.token_hex(2)}"
    Idea(pk=youth.IDEAS_PREFIX + youth._slug("Zeeland"), sk="I#" + secrets.token_hex(4), id=secrets.token_hex(4),
         title=title, text="Iedereen bijles op school.", age_band="14-15", province="Zeeland",
         status="approved", submitted_on="2034-09-01").save()
    Idea(pk=youth.IDEAS_PREFIX + youth._slug("Zeeland"), sk="I#" + secrets.token_hex(4), id=secrets.token_hex(4),
         title="Nog niet goedgekeurd", text="Wacht.", age_band="12-13", province="Zeeland",
         status="pending", submitted_on="2034-09-01").save()
    reminders.run()
    sent = messages_to(body["tables"][0]["moderator"]["email"])
    assert len(sent) == 1 and title in text_of(sent[0]) and "Nog niet goedgekeurd" not in text_of(sent[0])


@pytest.mark.parametrize("bad_id", [{}, [], 5, True])
def test_a_table_id_that_is_not_text_is_422_not_a_500(client, admin_headers, bad_id):
    meetup = make_meetup()
    answer = put_tables(client, admin_headers, meetup.id, {"tables": [{"id": bad_id, "name": "A", "capacity": 1}]})
    assert answer.status_code == 422 and "tables[0].id" in answer.json_body["fields"]
