"""Small field validators that collect every problem, so one 422 names all bad fields, each
with a Dutch and an English message (`chalicelib.messages`)."""
from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any, Iterable

from chalicelib import clock
from chalicelib.errors import ValidationFailed
from chalicelib.messages import Message, problem as message_for

# Times an admin may give: anything outside is a typo, and would not survive rendering
# (years before 1000 are not four digits; Amsterdam before 1937 had an offset of +00:19:32).
EARLIEST_YEAR, LATEST_YEAR = 2020, 2100
# Digits as a form sends them: ASCII only ("²".isdigit() is true, int("²") raises).
_FORM_INTEGER = re.compile(r"-?[0-9]{1,9}")
# An RFC 2047 encoded word: Python's email package decodes these in headers and writes the
# result back unquoted, so a name carrying one could add headers or recipients to a mail.
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bq]\?[^?\s]*\?=", re.IGNORECASE)
# Format characters allowed in text: the zero-width (non-)joiners that some scripts and emoji need.
_JOINERS = {"\u200c", "\u200d"}
_LINE_BREAKS = {"\n", "\r"}
# What a person's name or organisation never holds: links, addresses, markup.
_LINK_LIKE = re.compile(
    r"[a-z][a-z0-9+.-]*://|\bwww\.|@|[<>]|\[url|"
    r"\b[\w-]+(?:\.[\w-]+)*\.(?:nl|com|org|net|eu|info|io|be|de|biz|xyz|ru|co|uk|app|link|site|online|top|"
    r"click|shop|club|me|ly|gl|to|tk|cn)\b",
    re.IGNORECASE)


def text_problem(text: str, *, multiline: bool = False) -> str | None:
    """Why `text` is not plain text we can store, show, mail and export (a problem code of
    `chalicelib.messages`); None when it is.

    Refused: lone surrogates (not Unicode at all), control characters (C0, DEL, C1), line and
    paragraph separators unless `multiline`, format characters (bidi overrides, zero-width
    spaces, ...) other than the joiners, and RFC 2047 encoded words."""
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cs":
            return "not_unicode"
        if ch in _LINE_BREAKS or category in ("Zl", "Zp"):
            if multiline and ch in _LINE_BREAKS:
                continue
            return "line_break"
        if ch == "\t" and multiline:
            continue
        if category == "Cc":
            return "control"
        if category == "Cf" and ch not in _JOINERS:
            return "invisible"
    if _ENCODED_WORD.search(text):
        return "encoded_word"
    if not any(unicodedata.category(ch)[0] in "LNPS" for ch in text):
        return "not_visible"
    return None


def clean_text(raw: str, *, multiline: bool = False) -> tuple[str | None, str | None]:
    """(`raw` normalised to NFC and stripped, None) or (None, the problem code)."""
    problem = text_problem(raw, multiline=multiline)
    if problem:
        return None, problem
    return unicodedata.normalize("NFC", raw).strip(), None


class FormBody(dict):
    """The fields of a form post: every value is text, so numbers come as digit strings."""


