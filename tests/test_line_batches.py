"""Group commit of waitlist joins within a process: every join waiting for a meetup's line lock
goes into one transaction, tickets in arrival order; a member that cannot join (its address
holds a place, the line's limit) leaves the batch without costing the others their place."""
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from chalicelib import catalogue, registration
from chalicelib.errors import Conflict, ServiceUnavailable
from tests import invariants
from tests.factories import make_meetup


def person(n, tag, email=None):
    return {"name": f"Wachtende {n}", "email": email or f"b{n}-{tag}@example.nl", "role": "teacher", "consent": True}


@pytest.fixture
def batches(monkeypatch):
    """The sizes of the join transactions tried."""
    sizes = []
    real = registration._join_line

    def counted(meetup, batch, now, turn=None):
        sizes.append(len(batch))
        return real(meetup, batch, now, turn)

    monkeypatch.setattr(registration, "_join_line", counted)
    return sizes


def queued_behind_the_line_lock(meetup_id, payloads, batches=None):
    """Sign up `payloads` from threads while the meetup's lock of `batches` (the line's, unless
    given: `registration._seats`) is held, so that all of them wait for it; release it once
    every one is queued. Returns each one's outcome or error, in order."""
    batches = batches or registration._lines
    results = [None] * len(payloads)

    def attempt(index):
        try:
            results[index] = registration.sign_up(meetup_id, payloads[index])
        except Exception as error:  # noqa: BLE001 (reported in the assertions)
            results[index] = error

    lock = batches.line_lock(meetup_id)
    with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        with lock:
            for index in range(len(payloads)):
                pool.submit(attempt, index)
            deadline = time.monotonic() + 10
            while len(batches._pending.get(meetup_id, [])) < len(payloads):
                assert time.monotonic() < deadline, "every sign-up queued for the lock"
                time.sleep(0.01)
    return results


def full_meetup(tag, **overrides):
    meetup = make_meetup(capacity=1, **overrides)
    registration.sign_up(meetup.id, person(0, tag))
    registration.hints.put(catalogue.load(meetup.id, consistent=True))  # this process knows it is full
    return meetup


def test_joins_waiting_for_the_line_commit_in_one_transaction_in_arrival_order(batches):
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag)
    outcomes = queued_behind_the_line_lock(meetup.id, [person(n, tag) for n in range(1, 11)])

    assert all(o.created and o.registration.status == "waitlisted" for o in outcomes)
    assert batches == [10], "ten joins, one transaction"
    assert sorted(o.position for o in outcomes) == list(range(1, 11))
    assert sorted(int(o.registration.waitlist_ticket) for o in outcomes) == list(range(1, 11))
    _, waiting = invariants.check(meetup.id)
    told = {o.registration.id: o.position for o in outcomes}
    assert [told[r.id] for r in waiting] == list(range(1, 11)), "the stored line is the order people were told"
    stored = catalogue.load(meetup.id, consistent=True)
    assert (int(stored.waitlist_seq), int(stored.waitlist_length)) == (10, 10)


def test_more_joins_than_a_transaction_holds_take_several(batches):
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag)
    count = registration.JOIN_BATCH + 4
    outcomes = queued_behind_the_line_lock(meetup.id, [person(n, tag) for n in range(1, count + 1)])
    assert all(o.created for o in outcomes)
    assert max(batches) == registration.JOIN_BATCH and sum(batches) == count
    assert sorted(o.position for o in outcomes) == list(range(1, count + 1))


def test_an_address_already_in_line_leaves_the_batch_and_the_others_keep_consecutive_tickets(batches):
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag)
    first = registration.sign_up(meetup.id, person(1, tag))
    batches.clear()
    twice = f"twice-{tag}@example.nl"
    payloads = [person(1, tag), person(2, tag), person(3, tag, twice), person(4, tag, twice), person(5, tag)]
    outcomes = queued_behind_the_line_lock(meetup.id, payloads)

    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert outcomes[0].created is False and outcomes[0].registration.id == first.registration.id
    created = [o for o in outcomes if o.created]
    assert len(created) == 3, "one of the two sign-ups with the same address, and the two others"
    assert sorted(int(o.registration.waitlist_ticket) for o in created) == [2, 3, 4], "no ticket lost"
    assert sorted(o.position for o in created) == [2, 3, 4]
    assert batches[0] == 4, "one address once per transaction"
    _, waiting = invariants.check(meetup.id)
    assert len(waiting) == 4


def test_a_batch_stops_at_the_lines_limit_and_the_rest_get_waitlist_full(batches):
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag, waitlist={"enabled": True, "max_length": 3})
    registration.sign_up(meetup.id, person(1, tag))
    results = queued_behind_the_line_lock(meetup.id, [person(n, tag) for n in range(2, 6)])

    joined = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert sorted(o.position for o in joined) == [2, 3]
    assert len(refused) == 2 and all(isinstance(r, Conflict) and r.code == "waitlist_full" for r in refused)
    _, waiting = invariants.check(meetup.id)
    assert len(waiting) == 3


def test_a_storage_failure_reaches_every_member_and_stores_nothing(monkeypatch):
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag)

    def down(meetup, batch, now, turn=None):
        raise ServiceUnavailable("database down")

    monkeypatch.setattr(registration, "_join_line", down)
    results = queued_behind_the_line_lock(meetup.id, [person(n, tag) for n in range(1, 6)])
    assert all(isinstance(r, ServiceUnavailable) for r in results)
    assert not registration._lines._pending.get(meetup.id), "nobody left queued"
    _, waiting = invariants.check(meetup.id)
    assert waiting == []


