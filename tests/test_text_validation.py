"""The one text validator (issue 8), by property: any text it accepts can be stored, shown in
a page, put in a mail header and exported to CSV; what it refuses it refuses for a reason."""
from __future__ import annotations

import csv
import io
import json
import unicodedata
from email import policy
from email.parser import BytesParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import mail, registration, rendering
from chalicelib.validation import _ENCODED_WORD, Fields, clean_text
from tests.factories import make_meetup
from tests.mailfixtures import registration_context

# Every code point, surrogates and control characters included, and the tricky ones often.
ANY_CHAR = st.characters(exclude_categories=())
TRICKY = st.sampled_from(["\u200b", "\u202e", "\u0085", "\r", "\n", "\t", "\x00", "\ud800", "=?", "?=", "<", "@",
                          "\u2028", "\ufeff", "e\u0301", "\u200d", " ", "=?utf-8?q?x=0D=0A?="])
TEXTS = st.lists(st.one_of(ANY_CHAR, TRICKY), max_size=40).map("".join)


def accepted(raw: str) -> str | None:
    text, problem = clean_text(raw)
    return text if problem is None and text else None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(TEXTS)
def test_accepted_text_is_valid_nfc_unicode_without_controls(raw):
    text, problem = clean_text(raw)
    if problem is not None:
        assert text is None and isinstance(problem, str)
        return
    assert text == unicodedata.normalize("NFC", text)
    text.encode("utf-8")  # no lone surrogates
    json.dumps(text, ensure_ascii=False).encode("utf-8")
    assert not any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in text)
    assert not _ENCODED_WORD.search(text)


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_accepted_text_renders_escaped_in_a_page(raw):
    text = accepted(raw)
    if text is None:
        return
    page = rendering.environment().from_string("<p title=\"{{ v }}\">{{ v }}</p>").render(v=text)
    page.encode("utf-8")
    assert page.count("<") == 2 and page.count(">") == 2  # nothing of the text became markup


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_accepted_text_cannot_change_a_mail_s_headers(raw):
    text = accepted(raw)
    if text is None:
        return
    message = mail.compose("registration_confirmed", "nl", "anna@example.nl",
                           registration_context(name=text, meetup={"title": text}))
    raw_bytes = message.as_bytes(policy=mail.OUTGOING_POLICY)
    parsed = BytesParser(policy=policy.default).parsebytes(raw_bytes)
    assert [name.lower() for name in parsed.keys()] == [name.lower() for name in message.keys()]
    assert [a.addr_spec for a in parsed["To"].addresses] == ["anna@example.nl"]
    assert " ".join(text.split()) in str(parsed["Subject"])


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_accepted_text_survives_csv_export(raw):
    text = accepted(raw)
    if text is None:
        return
    exported = registration.to_csv([{"name": text, "email": "a@example.nl", "status": "confirmed"}])
    rows = list(csv.DictReader(io.StringIO(exported.lstrip("\ufeff")), delimiter=";"))
    assert len(rows) == 1
    cell = next(value for key, value in rows[0].items() if key and key.lower() in ("name", "naam"))
    assert cell in (text, "'" + text)
    assert not cell[:1] in ("=", "+", "-", "@")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(TEXTS)
def test_accepted_text_is_stored_and_read_back_as_given(raw):
    text = accepted(raw)
    if text is None or len(text) > 200:
        return
    meetup = make_meetup(title=text)
    from chalicelib.models import Meetup
    assert Meetup.get(meetup.id, consistent_read=True).title == text


def test_fields_names_the_field_and_the_problem():
    fields = Fields({"name": "\u200b", "organisation": "=?utf-8?b?QQ==?=", "city": "x\u202ey"})
    fields.text("name", required=True)
    fields.text("organisation")
    fields.text("city")
    assert set(fields.errors) == {"name", "organisation", "city"}
