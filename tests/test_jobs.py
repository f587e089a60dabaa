"""Bulk work off the request path: an admin change answers at once with a job, the job tells,
promotes or invites everyone exactly once, resumes after a crash, and two runners never
double-send. Against DynamoDB Local, with rosters bulk-loaded in the real item format."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import boto3
import pytest

from chalicelib import clock, config, jobs, outbox
from chalicelib.models import Job, Meetup, OutboxMessage, Registration
from tests.factories import make_meetup


@pytest.fixture
def jobs_wait(monkeypatch):
    """Nothing runs a job until the test does (as deployed, where the stream runs it apart from
    the request); queued mail stays in the outbox, where the test counts it."""
    settings = replace(config.get_settings(), job_runner="schedule")
    monkeypatch.setattr(config, "get_settings", lambda: settings)
    monkeypatch.setattr(outbox, "dispatch", lambda messages: None)
    since = clock.stamp(clock.now())
    yield
    # The thousands of messages left pending would crowd the retry index other tests read.
    client = boto3.client("dynamodb")
    pages = client.get_paginator("scan").paginate(
        TableName=OutboxMessage.Meta.table_name, ProjectionExpression="id",
        FilterExpression="created_at >= :t AND template IN (:c, :p)",
        ExpressionAttributeValues={":t": {"S": since}, ":c": {"S": "meetup_cancelled"},
                                   ":p": {"S": "registration_promoted"}})
    with OutboxMessage.batch_write() as batch:
        for page in pages:
            for item in page["Items"]:
                batch.delete(OutboxMessage(id=item["id"]["S"]))


def patch_meetup(client, headers, meetup_id, body):
    started = time.monotonic()
    response = client.http.patch(f"/admin/meetups/{meetup_id}", headers=headers, body=json.dumps(body))
    return response, time.monotonic() - started


def outbox_ids(prefix: str) -> Counter:
    """Outbox messages whose id starts with `prefix` (a Scan: tests only)."""
    found: Counter = Counter()
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(
        TableName=OutboxMessage.Meta.table_name, ProjectionExpression="id",
        FilterExpression="begins_with(id, :p)", ExpressionAttributeValues={":p": {"S": prefix}})
    for page in pages:
        found.update(item["id"]["S"] for item in page["Items"])
    return found


def promotions_of(meetup_id: str) -> Counter:
    """registration id -> promotion emails queued for it (a Scan: tests only)."""
    found: Counter = Counter()
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(
        TableName=OutboxMessage.Meta.table_name, ProjectionExpression="context",
        FilterExpression="template = :t AND contains(context, :m)",
        ExpressionAttributeValues={":t": {"S": "registration_promoted"}, ":m": {"S": meetup_id}})
    for page in pages:
        for item in page["Items"]:
            context = json.loads(item["context"]["S"])
            if context["meetup"]["id"] == meetup_id:
                found[context["registration_id"]] += 1
    return found


def test_unknown_job_is_404_in_both_languages_and_admin_only(client, admin_headers):
    nl = client.http.get("/admin/jobs/nope", headers=admin_headers)
    en = client.http.get("/admin/jobs/nope?lang=en", headers={**admin_headers, "Accept-Language": "en"})
    assert nl.status_code == 404 and nl.json_body["message"] == jobs.JOB_NOT_FOUND.nl
    assert en.status_code == 404 and en.json_body["message"] == jobs.JOB_NOT_FOUND.en
    assert client.http.get("/admin/jobs/nope").status_code == 401


def test_capacity_rise_of_1000_with_1200_waiting_answers_at_once_and_promotes_each_once(bulk_roster,
        client, admin_headers, jobs_wait):
    meetup = make_meetup(capacity=100)
    roster = bulk_roster(meetup, confirmed=100, waiting=1200)
    response, took = patch_meetup(client, admin_headers, meetup.id, {"capacity": 1100})
    assert response.status_code == 200, response.body
    assert took < 2.0, f"the PATCH took {took:.2f} s"
    body = response.json_body
    assert body["capacity"] == 1100 and body["confirmed"] == 100, "the seats open now, the promotions follow"
    job_id = body["job"]["id"]
    assert body["job"]["url"] == f"/admin/jobs/{job_id}"
    queued = client.http.get(body["job"]["url"], headers=admin_headers).json_body
    assert (queued["state"], queued["kind"], queued["done"], queued["total"]) == ("queued", "promotions", 0, 1000)

    jobs.run(job_id)

    progress = client.http.get(body["job"]["url"], headers=admin_headers).json_body
    assert (progress["state"], progress["done"], progress["total"]) == ("done", 1000, 1000)
    assert progress["started_at"] and progress["finished_at"] and progress["error"] is None
    stored = Meetup.get(meetup.id, consistent_read=True)
    assert (stored.confirmed, stored.waitlist_length) == (1100, 200)
    first, rest = roster["waitlisted"][:1000], roster["waitlisted"][1000:]
    statuses = {r.id: r.status for r in Registration.query(meetup.id, Registration.sk.startswith("R#"))}
    assert all(statuses[r.id] == "confirmed" for r in first), "the first 1,000 in line, in order"
    assert all(statuses[r.id] == "waitlisted" for r in rest)
    promoted = promotions_of(meetup.id)
    assert set(promoted) == {r.id for r in first} and set(promoted.values()) == {1}, "each told exactly once"
    # Running it again (a duplicate stream record) changes nothing.
    jobs.run(job_id)
    assert promotions_of(meetup.id) == promoted


def test_cancelling_a_meetup_with_20000_people_answers_at_once_and_tells_each_once(bulk_roster,
        client, admin_headers, jobs_wait):
    meetup = make_meetup(capacity=15000)
    roster = bulk_roster(meetup, confirmed=15000, waiting=5000, cancelled=300)
    response, took = patch_meetup(client, admin_headers, meetup.id, {"status": "cancelled"})
    assert response.status_code == 200, response.body
    assert took < 2.0, f"the PATCH took {took:.2f} s"
    assert response.json_body["cancelled"] is True
    job_id = response.json_body["job"]["id"]
    assert jobs.load(job_id).total == 20000

    jobs.run(job_id, budget_seconds=None)

    job = jobs.load(job_id)
    assert (job.state, job.done, job.total) == ("done", 20000, 20000)
    told = outbox_ids(f"meetup-cancelled-{meetup.id}-")
    active = roster["confirmed"] + roster["waitlisted"]
    assert set(told) == {f"meetup-cancelled-{meetup.id}-{r.id}" for r in active}
    assert set(told.values()) == {1}, "every person told exactly once; the cancelled 300 not at all"


def test_a_job_that_crashed_after_a_page_resumes_and_tells_each_person_once(bulk_roster, client, admin_headers, jobs_wait,
                                                                            monkeypatch):
    monkeypatch.setattr(jobs, "PAGE", 100)
    meetup = make_meetup(capacity=250)
    roster = bulk_roster(meetup, confirmed=250, waiting=80)
    job_id = patch_meetup(client, admin_headers, meetup.id, {"status": "cancelled"})[0].json_body["job"]["id"]

    class Crash(Exception):
        simulated_crash = True

    def crash(job):
        raise Crash("the runner died after its first page")

    with pytest.raises(Crash):
        jobs.run(job_id, after_page=crash)
    halfway = jobs.load(job_id)
    assert (halfway.state, halfway.done, halfway.pages) == ("running", 100, 1)
    assert jobs.run(job_id).done == 100, "the lease still holds: nobody else takes it yet"

    # A crash in the middle of a page: part of it queued, the cursor not moved.
    real_queue_each = outbox.queue_each

    def half_then_crash(batch):
        real_queue_each(dict(list(batch.items())[:40]))
        raise Crash("the runner died in the middle of its second page")

    Job(id=job_id).update(actions=[Job.lease_until.set(clock.stamp(clock.now() - timedelta(seconds=1)))])
    monkeypatch.setattr(outbox, "queue_each", half_then_crash)
    with pytest.raises(Crash):
        jobs.run(job_id)
    monkeypatch.setattr(outbox, "queue_each", real_queue_each)
    assert jobs.load(job_id).done == 100

    Job(id=job_id).update(actions=[Job.lease_until.set(clock.stamp(clock.now() - timedelta(seconds=1)))])
    finished = jobs.run(job_id)
    assert (finished.state, finished.done) == ("done", 330)
    told = outbox_ids(f"meetup-cancelled-{meetup.id}-")
    assert len(told) == 330 and set(told.values()) == {1}
    assert set(told) == {f"meetup-cancelled-{meetup.id}-{r.id}" for r in roster["confirmed"] + roster["waitlisted"]}


def test_the_schedule_resumes_a_stalled_job(bulk_roster, client, admin_headers, jobs_wait, monkeypatch):
    meetup = make_meetup(capacity=30)
    bulk_roster(meetup, confirmed=30)
    job_id = patch_meetup(client, admin_headers, meetup.id, {"status": "cancelled"})[0].json_body["job"]["id"]
    stale = clock.stamp(clock.now() - jobs.STALLED - timedelta(seconds=5))
    Job(id=job_id).update(actions=[Job.updated_at.set(stale)])
    assert jobs.resume_stalled()["resumed"] >= 1
    assert (jobs.load(job_id).state, jobs.load(job_id).done) == ("done", 30)


def test_two_runners_at_once_never_double_send(bulk_roster, client, admin_headers, jobs_wait, monkeypatch):
    monkeypatch.setattr(jobs, "PAGE", 50)
    monkeypatch.setattr(jobs, "LEASE", timedelta(milliseconds=150))  # leases run out mid-page: runners overtake
    meetup = make_meetup(capacity=400)
    roster = bulk_roster(meetup, confirmed=400)
    job_id = patch_meetup(client, admin_headers, meetup.id, {"status": "cancelled"})[0].json_body["job"]["id"]
    sent: Counter = Counter()
    lock = threading.Lock()
    real_dispatch = outbox.queue_each

    def counting(batch):
        queued = real_dispatch(batch)
        with lock:
            sent.update(m.id for m in queued)
        return queued

    monkeypatch.setattr(outbox, "queue_each", counting)
    errors = []

    def runner():
        try:
            for _ in range(200):
                job = jobs.run(job_id, budget_seconds=None)
                if job.state == "done":
                    return
                time.sleep(0.01)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    job = jobs.load(job_id)
    assert (job.state, job.done) == ("done", 400), "each page counted once, whoever ran it"
    assert len(sent) == 400 and set(sent.values()) == {1}, "queued once each, across all runners"
    told = outbox_ids(f"meetup-cancelled-{meetup.id}-")
    assert set(told) == {f"meetup-cancelled-{meetup.id}-{r.id}" for r in roster["confirmed"]}
    assert set(told.values()) == {1}


def test_a_small_change_still_runs_its_job_within_the_request_in_tests(bulk_roster, client, admin_headers):
    """The default test runner (`inline`) runs the job before answering: the answer carries a done job."""
    meetup = make_meetup(capacity=1)
    bulk_roster(meetup, confirmed=1, waiting=3)
    body = patch_meetup(client, admin_headers, meetup.id, {"capacity": 3})[0].json_body
    assert body["confirmed"] == 3 and body["waitlist"]["length"] == 1
    assert jobs.load(body["job"]["id"]).state == "done"
    assert "job" not in patch_meetup(client, admin_headers, meetup.id, {"title": "Alleen de titel"})[0].json_body
