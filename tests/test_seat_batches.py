"""Group commit of seats within a process: the sign-ups waiting for a meetup's seat lock take
their seats in one transaction, conditioned on that many being free; those the free seats do
not cover join the line, and a stale copy never seats more than the capacity."""
import secrets

import pytest

from chalicelib import catalogue, registration
from chalicelib.errors import ServiceUnavailable
from tests import invariants
from tests.factories import make_meetup
from tests.test_line_batches import queued_behind_the_line_lock


def person(n, tag, email=None, **extra):
    return {"name": f"Deelnemer {n}", "email": email or f"s{n}-{tag}@example.nl", "role": "teacher",
            "consent": True, **extra}


@pytest.fixture
def batches(monkeypatch):
    """The sizes of the seat transactions tried."""
    sizes = []
    real = registration._seat_batch

    def counted(meetup, batch, now):
        sizes.append(len(batch))
        return real(meetup, batch, now)

    monkeypatch.setattr(registration, "_seat_batch", counted)
    return sizes


def queued_behind_the_seat_lock(meetup_id, payloads):
    """As for the line (`queued_behind_the_line_lock`), behind the meetup's seat lock."""
    return queued_behind_the_line_lock(meetup_id, payloads, registration._seats)


def known(meetup):
    """This process's hint holds the meetup as stored."""
    registration.hints.put(catalogue.load(meetup.id, consistent=True))


def test_seat_takers_waiting_commit_in_one_transaction(batches):
    tag = secrets.token_hex(3)
    meetup = make_meetup(capacity=20)
    known(meetup)
    outcomes = queued_behind_the_seat_lock(meetup.id, [person(n, tag) for n in range(10)])

    assert all(o.created and o.registration.status == "confirmed" for o in outcomes)
    assert batches == [10], "ten seats, one transaction"
    confirmed, waiting = invariants.check(meetup.id)
    assert len(confirmed) == 10 and waiting == []
    assert len({o.registration.id for o in outcomes}) == 10


def test_more_than_the_free_seats_seat_as_many_and_the_rest_join_the_line(batches):
    tag = secrets.token_hex(3)
    meetup = make_meetup(capacity=5)
    known(meetup)
    outcomes = queued_behind_the_seat_lock(meetup.id, [person(n, tag) for n in range(8)])

    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert batches[0] == 5, "no more tried than there are seats"
    assert sorted(o.registration.status for o in outcomes) == ["confirmed"] * 5 + ["waitlisted"] * 3
    assert sorted(o.position for o in outcomes if o.position) == [1, 2, 3]
    confirmed, waiting = invariants.check(meetup.id)
    assert len(confirmed) == 5 and len(waiting) == 3


def test_a_stale_copy_never_seats_more_than_the_capacity(batches):
    """Another process took seats since this one's hint: the batch's condition fails on the
    meetup, and the retry on the stored item seats only those still free."""
    tag = secrets.token_hex(3)
    meetup = make_meetup(capacity=6)
    stale = catalogue.load(meetup.id, consistent=True)
    for n in range(4):
        registration.sign_up(meetup.id, person(100 + n, tag))
    registration.hints.put(stale)  # this process still believes all six are free
    batches.clear()
    outcomes = queued_behind_the_seat_lock(meetup.id, [person(n, tag) for n in range(5)])

    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert batches[:2] == [5, 2], "the batch on the stale copy failed; two seats were left"
    assert sorted(o.registration.status for o in outcomes) == ["confirmed"] * 2 + ["waitlisted"] * 3
    confirmed, waiting = invariants.check(meetup.id)
    assert len(confirmed) == 6 and len(waiting) == 3


def test_an_address_twice_in_a_batch_takes_one_seat(batches):
    tag = secrets.token_hex(3)
    meetup = make_meetup(capacity=10)
    known(meetup)
    twice = f"twice-{tag}@example.nl"
    outcomes = queued_behind_the_seat_lock(meetup.id, [person(1, tag), person(2, tag, twice), person(3, tag, twice)])

    assert not [o for o in outcomes if isinstance(o, Exception)]
    created = [o for o in outcomes if o.created]
    assert len(created) == 2, "one of the two sign-ups with the same address, and the other"
    again = [o for o in outcomes if not o.created]
    assert [o.registration.id for o in again] == [o.registration.id for o in created if o.registration.email == twice]
    assert batches[0] == 2, "one address once per transaction"
    confirmed, _ = invariants.check(meetup.id)
    assert len(confirmed) == 2


def test_a_storage_failure_reaches_every_member_and_stores_nothing(monkeypatch):
    tag = secrets.token_hex(3)
    meetup = make_meetup(capacity=10)
    known(meetup)

    def down(meetup, batch, now):
        raise ServiceUnavailable("database down")

    monkeypatch.setattr(registration, "_seat_batch", down)
    results = queued_behind_the_seat_lock(meetup.id, [person(n, tag) for n in range(4)])
    assert all(isinstance(r, ServiceUnavailable) for r in results)
    assert not registration._seats._pending.get(meetup.id), "nobody left queued"
    confirmed, waiting = invariants.check(meetup.id)
    assert confirmed == [] and waiting == []


def test_a_seat_is_not_taken_while_people_wait_even_if_the_copy_says_the_line_is_empty(batches):
    """The seat-freeing rule in a batch: on a copy showing a free seat and an empty line, while
    the stored meetup (same version) has someone waiting, nobody is seated past them."""
    from chalicelib.models import Meetup
    tag = secrets.token_hex(3)
    meetup = make_meetup(capacity=5)
    known(meetup)
    # Someone joined the line between this process's read and its commit (the counter alone:
    # what the condition reads).
    Meetup(id=meetup.id).update(actions=[Meetup.waitlist_length.set(1)])
    outcomes = queued_behind_the_seat_lock(meetup.id, [person(n, tag) for n in range(2)])

    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert batches == [2], "tried once, on the copy"
    assert [o.registration.status for o in outcomes] == ["waitlisted", "waitlisted"]
    assert sorted(o.position for o in outcomes) == [2, 3], "behind the one already waiting"
    assert int(catalogue.load(meetup.id, consistent=True).confirmed) == 0
