"""Composing emails and the three mail backends (file, a real SMTP server, SES through Stubber)."""
from __future__ import annotations

from datetime import datetime
from email import policy
from email.parser import BytesParser

import pytest

from chalicelib import clock, mail
from tests.mailfixtures import *  # noqa: F401,F403
from tests.mailfixtures import registration_context

RECIPIENT = "anna@example.nl"


def _parts(message):
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text, html


def _invitation(message):
    from icalendar import Calendar
    attachments = [part for part in message.iter_attachments() if part.get_content_type() == "text/calendar"]
    assert len(attachments) <= 1
    if not attachments:
        return None, None
    part = attachments[0]
    return part, Calendar.from_ical(part.get_payload(decode=True))


def _roundtrip(message):
    """What a mail client sees: the message as bytes, parsed again."""
    return BytesParser(policy=policy.default).parsebytes(message.as_bytes())


# --- compose ------------------------------------------------------------------------------------

# The organisers' digest and the outcomes link have contexts of their own (test_digest.py, test_outcomes.py).
WITH_REGISTRATION_CONTEXT = [t for t in mail.TEMPLATES if t not in ("organiser_digest", "outcomes_link")]  # own contexts


@pytest.mark.parametrize("template", WITH_REGISTRATION_CONTEXT)
@pytest.mark.parametrize("language", ["nl", "en"])
def test_every_email_has_text_and_html_in_the_recipients_language(template, language):
    context = registration_context(waitlist_position=2 if template == "registration_waitlisted" else None)
    if template == "table_list":  # to a moderator: their table and its people (no addresses)
        context |= {"table": {"name": "Schooladvies", "capacity": 8},
                    "people": [{"name": "Anna de Vries", "role": "Docent", "organisation": "OBS De Klimop"}]}
    message = _roundtrip(mail.compose(template, language, RECIPIENT, context))

    text, html = _parts(message)
    assert message.get_content_type() in ("multipart/alternative", "multipart/mixed")
    assert text.strip() and "<html" in html
    assert message["To"].addresses[0].addr_spec == RECIPIENT
    assert message["From"].addresses[0].addr_spec == "meetups@klassen.example.nl"
    assert message["Message-ID"] and message["Date"]
    assert message["Content-Language"] == language
    assert "Klassen Meetup Lelystad" in message["Subject"]
    if template.startswith("handover_"):  # to a host: addressed to its contact person
        greeting = ("Beste gastheer of gastvrouw namens Anna de Vries," if language == "nl"
                    else "Dear host at Anna de Vries,")
    else:
        greeting = "Hoi Anna de Vries," if language == "nl" else "Hi Anna de Vries,"
    assert greeting in text and greeting in html
    date = "maandag 12 april 2027 om 19:30" if language == "nl" else "Monday 12 April 2027 at 19:30"
    assert date in text and date in html


def test_dutch_is_the_default_and_english_is_english():
    context = registration_context()
    dutch = mail.compose("registration_confirmed", "fr", RECIPIENT, context)
    english = mail.compose("registration_confirmed", "en", RECIPIENT, context)
    assert dutch["Subject"] == "Je plek is bevestigd: Klassen Meetup Lelystad"
    assert english["Subject"] == "Your place is confirmed: Klassen Meetup Lelystad"
    dutch_text, _ = _parts(dutch)
    english_text, _ = _parts(english)
    assert "Wanneer: maandag 12 april 2027 om 19:30 tot 21:30" in dutch_text
    assert "When:  Monday 12 April 2027 at 19:30 to 21:30" in english_text
    assert context["manage_url"] in dutch_text and context["manage_url"] in english_text


def test_dutch_date_in_winter_time_too():
    context = registration_context(meetup={"starts_at": "2027-01-05T18:00:00Z", "ends_at": "2027-01-05T20:00:00Z"})
    text, _ = _parts(mail.compose("registration_confirmed", "nl", RECIPIENT, context))
    assert "dinsdag 5 januari 2027 om 19:00 tot 21:00" in text


