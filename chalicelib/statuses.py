"""The states an item goes through, one StrEnum per kind of item.

A member is a `str` equal to its value ("confirmed"), so what is stored, compared in a condition
expression, rendered in a template or sent as JSON is the same text as before."""
from __future__ import annotations

from enum import StrEnum


class RegistrationStatus(StrEnum):
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"


class MeetupState(StrEnum):
    """Set by admins."""
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class HandoverStatus(StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    COMPLETED = "completed"


class OutcomeStatus(StrEnum):
    DRAFT = "draft"
    FINAL = "final"


class IdeaStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


ACTIVE = (RegistrationStatus.CONFIRMED, RegistrationStatus.WAITLISTED)  # a registration that holds a place or a turn
