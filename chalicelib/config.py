"""Typed settings, read once from the environment."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    stage: str
    table_prefix: str
    region: str
    dynamodb_endpoint: str | None
    admin_token: str | None
    mail_backend: str
    mail_delivery: str  # inline | background | stream: who sends what a request queued
    mail_dir: Path
    mail_from: str
    smtp_host: str
    smtp_port: int
    public_base_url: str
    signing_secret: str | None
    signing_secret_parameter: str | None
    ses_configuration_set: str | None = None  # bounce and complaint events (deployed: from the stack)

    @property
    def is_local(self) -> bool:
        return self.stage == "local"

    def table_name(self, suffix: str) -> str:
        return f"{self.table_prefix}{suffix}"


def _public_base_url(env: os._Environ | dict, stage: str) -> str:
    """The base of the links in emails. Only a local stage has a default: deployed, a missing value
    would put links to 127.0.0.1 in every email, so reading the settings fails instead (at cold
    start: chalicelib.models reads them on import)."""
    url = (env.get("PUBLIC_BASE_URL") or "").strip().rstrip("/")
    if url:
        return url
    if stage == "local":
        return f"http://127.0.0.1:{env.get('PORT', '8000')}"
    raise RuntimeError(
        f"PUBLIC_BASE_URL is not set (STAGE={stage}): it is the base of the links in emails, without a "
        "trailing slash, e.g. https://meetups.klassen.example.nl. Only STAGE=local has a default. In the "
        "packaged stack it comes from the template parameter PublicBaseUrl: deploy with PublicBaseUrl set "
        "(docs/README-packaging.md).")


# Without STAGE the settings are a deployed stage's: the safe side (no ADMIN_TOKEN from the
# environment, no default PUBLIC_BASE_URL). `make run`, the tests and the benchmarks say STAGE=local.
DEFAULT_STAGE = "prod"


def _from_environment(env: os._Environ | dict) -> Settings:
    stage = (env.get("STAGE") or "").strip() or DEFAULT_STAGE
    return Settings(
        stage=stage,
        table_prefix=env.get("TABLE_PREFIX", "klassen-"),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "eu-west-1",
        dynamodb_endpoint=env.get("AWS_ENDPOINT_URL_DYNAMODB") or None,
        # Only a local stage accepts a token straight from the environment.
        admin_token=(env.get("ADMIN_TOKEN") or None) if stage == "local" else None,
        mail_backend=env.get("MAIL_BACKEND", "file" if stage == "local" else "ses"),
        # Deployed, the outbox table's stream triggers delivery; `make run` delivers on a
        # background thread; tests deliver inline, within the request, to assert on the mail.
        mail_delivery=env.get("MAIL_DELIVERY", "background" if stage == "local" else "stream"),
        mail_dir=Path(env.get("MAIL_DIR", str(PROJECT_ROOT / ".data" / "mail"))),
        mail_from=env.get("MAIL_FROM", "Klassen Meetups <meetups@klassen.example.nl>"),
        smtp_host=env.get("SMTP_HOST", "127.0.0.1"),
        smtp_port=int(env.get("SMTP_PORT", "25")),
        public_base_url=_public_base_url(env, stage),
        signing_secret=env.get("SIGNING_SECRET") or None,
        signing_secret_parameter=env.get("SIGNING_SECRET_PARAMETER") or None,
        ses_configuration_set=env.get("SES_CONFIGURATION_SET") or None,
    )


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return _from_environment(os.environ)
