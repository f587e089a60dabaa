"""Mail reputation: addresses that must get no more mail.

Deployed, SES sends through the stack's configuration set, which publishes bounce and complaint
events to the mail-events SNS topic; `handle_mail_events` in app.py hands each one to
`record_notification`. A permanent (hard) bounce or a complaint suppresses the address: a record
keyed by the SHA-256 of the lower-cased address (never the address itself) in the `suppressions`
table. The outbox checks it before sending (a suppressed message is marked `suppressed`, not
sent), and the admin registration listing shows it. A transient bounce (mailbox full, ...)
suppresses nothing. The sign-up answer never changes: a stranger learns nothing about an address.
"""
from __future__ import annotations

import hashlib
import json
from typing import Iterable

from chalicelib import clock
from chalicelib.models import Suppression
from chalicelib.observability import logger
from chalicelib.storage import storage_errors

HARD_BOUNCE = "Permanent"


def normalise(address: str) -> str:
    return (address or "").strip().lower()


def address_key(address: str) -> str:
    return hashlib.sha256(normalise(address).encode("utf-8")).hexdigest()


def suppress(address: str, reason: str, detail: str | None = None) -> None:
    """Record (or count again) a suppression; idempotent, never stores the address."""
    key = address_key(address)
    record = Suppression(address_hash=key)
    with storage_errors():
        record.update(actions=[
            Suppression.reason.set(reason),
            Suppression.detail.set((detail or "")[:100] or None),
            Suppression.suppressed_at.set(Suppression.suppressed_at | clock.stamp()),
            Suppression.events.add(1),
        ])
    logger.info("address suppressed", extra={"address_hash": key[:12], "reason": reason, "detail": detail})


def suppressed_keys(addresses: Iterable[str]) -> set[str]:
    """The address keys among `addresses` that are suppressed (one BatchGetItem per 100)."""
    keys = sorted({address_key(a) for a in addresses if a})
    if not keys:
        return set()
    with storage_errors():
        return {item.address_hash for item in Suppression.batch_get(keys, attributes_to_get=["address_hash"])}


def is_suppressed(address: str) -> bool:
    return address_key(address) in suppressed_keys([address])


def suppressed_among(addresses: Iterable[str]) -> set[str]:
    """The addresses (as given) that are suppressed. On a storage failure: none (mail is
    retried anyway; a failed check must not stop delivery)."""
    addresses = list(addresses)
    try:
        found = suppressed_keys(addresses)
    except Exception:  # noqa: BLE001 - ServiceUnavailable or anything the store raises
        logger.warning("suppression check failed; sending as usual")
        return set()
    return {a for a in addresses if address_key(a) in found}


def flag(rows: list[dict], field: str = "email") -> list[dict]:
    """Adds `suppressed` (true/false) to each row of the admin listing."""
    found = suppressed_keys(row.get(field) or "" for row in rows)
    for row in rows:
        row["suppressed"] = address_key(row.get(field) or "") in found if row.get(field) else False
    return rows


# --- SES notifications (through SNS) -------------------------------------------------------------

def _recipients(entries) -> list[str]:
    return [entry.get("emailAddress") for entry in entries or [] if isinstance(entry, dict)
            and isinstance(entry.get("emailAddress"), str)]


def record_notification(message: str | dict) -> dict[str, int]:
    """One SES event (a configuration set's `eventType`, or an identity notification's
    `notificationType`): suppresses the addresses of a permanent bounce or a complaint.
    Returns counts for the log; anything else (deliveries, transient bounces, junk) is ignored."""
    try:
        event = json.loads(message) if isinstance(message, str) else dict(message)
    except (ValueError, TypeError):
        logger.warning("mail event is not JSON; ignored")
        return {"suppressed": 0, "ignored": 1}
    if not isinstance(event, dict):
        return {"suppressed": 0, "ignored": 1}
    kind = event.get("eventType") or event.get("notificationType")
    addresses, reason, detail = [], None, None
    if kind == "Bounce":
        bounce = event.get("bounce") or {}
        if bounce.get("bounceType") == HARD_BOUNCE:
            addresses, reason, detail = _recipients(bounce.get("bouncedRecipients")), "bounce", \
                bounce.get("bounceSubType")
    elif kind == "Complaint":
        complaint = event.get("complaint") or {}
        addresses, reason, detail = _recipients(complaint.get("complainedRecipients")), "complaint", \
            complaint.get("complaintFeedbackType")
    for address in addresses:
        suppress(address, reason, detail)
    if not addresses:
        logger.info("mail event needs no suppression", extra={"event_type": kind})
    return {"suppressed": len(addresses), "ignored": 0 if addresses else 1}


def handle_sns_records(records: Iterable) -> dict[str, int]:
    """The mail-events topic's Lambda event (Chalice SNSEvent objects or raw SNS records)."""
    total = {"suppressed": 0, "ignored": 0}
    for record in records:
        message = getattr(record, "message", None)
        if message is None and isinstance(record, dict):
            message = (record.get("Sns") or {}).get("Message")
        counts = record_notification(message or "")  # a storage failure raises: SNS delivers again
        for key, value in counts.items():
            total[key] += value
    return total
