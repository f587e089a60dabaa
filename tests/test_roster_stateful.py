"""A Hypothesis state machine over the roster: sign-up, duplicate, cancel, capacity change.
After every step the stored roster must satisfy the invariants and match a simple model."""
import secrets

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chalicelib import catalogue, registration
from chalicelib.errors import Conflict
from tests import invariants
from tests.factories import make_meetup


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

    @rule(n=st.integers(0, 12))
    def sign_up(self, n):
        email = self._email(n)
        outcome = registration.sign_up(self.meetup.id, {"name": f"P{n}", "email": email.upper() if n % 2 else email,
                                                        "role": "other", "consent": True})
        active = [rid for rid in self.order if self.email_of[rid] == email]
        if active:
            assert not outcome.created and outcome.registration.id == active[0], "duplicate gives the existing one"
        else:
            assert outcome.created
            rid = outcome.registration.id
            self.order.append(rid)
            self.email_of[rid] = email
            self.tokens[rid] = outcome.manage_url.rsplit("/", 1)[1]
            expected_position = len(self.order) - self.capacity
            if expected_position > 0:
                assert outcome.registration.status == "waitlisted" and outcome.position == expected_position
            else:
                assert outcome.registration.status == "confirmed"

    @precondition(lambda self: self.order)
    @rule(data=st.data())
    def cancel(self, data):
        rid = data.draw(st.sampled_from(self.order))
        outcome = registration.cancel(self.tokens[rid])
        assert outcome.registration.status == "cancelled"
        self.order.remove(rid)
        again = registration.cancel(self.tokens[rid])
        assert again.registration.status == "cancelled" and not again.mail

    @rule(capacity=st.integers(0, 8))
    def change_capacity(self, capacity):
        meetup = catalogue.load(self.meetup.id, consistent=True)
        confirmed = min(len(self.order), self.capacity)
        if capacity < confirmed:
            try:
                registration.change_capacity(meetup, capacity)
            except Conflict:
                return
            raise AssertionError("capacity below confirmed must be refused")
        registration.change_capacity(meetup, capacity)
        registration.fill_free_seats(meetup.id)  # as the promotions job does after the request
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
