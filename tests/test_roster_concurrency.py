"""Bursts against the roster rules: many sign-ups at once, cancellations racing sign-ups."""
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import registration
from chalicelib.errors import DomainError
from tests import invariants
from tests.factories import make_meetup

pytestmark = pytest.mark.slow


def payload(n: int, tag: str) -> dict:
    return {"name": f"Deelnemer {n}", "email": f"p{n}-{tag}@example.nl", "role": "teacher", "consent": True}


def test_200_simultaneous_sign_ups_for_40_seats():
    meetup = make_meetup(capacity=40)
    tag = secrets.token_hex(3)
    with ThreadPoolExecutor(max_workers=48) as pool:
        outcomes = list(pool.map(lambda n: registration.sign_up(meetup.id, payload(n, tag)), range(200)))

    assert all(o is not None and o.created for o in outcomes), "nothing lost, no errors"
    confirmed = [o for o in outcomes if o.registration.status == "confirmed"]
    waitlisted = [o for o in outcomes if o.registration.status == "waitlisted"]
    assert len(confirmed) == 40
    assert sorted(o.position for o in waitlisted) == list(range(1, 161)), "positions exactly 1..160"

    stored_confirmed, stored_waiting = invariants.check(meetup.id)
    assert len(stored_confirmed) == 40 and len(stored_waiting) == 160
    # The position each person was told is their place in the stored order: earlier accepted, earlier in line.
    told = {o.registration.id: o.position for o in waitlisted}
    assert [told[r.id] for r in stored_waiting] == list(range(1, 161))


def test_cancellations_racing_sign_ups_never_leave_a_free_seat_with_people_waiting():
    meetup = make_meetup(capacity=10)
    tag = secrets.token_hex(3)
    holders = [registration.sign_up(meetup.id, payload(n, tag)) for n in range(14)]  # 10 seats, 4 waiting
    tokens = [o.manage_url.rsplit("/", 1)[1] for o in holders]

    def act(job):
        kind, value = job
        try:
            if kind == "cancel":
                return registration.cancel(value)
            return registration.sign_up(meetup.id, payload(value, tag))
        except DomainError as error:  # no domain error is expected; report it in the assertion
            return error

    jobs = [("cancel", t) for t in tokens[:8]] + [("sign_up", 100 + n) for n in range(30)]
    jobs.sort(key=lambda _: secrets.randbelow(1000))
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(act, jobs))

    assert not [r for r in results if isinstance(r, DomainError)]
    confirmed, waiting = invariants.check(meetup.id)
    assert len(confirmed) == 10, "every freed seat was taken again"
    assert len(confirmed) + len(waiting) == 14 - 8 + 30, "nobody lost"


def test_concurrent_duplicates_make_one_registration():
    meetup = make_meetup(capacity=5)
    body = {"name": "Dubbel", "email": f"dubbel-{secrets.token_hex(3)}@example.nl", "role": "parent", "consent": True}
    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(lambda _: registration.sign_up(meetup.id, dict(body)), range(10)))
    assert sum(o.created for o in outcomes) == 1
    assert len({o.registration.id for o in outcomes}) == 1
    confirmed, _ = invariants.check(meetup.id)
    assert len(confirmed) == 1


# --- as deployed: several app processes, each with its own caches, one DynamoDB ---------------------

@pytest.fixture(scope="module")
def processes():
    from tests import roster_processes
    pools = roster_processes.executors(4)
    yield pools
    for pool in pools:
        pool.shutdown()


def test_four_processes_200_sign_ups_for_40_seats(processes):
    from tests import roster_processes
    meetup = make_meetup(capacity=40)
    tag = secrets.token_hex(3)
    futures = [pool.submit(roster_processes.run_jobs, meetup.id, [("sign_up", p * 50 + n) for n in range(50)], tag)
               for p, pool in enumerate(processes)]
    results = [r for f in futures for r in f.result()]
    assert not [r for r in results if "error" in r], "no refusal, no error"
    confirmed = [r for r in results if r["status"] == "confirmed"]
    waitlisted = [r for r in results if r["status"] == "waitlisted"]
    assert len(confirmed) == 40 and len(waitlisted) == 160
    assert sorted(r["ticket"] for r in waitlisted) == list(range(1, 161)), "tickets 1..160, no gap, no duplicate"
    stored_confirmed, stored_waiting = invariants.check(meetup.id)
    told = {r["id"]: r["position"] for r in waitlisted}
    assert [told[r.id] for r in stored_waiting] == list(range(1, 161)), "told positions in commit order"


def test_four_processes_cancellations_racing_sign_ups(processes):
    from tests import roster_processes
    meetup = make_meetup(capacity=10)
    tag = secrets.token_hex(3)
    holders = processes[0].submit(roster_processes.run_jobs, meetup.id, [("sign_up", n) for n in range(16)],
                                  tag, 1).result()
    jobs = [("cancel", h["token"]) for h in holders[:6] + holders[12:14]] + [("sign_up", 100 + n) for n in range(32)]
    jobs.sort(key=lambda _: secrets.randbelow(1000))
    futures = [pool.submit(roster_processes.run_jobs, meetup.id, jobs[p::4], tag) for p, pool in enumerate(processes)]
    results = [r for f in futures for r in f.result()]
    assert not [r for r in results if "error" in r]
    confirmed, waiting = invariants.check(meetup.id)
    assert len(confirmed) == 10, "every freed seat was taken again"
    assert len(confirmed) + len(waiting) == 16 - 8 + 32, "nobody lost"