def test_html_is_escaped_and_text_is_not():
    context = registration_context(name="<b>x</b> & co", manage_url="http://testserver/r/1?a=1&b=2")
    text, html = _parts(mail.compose("registration_confirmed", "nl", RECIPIENT, context))
    assert "Hoi <b>x</b> & co," in text
    assert "&lt;b&gt;x&lt;/b&gt; &amp; co" in html and "<b>x</b>" not in html
    assert "http://testserver/r/1?a=1&b=2" in text
    assert 'href="http://testserver/r/1?a=1&amp;b=2"' in html


def test_a_name_with_line_breaks_cannot_inject_headers():
    context = registration_context(name="Anna\r\nBcc: victim@example.com\nX-Evil: 1")
    message = _roundtrip(mail.compose("registration_waitlisted", "nl", RECIPIENT + "\r\n", context))
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert [a.addr_spec for a in message["To"].addresses] == [RECIPIENT]
    assert "\n" not in str(message["To"])


@pytest.mark.parametrize("template", ["registration_confirmed", "registration_promoted"])
def test_confirmed_and_promoted_carry_a_calendar_invitation(template):
    context = registration_context(status="confirmed")
    message = _roundtrip(mail.compose(template, "nl", RECIPIENT, context))
    part, calendar = _invitation(message)
    assert part is not None
    assert part.get_content_type() == "text/calendar"
    assert part.get_param("method") == "REQUEST"
    assert part.get_filename().endswith(".ics")
    assert calendar["METHOD"] == "REQUEST"

    events = list(calendar.walk("VEVENT"))
    assert len(events) == 1
    event = events[0]
    assert str(event["UID"]) == "reg-123@klassen-meetups"
    assert str(event["SUMMARY"]) == "Klassen Meetup Lelystad"
    assert event["DTSTART"].params["TZID"] == "Europe/Amsterdam"
    assert event["DTEND"].params["TZID"] == "Europe/Amsterdam"
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert start.replace(tzinfo=None) == datetime(2027, 4, 12, 19, 30)
    assert start == clock.from_storage("2027-04-12T17:30:00Z")
    assert end == clock.from_storage("2027-04-12T19:30:00Z")
    assert "DTSTART;TZID=Europe/Amsterdam:20270412T193000" in calendar.to_ical().decode()
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/Amsterdam"]
    assert str(event["LOCATION"]) == "Online http://testserver/join/k1.cmVnLTEyMw.bWFj"  # the personal link
    assert int(event["SEQUENCE"]) == 0 and str(event["STATUS"]) == "CONFIRMED"
    assert context["manage_url"] in str(event["DESCRIPTION"])
    assert str(event["URL"]) == context["meetup"]["url"]


@pytest.mark.parametrize("template", ["registration_waitlisted", "registration_cancelled", "meetup_cancelled"])
def test_waiting_people_get_no_calendar(template):
    waiting = registration_context(status="waitlisted", waitlist_position=1)
    message = mail.compose(template, "nl", RECIPIENT, waiting)
    assert _invitation(message) == (None, None)
    assert message.get_content_type() == "multipart/alternative"


@pytest.mark.parametrize("template", ["registration_cancelled", "meetup_cancelled"])
def test_a_confirmed_place_s_cancellation_takes_the_invitation_back(template):
    context = registration_context(status="confirmed", meetup={"sequence": 2})
    part, calendar = _invitation(_roundtrip(mail.compose(template, "nl", RECIPIENT, context)))
    assert part.get_param("method") == "CANCEL" and calendar["METHOD"] == "CANCEL"
    event = next(iter(calendar.walk("VEVENT")))
    assert str(event["UID"]) == "reg-123@klassen-meetups"  # the invitation's own UID
    assert str(event["STATUS"]) == "CANCELLED" and int(event["SEQUENCE"]) == 3


def test_join_link_only_for_a_confirmed_place_at_an_online_meetup():
    join = "http://testserver/join/k1.cmVnLTEyMw.bWFj"
    text, html = _parts(mail.compose("registration_confirmed", "nl", RECIPIENT, registration_context()))
    assert f"Deelnemen: {join}" in text and f'href="{join}"' in html

    waiting = registration_context(status="waitlisted", waitlist_position=4)
    text, html = _parts(mail.compose("registration_waitlisted", "nl", RECIPIENT, waiting))
    assert join not in text and join not in html

    in_person = registration_context(meetup={"mode": "in_person", "venue": "Agora"}, join_link=None)
    message = mail.compose("registration_confirmed", "en", RECIPIENT, in_person)
    text, html = _parts(message)
    assert join not in text and join not in html
    assert "Where: Agora, Lelystad" in text
    _, calendar = _invitation(message)
    event = next(iter(calendar.walk("VEVENT")))
    assert str(event["LOCATION"]) == "Agora, Lelystad"
    assert join not in calendar.to_ical().decode()


