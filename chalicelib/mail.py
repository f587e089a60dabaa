"""Email: composing the messages (Jinja2, Dutch first, text + HTML, .ics invitations) and
sending them through one of three backends chosen by `settings.mail_backend`:

- ``file`` (local default): every message an RFC 5322 ``.eml`` file in ``settings.mail_dir``;
- ``smtp``: plain SMTP to ``settings.smtp_host:smtp_port``;
- ``ses``: Amazon SES ``SendRawEmail``.

Every backend failure surfaces as `MailDeliveryFailed` (with ``throttled`` set when the
provider asked us to slow down). Callers normally go through `chalicelib.outbox`, which
retries; nothing here retries by itself.
"""
from __future__ import annotations

import base64
import functools
import os
import re
import smtplib
import tempfile
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Protocol

from chalicelib import clock, rendering
from chalicelib.config import get_settings
from chalicelib.statuses import RegistrationStatus

TEMPLATES = ("registration_confirmed", "registration_waitlisted", "registration_promoted",
             "registration_cancelled", "meetup_cancelled", "meetup_changed", "registration_reminder",
             "waitlist_reminder", "table_list", "organiser_digest",
             "handover_incoming", "handover_outgoing", "follow_up_invitation", "registration_link",
             "outcomes_link")
LANGUAGES = ("nl", "en")
# Kinds of email that carry a calendar invitation (REQUEST), or take it back (CANCEL). Every
# invitation of a registration has one UID; SEQUENCE follows the meetup's `calendar_sequence`.
WITH_INVITATION = frozenset({"registration_confirmed", "registration_promoted", "meetup_changed"})
WITH_CANCELLATION = frozenset({"registration_cancelled", "meetup_cancelled"})
# Kinds of email that show a confirmed place's details (the personal join link).
WITH_PLACE = WITH_INVITATION | {"registration_reminder"}
ICS_UID_DOMAIN = "klassen-meetups"
SMTP_TIMEOUT_SECONDS = 20


