"""Small field validators that collect every problem, so one 422 names all bad fields."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from chalicelib import clock
from chalicelib.errors import ValidationFailed

_CONTROL = {chr(c) for c in range(32) if c not in (9,)} | {"\x7f"}


class Fields:
    """Reads fields from a parsed body; problems are gathered and raised together by `check()`."""

    def __init__(self, payload: dict, *, allowed: Iterable[str] | None = None):
        if not isinstance(payload, dict):
            raise ValidationFailed({"body": "must be a JSON object"})
        self.payload = payload
        self.errors: dict[str, str] = {}
        if allowed is not None:
            for name in set(payload) - set(allowed):
                self.errors[str(name)[:100]] = "unknown field"

    def has(self, name: str) -> bool:
        return name in self.payload

    def fail(self, name: str, problem: str) -> None:
        self.errors.setdefault(name, problem)

    def text(self, name: str, *, required: bool = False, max_length: int = 200,
             multiline: bool = False, value: Any = None) -> str | None:
        raw = self.payload.get(name) if value is None else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if required:
                self.fail(name, "is required")
            return None
        if not isinstance(raw, str):
            self.fail(name, "must be a string")
            return None
        text = raw.strip()
        if len(text) > max_length:
            self.fail(name, f"must be at most {max_length} characters")
            return None
        forbidden = _CONTROL - ({"\n", "\r"} if multiline else set())
        if any(ch in forbidden for ch in text):
            self.fail(name, "must not contain line breaks or control characters")
            return None
        return text

    def choice(self, name: str, options: Iterable[str], *, required: bool = False,
               default: str | None = None) -> str | None:
        raw = self.payload.get(name)
        if raw is None or raw == "":
            if required:
                self.fail(name, "is required")
            return default
        options = list(options)
        if raw not in options:
            self.fail(name, "must be one of: " + ", ".join(options))
            return None
        return raw

    def integer(self, name: str, *, required: bool = False, minimum: int = 0,
                maximum: int = 1_000_000) -> int | None:
        raw = self.payload.get(name)
        if raw is None:
            if required:
                self.fail(name, "is required")
            return None
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            raw = int(raw.strip())  # form posts carry numbers as text
        if isinstance(raw, bool) or not isinstance(raw, int):
            self.fail(name, "must be a whole number")
            return None
        if not minimum <= raw <= maximum:
            self.fail(name, f"must be between {minimum} and {maximum}")
            return None
        return raw

    def boolean(self, name: str, *, required: bool = False, default: bool = False) -> bool:
        raw = self.payload.get(name)
        if raw is None or raw == "":
            if required:
                self.fail(name, "is required")
            return default
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "on", "1", "yes", "ja"):
            return True
        if isinstance(raw, str) and raw.lower() in ("false", "off", "0", "no", "nee"):
            return False
        self.fail(name, "must be true or false")
        return default

    def moment(self, name: str, *, required: bool = False) -> datetime | None:
        raw = self.payload.get(name)
        if raw is None or raw == "":
            if required:
                self.fail(name, "is required")
            return None
        if not isinstance(raw, str):
            self.fail(name, "must be an ISO 8601 time")
            return None
        try:
            return clock.parse_public(raw)
        except ValueError:
            self.fail(name, "must be an ISO 8601 time, like 2027-04-12T19:30:00+02:00")
            return None

    def email(self, name: str, *, required: bool = False, value: Any = None) -> str | None:
        text = self.text(name, required=required, max_length=254, value=value)
        if text is None:
            return None
        from email_validator import EmailNotValidError, validate_email  # lazy: not every path needs it
        try:
            return validate_email(text, check_deliverability=False).normalized
        except EmailNotValidError:
            self.fail(name, "must be a valid email address")
            return None

    def url(self, name: str, *, required: bool = False) -> str | None:
        text = self.text(name, required=required, max_length=500)
        if text is not None and not text.startswith(("https://", "http://")):
            self.fail(name, "must be an http(s) URL")
            return None
        return text

    def mapping(self, name: str, *, required: bool = False) -> dict | None:
        raw = self.payload.get(name)
        if raw is None:
            if required:
                self.fail(name, "is required")
            return None
        if not isinstance(raw, dict):
            self.fail(name, "must be an object")
            return None
        return raw

    def check(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)