def test_waitlist_position_and_cancellation_texts():
    text, html = _parts(mail.compose("registration_waitlisted", "nl", RECIPIENT,
                                     registration_context(status="waitlisted", waitlist_position=3)))
    assert "nummer 3 van de wachtlijst" in text and "nummer <strong>3</strong> van de wachtlijst" in html
    text, _ = _parts(mail.compose("registration_waitlisted", "en", RECIPIENT,
                                  registration_context(status="waitlisted", waitlist_position=1)))
    assert "You are next in line" in text
    text, html = _parts(mail.compose("registration_cancelled", "nl", RECIPIENT,
                                     registration_context(status="cancelled")))
    assert "geannuleerd" in text and "http://testserver/meetups/m-lelystad" in text
    assert 'href="http://testserver/meetups/m-lelystad"' in html


def test_unknown_template_is_refused():
    with pytest.raises(ValueError):
        mail.compose("nope", "nl", RECIPIENT, registration_context())


def test_text_templates_are_not_autoescaped():
    from chalicelib import rendering
    env = rendering.environment()
    assert env.get_template("email/registration_confirmed.txt").environment.autoescape("email/x.txt") is False
    assert env.autoescape("email/x.html") is True


# --- backends -----------------------------------------------------------------------------------

def test_file_backend_writes_parseable_eml_files_in_order(tmp_path):
    backend = mail.FileBackend(tmp_path / "mail")
    first = mail.compose("registration_confirmed", "nl", RECIPIENT, registration_context(), message_id="first")
    second = mail.compose("registration_cancelled", "en", RECIPIENT, registration_context(), message_id="second")
    backend.send(first)
    backend.send(second)

    files = sorted((tmp_path / "mail").iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]
    assert files[0].name.endswith("-first.eml") and files[1].name.endswith("-second.eml")
    read = mail.read_mail_dir(tmp_path / "mail")
    assert [m["Message-ID"] for m in read] == ["<first@klassen.example.nl>", "<second@klassen.example.nl>"]
    assert read[0]["Subject"] == first["Subject"]
    assert _parts(read[0])[0] == _parts(first)[0]