# Headers we write ourselves (`set_raw`) are sent exactly as written: never re-parsed, so never
# decoded (Python's email package decodes RFC 2047 encoded words and writes them back unquoted,
# which would let text from a form add headers or recipients) and never re-encoded (a long
# List-Unsubscribe URL stays a plain `<https://...>`). We keep their lines short ourselves.
OUTGOING_POLICY = policy.SMTP.clone(refold_source="none")
_PLAIN_TEXT = re.compile(r"[\x20-\x7e]*")
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/?^_`{|}~ -]*")  # a display name that needs no quoting
ENCODED_WORD_BYTES = 42  # 56 base64 characters: a word and "Subject: " fit in 78 columns


class Outgoing(EmailMessage):
    """A composed email and the one address it goes to. Backends send to `envelope_recipient`,
    the stored address, never to whatever the headers say."""

    envelope_recipient: str = ""


class MailDeliveryFailed(Exception):
    """A backend could not hand the message over. ``throttled``: the provider asked us to
    slow down (back off and stop the batch)."""

    def __init__(self, message: str, *, throttled: bool = False):
        super().__init__(message)
        self.throttled = throttled


# --- composing ---------------------------------------------------------------------------------

def _one_line(value) -> str:
    """A header-safe string: no CR/LF or other line breaks, whitespace collapsed."""
    return " ".join(str(value or "").split())


def _sender() -> tuple[str, str]:
    display, addr = parseaddr(get_settings().mail_from)
    return _one_line(display), addr


def _domain(addr: str) -> str:
    return addr.rpartition("@")[2] or ICS_UID_DOMAIN


def ascii_address(address: str) -> str:
    """The address as SMTP and SES carry it: the domain in IDNA (punycode) form. The part
    before the @ must be ASCII already (sign-up refuses others: they need SMTPUTF8)."""
    local, _, domain = _one_line(address).rpartition("@")
    if not local or not domain or not local.isascii() or any(ch in local for ch in "<>,;\"\\ "):
        raise ValueError("not an address mail can be sent to")
    if not domain.isascii():
        import idna
        domain = idna.encode(domain, uts46=True).decode("ascii")
    return f"{local}@{domain.lower()}"


def _encoded_words(text: str) -> str:
    """`text` as RFC 2047 base64 encoded words, one per line: whatever `text` holds, nothing of
    it can be read as header syntax, and a reader shows exactly `text`."""
    words, chunk = [], b""
    for ch in text:
        encoded = ch.encode("utf-8")
        if chunk and len(chunk) + len(encoded) > ENCODED_WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return "\n ".join(f"=?utf-8?b?{base64.b64encode(word).decode('ascii')}?=" for word in words)


def header_text(name: str, text: str) -> str:
    """An unstructured header value (a subject): as is when it is short printable ASCII with
    nothing that looks encoded, else encoded words."""
    text = _one_line(text)
    if _PLAIN_TEXT.fullmatch(text) and "=?" not in text and len(name) + 2 + len(text) <= 78:
        return text
    return _encoded_words(text)


def mailbox(display_name: str, address: str) -> str:
    """`Name <address>`, the name written by us (as is when it is plain atoms, else encoded
    words), the address on a line of its own."""
    address = ascii_address(address)
    display_name = _one_line(display_name)
    if not display_name:
        return address
    if _ATOMS.fullmatch(display_name) and "=?" not in display_name and len(display_name) <= 60:
        return f"{display_name}\n <{address}>"
    return f"{_encoded_words(display_name)}\n <{address}>"


def set_plain_header(message: EmailMessage, name: str, value: str) -> None:
    """A header of printable ASCII (a URL, a token), sent exactly as given."""
    if not _PLAIN_TEXT.fullmatch(value) or len(value) > 900:
        raise ValueError(f"{name} must be printable ASCII on one line")
    del message[name]
    message.set_raw(name, value)


def _is_link_key(key: str) -> bool:
    return key == "url" or key.endswith("_url") or key.endswith("_link")


def absolute_links(context):
    """Queued mail keeps its links as paths ("/registrations/<token>"): the outbox item stays
    under 1 KB (a transactional write of more costs twice the write units), and the base URL is
    the one configured when the mail is composed. Links given whole are left as they are."""
    if isinstance(context, dict):
        base = None
        out = {}
        for key, value in context.items():
            if isinstance(value, str) and _is_link_key(key) and value.startswith("/") and not value.startswith("//"):
                base = base or get_settings().public_base_url
                value = base + value
            elif isinstance(value, (dict, list)):
                value = absolute_links(value)
            out[key] = value
        return out
    if isinstance(context, list):
        return [absolute_links(value) for value in context]
    return context


def compose(template: str, language: str, recipient: str, context: dict, *,
            message_id: str | None = None) -> EmailMessage:
    """One email of kind `template` (see TEMPLATES) in `language` ("nl" default, "en").

    `context` is the registration context documented in templates/email/README.md. A given
    `message_id` (e.g. the outbox id) keeps the Message-ID stable across retries."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown email template {template!r}")
    context = absolute_links(context)
    lang = language if language in LANGUAGES else "nl"
    env = rendering.environment()
    # with_place: the email gives a confirmed place (join link, invitation).
    values = dict({"join_link": None}, **context)  # messages queued before join links existed
    values = dict(values, lang=lang, site=rendering.TEXTS[lang]["site"], with_place=template in WITH_PLACE,
                  name=_one_line(context.get("name")))

    text_template = env.get_template(f"email/{template}.txt")
    subject = _one_line("".join(text_template.blocks["subject"](text_template.new_context(values))))
    values["subject"] = subject
    text = text_template.render(values)
    html = env.get_template(f"email/{template}.html").render(values)

    sender_name, sender_addr = _sender()
    message = Outgoing(policy=OUTGOING_POLICY)
    message.envelope_recipient = ascii_address(recipient)
    # Text from data goes into headers only through header_text and mailbox. The recipient's
    # name is not in To at all: the greeting carries it, and the header needs none.
    message.set_raw("Subject", header_text("Subject", subject))
    message.set_raw("From", mailbox(sender_name, sender_addr))
    message.set_raw("To", message.envelope_recipient)
    message["Date"] = format_datetime(clock.now())
    local = "".join(ch for ch in (message_id or os.urandom(12).hex()) if ch.isalnum() or ch in "-_.")
    message["Message-ID"] = f"<{local}@{_domain(sender_addr)}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    # A CANCEL only takes back an invitation the person had: a confirmed place's.
    if template in WITH_INVITATION or (template in WITH_CANCELLATION and context.get("status") == RegistrationStatus.CONFIRMED):
        method = "CANCEL" if template in WITH_CANCELLATION else "REQUEST"
        message.add_attachment(invitation(recipient, context, lang, method=method), maintype="text",
                               subtype="calendar", filename="klassen-meetup.ics",
                               params={"method": method, "charset": "utf-8"})
    message["Content-Language"] = lang  # after the body: set_content() clears Content-* headers
    if context.get("list_unsubscribe_url"):
        # One-click unsubscribe (RFC 8058): mail clients POST to the same link as the one in the footer.
        set_plain_header(message, "List-Unsubscribe", f"<{context['list_unsubscribe_url']}>")
        set_plain_header(message, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    return message


def invitation(recipient: str, context: dict, lang: str = "nl", *, method: str = "REQUEST") -> bytes:
    """An iCalendar REQUEST (or CANCEL) for the meetup of a registration. The UID is stable per
    registration, so an update or a cancellation changes the same calendar entry; SEQUENCE is the
    meetup's, raised by every change of time, place, mode or join details (a CANCEL one higher)."""
    from icalendar import Calendar, Event, vCalAddress

    meetup = context["meetup"]
    starts = clock.from_storage(meetup["starts_at"]).astimezone(clock.AMSTERDAM)
    ends = clock.from_storage(meetup["ends_at"]).astimezone(clock.AMSTERDAM)
    online = meetup.get("mode") == "online"
    join_link = context.get("join_link")
    if online:
        location = " ".join(part for part in ("Online", join_link) if part)
    else:
        location = ", ".join(part for part in (meetup.get("venue"), meetup.get("city")) if part)
    manage = context.get("manage_url") or ""
    description = (f"Je aanmelding bekijken of annuleren: {manage}" if lang == "nl"
                   else f"See or cancel your registration: {manage}")
    if online and join_link:
        description += ("\nDeelnemen: " if lang == "nl" else "\nJoin: ") + join_link

    sender_name, sender_addr = _sender()
    organizer = vCalAddress(f"mailto:{sender_addr}")
    organizer.params["CN"] = sender_name or "Klassen Meetups"
    attendee = vCalAddress(f"mailto:{ascii_address(recipient)}")
    attendee.params.update({"CN": _one_line(context.get("name")), "PARTSTAT": "ACCEPTED",
                            "ROLE": "REQ-PARTICIPANT", "RSVP": "FALSE"})
    event = Event.new(uid=f"{context['registration_id']}@{ICS_UID_DOMAIN}", summary=meetup["title"],
                      start=starts, end=ends, location=location or None, description=description,
                      url=meetup.get("url") or None, stamp=clock.now(),
                      sequence=int(meetup.get("sequence") or 0) + (1 if method == "CANCEL" else 0))
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("organizer", organizer)
    event.add("attendee", attendee)
    calendar = Calendar.new(prodid="-//Klassen Meetups//NL", method=method, subcomponents=[event])
    # Only the transitions around the meetup: a small VTIMEZONE that still carries the TZID.
    calendar.add_missing_timezones(first_date=starts.date() - timedelta(days=366),
                                   last_date=max(ends.date(), starts.date()) + timedelta(days=366))
    return calendar.to_ical()


# --- backends ----------------------------------------------------------------------------------

class Backend(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class FileBackend:
    """Writes each message as ``<UTC time>-<message id>.eml``: `ls` lists them in order."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def send(self, message: EmailMessage) -> None:
        name = "".join(ch for ch in str(message["Message-ID"] or "").split("@")[0] if ch.isalnum() or ch in "-_")
        stamp = clock.stamp().replace("-", "").replace(":", "")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(message.as_bytes(policy=OUTGOING_POLICY))
                os.replace(tmp, self.directory / f"{stamp}-{name or os.urandom(6).hex()}.eml")
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise MailDeliveryFailed(f"could not write mail file: {exc}") from exc


class SmtpBackend:
    def __init__(self, host: str, port: int, timeout: float = SMTP_TIMEOUT_SECONDS):
        self.host, self.port, self.timeout = host, port, timeout

    def send(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.send_message(message, from_addr=_sender()[1], to_addrs=[envelope_recipient(message)])
        except smtplib.SMTPResponseException as exc:
            # The server's text often names the recipient ("<x@y>: Recipient address rejected"):
            # only the code goes into the error, which ends up in logs and the outbox's last_error.
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            raise MailDeliveryFailed(f"SMTP {exc.smtp_code}", throttled=_is_throttle(text)) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise MailDeliveryFailed(f"SMTP delivery failed: {type(exc).__name__}") from exc


_THROTTLE_CODES = {"Throttling", "ThrottlingException", "TooManyRequestsException"}


def _is_throttle(text: str) -> bool:
    return "maximum sending rate exceeded" in text.lower() or "throttling" in text.lower()


class SesBackend:
    """SES v1 `SendRawEmail`; the client is built on first use (cold starts) unless given.
    With a configuration set (SES_CONFIGURATION_SET, set by the stack), SES publishes the
    message's bounces and complaints to the stack's mail-events topic (chalicelib.suppression)."""

    def __init__(self, region: str | None = None, client=None, configuration_set: str | None = None):
        self.region = region or get_settings().region
        self._client = client
        self.configuration_set = configuration_set

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config
            self._client = boto3.client("ses", region_name=self.region, config=Config(
                connect_timeout=5, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"}))
        return self._client

    def send(self, message: EmailMessage) -> None:
        from botocore.exceptions import BotoCoreError, ClientError
        request = {"Source": _sender()[1], "Destinations": [envelope_recipient(message)],
                   "RawMessage": {"Data": message.as_bytes(policy=OUTGOING_POLICY)}}
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        try:
            self.client.send_raw_email(**request)
        except ClientError as exc:
            # SES's message text can name the recipient ("Address blacklisted: x@y"): only the
            # error code leaves here (logs, the outbox's last_error); `from None` keeps the text
            # out of any traceback that is logged.
            error = exc.response.get("Error", {})
            code, text = str(error.get("Code", "") or "Unknown")[:100], error.get("Message", "")
            throttled = code in _THROTTLE_CODES or _is_throttle(text)
            raise MailDeliveryFailed(f"SES {code}", throttled=throttled) from None
        except BotoCoreError as exc:
            raise MailDeliveryFailed(f"SES unreachable: {type(exc).__name__}") from None


def envelope_recipient(message: EmailMessage) -> str:
    """Where a composed message goes: set by `compose`, never read from its headers."""
    recipient = getattr(message, "envelope_recipient", "")
    if not recipient:
        raise ValueError("a message without an envelope recipient; compose it with mail.compose")
    return recipient


def backend_from_settings(settings=None) -> Backend:
    settings = settings or get_settings()
    if settings.mail_backend == "file":
        return FileBackend(settings.mail_dir)
    if settings.mail_backend == "smtp":
        return SmtpBackend(settings.smtp_host, settings.smtp_port)
    if settings.mail_backend == "ses":
        return SesBackend(settings.region, configuration_set=settings.ses_configuration_set)
    raise ValueError(f"unknown MAIL_BACKEND {settings.mail_backend!r}")


@functools.lru_cache(maxsize=1)
def backend() -> Backend:
    """The configured backend, built on first use and reused (one SES client per container)."""
    return backend_from_settings()


def send(message: EmailMessage, via: Backend | None = None) -> None:
    """Hand one message to the backend; raises MailDeliveryFailed."""
    (via or backend()).send(message)


def read_mail_dir(path: str | Path | None = None) -> list[EmailMessage]:
    """The messages a FileBackend wrote (default: settings.mail_dir), oldest first."""
    directory = Path(path or get_settings().mail_dir)
    if not directory.is_dir():
        return []
    parser = BytesParser(policy=policy.default)
    # The files hold CRLF line ends (RFC 5322); parsed with plain newlines like any local text.
    return [parser.parsebytes(file.read_bytes().replace(b"\r\n", b"\n")) for file in sorted(directory.glob("*.eml"))
            if not file.name.startswith(".")]


__all__ = ["MailDeliveryFailed", "compose", "invitation", "send", "backend", "backend_from_settings",
           "FileBackend", "SmtpBackend", "SesBackend", "read_mail_dir", "TEMPLATES"]
