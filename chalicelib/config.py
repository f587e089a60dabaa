"""Typed settings, read once from the environment."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The version of the privacy statement (templates/privacy.html): change it with the statement's text.
DEFAULT_REMINDER_OFFSETS = (24 * 60, 60)  # a day and an hour before the start
MAX_REMINDER_OFFSET = 14 * 24 * 60  # two weeks
PRIVACY_VERSION = "2026-11-23"
# Links in emails sent before links carried an expiry and a key id: accepted until then, refused after.
LEGACY_LINKS_UNTIL = "2027-12-31T23:00:00Z"
# Demo values for a local stage only: a deployed stage names the real controller (README).
DEMO_CONTROLLER = "Gelijke Kansen Alliantie (demo), Ministerie van OCW"
DEMO_CONTACT_EMAIL = "privacy@klassen.example.nl"
DEMO_CONTACT_ADDRESS = "Postbus 00000, 2500 AA Den Haag (demo)"
MIN_RETENTION_DAYS = 8  # the weekly digest reads a week of the activity log, which keeps this long


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
    # Privacy (chalicelib/privacy.py; the statement at /privacy renders these same values).
    retention_days: int = 30  # personal data after a meetup ends, a cancellation, a change
    privacy_version: str = PRIVACY_VERSION
    privacy_controller: str = ""
    privacy_contact_email: str = ""
    privacy_contact_address: str = ""
    legacy_links_until: str = LEGACY_LINKS_UNTIL  # links signed without expiry work until then (UTC)
    # Reminders before a meetup, in minutes before its start (a meetup may set its own).
    reminder_offsets: tuple[int, ...] = DEFAULT_REMINDER_OFFSETS
    # Who runs background jobs (chalicelib/jobs.py): inline | background | stream | schedule.
    job_runner: str = "stream"

    @property
    def is_local(self) -> bool:
        return self.stage == "local"

    @property
    def retention(self):
        """How long personal data stays after it is no longer needed (RETENTION_DAYS)."""
        from datetime import timedelta
        return timedelta(days=self.retention_days)

    def table_name(self, suffix: str) -> str:
        return f"{self.table_prefix}{suffix}"


def _public_base_url(env: os._Environ | dict, stage: str) -> str:
    """The base of the links in emails. Only a local stage has a default: deployed, a missing value
    would put links to 127.0.0.1 in every email, so reading the settings fails instead (on first
    use: the first request's storage connection or link reads them; nothing reads them at import)."""
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
        retention_days=_retention_days(env),
        privacy_version=(env.get("PRIVACY_VERSION") or PRIVACY_VERSION).strip(),
        **_controller(env, stage),
        legacy_links_until=_legacy_links_until(env),
        reminder_offsets=_reminder_offsets(env),
        # Deployed, the jobs table's stream runs a job; `make run` runs it on a worker thread; the
        # tests (inline mail) run it within the request, unless they ask for `schedule` (nothing
        # runs it until a test calls it, as the schedule that resumes stalled jobs would).
        job_runner=env.get("JOB_RUNNER") or _default_job_runner(env, stage),
    )


def _reminder_offsets(env) -> tuple[int, ...]:
    raw = (env.get("REMINDER_OFFSETS") or "").strip()
    if not raw:
        return DEFAULT_REMINDER_OFFSETS
    parts = [part.strip() for part in raw.split(",")]
    if not all(p.isascii() and p.isdigit() and 1 <= int(p) <= MAX_REMINDER_OFFSET for p in parts) or len(parts) > 5:
        raise RuntimeError(f"REMINDER_OFFSETS must be up to 5 whole numbers of minutes from 1 to {MAX_REMINDER_OFFSET}, "
                           f"separated by commas, not {raw!r}")
    return tuple(sorted({int(p) for p in parts}, reverse=True))


def _default_job_runner(env, stage: str) -> str:
    delivery = env.get("MAIL_DELIVERY", "background" if stage == "local" else "stream")
    return delivery if delivery in ("inline", "background", "stream") else "stream"


def _retention_days(env) -> int:
    raw = (env.get("RETENTION_DAYS") or "30").strip()
    if not raw.isascii() or not raw.isdigit() or not MIN_RETENTION_DAYS <= int(raw) <= 3650:
        raise RuntimeError(f"RETENTION_DAYS must be a whole number of days from {MIN_RETENTION_DAYS} to 3650, "
                           f"not {raw!r}")
    return int(raw)


def _legacy_links_until(env) -> str:
    from datetime import datetime
    raw = (env.get("LEGACY_LINKS_UNTIL") or LEGACY_LINKS_UNTIL).strip()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise RuntimeError(f"LEGACY_LINKS_UNTIL must be an ISO 8601 time, not {raw!r}") from None
    if moment.tzinfo is None:
        raise RuntimeError("LEGACY_LINKS_UNTIL needs an offset, e.g. 2027-12-31T23:00:00Z")
    from datetime import timezone
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _controller(env, stage: str) -> dict:
    """Who is responsible for the data and how to reach them. Locally demo values; deployed,
    without PRIVACY_CONTROLLER / PRIVACY_CONTACT_EMAIL, the sender of the service's mail (MAIL_FROM),
    whose mailbox is read: the statement never names nobody."""
    from email.utils import parseaddr
    sender_name, sender_address = parseaddr(env.get("MAIL_FROM", "Klassen Meetups <meetups@klassen.example.nl>"))
    local = stage == "local"
    return {
        "privacy_controller": (env.get("PRIVACY_CONTROLLER") or "").strip()
        or (DEMO_CONTROLLER if local else sender_name or sender_address),
        "privacy_contact_email": (env.get("PRIVACY_CONTACT_EMAIL") or "").strip()
        or (DEMO_CONTACT_EMAIL if local else sender_address),
        "privacy_contact_address": (env.get("PRIVACY_CONTACT_ADDRESS") or "").strip()
        or (DEMO_CONTACT_ADDRESS if local else ""),
    }


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return _from_environment(os.environ)
