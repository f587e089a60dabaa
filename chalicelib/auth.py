"""Admin bearer tokens: only their SHA-256 is stored; a local stage also accepts ADMIN_TOKEN.

Checked inside the route rather than by an API Gateway authorizer, so that a revoked token
stops working at once (no authorizer cache) and a 401 has the same JSON body everywhere."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock
from chalicelib.config import get_settings
from chalicelib.errors import Unauthorized
from chalicelib.messages import ADMIN_TOKEN_NEEDED
from chalicelib.models import AdminToken
from chalicelib.observability import logger
from chalicelib.storage import storage_errors

TOKEN_PREFIX = "kma_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(headers) -> str | None:
    value = (headers or {}).get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(headers) -> str:
    """Returns the admin's name, or raises Unauthorized."""
    token = bearer_token(headers)
    if not token or len(token) > 200:
        raise Unauthorized(ADMIN_TOKEN_NEEDED)
    settings = get_settings()
    if settings.admin_token and hmac.compare_digest(token.encode(), settings.admin_token.encode()):
        return "local-admin"
    with storage_errors():
        try:
            record = AdminToken.get(hash_token(token))
        except DoesNotExist:
            raise Unauthorized(ADMIN_TOKEN_NEEDED) from None
    return record.name


def verify_token(token: str) -> tuple[str, str]:
    """(the admin's name, the token's hash) for a valid admin token, or Unauthorized: the same
    check as the bearer header (the admin console's sign-in)."""
    name = authenticate({"authorization": f"Bearer {token}"})
    return name, hash_token(token.strip())


def name_of_hash(token_hash: str) -> str:
    """The admin whose token has this hash, or Unauthorized (revoked, or never issued): the
    console checks its session against this on every request, so a revoked token ends it."""
    settings = get_settings()
    if settings.admin_token and hmac.compare_digest(token_hash.encode(), hash_token(settings.admin_token).encode()):
        return "local-admin"
    if not token_hash or len(token_hash) != 64:
        raise Unauthorized(ADMIN_TOKEN_NEEDED)
    with storage_errors():
        try:
            return AdminToken.get(token_hash, consistent_read=True).name
        except DoesNotExist:
            raise Unauthorized(ADMIN_TOKEN_NEEDED) from None


def create_token(name: str) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with storage_errors():
        AdminToken(token_hash=hash_token(token), name=name,
                   created_at=clock.to_storage(clock.now())).save(AdminToken.token_hash.does_not_exist())
    logger.info("admin token created", extra={"admin": name})
    return token


def revoke_token(token: str) -> bool:
    with storage_errors():
        try:
            AdminToken.get(hash_token(token)).delete()
        except DoesNotExist:
            return False
    logger.info("admin token revoked")
    return True