def test_file_backend_failure_is_a_delivery_failure(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(mail.MailDeliveryFailed) as info:
        mail.FileBackend(blocker).send(mail.compose("registration_cancelled", "nl", RECIPIENT, registration_context()))
    assert info.value.throttled is False


def test_configured_backend_is_the_file_backend_and_reused():
    from chalicelib.config import get_settings
    backend = mail.backend()
    assert isinstance(backend, mail.FileBackend)
    assert backend.directory == get_settings().mail_dir
    assert mail.backend() is backend


def test_smtp_backend_delivers_to_a_real_server(smtp_server):
    host, port, collector = smtp_server
    message = mail.compose("registration_promoted", "en", RECIPIENT, registration_context(), message_id="smtp1")
    mail.SmtpBackend(host, port).send(message)

    received = collector.messages()
    assert len(received) == 1
    assert collector.envelopes[0].rcpt_tos == [RECIPIENT]
    assert received[0]["Message-ID"] == "<smtp1@klassen.example.nl>"
    assert received[0]["Subject"] == message["Subject"]
    assert "Monday 12 April 2027 at 19:30" in _parts(received[0])[0]
    part, calendar = _invitation(received[0])
    assert str(next(iter(calendar.walk("VEVENT")))["UID"]) == "reg-123@klassen-meetups"


def test_smtp_backend_unreachable_is_a_delivery_failure(closed_port):
    message = mail.compose("registration_cancelled", "nl", RECIPIENT, registration_context())
    with pytest.raises(mail.MailDeliveryFailed) as info:
        mail.SmtpBackend("127.0.0.1", closed_port, timeout=2).send(message)
    assert info.value.throttled is False
    assert isinstance(info.value.__cause__, OSError)


def _ses():
    import boto3
    from botocore.stub import Stubber
    client = boto3.client("ses", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_ses_backend_sends_the_raw_message():
    from botocore.stub import ANY
    client, stubber = _ses()
    message = mail.compose("registration_confirmed", "nl", RECIPIENT, registration_context())
    stubber.add_response("send_raw_email", {"MessageId": "ses-1"},
                         {"Source": "meetups@klassen.example.nl", "Destinations": [RECIPIENT],
                          "RawMessage": {"Data": ANY}})
    with stubber:
        mail.SesBackend(client=client).send(message)
    stubber.assert_no_pending_responses()


def test_ses_raw_message_is_the_composed_email():
    client, stubber = _ses()
    message = mail.compose("registration_confirmed", "nl", RECIPIENT, registration_context(), message_id="ses2")
    stubber.add_response("send_raw_email", {"MessageId": "ses-2"},
                         {"Source": "meetups@klassen.example.nl", "Destinations": [RECIPIENT],
                          "RawMessage": {"Data": message.as_bytes(policy=mail.OUTGOING_POLICY)}})
    with stubber:
        mail.SesBackend(client=client).send(message)
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("code, text, throttled", [
    ("Throttling", "Maximum sending rate exceeded.", True),
    ("Throttling", "Daily message quota exceeded.", True),
    ("MessageRejected", "Email address is not verified.", False),
])
def test_ses_errors_become_delivery_failures(code, text, throttled):
    client, stubber = _ses()
    stubber.add_client_error("send_raw_email", service_error_code=code, service_message=text, http_status_code=400)
    with stubber, pytest.raises(mail.MailDeliveryFailed) as info:
        mail.SesBackend(client=client).send(mail.compose("registration_cancelled", "nl", RECIPIENT, registration_context()))
    assert info.value.throttled is throttled
    assert code in str(info.value)


def test_links_queued_as_paths_are_written_whole_with_the_configured_base():
    """The outbox keeps links as paths (its items stay under 1 KB); the email has them whole."""
    from chalicelib.config import get_settings
    base = get_settings().public_base_url
    context = registration_context(manage_url="/registrations/tok.en", join_link="/join/tok.en",
                                   meetup={"url": "/meetups/m-lelystad", "tour_url": "/meetups"})
    text, html = _parts(mail.compose("registration_confirmed", "nl", RECIPIENT, context))
    assert f"{base}/registrations/tok.en" in text and f"{base}/registrations/tok.en" in html
    whole = mail.absolute_links({"url": "//elders.example/x", "manage_url": "https://a.example/b", "name": "/naam",
                                 "items": [{"join_link": "/join/1"}]})
    assert whole == {"url": "//elders.example/x", "manage_url": "https://a.example/b", "name": "/naam",
                     "items": [{"join_link": f"{base}/join/1"}]}


def test_a_sign_ups_queued_mail_fits_in_one_kilobyte(empty_tables):
    """A transactional write costs 2 units per started KB: the confirmation must stay under 1 KB
    for a long title, a long name and a place, measured as DynamoDB sizes an item."""
    import json as _json

    from chalicelib import registration
    from tests.factories import make_meetup
    meetup = make_meetup(capacity=5, title="Klassen meetup Gelderland: gelijke kansen voor elk kind in de klas",
                         city="Lelystad", venue="Cultuurhuis De Meerpaal")
    outcome = registration.sign_up(meetup.id, {"name": "Anne-Marie van den Berg-Oudshoorn",
                                               "email": "anne-marie@example.nl", "role": "teacher", "consent": True})
    # As the sign-up's transaction put it (the inline delivery has since removed its content).
    item = registration.compose_mail("registration_confirmed", meetup, outcome.registration).serialize()
    size = sum(len(name.encode()) + len(next(iter(value.values())).encode()) for name, value in item.items()
               if "S" in value) + sum(len(name.encode()) + 3 for name, value in item.items() if "N" in value)
    assert size < 1024, size
    assert "http" not in item["context"]["S"] and _json.loads(item["context"]["S"])["manage_url"].startswith("/")
