"""The admin console: the JSON admin API's capabilities as Dutch-first pages, for organisers who
never used an API. It owns only what a browser needs on top of that API: the session, the CSRF
token of every form, and turning form fields into the API's request bodies. Every change goes
through the same functions as the JSON routes (catalogue, handover, digest, privacy, ...).

The session is a signed, expiring cookie (chalicelib.tokens) naming the SHA-256 of the admin token
that signed in, never the token: every request looks that hash up again (chalicelib.auth), so a
revoked token ends its sessions at once. The cookie is HttpOnly, SameSite=Strict, Secure outside
the local stage and lives 8 hours. Every form carries a CSRF token, an HMAC of the session
(chalicelib.tokens), checked on every POST: without it or with a wrong one, 403 and nothing changes."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from chalicelib import auth, clock, tokens
from chalicelib.config import get_settings
from chalicelib.errors import DomainError, Forbidden, Unauthorized, ValidationFailed
from chalicelib.messages import CONSOLE_CSRF, CONSOLE_TOKEN_WRONG
from chalicelib.validation import FormBody

COOKIE = "klassen_admin"
PATH = "/admin/console"
SESSION_LIFETIME = timedelta(hours=8)
SESSION_PURPOSE = "admin-console-session"
CSRF_PURPOSE = "admin-console-csrf"
CSRF_FIELD = "csrf"
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_.-]{1,400}$")


@dataclass(frozen=True)
class Session:
    admin: str  # the token's name, for the audit trails ("admin <name>")
    cookie: str  # the signed cookie value

    @property
    def actor(self) -> str:
        return f"admin {self.admin}"

    @property
    def csrf(self) -> str:
        """The CSRF token of this session's forms (an HMAC of the session, expiring with it)."""
        return tokens.sign(CSRF_PURPOSE, _fingerprint(self.cookie), expires=clock.now() + SESSION_LIFETIME)


