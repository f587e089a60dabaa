"""The service's domain errors: one small hierarchy, mapped to HTTP in one place (`http.error_response`)."""
from __future__ import annotations


class DomainError(Exception):
    """Base of every error the service answers with a JSON error body."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}

    def body(self) -> dict:
        body = {"error": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


class MalformedRequest(DomainError):
    status = 400
    code = "malformed_request"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"


class ValidationFailed(DomainError):
    status = 422
    code = "invalid"

    def __init__(self, fields: dict[str, str], message: str | None = None):
        names = ", ".join(sorted(fields))
        super().__init__(message or f"Invalid fields: {names}", fields=fields)


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


class Conflict(DomainError):
    status = 409
    code = "conflict"


class ServiceUnavailable(DomainError):
    """An AWS dependency failed or throttled; the request can be retried."""

    status = 503
    code = "unavailable"