class Fields:
    """Reads fields from a parsed body; problems are gathered and raised together by `check()`."""

    def __init__(self, payload: dict, *, allowed: Iterable[str] | None = None):
        if not isinstance(payload, dict):
            raise ValidationFailed({"body": message_for("object", "body")})
        self.payload = payload
        self.form = isinstance(payload, FormBody)
        self.errors: dict[str, Message] = {}
        if allowed is not None:
            for name in set(payload) - set(allowed):
                self.fail(str(name)[:100], "unknown_field")

    def has(self, name: str) -> bool:
        return name in self.payload

    def fail(self, name: str, problem: str | Message, **params) -> None:
        """Note a problem with field `name`: a code of `chalicelib.messages.PROBLEMS` (with its
        parameters) or a ready Message. The first problem of a field is the one reported."""
        if not isinstance(problem, Message):
            problem = message_for(problem, name, **params)
        self.errors.setdefault(name, problem)

    def text(self, name: str, *, required: bool = False, max_length: int = 200,
             multiline: bool = False, person: bool = False, value: Any = None) -> str | None:
        """Plain text (see `text_problem`), NFC-normalised and stripped. `person`: a person's
        or organisation's name, which holds no link, address or markup either."""
        raw = self.payload.get(name) if value is None else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if required:
                self.fail(name, "required")
            return None
        if not isinstance(raw, str):
            self.fail(name, "not_text")
            return None
        if len(raw) > max_length * 4:  # not worth normalising
            self.fail(name, "too_long", maximum=max_length)
            return None
        text, problem = clean_text(raw, multiline=multiline)
        if problem:
            self.fail(name, problem)
            return None
        if len(text) > max_length:
            self.fail(name, "too_long", maximum=max_length)
            return None
        if person and _LINK_LIKE.search(text):
            self.fail(name, "not_a_name")
            return None
        return text

    def choice(self, name: str, options: Iterable[str], *, required: bool = False,
               default: str | None = None) -> str | None:
        raw = self.payload.get(name)
        if raw is None or raw == "":
            if required:
                self.fail(name, "required")
            return default
        options = list(options)
        if raw not in options:
            self.fail(name, "choice", options=", ".join(options))
            return None
        return raw

    def integer(self, name: str, *, required: bool = False, minimum: int = 0,
                maximum: int = 1_000_000) -> int | None:
        raw = self.payload.get(name)
        if raw is None:
            if required:
                self.fail(name, "required")
            return None
        if self.form and isinstance(raw, str) and _FORM_INTEGER.fullmatch(raw.strip()):
            raw = int(raw.strip())  # form posts carry numbers as text; JSON has integers
        if isinstance(raw, bool) or not isinstance(raw, int):
            self.fail(name, "whole_number")
            return None
        if not minimum <= raw <= maximum:
            self.fail(name, "between", minimum=minimum, maximum=maximum)
            return None
        return raw

    def boolean(self, name: str, *, required: bool = False, default: bool = False) -> bool:
        raw = self.payload.get(name)
        if raw is None or raw == "":
            if required:
                self.fail(name, "required")
            return default
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "on", "1", "yes", "ja"):
            return True
        if isinstance(raw, str) and raw.lower() in ("false", "off", "0", "no", "nee"):
            return False
        self.fail(name, "boolean")
        return default

    def moment(self, name: str, *, required: bool = False) -> datetime | None:
        raw = self.payload.get(name)
        if raw is None or raw == "":
            if required:
                self.fail(name, "required")
            return None
        if not isinstance(raw, str):
            self.fail(name, "time")
            return None
        try:
            moment = clock.parse_public(raw)
        except ValueError:
            self.fail(name, "time")
            return None
        # The year as written, before any conversion (which could overflow at the edges).
        if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
            self.fail(name, "year_between", minimum=EARLIEST_YEAR, maximum=LATEST_YEAR)
            return None
        return moment

    def email(self, name: str, *, required: bool = False, value: Any = None) -> str | None:
        text = self.text(name, required=required, max_length=254, value=value)
        if text is None:
            return None
        from email_validator import EmailNotValidError, validate_email  # lazy: not every path needs it
        if any(ord(ch) > 127 for ch in text.partition("@")[0]):
            # The part before the @ needs SMTPUTF8, which SES does not carry: no seat whose
            # confirmation could never be sent.
            self.fail(name, "email_ascii")
            return None
        try:
            return validate_email(text, check_deliverability=False, allow_smtputf8=False).normalized
        except EmailNotValidError:
            self.fail(name, "email")
            return None

    def url(self, name: str, *, required: bool = False) -> str | None:
        text = self.text(name, required=required, max_length=500)
        if text is not None and not text.startswith(("https://", "http://")):
            self.fail(name, "url")
            return None
        return text

    def mapping(self, name: str, *, required: bool = False) -> dict | None:
        raw = self.payload.get(name)
        if raw is None:
            if required:
                self.fail(name, "required")
            return None
        if not isinstance(raw, dict):
            self.fail(name, "object")
            return None
        return raw

    def check(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)
