"""Fixtures for mail and outbox tests: a real SMTP server (aiosmtpd), an in-memory backend,
a closed port and registration contexts. Import them into a test module:
`from tests.mailfixtures import *  # noqa: F401,F403`."""
from __future__ import annotations

import socket
import threading
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

__all__ = ["registration_context", "CollectingBackend", "FailingBackend", "smtp_server", "closed_port",
           "free_port"]


def registration_context(**overrides) -> dict:
    """The context the registration code passes to outbox.message (online meetup by default)."""
    meetup = {"id": "m-lelystad", "title": "Klassen Meetup Lelystad", "starts_at": "2027-04-12T17:30:00Z",
              "ends_at": "2027-04-12T19:30:00Z", "mode": "online", "city": "Lelystad", "venue": None,
              "sequence": 0, "url": "http://testserver/meetups/m-lelystad", "tour_url": "http://testserver/meetups"}
    meetup.update(overrides.pop("meetup", {}))
    context = {"name": "Anna de Vries", "registration_id": "reg-123", "status": "confirmed",
               "waitlist_position": None, "manage_url": "http://testserver/registrations/reg-123?token=abc",
               "join_link": "http://testserver/join/k1.cmVnLTEyMw.bWFj", "meetup": meetup}
    context.update(overrides)
    return context


class CollectingBackend:
    """Keeps what it is given (thread-safe); `delay` makes concurrent runs overlap."""

    def __init__(self, delay: float = 0.0):
        self.messages: list[EmailMessage] = []
        self.delay = delay
        self._lock = threading.Lock()

    def send(self, message: EmailMessage) -> None:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.messages.append(message)

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]


class FailingBackend:
    def __init__(self, throttled: bool = False):
        self.throttled = throttled
        self.calls = 0

    def send(self, message: EmailMessage) -> None:
        from chalicelib.mail import MailDeliveryFailed
        self.calls += 1
        raise MailDeliveryFailed("backend down", throttled=self.throttled)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Collector:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(policy=policy.default)
        return [parser.parsebytes(env.original_content or env.content) for env in self.envelopes]


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1: yields (host, port, collector)."""
    from aiosmtpd.controller import Controller
    collector = _Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.hostname, controller.port, collector
    finally:
        controller.stop()


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on (connections are refused at once)."""
    return free_port()