def test_a_batch_that_finds_the_seat_freed_sends_everyone_back_to_take_it(batches):
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag)
    holder = catalogue.load(meetup.id, consistent=True)
    # The only seat is freed elsewhere while the joins wait (this process's hint says full).
    confirmed, _ = invariants.check(meetup.id)
    registration.cancel_registration(confirmed[0])
    registration.hints.put(holder)
    outcomes = queued_behind_the_line_lock(meetup.id, [person(n, tag) for n in range(1, 4)])
    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert sorted(o.registration.status for o in outcomes) == ["confirmed", "waitlisted", "waitlisted"]
    assert sorted(o.position for o in outcomes if o.position) == [1, 2]
    confirmed, waiting = invariants.check(meetup.id)
    assert len(confirmed) == 1 and len(waiting) == 2


# --- turns at the line between processes -----------------------------------------------------------

def turns_of(meetup_id):
    stored = catalogue.load(meetup_id, consistent=True)
    return stored.line_next, stored.line_serving


def test_a_join_waits_for_a_turn_taken_by_another_process_and_skips_it_once_stalled(monkeypatch, batches):
    monkeypatch.setattr(registration, "TURN_STALLED", 0.5)
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag)
    from chalicelib.models import Meetup
    # Another process took turn 0 and died before joining.
    Meetup(id=meetup.id).update(actions=[Meetup.line_next.set(1), Meetup.line_serving.set(0)])
    started = time.monotonic()
    outcome = registration.sign_up(meetup.id, person(1, tag))
    assert outcome.created and outcome.position == 1
    assert time.monotonic() - started >= 0.5, "no join while another process's turn was being served"
    assert registration._lines.contended(meetup.id), "the lost race is remembered"
    assert turns_of(meetup.id) == (2, 2), "turn 0 skipped, turn 1 taken and moved on by the join"


def test_contended_joins_take_turns_first_come_first_served(batches):
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag)
    registration._lines.contend(meetup.id)
    outcomes = [registration.sign_up(meetup.id, person(n, tag)) for n in (1, 2)]
    assert [o.position for o in outcomes] == [1, 2] and batches == [1, 1]
    assert turns_of(meetup.id) == (2, 2), "each join took a turn and moved the turns on"
    registration._lines.forget(meetup.id)
    assert registration.sign_up(meetup.id, person(3, tag)).position == 3, "nobody waiting: a join needs no turn"
    assert turns_of(meetup.id) == (2, 2)


def test_a_turn_taken_for_a_line_that_now_refuses_is_passed_on():
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag)
    from chalicelib.models import Meetup
    Meetup(id=meetup.id).update(actions=[Meetup.state.set("closed")])  # closed elsewhere; the hint says open
    registration._lines.contend(meetup.id)
    with pytest.raises(Conflict) as refused:
        registration.sign_up(meetup.id, person(1, tag))
    assert refused.value.code == "closed"
    assert turns_of(meetup.id) == (1, 1), "the turn was passed on: nobody waits behind it"


def test_a_join_outside_the_turns_waits_while_someone_waits_for_a_turn(monkeypatch, batches):
    monkeypatch.setattr(registration, "TURN_STALLED", 0.5)
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag)
    from chalicelib.models import Meetup
    Meetup(id=meetup.id).update(actions=[Meetup.line_next.set(3), Meetup.line_serving.set(2)])
    outcome = registration.sign_up(meetup.id, person(1, tag))  # turn 2 stalls, then is skipped
    assert outcome.position == 1
    assert batches[0] == 1 and len(batches) >= 2, "the first try (outside the turns) was refused"


def test_a_turn_given_up_is_skipped_at_once(monkeypatch, batches):
    monkeypatch.setattr(registration, "TURN_STALLED", 30)  # a stall would fail the test
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag)
    from chalicelib.models import Meetup
    Meetup(id=meetup.id).update(actions=[Meetup.line_next.set(2), Meetup.line_serving.set(1),
                                         Meetup.line_abandoned.add({1})])
    registration._lines.contend(meetup.id)
    started = time.monotonic()
    assert registration.sign_up(meetup.id, person(1, tag)).position == 1
    assert time.monotonic() - started < 5
    stored = catalogue.load(meetup.id, consistent=True)
    assert (stored.line_next, stored.line_serving, stored.line_abandoned) == (3, 3, None)


def test_a_joiner_that_waited_too_long_gives_its_turn_up_and_gets_503(monkeypatch):
    monkeypatch.setattr(registration, "TURN_STALLED", 30)
    monkeypatch.setattr(registration, "TURN_WAIT", 0.3)
    tag = secrets.token_hex(3)
    meetup = full_meetup(tag)
    from chalicelib.models import Meetup
    Meetup(id=meetup.id).update(actions=[Meetup.line_next.set(1), Meetup.line_serving.set(0)])  # turn 0: slow
    registration._lines.contend(meetup.id)
    with pytest.raises(ServiceUnavailable):
        registration.sign_up(meetup.id, person(1, tag))
    stored = catalogue.load(meetup.id, consistent=True)
    assert stored.line_abandoned == {1} and stored.line_serving == 0
    _, waiting = invariants.check(meetup.id)
    assert waiting == [], "nothing stored"
