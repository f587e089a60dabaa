"""Jinja2 pages and emails, Dutch first. The environment is built on first use (cold starts)."""
from __future__ import annotations

import contextvars
import functools
from datetime import datetime
from pathlib import Path

from chalicelib import clock

# Locally templates/ sits beside chalicelib/; `make package` copies it to the root of the
# deployment package (through vendor/), which is the same place relative to this file.
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


@functools.lru_cache(maxsize=1)
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "xml"), default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["longdate"] = format_long
    env.filters["shortdate"] = format_date
    env.filters["time"] = format_time
    return env


def _moment(value: str | datetime) -> datetime:
    moment = clock.from_storage(value) if isinstance(value, str) else value
    return moment.astimezone(clock.AMSTERDAM)


def format_long(value: str | datetime, lang: str = "nl") -> str:
    """'maandag 12 april 2027 om 19:30' / 'Monday 12 April 2027 at 19:30'."""
    from babel.dates import format_datetime
    pattern = "EEEE d MMMM y 'om' HH:mm" if lang == "nl" else "EEEE d MMMM y 'at' HH:mm"
    return format_datetime(_moment(value), pattern, locale=lang, tzinfo=clock.AMSTERDAM)


def format_date(value: str | datetime, lang: str = "nl") -> str:
    from babel.dates import format_datetime
    return format_datetime(_moment(value), "EEE d MMM y", locale=lang, tzinfo=clock.AMSTERDAM)


def format_time(value: str | datetime, lang: str = "nl") -> str:
    return _moment(value).strftime("%H:%M")


# The base path of the request being answered (chalicelib.http.routes sets it; see http.base_path):
# pages and redirects are built under it.
BASE_PATH: contextvars.ContextVar[str] = contextvars.ContextVar("base_path", default="")


def current_base() -> str:
    """The base path of the request being answered (set by `chalicelib.http.routes`)."""
    return BASE_PATH.get()


def render_page(template: str, lang: str, **context) -> str:
    """A page; its links, form actions and assets start with `base` (the request's base path,
    e.g. "/api" on the execute-api URL; see chalicelib.http.base_path)."""
    context.setdefault("base", current_base())
    from chalicelib.config import get_settings
    context.setdefault("privacy_version", get_settings().privacy_version)
    context.setdefault("contact_email", get_settings().privacy_contact_email)
    return environment().get_template(template).render(lang=lang, t=TEXTS[lang], **context)


@functools.lru_cache(maxsize=1)
def inline_style_hashes() -> tuple[str, ...]:
    """CSP source expressions ('sha256-...') of the inline <style> blocks of the page templates:
    the pages' Content-Security-Policy allows exactly these styles and nothing else inline."""
    import base64
    import hashlib
    import re
    found = []
    for path in sorted(TEMPLATES_DIR.glob("*.html")):
        for style in re.findall(r"<style>(.*?)</style>", path.read_text(encoding="utf-8"), re.S):
            digest = base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode()
            found.append(f"'sha256-{digest}'")
    return tuple(dict.fromkeys(found))