def _fingerprint(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()[:32]


# --- signing in and out ------------------------------------------------------------------------------

def sign_in(token: str | None) -> str:
    """The new session's cookie value for a valid admin token (the bearer header's check); else
    ValidationFailed naming the `token` field, in Dutch and English."""
    token = (token or "").strip()
    try:
        if not token:
            raise Unauthorized(CONSOLE_TOKEN_WRONG)
        _, token_hash = auth.verify_token(token)
    except Unauthorized:
        raise ValidationFailed({"token": CONSOLE_TOKEN_WRONG}, CONSOLE_TOKEN_WRONG) from None
    # A random part makes every session its own (and so its CSRF token), even two sign-ins in one second.
    return tokens.sign(SESSION_PURPOSE, token_hash, secrets.token_urlsafe(12), expires=clock.now() + SESSION_LIFETIME)


def session_from(headers) -> Session | None:
    """The request's session, or None: no cookie, a tampered or expired one, or its admin token
    revoked since (looked up on every request)."""
    value = _cookie(headers)
    if value is None:
        return None
    try:
        token_hash, _ = tokens.verify(SESSION_PURPOSE, value, 2)
        return Session(admin=auth.name_of_hash(token_hash), cookie=value)
    except DomainError:  # NotFound (tampered), Gone (expired), Unauthorized (revoked)
        return None


def _cookie(headers) -> str | None:
    raw = (headers or {}).get("cookie") or ""
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and _COOKIE_VALUE.match(value):
            return value
    return None


def check_csrf(session: Session, body: dict) -> dict:
    """The form's fields without its CSRF token; 403 when the token is missing or not this
    session's (before anything is read or changed)."""
    submitted = body.get(CSRF_FIELD) if isinstance(body, dict) else None
    try:
        if not isinstance(submitted, str) or tokens.verify(CSRF_PURPOSE, submitted, 1) != [_fingerprint(session.cookie)]:
            raise Forbidden(CONSOLE_CSRF, code="csrf")
    except (Forbidden, DomainError):
        raise Forbidden(CONSOLE_CSRF, code="csrf") from None
    return FormBody((name, value) for name, value in body.items() if name != CSRF_FIELD)


def cookie_header(value: str, base: str) -> str:
    """Set-Cookie for a new session (`value`), or one that clears it (`value` "")."""
    parts = [f"{COOKIE}={value}", f"Path={base}{PATH}", "HttpOnly", "SameSite=Strict",
             f"Max-Age={int(SESSION_LIFETIME.total_seconds()) if value else 0}"]
    if not get_settings().is_local:
        parts.append("Secure")
    return "; ".join(parts)


# --- form fields into the JSON API's bodies ----------------------------------------------------------

MEETUP_TEXT = ("title", "kind", "province", "city", "venue", "starts_at", "ends_at", "mode", "capacity",
               "status", "join_url", "description")


def field_id(name: str) -> str:
    """An HTML id for a field the API names (`host.name`, `tables[0].capacity`)."""
    return "f-" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")


def _reminders(raw: str | None):
    """"1440, 60" as the API's list of minutes; anything else as typed, for the API to refuse."""
    text = (raw or "").strip()
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    return [int(p) for p in parts] if all(re.fullmatch(r"[0-9]{1,6}", p) for p in parts) else text


def meetup_payload(form: dict, current: dict | None = None) -> FormBody:
    """The body of `POST /admin/meetups` (`current` None) or of `PATCH /admin/meetups/{id}` (only
    what changed against `current`, the admin view) from the console's meetup form."""
    def value(name):
        raw = form.get(name)
        return raw.strip() if isinstance(raw, str) and raw.strip() else None

    body = {name: value(name) for name in MEETUP_TEXT}
    body["host"] = {"name": value("host.name") or ""}
    if value("host.email") or current:
        body["host"]["email"] = value("host.email") or ""
    body["waitlist"] = {"enabled": form.get("waitlist.enabled") in ("true", "on")}
    body["reminders"] = _reminders(form.get("reminders"))
    if current is None:
        return FormBody((k, v) for k, v in body.items() if v is not None)
    shown = meetup_form_values(current)
    changed = {}
    for name, new in body.items():
        if name == "host":
            if (new["name"], new.get("email") or "") != (shown["host.name"], shown["host.email"]):
                changed[name] = new
        elif name == "waitlist":
            if new["enabled"] != shown["waitlist.enabled"]:
                changed[name] = new
        elif name == "reminders":
            if (new or None) != (current.get("reminders") or None):
                changed[name] = new
        elif (new or "") != (shown.get(name) or ""):
            changed[name] = new
    return FormBody(changed)


def local_input(public: str | None) -> str:
    """An ISO time as a datetime-local input shows it (Europe/Amsterdam wall time)."""
    if not public:
        return ""
    return clock.parse_public(public).astimezone(clock.AMSTERDAM).strftime("%Y-%m-%dT%H:%M")


def meetup_form_values(meetup: dict) -> dict:
    """The console's meetup form filled in from an admin view."""
    return {
        "title": meetup["title"], "kind": meetup["kind"], "province": meetup["province"] or "",
        "city": meetup["city"] or "", "venue": meetup["venue"] or "", "host.name": meetup["host"]["name"] or "",
        "host.email": meetup["host"].get("email") or "", "starts_at": local_input(meetup["starts_at"]),
        "ends_at": local_input(meetup["ends_at"]), "mode": meetup["mode"], "capacity": str(meetup["capacity"]),
        "waitlist.enabled": bool(meetup["waitlist"]["enabled"]), "status": meetup["state"],
        "join_url": meetup["join_url"] or "", "description": meetup["description"] or "",
        "reminders": ", ".join(str(m) for m in meetup["reminders"] or []),
    }


HANDOVER_FIELDS = ("city", "host_name", "host_email", "starts_at", "ends_at", "mode", "capacity", "province",
                   "title", "venue", "join_url", "description")


def handover_payload(form: dict) -> FormBody:
    """The body of `POST /admin/meetups/{id}/handover` from the console's form (blanks left out;
    the capacity as a JSON number, as the handover hands its fields on to the catalogue's rules)."""
    body = FormBody((name, form[name].strip()) for name in HANDOVER_FIELDS
                    if isinstance(form.get(name), str) and form[name].strip())
    if re.fullmatch(r"[0-9]{1,9}", body.get("capacity", "")):
        body["capacity"] = int(body["capacity"])
    return body


def organiser_payload(form: dict) -> FormBody:
    """The body of `POST /admin/organisers`: the scope from its three form fields."""
    kind = form.get("scope")
    scope = {"province": {"province": form.get("scope.province") or ""},
             "meetup": {"meetup_id": form.get("scope.meetup_id") or ""}}.get(kind, kind or None)
    body = {name: (form.get(name) or "").strip() or None for name in ("email", "name", "frequency", "language")}
    body["scope"] = scope
    return FormBody((k, v) for k, v in body.items() if v is not None)


EMPTY_TABLE_ROWS = 3


def tables_payload(form: dict) -> tuple[FormBody, list[dict], list[int]]:
    """The body of `PUT /admin/meetups/{id}/tables` from the console's rows (an empty row is no
    table: emptying an existing one removes it), the rows as typed (to show them again) and
    the form row of each table in the body."""
    rows, tables, row_of = [], [], []
    count = sum(1 for name in form if re.fullmatch(r"tables-[0-9]+-name", name))
    for index in range(min(count, 40)):
        row = {key: (form.get(f"tables-{index}-{key}") or "").strip()
               for key in ("id", "name", "description", "moderator_name", "moderator_email", "capacity")}
        rows.append(row)
        if not any(v for k, v in row.items() if k != "id"):
            continue
        table = {"name": row["name"], "description": row["description"] or None,
                 "moderator": {"name": row["moderator_name"], "email": row["moderator_email"]},
                 "capacity": int(row["capacity"]) if re.fullmatch(r"[0-9]{1,6}", row["capacity"]) else row["capacity"] or None}
        if row["id"]:
            table["id"] = row["id"]
        tables.append(table)
        row_of.append(index)
    body = FormBody(tables=tables)
    if (form.get("change_until") or "").strip():
        body["change_until"] = form["change_until"].strip()
    return body, rows, row_of


def table_rows(meetup: dict) -> list[dict]:
    """The form's rows: the meetup's tables, then empty rows for new ones."""
    rows = [{"id": t["id"], "name": t["name"], "description": t["description"] or "",
             "moderator_name": t["moderator"]["name"] or "", "moderator_email": t["moderator"]["email"] or "",
             "capacity": str(t["capacity"])} for t in meetup["tables"]]
    empty = {"id": "", "name": "", "description": "", "moderator_name": "", "moderator_email": "", "capacity": ""}
    return rows + [dict(empty) for _ in range(EMPTY_TABLE_ROWS)]


_TABLE_FIELDS = {"": "name", "id": "name", "moderator": "moderator_name", "moderator.name": "moderator_name",
                 "moderator.email": "moderator_email"}


def table_errors(errors: dict, row_of: list[int]) -> dict:
    """The API's names of table fields (`tables[0].moderator.email`) as the form's
    (`tables-0-moderator_email`)."""
    shown = {}
    for name, problem in errors.items():
        match = re.fullmatch(r"tables\[([0-9]+)\](?:\.(.+))?", name)
        if match:
            key = _TABLE_FIELDS.get(match.group(2) or "", match.group(2))
            index = int(match.group(1))
            shown[f"tables-{row_of[index] if index < len(row_of) else index}-{key}"] = problem
        else:
            shown[name] = problem
    return shown


# --- outcomes: the forms of one item, their errors, the audit trail ------------------------------

def outcome_scope(table_id: str | None = None, item_id: str | None = None) -> str:
    """The prefix of one outcome form's field ids and errors: a page has an add form per table and
    a change form per item, all with the domain's field names (`title`, `actor_school`, ...)."""
    return f"item-{item_id}" if item_id else f"new-{table_id}"


def scoped_errors(errors: dict, scope: str) -> dict:
    """The domain's field errors (`title`, `actors`) as the page's (`<scope>.title`)."""
    return {f"{scope}.{name}": problem for name, problem in errors.items()}


def outcome_form_item(form: dict) -> dict:
    """A refused outcome form's fields as an item, to show them again as typed."""
    return {"kind": form.get("kind"), "title": form.get("title") or "", "explanation": form.get("explanation") or "",
            "table_id": form.get("table_id"),
            "actors": [name[6:] for name in form if name.startswith("actor_")],
            "tags": [name[4:] for name in form if name.startswith("tag_")]}


def outcome_audit(entries: list[dict], items: dict[str, dict]) -> list[dict]:
    """The outcome audit trail, newest first, each entry with the title of its item (from the
    entry's own changes, else the item as it is now) and its changes as (field, before, after)."""
    shown = []
    for entry in reversed(entries):
        changes = entry.get("changes") or {}
        title = None
        if "title" in changes:
            title = changes["title"].get("after") or changes["title"].get("before")
        if title is None and entry.get("item_id") in items:
            title = items[entry["item_id"]]["title"]
        rows = [(field, _audit_value(change.get("before")), _audit_value(change.get("after")))
                for field, change in sorted(changes.items()) if isinstance(change, dict)]
        shown.append(dict(entry, title=title, rows=rows))
    return shown


def _audit_value(value) -> str:
    if value is None or value == []:
        return "–"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# --- the digest run, explained ---------------------------------------------------------------------

def digest_run(result: dict, before: list[dict]) -> dict:
    """What the console shows after "run digests now": the counts, who was due, and for the
    others when their next digest comes (a new organiser's first at its next period)."""
    return {"result": result, "due": [o for o in before if o["due"]],
            "not_due": [o for o in before if not o["due"]], "nothing_sent": not result.get("sent")}


# --- the console's interface texts, Dutch first ----------------------------------------------------

TEXTS = {
    "nl": {
        "nav_outcomes": "Uitkomsten", "outcomes_title": "Uitkomsten", "outcomes_intro": "Per meetup de voorwaarden en oplossingen van elke thematafel. Na het vaststellen kan alleen de organisatie nog iets wijzigen; elke wijziging staat in het verloop.",
        "outcomes": "Uitkomsten", "oc_draft": "concept", "oc_final": "vastgesteld", "oc_items": "Punten",
        "oc_status": "Status van de uitkomsten", "oc_final_since": "Vastgesteld op",
        "oc_final_note": "De uitkomsten zijn vastgesteld en gaan mee in de bundel. Wijzigingen hieronder worden als correctie van de organisatie vastgelegd.",
        "oc_draft_note": "De uitkomsten zijn nog een concept: de gastheer of gastvrouw en de moderatoren kunnen ze via hun link aanvullen.",
        "kind_condition": "Voorwaarde", "kind_solution": "Oplossing", "oc_kind": "Soort", "oc_title": "Korte titel",
        "oc_explanation": "Toelichting", "oc_actors": "Wie is aan zet?", "oc_tags": "Thema's", "oc_table": "Tafel",
        "actor_school": "school", "actor_gemeente": "gemeente", "actor_rijk": "rijk", "actor_other": "anders",
        "oc_to_act": "Aan zet", "oc_nothing": "Nog niets vastgelegd.", "oc_change": "Wijzigen", "oc_remove": "Punt verwijderen",
        "oc_add": "Voorwaarde of oplossing toevoegen", "oc_add_button": "Punt toevoegen", "oc_save": "Wijziging opslaan",
        "oc_finalise": "Uitkomsten vaststellen", "oc_finalise_intro": "Stel de uitkomsten vast namens de gastheer of gastvrouw: daarna gaan ze mee in de bundel en kunnen ze niet meer via de links worden gewijzigd.",
        "oc_reopen": "Weer openzetten als concept", "oc_reopen_intro": "Zet de uitkomsten terug naar concept, zodat de gastheer of gastvrouw en de moderatoren ze weer kunnen aanpassen. Ze gaan dan niet meer mee in de bundel tot ze opnieuw zijn vastgesteld.",
        "oc_links": "Links voor gastheer en moderatoren", "oc_host_link": "Gastheer of gastvrouw (alle tafels, kan vaststellen)",
        "oc_audit": "Verloop van de uitkomsten", "oc_no_audit": "Nog geen wijzigingen.",
        "oc_action_added": "toegevoegd", "oc_action_changed": "gewijzigd", "oc_action_removed": "verwijderd",
        "oc_action_finalised": "vastgesteld", "oc_action_reopened": "weer concept",
        "oc_bundle": "Bundel van de provincie (om te printen)", "oc_bundle_all": "Bundel van de hele tour (om te printen)",
        "oc_bundle_pdf": "Bundel als PDF", "oc_bundle_csv": "Bundel als CSV",
        "oc_back": "Terug naar de uitkomsten in het beheer", "oc_saved": "De uitkomsten zijn bijgewerkt.",
        "oc_field_kind": "soort", "oc_field_title": "titel", "oc_field_explanation": "toelichting", "oc_field_actors": "aan zet",
        "oc_field_tags": "thema's", "oc_field_table_id": "tafel",
        "nav_ideas": "Jeugdraad", "nav_bundle": "Bundel slotbijeenkomst", "job_title": "Achtergrondtaak",
        "job_intro": "De wijziging is opgeslagen. Het versturen of bijwerken voor iedereen loopt op de achtergrond.",
        "job_kind_meetup_cancelled": "afzeggingen versturen", "job_kind_meetup_changed": "wijzigingen versturen",
        "job_kind_promotions": "wachtenden een plek geven", "job_kind_invitations": "uitnodigingen versturen",
        "job_state": "Stand", "job_done": "Gedaan", "reload": "Vernieuwen",
        "ideas_title": "Ideeën van de jeugdraad", "no_ideas": "Er zijn nog geen ideeën.",
        "idea_age": "Leeftijd", "idea_status": "Status", "approve": "Goedkeuren", "reject": "Afwijzen",
        "idea_pending": "wacht op beoordeling", "idea_approved": "goedgekeurd", "idea_rejected": "afgewezen",
        "codes_title": "Codes voor de jeugdraad", "code_label": "Notitie bij de code (geen naam van een kind)",
        "create_code": "Nieuwe code maken", "new_code": "De nieuwe code (alleen nu te zien; geef hem door aan de jeugdraad)",
        "revoke_label": "Code intrekken", "revoke": "Intrekken", "revoked": "De code is ingetrokken.",
        "console": "Beheer", "nav": "Beheer", "nav_meetups": "Meetups", "nav_new": "Nieuwe meetup",
        "nav_organisers": "Organisatoren en digests", "nav_erasure": "Gegevens wissen", "sign_out": "Afmelden",
        "signed_in_as": "Aangemeld als",
        "login_title": "Aanmelden voor beheer",
        "login_intro": "Vul je beheertoken in. Je blijft 8 uur aangemeld op dit apparaat, of tot je afmeldt.",
        "token": "Beheertoken", "login": "Aanmelden",
        "meetups_title": "Meetups", "no_meetups": "Er zijn nog geen meetups.", "col_title": "Meetup",
        "col_date": "Begint", "col_place": "Plaats", "col_fill": "Bezet / plekken", "col_waitlist": "Wachtlijst",
        "col_state": "Status",
        "new_title": "Nieuwe meetup", "edit_title": "Meetup bewerken", "create": "Meetup aanmaken", "save": "Opslaan",
        "saved": "De wijzigingen zijn opgeslagen.", "form_errors": "Controleer de gemarkeerde velden:",
        "title": "Titel", "kind": "Soort", "province": "Provincie", "city": "Plaats", "venue": "Locatie",
        "host.name": "Naam gastheer of gastvrouw", "host.email": "E-mailadres gastheer of gastvrouw",
        "starts_at": "Begint", "ends_at": "Eindigt", "mode": "Vorm", "capacity": "Aantal plekken",
        "waitlist.enabled": "Wachtlijst aan", "status": "Status", "join_url": "Deelnamelink (online)",
        "description": "Beschrijving", "reminders": "Herinneringen: minuten voor het begin, met komma's (leeg: de standaard)",
        "optional": "optioneel", "no_choice": "(geen)",
        "mode_online": "online", "mode_in_person": "op locatie",
        "state_open": "open", "state_closed": "gesloten", "state_cancelled": "gaat niet door",
        "registrations": "Aanmeldingen", "tables": "Thematafels", "handover": "Overdracht en keten",
        "public_page": "Openbare pagina", "back_to_meetup": "Terug naar de meetup",
        "csv": "Download de aanmeldingen als CSV", "no_registrations": "Nog geen aanmeldingen.",
        "name": "Naam", "email": "E-mailadres", "role": "Rol", "position": "Plek op de wachtlijst",
        "organisation": "Organisatie", "municipality": "Gemeente", "signed_up": "Aangemeld op",
        "reg_confirmed": "bevestigd", "reg_waitlisted": "wachtlijst", "reg_cancelled": "geannuleerd",
        "erased": "gewist", "suppressed": "mail komt niet aan",
        "tables_csv": "Tafellijsten als CSV", "zoom_csv": "Zoom-indeling van de breakout rooms (CSV)",
        "tables_edit": "Tafels instellen", "table_n": "Tafel", "table_name": "Naam van de tafel",
        "table_description": "Beschrijving", "moderator_name": "Naam moderator", "moderator_email": "E-mailadres moderator",
        "table_capacity": "Plekken", "change_until": "Van tafel wisselen kan tot", "save_tables": "Tafels opslaan",
        "tables_hint": "Maak alle velden van een rij leeg om die tafel weg te halen (alleen als er niemand aan zit).",
        "seated": "bezet", "of": "van", "no_table": "Nog zonder tafel", "nobody": "Nog niemand.", "no_tables": "Deze meetup heeft geen thematafels.",
        "handover_title": "Overdracht", "handover_intro": "Draag deze meetup over aan een nieuwe gastheer of gastvrouw in een andere plaats. De vervolgmeetup is aangekondigd tot de nieuwe gastheer of gastvrouw de overdracht bevestigt via de link in hun e-mail.",
        "hand_over": "Overdragen", "host_name": "Naam nieuwe gastheer of gastvrouw",
        "host_email": "E-mailadres nieuwe gastheer of gastvrouw", "follow_up_title": "Titel van de vervolgmeetup",
        "handover_status": "Stand van de overdracht", "hs_proposed": "voorgesteld: wacht op bevestiging van de nieuwe gastheer of gastvrouw",
        "hs_accepted": "bevestigd door de nieuwe gastheer of gastvrouw", "hs_completed": "afgerond",
        "follow_up": "Vervolgmeetup", "audit": "Verloop", "chain": "Keten van meetups", "this_meetup": "deze meetup",
        "organisers_title": "Organisatoren en digests", "no_organisers": "Er zijn nog geen organisatoren.",
        "scope": "Bereik", "frequency": "Frequentie", "next_digest": "Volgende digest vanaf", "language": "Taal",
        "remove": "Verwijderen", "add_organiser": "Organisator toevoegen", "add": "Toevoegen",
        "scope_all": "de hele tour", "scope_province": "één provincie", "scope_meetup": "één meetup",
        "scope.province": "Provincie (bij één provincie)", "scope.meetup_id": "Meetup (bij één meetup)",
        "freq_daily": "dagelijks (07:00)", "freq_weekly": "wekelijks (maandag 07:00)",
        "lang_nl": "Nederlands", "lang_en": "Engels",
        "run_digests": "Digests nu versturen", "run_intro": "Stuurt wie aan de beurt is nu zijn digest; ieder hooguit één per periode.",
        "run_result": "Resultaat van de digests", "sent": "verstuurd", "skipped": "niets te melden", "failed": "mislukt",
        "busy": "al bezig", "deferred": "uitgesteld",
        "was_due": "Aan de beurt", "not_due": "Niet aan de beurt",
        "reason_new": "nieuw in deze periode: de eerste digest komt in de volgende periode, vanaf",
        "reason_served": "deze periode al gehad; de volgende vanaf",
        "nothing_sent": "Er is niets verstuurd.", "why_no_organisers": "Er zijn geen organisatoren.",
        "why_none_due": "Niemand was aan de beurt (zie hieronder wanneer wel).",
        "why_skipped": "Wie aan de beurt was, kreeg geen digest: in hun bereik veranderde niets sinds hun vorige digest.",
        "why_failed": "Versturen lukte niet; de volgende geplande ronde probeert het opnieuw.",
        "erasure_title": "Gegevens wissen",
        "erasure_intro": "Wist alles over een e-mailadres: aanmeldingen (plekken worden geannuleerd en gaan naar de wachtlijst), namen in het activiteitenlog, mail in de wachtrij, abonnementen als organisator en het adres als gastheer of gastvrouw. Dit kan niet ongedaan worden gemaakt.",
        "erase": "Wis de gegevens van dit adres", "erased_title": "Gewist",
        "e_registrations": "aanmeldingen", "e_cancelled": "waarvan geannuleerd", "e_activity_records": "regels in het activiteitenlog",
        "e_queued_mail": "mails in de wachtrij", "e_organisers": "abonnementen als organisator",
        "e_meetup_hosts": "keer als gastheer of gastvrouw", "e_meetups": "meetups", "audit_id": "Kenmerk in het wislogboek",
        "erased_nothing": "Er was niets opgeslagen over dit adres.",
    },
    "en": {
        "nav_outcomes": "Outcomes", "outcomes_title": "Outcomes", "outcomes_intro": "Per meetup the conditions and solutions of each theme table. Once final, only the organisers can change anything; every change is in the history.",
        "outcomes": "Outcomes", "oc_draft": "draft", "oc_final": "final", "oc_items": "Items",
        "oc_status": "State of the outcomes", "oc_final_since": "Final since",
        "oc_final_note": "The outcomes are final and go into the bundle. Changes below are recorded as the organisers' corrections.",
        "oc_draft_note": "The outcomes are still a draft: the host and the moderators can add to them through their links.",
        "kind_condition": "Condition", "kind_solution": "Solution", "oc_kind": "Kind", "oc_title": "Short title",
        "oc_explanation": "Explanation", "oc_actors": "Who should act?", "oc_tags": "Themes", "oc_table": "Table",
        "actor_school": "school", "actor_gemeente": "municipality", "actor_rijk": "national government", "actor_other": "other",
        "oc_to_act": "To act", "oc_nothing": "Nothing recorded yet.", "oc_change": "Change", "oc_remove": "Remove item",
        "oc_add": "Add a condition or solution", "oc_add_button": "Add item", "oc_save": "Save change",
        "oc_finalise": "Make the outcomes final", "oc_finalise_intro": "Make the outcomes final on the host's behalf: they then go into the bundle and can no longer be changed through the links.",
        "oc_reopen": "Reopen as a draft", "oc_reopen_intro": "Put the outcomes back into draft, so the host and the moderators can change them again. They leave the bundle until they are made final again.",
        "oc_links": "Links for the host and the moderators", "oc_host_link": "Host (every table, may make them final)",
        "oc_audit": "History of the outcomes", "oc_no_audit": "No changes yet.",
        "oc_action_added": "added", "oc_action_changed": "changed", "oc_action_removed": "removed",
        "oc_action_finalised": "made final", "oc_action_reopened": "reopened as a draft",
        "oc_bundle": "The province's bundle (to print)", "oc_bundle_all": "The whole tour's bundle (to print)",
        "oc_bundle_pdf": "Bundle as PDF", "oc_bundle_csv": "Bundle as CSV",
        "oc_back": "Back to the outcomes in the admin console", "oc_saved": "The outcomes have been updated.",
        "oc_field_kind": "kind", "oc_field_title": "title", "oc_field_explanation": "explanation", "oc_field_actors": "to act",
        "oc_field_tags": "themes", "oc_field_table_id": "table",
        "nav_ideas": "Youth council", "nav_bundle": "Bundle for the final meeting", "job_title": "Background job",
        "job_intro": "The change is saved. Mailing or updating everyone runs in the background.",
        "job_kind_meetup_cancelled": "sending cancellations", "job_kind_meetup_changed": "sending changes",
        "job_kind_promotions": "giving those waiting a seat", "job_kind_invitations": "sending invitations",
        "job_state": "State", "job_done": "Done", "reload": "Reload",
        "ideas_title": "Ideas of the youth council", "no_ideas": "There are no ideas yet.",
        "idea_age": "Age", "idea_status": "Status", "approve": "Approve", "reject": "Reject",
        "idea_pending": "awaiting review", "idea_approved": "approved", "idea_rejected": "rejected",
        "codes_title": "Codes for the youth council", "code_label": "Note with the code (no child's name)",
        "create_code": "Make a new code", "new_code": "The new code (shown only now; pass it on to the youth council)",
        "revoke_label": "Code to revoke", "revoke": "Revoke", "revoked": "The code has been revoked.",
        "console": "Admin", "nav": "Admin", "nav_meetups": "Meetups", "nav_new": "New meetup",
        "nav_organisers": "Organisers and digests", "nav_erasure": "Erase data", "sign_out": "Sign out",
        "signed_in_as": "Signed in as",
        "login_title": "Sign in to the admin console",
        "login_intro": "Enter your admin token. You stay signed in on this device for 8 hours, or until you sign out.",
        "token": "Admin token", "login": "Sign in",
        "meetups_title": "Meetups", "no_meetups": "There are no meetups yet.", "col_title": "Meetup",
        "col_date": "Starts", "col_place": "Place", "col_fill": "Taken / places", "col_waitlist": "Waiting list",
        "col_state": "Status",
        "new_title": "New meetup", "edit_title": "Edit meetup", "create": "Create meetup", "save": "Save",
        "saved": "The changes have been saved.", "form_errors": "Please check the marked fields:",
        "title": "Title", "kind": "Kind", "province": "Province", "city": "City", "venue": "Venue",
        "host.name": "Host's name", "host.email": "Host's email address",
        "starts_at": "Starts", "ends_at": "Ends", "mode": "Mode", "capacity": "Places",
        "waitlist.enabled": "Waiting list on", "status": "Status", "join_url": "Join link (online)",
        "description": "Description", "reminders": "Reminders: minutes before the start, comma-separated (empty: the default)",
        "optional": "optional", "no_choice": "(none)",
        "mode_online": "online", "mode_in_person": "in person",
        "state_open": "open", "state_closed": "closed", "state_cancelled": "cancelled",
        "registrations": "Registrations", "tables": "Theme tables", "handover": "Handover and chain",
        "public_page": "Public page", "back_to_meetup": "Back to the meetup",
        "csv": "Download the registrations as CSV", "no_registrations": "No registrations yet.",
        "name": "Name", "email": "Email address", "role": "Role", "position": "Place on the waiting list",
        "organisation": "Organisation", "municipality": "Municipality", "signed_up": "Signed up",
        "reg_confirmed": "confirmed", "reg_waitlisted": "waiting list", "reg_cancelled": "cancelled",
        "erased": "erased", "suppressed": "mail does not arrive",
        "tables_csv": "Table lists as CSV", "zoom_csv": "Zoom breakout room assignment (CSV)",
        "tables_edit": "Set the tables", "table_n": "Table", "table_name": "Table name",
        "table_description": "Description", "moderator_name": "Moderator's name", "moderator_email": "Moderator's email address",
        "table_capacity": "Places", "change_until": "Changing table is possible until", "save_tables": "Save tables",
        "tables_hint": "Empty every field of a row to remove that table (only when nobody sits at it).",
        "seated": "taken", "of": "of", "no_table": "No table yet", "nobody": "Nobody yet.", "no_tables": "This meetup has no theme tables.",
        "handover_title": "Handover", "handover_intro": "Hand this meetup over to a new host in another city. The follow-up meetup is announced until the new host accepts the handover through the link in their email.",
        "hand_over": "Hand over", "host_name": "New host's name",
        "host_email": "New host's email address", "follow_up_title": "Title of the follow-up meetup",
        "handover_status": "State of the handover", "hs_proposed": "proposed: waiting for the new host to accept",
        "hs_accepted": "accepted by the new host", "hs_completed": "completed",
        "follow_up": "Follow-up meetup", "audit": "History", "chain": "Chain of meetups", "this_meetup": "this meetup",
        "organisers_title": "Organisers and digests", "no_organisers": "There are no organisers yet.",
        "scope": "Scope", "frequency": "Frequency", "next_digest": "Next digest from", "language": "Language",
        "remove": "Remove", "add_organiser": "Add an organiser", "add": "Add",
        "scope_all": "the whole tour", "scope_province": "one province", "scope_meetup": "one meetup",
        "scope.province": "Province (for one province)", "scope.meetup_id": "Meetup (for one meetup)",
        "freq_daily": "daily (07:00)", "freq_weekly": "weekly (Monday 07:00)",
        "lang_nl": "Dutch", "lang_en": "English",
        "run_digests": "Send digests now", "run_intro": "Sends everyone whose turn it is their digest now; each at most one per period.",
        "run_result": "Result of the digests", "sent": "sent", "skipped": "nothing to report", "failed": "failed",
        "busy": "busy already", "deferred": "deferred",
        "was_due": "Due", "not_due": "Not due",
        "reason_new": "new in this period: the first digest comes at the next period, from",
        "reason_served": "served this period already; the next from",
        "nothing_sent": "Nothing was sent.", "why_no_organisers": "There are no organisers.",
        "why_none_due": "Nobody was due (see below when they are).",
        "why_skipped": "Those who were due got no digest: nothing changed in their scope since their last digest.",
        "why_failed": "Sending failed; the next scheduled run tries again.",
        "erasure_title": "Erase data",
        "erasure_intro": "Erases everything about an email address: registrations (places are cancelled and go to the waiting list), names in the activity log, queued mail, organiser subscriptions and the address as a host. This cannot be undone.",
        "erase": "Erase this address's data", "erased_title": "Erased",
        "e_registrations": "registrations", "e_cancelled": "of which cancelled", "e_activity_records": "activity log records",
        "e_queued_mail": "queued emails", "e_organisers": "organiser subscriptions",
        "e_meetup_hosts": "times as a host", "e_meetups": "meetups", "audit_id": "Reference in the erasure log",
        "erased_nothing": "Nothing was stored about this address.",
    },
}
