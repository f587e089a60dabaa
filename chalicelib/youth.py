"""The national youth council (12-16 year olds): its ideas, with no personal data.

- Council members reach the idea form with a council code an admin created (not a login); only
  the code's SHA-256 is stored, and a revoked code is refused (403).
- An idea holds only: title, text (at most 1,000 characters), an age band, optionally a province
  and a theme tag, its status and the day it came in. No name, address, IP address, user agent,
  council code or exact time; nothing about the request is logged.
- Ideas wait for an admin: approve, reject, or edit out personal details (the audit records
  which fields were edited, never the removed text). Only approved ideas are shown anywhere.
- Ideas sit in one partition per province (`IDEAS#<province>`, `IDEAS#landelijk` without one):
  no key that the whole country writes to.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata

from pynamodb.exceptions import DoesNotExist

from chalicelib import catalogue, clock
from chalicelib.errors import Conflict, Forbidden, NotFound
from chalicelib.messages import Message
from chalicelib.models import (COUNCIL_CODE_PREFIX, COUNCIL_PARTITION, IDEA_AUDIT_PREFIX, IDEA_PREFIX, IDEAS_PREFIX,
                               CouncilCode, Idea, IdeaAudit)
from chalicelib.statuses import IdeaStatus
from chalicelib.storage import Transaction, TransactionCancelled, conditional, storage_errors
from chalicelib.tags import get_tags
from chalicelib.validation import Fields

AGE_BANDS = ("12-13", "14-15", "16")
NATIONAL = "landelijk"
CODE_PREFIX = "jr-"
IDEA_FIELDS = ("code", "title", "text", "age_band", "province", "tag")
STATUSES = tuple(IdeaStatus)
TEXT_MAX = 1000
_CONTACT = re.compile(r"@|https?://|www\.|(?:\d[\s-]?){8,}")  # an address, a link, a phone number

CODE_REFUSED = Message("Deze jeugdraadcode werkt niet (meer). Vraag een nieuwe code aan je begeleider.",
                       "This youth council code does not work (any more). Ask your supervisor for a new code.")
IDEA_NOT_FOUND = Message("Dit idee bestaat niet.", "This idea does not exist.")
NO_CONTACT = Message("Schrijf geen e-mailadres, telefoonnummer of link in je idee.",
                     "Please do not write an email address, phone number or link in your idea.")


def _slug(province: str | None) -> str:
    if not province:
        return NATIONAL
    return unicodedata.normalize("NFKD", province).encode("ascii", "ignore").decode().lower()


def _partitions() -> list[str]:
    return [IDEAS_PREFIX + _slug(p) for p in catalogue.PROVINCES] + [IDEAS_PREFIX + NATIONAL]


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


# --- council codes -----------------------------------------------------------------------------

def create_code(payload: dict) -> dict:
    f = Fields(payload, allowed=("label",))
    label = f.text("label", max_length=60, person=True)
    f.check()
    code = CODE_PREFIX + secrets.token_urlsafe(12)
    now = clock.now()
    with storage_errors():
        CouncilCode(sk=COUNCIL_CODE_PREFIX + hash_code(code), label=label,
                    created_at=clock.to_storage(now)).save(CouncilCode.sk.does_not_exist())
    return {"code": code, "label": label, "created_at": clock.to_public(now)}


def revoke_code(code: str) -> dict:
    if not code or len(code) > 100:
        raise NotFound(CODE_REFUSED)
    now = clock.now()
    if not conditional(lambda: CouncilCode(sk=COUNCIL_CODE_PREFIX + hash_code(code)).update(
            actions=[CouncilCode.revoked_at.set(clock.to_storage(now))],
            condition=CouncilCode.sk.exists() & CouncilCode.revoked_at.does_not_exist())):
        raise NotFound(CODE_REFUSED)
    return {"revoked": True, "revoked_at": clock.to_public(now)}


def check_code(code) -> None:
    """Raises Forbidden unless `code` is a council code that is not revoked."""
    if not isinstance(code, str) or not code.strip() or len(code) > 100:
        raise Forbidden(CODE_REFUSED, code="code_refused")
    with storage_errors():
        try:
            record = CouncilCode.get(COUNCIL_PARTITION, COUNCIL_CODE_PREFIX + hash_code(code.strip()))
        except DoesNotExist:
            raise Forbidden(CODE_REFUSED, code="code_refused") from None
    if record.revoked_at:
        raise Forbidden(CODE_REFUSED, code="code_refused")


# --- ideas ---------------------------------------------------------------------------------------

def idea_view(idea: Idea) -> dict:
    return {"id": idea.id, "title": idea.title, "text": idea.text, "age_band": idea.age_band,
            "province": idea.province, "tag": idea.tag, "status": idea.status, "submitted_on": idea.submitted_on}


def _read(f: Fields, *, partial: bool = False) -> dict:
    values = {}
    for name, maximum, multiline in (("title", 120, False), ("text", TEXT_MAX, True)):
        if not partial or f.has(name):
            value = f.text(name, required=True, max_length=maximum, multiline=multiline)
            if value is not None and _CONTACT.search(value):
                f.fail(name, NO_CONTACT)
            values[name] = value
    if not partial:
        values["age_band"] = f.choice("age_band", AGE_BANDS, required=True)
        raw_province = f.payload.get("province")
        province = catalogue.normalise_province(raw_province) if raw_province not in (None, "") else None
        if raw_province not in (None, "") and province is None:
            f.fail("province", "choice", options=", ".join(catalogue.PROVINCES))
        values["province"] = province
        values["tag"] = f.choice("tag", get_tags())
    return values


def submit(payload: dict) -> dict:
    """A council member's idea (pending until an admin approves it). The code is checked first:
    without a valid one nothing is read further."""
    check_code(payload.get("code") if isinstance(payload, dict) else None)
    f = Fields(payload, allowed=IDEA_FIELDS)
    values = _read(f)
    f.check()
    slug = _slug(values["province"])
    idea_id = f"{slug}-{secrets.token_hex(6)}"
    idea = Idea(pk=IDEAS_PREFIX + slug, sk=IDEA_PREFIX + idea_id, id=idea_id, status=IdeaStatus.PENDING,
                submitted_on=clock.now().astimezone(clock.AMSTERDAM).date().isoformat(),
                **{k: v for k, v in values.items() if v is not None})
    with storage_errors():
        idea.save(Idea.sk.does_not_exist())
    return idea_view(idea)


def _key(idea_id: str) -> tuple[str, str]:
    slug, _, rest = (idea_id or "").rpartition("-")
    if not slug or not rest or len(idea_id) > 60 or IDEAS_PREFIX + slug not in _partitions():
        raise NotFound(IDEA_NOT_FOUND)
    return IDEAS_PREFIX + slug, IDEA_PREFIX + idea_id


def _load(idea_id: str) -> Idea:
    pk, sk = _key(idea_id)
    with storage_errors():
        try:
            return Idea.get(pk, sk, consistent_read=True)
        except DoesNotExist:
            raise NotFound(IDEA_NOT_FOUND) from None


def _query(partition: str, status: str | None) -> list[Idea]:
    condition = Idea.sk.startswith(IDEA_PREFIX)
    with storage_errors():
        return list(Idea.query(partition, condition, filter_condition=(Idea.status == status) if status else None))


def list_ideas(status: str | None = None) -> list[dict]:
    if status is not None and status not in STATUSES:
        f = Fields({})
        f.fail("status", "choice", options=", ".join(STATUSES))
        f.check()
    return [idea_view(i) for p in _partitions() for i in _query(p, status)]


def approved_ideas(province: str | None = None, *, everywhere: bool = False) -> list[Idea]:
    """Approved ideas: of `province` and the national ones; `everywhere`: all (the bundle)."""
    partitions = _partitions() if everywhere else \
        [IDEAS_PREFIX + _slug(province)] * bool(province) + [IDEAS_PREFIX + NATIONAL]
    return [i for p in partitions for i in _query(p, IdeaStatus.APPROVED)]


def _audit(idea: Idea, actor: str, action: str, fields: list[str] | None = None) -> IdeaAudit:
    now = clock.now()
    return IdeaAudit(pk=idea.pk, sk=f"{IDEA_AUDIT_PREFIX}{idea.id}#{clock.stamp(now)}", at=clock.to_storage(now),
                     actor=actor, action=action, fields=fields)


def decide(idea_id: str, decision: str, actor: str) -> dict:
    """approve | reject (again possible: an admin may change their mind); audited."""
    idea = _load(idea_id)
    status = {"approve": IdeaStatus.APPROVED, "reject": IdeaStatus.REJECTED}[decision]
    tx = Transaction()
    tx.update("idea", idea, [Idea.status.set(status)], condition=Idea.sk.exists())
    tx.put("audit", _audit(idea, actor, status))
    try:
        with storage_errors():
            tx.commit()
    except TransactionCancelled:
        raise Conflict(IDEA_NOT_FOUND, code="changed_meanwhile") from None
    idea.status = status
    return idea_view(idea)


def edit(idea_id: str, payload: dict, actor: str) -> dict:
    """An admin edits out personal details: the audit names the fields, not what was removed."""
    idea = _load(idea_id)
    f = Fields(payload, allowed=("title", "text"))
    values = _read(f, partial=True)
    f.check()
    changed = [k for k, v in values.items() if getattr(idea, k) != v]
    if not changed:
        return idea_view(idea)
    tx = Transaction()
    tx.update("idea", idea, [getattr(Idea, k).set(values[k]) for k in changed], condition=Idea.sk.exists())
    tx.put("audit", _audit(idea, actor, "edited", changed))
    try:
        with storage_errors():
            tx.commit()
    except TransactionCancelled:
        raise Conflict(IDEA_NOT_FOUND, code="changed_meanwhile") from None
    for k in changed:
        setattr(idea, k, values[k])
    return idea_view(idea)


def audit_of(idea_id: str) -> list[dict]:
    pk, _ = _key(idea_id)
    with storage_errors():
        entries = IdeaAudit.query(pk, IdeaAudit.sk.startswith(f"{IDEA_AUDIT_PREFIX}{idea_id}#"))
        return [{"at": clock.to_public(clock.from_storage(e.at)), "actor": e.actor, "action": e.action,
                 "fields": list(e.fields or [])} for e in entries]
