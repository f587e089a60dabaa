"""Signed, unguessable tokens for links in emails (manage a registration, accept a handover,
unsubscribe). HMAC-SHA256 with a secret from the environment locally, from SSM when deployed.

A token is `<key id>.<payload>.<mac>`: the payload holds the link's expiry (Unix seconds) and its
parts; the key id names the secret that signed it, so the secret can be rotated without breaking
links that are still valid. The secret (SIGNING_SECRET, or the SSM parameter) may hold several
secrets separated by spaces or newlines: the first signs, every one verifies. Rotation: put the new
secret first and keep the old one after it until the last link it signed has expired.

Tokens from before (`<payload>.<mac>`: no expiry, no key id) are accepted until
`settings.legacy_links_until`, then refused (410), like an expired one.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

from chalicelib import clock
from chalicelib.config import get_settings
from chalicelib.errors import Gone, NotFound
from chalicelib.messages import LINK_EXPIRED, LINK_INVALID

SECRET_MAX_AGE_SECONDS = 300  # Powertools re-reads the SSM parameter after this: a rotation is seen within minutes
DEFAULT_LIFETIME = timedelta(days=180)
MAX_TOKEN_LENGTH = 400
LOCAL_SECRET = "local-development-only-secret"


def _secret_text() -> str:
    settings = get_settings()
    if settings.signing_secret:
        return settings.signing_secret
    if settings.signing_secret_parameter:
        from aws_lambda_powertools.utilities import parameters  # lazy: only deployed stages need it
        # Powertools caches the value for max_age, then fetches it again (no cache for the container's life).
        return parameters.get_parameter(settings.signing_secret_parameter, decrypt=True,
                                        max_age=SECRET_MAX_AGE_SECONDS)
    if settings.is_local:
        return LOCAL_SECRET
    raise RuntimeError("No signing secret configured (SIGNING_SECRET or SIGNING_SECRET_PARAMETER)")


def key_id(secret: bytes) -> str:
    return hashlib.sha256(b"klassen-key-id\0" + secret).hexdigest()[:8]


def _keys() -> list[tuple[str, bytes]]:
    """[(key id, secret)], the signing key first."""
    secrets_ = [part.encode() for part in _secret_text().replace(",", " ").split()]
    if not secrets_:
        raise RuntimeError("The signing secret is empty")
    return [(key_id(secret), secret) for secret in secrets_]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, purpose: str, kid: str, payload: bytes) -> bytes:
    return hmac.new(secret, purpose.encode() + b"\0" + kid.encode() + b"\0" + payload, hashlib.sha256).digest()


def sign(purpose: str, *parts: str, expires: datetime | None = None) -> str:
    """A token binding `parts` to one purpose until `expires` (default: DEFAULT_LIFETIME from now);
    a token for one purpose is useless for another."""
    expires = expires or clock.now() + DEFAULT_LIFETIME
    kid, secret = _keys()[0]
    payload = "|".join((str(int(expires.timestamp())), *parts)).encode()
    return f"{kid}.{_b64(payload)}.{_b64(_mac(secret, purpose, kid, payload))}"


def verify(purpose: str, token: str, count: int) -> list[str]:
    """The parts of a valid token. A tampered, foreign or malformed token is 404 (nothing to see);
    an expired one (or an old one after the cut-off) 410."""
    not_found = NotFound(LINK_INVALID)
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") not in (1, 2):
        raise not_found
    if token.count(".") == 1:
        return _verify_legacy(purpose, token, count, not_found)
    kid, payload_text, mac_text = token.split(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, TypeError):
        raise not_found from None
    secret = dict(_keys()).get(kid)
    if secret is None or not hmac.compare_digest(mac, _mac(secret, purpose, kid, payload)):
        raise not_found
    expiry, *parts = payload.decode("utf-8", "replace").split("|")
    if len(parts) != count or not expiry.isdigit():
        raise not_found
    if int(expiry) < clock.now().timestamp():
        raise Gone(LINK_EXPIRED, code="link_expired")
    return parts


def _verify_legacy(purpose: str, token: str, count: int, not_found: NotFound) -> list[str]:
    """`<payload>.<mac>`, signed before links carried an expiry and a key id."""
    payload_text, mac_text = token.split(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, TypeError):
        raise not_found from None
    if not any(hmac.compare_digest(mac, hmac.new(secret, purpose.encode() + b"\0" + payload, hashlib.sha256).digest())
               for _, secret in _keys()):
        raise not_found
    parts = payload.decode("utf-8", "replace").split("|")
    if len(parts) != count:
        raise not_found
    if clock.to_storage(clock.now()) > get_settings().legacy_links_until:
        raise Gone(LINK_EXPIRED, code="link_expired")
    return parts


def sign_legacy(purpose: str, *parts: str) -> str:
    """A token as they were made before they carried an expiry (for tests of the cut-off)."""
    payload = "|".join(parts).encode()
    mac = hmac.new(_keys()[0][1], purpose.encode() + b"\0" + payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"