# Short interface texts. Pages and emails hold their longer copy in the templates themselves.
TEXTS = {
    "nl": {
        "site": "Klassen Meetups",
        "tagline": "Meetups over gelijke kansen in het onderwijs",
        "meetups": "Alle meetups",
        "date": "Datum",
        "place": "Plaats",
        "online": "online",
        "seats_left": "Plekken vrij",
        "phase_open": "Open voor aanmelding",
        "phase_waitlist": "Vol, de wachtlijst is open",
        "phase_full": "Vol",
        "phase_announced": "Aangekondigd",
        "phase_announced_note": "aanmelden kan zodra de nieuwe gastheer of gastvrouw deze vervolgmeetup heeft bevestigd.",
        "phase_closed": "Aanmelding gesloten",
        "phase_cancelled": "Gaat niet door",
        "phase_past": "Voorbij",
        "no_form_full": "alle plekken zijn bezet en er is geen wachtlijst.",
        "no_form_announced": "aanmelden kan zodra de nieuwe gastheer of gastvrouw deze vervolgmeetup heeft bevestigd.",
        "no_form_closed": "aanmelden voor deze meetup kan niet meer.",
        "no_form_cancelled": "deze meetup gaat niet door.",
        "no_form_past": "deze meetup is al begonnen of voorbij.",
        "join_waitlist": "Op de wachtlijst",
        "state_confirmed": "Je plek is bevestigd.",
        "state_confirmed_note": "Kun je toch niet komen? Annuleer je aanmelding, dan gaat je plek naar iemand anders.",
        "state_waitlisted": "Je staat op de wachtlijst.",
        "state_waitlisted_note": "Komt er een plek vrij, dan krijgt de eerste op de wachtlijst die meteen en mailen we je.",
        "state_cancelled": "Je aanmelding is geannuleerd.",
        "state_cancelled_note": "Je hebt geen plek en staat niet op de wachtlijst.",
        "state_meetup_cancelled": "Deze meetup gaat niet door.",
        "state_meetup_cancelled_note": "Je hoeft niets te doen: we hebben je hierover gemaild.",
        "state_meetup_past": "Deze meetup is voorbij.",
        "state_meetup_past_note": "Bedankt voor je aanmelding.",
        "cancel_title": "Aanmelding annuleren",
        "cancel_question_confirmed": "Weet je zeker dat je je aanmelding wilt annuleren? Je plek gaat dan naar iemand anders.",
        "cancel_question_waitlisted": "Weet je zeker dat je je aanmelding wilt annuleren? Je gaat dan van de wachtlijst af.",
        "cancel_yes": "Ja, annuleer",
        "cancel_no": "Nee, ik kom",
        "cancel_nothing": "Er valt hier niets te annuleren.",
        "demo_banner": "Dit is een demo: de meetups hieronder zijn voorbeeldgegevens.",
        "filter": "Meetups zoeken",
        "province": "Provincie",
        "all_provinces": "Alle provincies",
        "show": "Toon",
        "footer_privacy": "Privacyverklaring",
        "footer_contact": "Contact",
        "status": "Status",
        "status_open": "open",
        "status_full": "vol",
        "status_closed": "gesloten",
        "waitlist": "wachtlijst",
        "on_waitlist": "op de wachtlijst",
        "register": "Aanmelden",
        "host": "Gastheer/-vrouw",
        "capacity": "Capaciteit",
        "follows": "Vervolg op",
        "error": "Er ging iets mis",
        "back": "Terug naar alle meetups",
        "no_meetups": "Er zijn geen meetups gevonden.",
        "demo": "demo",
        "other_language": "English",
        "kind_regional": "Regionale meetup",
        "kind_extra": "Extra online meetup",
        "kind_follow_up": "Vervolgmeetup",
        "kind_final": "Landelijke slotbijeenkomst",
        "role_teacher": "Docent / leerkracht",
        "role_school_leader": "Schoolleider",
        "role_school_board": "Schoolbestuurder",
        "role_local_politician": "Lokale politiek",
        "role_education_support": "Onderwijsondersteuner",
        "role_youth_work": "Jeugdwerk / kinderopvang",
        "role_parent": "Ouder",
        "role_other": "Anders",
        "name": "Naam",
        "email": "E-mailadres",
        "role": "Rol",
        "organisation": "Organisatie of school",
        "municipality": "Gemeente",
        "theme": "Thema dat je wilt bespreken",
        "optional": "optioneel",
        "choose": "Kies je rol",
        "consent": "Ik ga akkoord met de privacyverklaring: mijn gegevens worden alleen gebruikt voor deze meetup.",
        "privacy": "Lees de privacyverklaring",
        "follow_up": "Houd me op de hoogte van de vervolgmeetup.",
        "submit": "Aanmelden",
        "form_errors": "Controleer de gemarkeerde velden:",
        "error_prefix": "Fout",
        "your_registration": "Je aanmelding",
        "status_confirmed": "Je plek is bevestigd.",
        "status_waitlisted": "Je staat op de wachtlijst.",
        "status_cancelled": "Je aanmelding is geannuleerd.",
        "position": "Je nummer op de wachtlijst",
        "cancel": "Aanmelding annuleren",
        "sign_up_again": "Opnieuw aanmelden",
        "received": "Bedankt! We hebben je aanmelding ontvangen. Je krijgt een e-mail met de details.",
        "already": "Dit e-mailadres is al aangemeld voor deze meetup. We hebben de link naar die aanmelding opnieuw naar dit adres gemaild (hooguit eens per 10 minuten).",
        "resend_title": "Mail me mijn link",
        "resend_intro": "Vul het e-mailadres in waarmee je je aanmeldde. We mailen de links naar je aanmeldingen naar dat adres.",
        "resend_submit": "Mail mijn link",
        "resend_sent": "Als er met dit adres aanmeldingen zijn, hebben we de links ernaartoe gemaild. Kijk ook in je spam.",
        "lost_link": "Link kwijt? Mail me mijn link",
        "your_data": "Je gegevens",
        "consent_given": "Je ging akkoord met de privacyverklaring (versie {version}) op {date}.",
        "follow_up_on": "Je krijgt een uitnodiging voor de vervolgmeetup.",
        "follow_up_off": "Je krijgt geen uitnodiging voor de vervolgmeetup.",
        "follow_up_stop": "Geen vervolgmails meer",
        "follow_up_start": "Houd me toch op de hoogte van de vervolgmeetup",
        "download": "Download mijn gegevens (JSON)",
        "erase": "Mijn gegevens wissen",
        "erase_confirm": "Ja, wis mijn gegevens",
        "erased_title": "Je gegevens zijn gewist",
        "cancel_and_back": "Nee, terug naar mijn aanmelding",
        "full_waitlist": "Deze meetup is vol. Je meldt je aan voor de wachtlijst: komt er een plek vrij, dan krijgt de eerste op de wachtlijst die meteen.",
    },
    "en": {
        "site": "Klassen Meetups",
        "tagline": "Meetups about equal opportunities in education",
        "meetups": "All meetups",
        "date": "Date",
        "place": "Place",
        "online": "online",
        "seats_left": "Places left",
        "phase_open": "Open for sign-up",
        "phase_waitlist": "Full, waiting list open",
        "phase_full": "Full",
        "phase_announced": "Announced",
        "phase_announced_note": "sign-up opens once the new host has accepted this follow-up meetup.",
        "phase_closed": "Sign-up closed",
        "phase_cancelled": "Cancelled",
        "phase_past": "Past",
        "no_form_full": "every place is taken and there is no waiting list.",
        "no_form_announced": "sign-up opens once the new host has accepted this follow-up meetup.",
        "no_form_closed": "sign-up for this meetup is closed.",
        "no_form_cancelled": "this meetup has been cancelled.",
        "no_form_past": "this meetup has started or is over.",
        "join_waitlist": "Join the waiting list",
        "state_confirmed": "Your place is confirmed.",
        "state_confirmed_note": "Can't make it after all? Cancel your registration, so your place goes to someone else.",
        "state_waitlisted": "You are on the waiting list.",
        "state_waitlisted_note": "When a place frees up, the first on the waiting list gets it at once and we email you.",
        "state_cancelled": "Your registration has been cancelled.",
        "state_cancelled_note": "You have no place and are not on the waiting list.",
        "state_meetup_cancelled": "This meetup has been cancelled.",
        "state_meetup_cancelled_note": "You need not do anything: we have emailed you about it.",
        "state_meetup_past": "This meetup is over.",
        "state_meetup_past_note": "Thank you for signing up.",
        "cancel_title": "Cancel registration",
        "cancel_question_confirmed": "Are you sure you want to cancel your registration? Your place then goes to someone else.",
        "cancel_question_waitlisted": "Are you sure you want to cancel your registration? You then leave the waiting list.",
        "cancel_yes": "Yes, cancel",
        "cancel_no": "No, I'm coming",
        "cancel_nothing": "There is nothing to cancel here.",
        "demo_banner": "This is a demo: the meetups below are sample data.",
        "filter": "Find meetups",
        "province": "Province",
        "all_provinces": "All provinces",
        "show": "Show",
        "footer_privacy": "Privacy statement",
        "footer_contact": "Contact",
        "status": "Status",
        "status_open": "open",
        "status_full": "full",
        "status_closed": "closed",
        "waitlist": "waiting list",
        "on_waitlist": "on the waiting list",
        "register": "Sign up",
        "host": "Host",
        "capacity": "Capacity",
        "follows": "Follow-up to",
        "error": "Something went wrong",
        "back": "Back to all meetups",
        "no_meetups": "No meetups found.",
        "demo": "demo",
        "other_language": "Nederlands",
        "kind_regional": "Regional meetup",
        "kind_extra": "Extra online meetup",
        "kind_follow_up": "Follow-up meetup",
        "kind_final": "National closing meeting",
        "role_teacher": "Teacher",
        "role_school_leader": "School leader",
        "role_school_board": "School board member",
        "role_local_politician": "Local politics",
        "role_education_support": "Education support staff",
        "role_youth_work": "Youth work / childcare",
        "role_parent": "Parent",
        "role_other": "Other",
        "name": "Name",
        "email": "Email address",
        "role": "Role",
        "organisation": "Organisation or school",
        "municipality": "Municipality",
        "theme": "Theme you would like to discuss",
        "optional": "optional",
        "choose": "Choose your role",
        "consent": "I accept the privacy statement: my details are used for this meetup only.",
        "privacy": "Read the privacy statement",
        "follow_up": "Keep me posted about the follow-up meetup.",
        "submit": "Sign up",
        "form_errors": "Please check the marked fields:",
        "error_prefix": "Error",
        "your_registration": "Your registration",
        "status_confirmed": "Your place is confirmed.",
        "status_waitlisted": "You are on the waiting list.",
        "status_cancelled": "Your registration has been cancelled.",
        "position": "Your number on the waiting list",
        "cancel": "Cancel registration",
        "sign_up_again": "Sign up again",
        "received": "Thank you! We have received your registration. You will get an email with the details.",
        "already": "This email address is already registered for this meetup. We have emailed the link to that registration to this address again (at most once every 10 minutes).",
        "resend_title": "Email me my link",
        "resend_intro": "Enter the email address you signed up with. We email the links to your registrations to that address.",
        "resend_submit": "Email my link",
        "resend_sent": "If this address has registrations, we have emailed their links to it. Please check your spam folder too.",
        "lost_link": "Lost your link? Email me my link",
        "your_data": "Your data",
        "consent_given": "You accepted the privacy statement (version {version}) on {date}.",
        "follow_up_on": "You will be invited to the follow-up meetup.",
        "follow_up_off": "You will not be invited to the follow-up meetup.",
        "follow_up_stop": "No more follow-up emails",
        "follow_up_start": "Keep me posted about the follow-up meetup after all",
        "download": "Download my data (JSON)",
        "erase": "Erase my data",
        "erase_confirm": "Yes, erase my data",
        "erased_title": "Your data has been erased",
        "cancel_and_back": "No, back to my registration",
        "full_waitlist": "This meetup is full. Join the waiting list: you will hear at once when a place frees up.",
    },
}
