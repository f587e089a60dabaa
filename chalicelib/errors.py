"""The service's domain errors: one small hierarchy, mapped to HTTP in one place (`http.error_response`).
Messages are `chalicelib.messages.Message` pairs (Dutch, English) where people read them."""
from __future__ import annotations

from chalicelib.messages import Message, invalid_fields, text


class DomainError(Exception):
    """Base of every error the service answers with a JSON error body."""

    status = 400
    code = "bad_request"

    def __init__(self, message: Message | str, *, code: str | None = None,
                 fields: dict[str, Message | str] | None = None):
        super().__init__(str(message))
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}

    def body(self, lang: str = "nl") -> dict:
        """The contract's error body, its texts in `lang` (Dutch unless asked otherwise)."""
        body = {"error": self.code, "message": text(self.message, lang)}
        if self.fields:
            body["fields"] = self.field_messages(lang)
        return body

    def field_messages(self, lang: str = "nl") -> dict[str, str]:
        return {name: text(problem, lang) for name, problem in self.fields.items()}


class MalformedRequest(DomainError):
    status = 400
    code = "malformed_request"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"


class ValidationFailed(DomainError):
    status = 422
    code = "invalid"

    def __init__(self, fields: dict[str, Message | str], message: Message | str | None = None):
        super().__init__(message or invalid_fields(fields), fields=fields)


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Gone(DomainError):
    """A link that was valid has expired."""

    status = 410
    code = "gone"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    """Refused whoever asks: e.g. an admin console form without its CSRF token."""

    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class ServiceUnavailable(DomainError):
    """An AWS dependency failed or throttled; the request can be retried."""

    status = 503
    code = "unavailable"
