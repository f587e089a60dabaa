"""How an email address is looked up and audited without being stored again: its hash. A leaf
module, below everything that finds or forgets people by address."""
from __future__ import annotations

import hashlib


def address_hash(email: str) -> str:
    """The SHA-256 of the normalised (trimmed, lower-cased) address."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()
