"""Structured JSON logs with a correlation id per request, and no stack trace in any answer."""
import io
import json
import logging
from contextlib import contextmanager

from tests.factories import make_meetup


@contextmanager
def json_log():
    """The service logger's JSON lines at INFO, as its formatter writes them."""
    from chalicelib.observability import logger
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    level = logger.log_level
    logger.setLevel("INFO")
    records: list[dict] = []
    try:
        yield records
    finally:
        logger.setLevel(level)
        logger.removeHandler(handler)
        records.extend(json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{"))


def test_a_refused_request_is_logged_as_json_with_its_correlation_id(client):
    with json_log() as records:
        response = client.http.get("/meetups/no-such-meetup")
    assert response.status_code == 404
    assert "Traceback" not in response.body.decode()
    refused = [r for r in records if r.get("message") == "request refused"]
    assert refused, records
    assert refused[-1]["service"] == "klassen-meetups" and refused[-1]["level"] == "INFO"
    assert refused[-1]["status"] == 404 and refused[-1]["error"] == "not_found"
    assert refused[-1].get("correlation_id"), "every request's log lines carry its id"


def test_state_changes_are_logged():
    from chalicelib import registration
    meetup = make_meetup(capacity=1)
    with json_log() as records:
        registration.sign_up(meetup.id, {"name": "Log", "email": "log@example.nl", "role": "parent", "consent": True})
    created = [r for r in records if r.get("message") == "registration created"]
    assert created and created[-1]["meetup_id"] == meetup.id and created[-1]["status"] == "confirmed"
