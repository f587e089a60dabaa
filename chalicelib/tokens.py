"""Signed, unguessable tokens for links in emails (manage a registration, accept a handover,
unsubscribe). HMAC-SHA256 with a secret from the environment locally, from SSM when deployed."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac

from chalicelib.config import get_settings
from chalicelib.errors import NotFound
from chalicelib.messages import LINK_INVALID


@functools.lru_cache(maxsize=1)
def _secret() -> bytes:
    settings = get_settings()
    if settings.signing_secret:
        return settings.signing_secret.encode()
    if settings.signing_secret_parameter:
        from aws_lambda_powertools.utilities import parameters  # lazy: only deployed stages need it
        return parameters.get_parameter(settings.signing_secret_parameter, decrypt=True, max_age=3600).encode()
    if settings.is_local:
        return b"local-development-only-secret"
    raise RuntimeError("No signing secret configured (SIGNING_SECRET or SIGNING_SECRET_PARAMETER)")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(purpose: str, *parts: str) -> str:
    """A token binding `parts` to one purpose; a token for one purpose is useless for another."""
    payload = "|".join(parts).encode()
    mac = hmac.new(_secret(), purpose.encode() + b"\0" + payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(purpose: str, token: str, count: int) -> list[str]:
    """The parts of a valid token; a tampered, foreign or malformed token is 404 (nothing to see)."""
    not_found = NotFound(LINK_INVALID)
    if not token or len(token) > 400 or token.count(".") != 1:
        raise not_found
    payload_text, mac_text = token.split(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, TypeError):
        raise not_found from None
    expected = hmac.new(_secret(), purpose.encode() + b"\0" + payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise not_found
    parts = payload.decode("utf-8", "replace").split("|")
    if len(parts) != count:
        raise not_found
    return parts
