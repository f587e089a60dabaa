"""A Hypothesis state machine over the roster: sign-up, duplicate, cancel, capacity change, each
step run by one of two app processes (each with its own caches: meetup hints, connections), as
Lambda containers run side by side. After every step the stored roster must satisfy the
invariants (positions 1..N included) and match a simple model."""
import atexit
import secrets

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests import invariants, roster_processes
from tests.factories import make_meetup

_pools = []


def process(index: int):
    if not _pools:
        _pools.extend(roster_processes.executors(2))
        atexit.register(lambda: [pool.shutdown(wait=False) for pool in _pools])
    return _pools[index]


PROCESS = st.sampled_from([0, 1])


class Roster(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.capacity = 2
        self.meetup = make_meetup(capacity=self.capacity)
        self.tag = secrets.token_hex(3)
        self.order = []  # model: active registration ids in acceptance order
        self.email_of = {}
        self.tokens = {}

    def _email(self, n):
        return f"s{n}-{self.tag}@example.nl"

    @rule(n=st.integers(0, 12), proc=PROCESS)
    def sign_up(self, n, proc):
        email = self._email(n)
        outcome = process(proc).submit(roster_processes.sign_up, self.meetup.id, n, self.tag,
                                       email.upper() if n % 2 else email).result()
        assert "error" not in outcome, outcome
        active = [rid for rid in self.order if self.email_of[rid] == email]
        if active:
            assert not outcome["created"] and outcome["id"] == active[0], "duplicate gives the existing one"
        else:
            assert outcome["created"]
            rid = outcome["id"]
            self.order.append(rid)
            self.email_of[rid] = email
            self.tokens[rid] = outcome["token"]
            expected_position = len(self.order) - self.capacity
            if expected_position > 0:
                assert outcome["status"] == "waitlisted" and outcome["position"] == expected_position
            else:
                assert outcome["status"] == "confirmed"

    @precondition(lambda self: self.order)
    @rule(data=st.data(), proc=PROCESS, again=PROCESS)
    def cancel(self, data, proc, again):
        rid = data.draw(st.sampled_from(self.order))
        outcome = process(proc).submit(roster_processes.cancel, self.tokens[rid]).result()
        assert outcome["status"] == "cancelled" and outcome["created"] is False
        self.order.remove(rid)
        repeated = process(again).submit(roster_processes.cancel, self.tokens[rid]).result()
        assert repeated["status"] == "cancelled"

    @rule(capacity=st.integers(0, 8), proc=PROCESS)
    def change_capacity(self, capacity, proc):
        confirmed = min(len(self.order), self.capacity)
        result = process(proc).submit(roster_processes.change_capacity, self.meetup.id, capacity).result()
        if capacity < confirmed:
            assert result.get("error") == "capacity_below_confirmed", "capacity below confirmed must be refused"
            return
        assert "error" not in result, result
        self.capacity = capacity

    @invariant()
    def roster_matches_model(self):
        confirmed, waiting = invariants.check(self.meetup.id)
        expected_confirmed = self.order[:self.capacity]
        expected_waiting = self.order[self.capacity:]
        assert sorted(r.id for r in confirmed) == sorted(expected_confirmed)
        assert [r.id for r in waiting] == expected_waiting, "waitlist order never inverted"


Roster.TestCase.settings = settings(max_examples=20, stateful_step_count=12, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow])
TestRoster = Roster.TestCase
