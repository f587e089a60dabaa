"""Messages for people, Dutch first: every error and validation message is a `Message` with a
Dutch and an English text, rendered in the language of the page or request that shows it."""
from __future__ import annotations

from typing import NamedTuple

LANGUAGES = ("nl", "en")


class Message(NamedTuple):
    nl: str
    en: str

    def in_(self, lang: str) -> str:
        return self.en if lang == "en" else self.nl

    def __str__(self) -> str:  # logs and exceptions: the English text
        return self.en


def text(message: "Message | str", lang: str) -> str:
    """A message in `lang`; plain strings (from code that has no translation) as they are."""
    return message.in_(lang) if isinstance(message, Message) else str(message)


# How a field is named in a sentence ("Vul je naam in"). Unknown fields are named as sent.
LABELS: dict[str, tuple[str, str]] = {
    "name": ("je naam", "your name"),
    "email": ("je e-mailadres", "your email address"),
    "role": ("je rol", "your role"),
    "organisation": ("je organisatie of school", "your organisation or school"),
    "municipality": ("je gemeente", "your municipality"),
    "theme": ("het thema", "the theme"),
    "language": ("de taal", "the language"),
    "consent": ("de toestemming", "the consent"),
    "follow_up_opt_in": ("de keuze voor de vervolgmeetup", "the follow-up choice"),
    "confirm": ("de bevestiging", "the confirmation"),
    "title": ("de titel", "the title"),
    "kind": ("het soort meetup", "the kind of meetup"),
    "province": ("de provincie", "the province"),
    "city": ("de plaats", "the city"),
    "venue": ("de locatie", "the venue"),
    "host": ("de gastheer of gastvrouw", "the host"),
    "host.name": ("de naam van de gastheer of gastvrouw", "the host's name"),
    "host.email": ("het e-mailadres van de gastheer of gastvrouw", "the host's email address"),
    "host_name": ("de naam van de gastheer of gastvrouw", "the host's name"),
    "host_email": ("het e-mailadres van de gastheer of gastvrouw", "the host's email address"),
    "starts_at": ("de begintijd", "the start time"),
    "ends_at": ("de eindtijd", "the end time"),
    "mode": ("de vorm (online of op locatie)", "the mode (online or in person)"),
    "capacity": ("het aantal plekken", "the number of seats"),
    "waitlist": ("de wachtlijst", "the waitlist"),
    "waitlist.enabled": ("de wachtlijst aan of uit", "whether the waitlist is on"),
    "waitlist.max_length": ("de maximale lengte van de wachtlijst", "the maximum length of the waitlist"),
    "status": ("de status", "the status"),
    "join_url": ("de deelnamelink", "the join link"),
    "description": ("de beschrijving", "the description"),
    "follows": ("de meetup waarop deze volgt", "the meetup this follows"),
    "upcoming": ("het filter 'komend'", "the 'upcoming' filter"),
    "reminders": ("de herinneringen", "the reminders"),
    "tables": ("de tafels", "the tables"),
    "table_id": ("de thematafel", "the theme table"),
    "decision": ("het besluit", "the decision"),
    "change_until": ("de uiterste tijd om van tafel te wisselen", "the deadline for changing table"),
    "scope": ("het bereik", "the scope"),
    "scope.province": ("de provincie van het bereik", "the scope's province"),
    "scope.meetup_id": ("de meetup van het bereik", "the scope's meetup"),
    "frequency": ("de frequentie", "the frequency"),
    "meetup": ("de meetup", "the meetup"),
    "body": ("de inhoud van het verzoek", "the request body"),
}

# Problems, with {label} (lower case, mid-sentence) and {Label} (capitalised) and their parameters.
PROBLEMS: dict[str, tuple[str, str]] = {
    "required": ("Vul {label} in.", "Please fill in {label}."),
    "not_text": ("{Label} moet tekst zijn.", "{Label} must be text."),
    "too_long": ("{Label} mag hoogstens {maximum} tekens lang zijn.", "{Label} must be at most {maximum} characters."),
    "not_unicode": ("{Label} bevat tekens die geen geldige tekst zijn.", "{Label} contains characters that are not valid text."),
    "line_break": ("{Label} mag geen regeleinden bevatten.", "{Label} must not contain line breaks."),
    "control": ("{Label} mag geen stuurtekens bevatten.", "{Label} must not contain control characters."),
    "invisible": ("{Label} mag geen onzichtbare tekens of opmaaktekens bevatten.",
                  "{Label} must not contain invisible or formatting characters."),
    "encoded_word": ("{Label} mag geen gecodeerde woorden (=?...?=) bevatten.",
                     "{Label} must not contain encoded words (=?...?=)."),
    "not_visible": ("{Label} moet zichtbare tekens bevatten.", "{Label} must contain visible characters."),
    "not_a_name": ("{Label} mag geen links, e-mailadressen of opmaak bevatten.",
                   "{Label} must not contain links, email addresses or markup."),
    "choice": ("Kies {label}: {options}.", "Choose {label}: {options}."),
    "whole_number": ("{Label} moet een heel getal zijn.", "{Label} must be a whole number."),
    "between": ("{Label} moet tussen {minimum} en {maximum} liggen.", "{Label} must be between {minimum} and {maximum}."),
    "boolean": ("{Label} moet waar of onwaar zijn (true of false).", "{Label} must be true or false."),
    "time": ("{Label} moet een tijd zijn, zoals 2027-04-12T19:30:00+02:00.",
             "{Label} must be an ISO 8601 time, like 2027-04-12T19:30:00+02:00."),
    "year_between": ("{Label} moet tussen {minimum} en {maximum} vallen.", "{Label} must be between {minimum} and {maximum}."),
    "email": ("{Label} is geen geldig e-mailadres.", "{Label} is not a valid email address."),
    "email_ascii": ("{Label} mag vóór de @ alleen letters zonder accenten, cijfers en leestekens bevatten.",
                    "{Label} must have only ASCII letters, digits and punctuation before the @."),
    "url": ("{Label} moet een http(s)-adres zijn.", "{Label} must be an http(s) URL."),
    "object": ("{Label} moet een object zijn.", "{Label} must be an object."),
    "unknown_field": ("Dit veld kennen we niet.", "This field is not known."),
    "consent": ("Ga akkoord met de privacyverklaring om je aan te melden.",
                "Please accept the privacy statement to sign up."),
    "confirm_erasure": ("Bevestig het wissen: het kan niet ongedaan worden gemaakt.",
                        "Please confirm the erasure: it cannot be undone."),
    "after_start": ("{Label} moet na de begintijd liggen.", "{Label} must be after the start time."),
    "city_in_person": ("Vul de plaats in: een meetup op locatie heeft er een nodig.",
                       "Please fill in the city: an in-person meetup needs one."),
}


def label(field: str, lang: str) -> str:
    known = LABELS.get(field)
    if known is None:
        return f"'{field}'" if lang == "nl" else f"'{field}'"
    return known[1] if lang == "en" else known[0]


def problem(code: str, field: str, **params) -> Message:
    """The message for `code` about `field`, in both languages."""
    nl, en = PROBLEMS[code]

    def fill(template: str, lang: str) -> str:
        name = label(field, lang)
        return template.format(label=name, Label=name[:1].upper() + name[1:], **params)
    return Message(fill(nl, "nl"), fill(en, "en"))


def invalid_fields(fields) -> Message:
    """The summary of a 422: which fields to look at."""
    nl = ", ".join(label(f, "nl") for f in sorted(fields))
    en = ", ".join(label(f, "en") for f in sorted(fields))
    return Message(f"Controleer {nl}.", f"Please check {en}.")


# Messages shared by several places.
LINK_INVALID = Message("Deze link is niet (meer) geldig.", "This link is not valid.")
CLOSED = Message("Aanmelden voor deze meetup kan niet meer: de aanmelding is gesloten.",
                 "Sign-up for this meetup is closed.")
AWAITING_HOST = Message("Deze vervolgmeetup is aangekondigd. Aanmelden kan zodra de nieuwe gastheer of gastvrouw "
                        "de overdracht heeft bevestigd.",
                        "This follow-up meetup is announced. Sign-up opens once its new host has accepted the handover.")
FULL = Message("Deze meetup is vol en heeft geen wachtlijst.", "This meetup is full and has no waitlist.")
WAITLIST_FULL = Message("Deze meetup is vol en de wachtlijst ook: er kan niemand meer bij.",
                        "This meetup is full and so is its waitlist: nobody more can join.")
TRY_AGAIN = Message("Dat lukte even niet. Probeer het zo nog eens.", "That did not work just now; please try again.")
BUSY = Message("Het is erg druk bij deze meetup. Probeer het zo nog eens.",
               "The meetup is very busy; please try again in a moment.")
DATABASE_DOWN = Message("De database antwoordde niet. Probeer het zo nog eens.",
                        "The database did not answer; please try again.")
ADMIN_TOKEN_NEEDED = Message("Hiervoor is een geldig beheertoken nodig: Authorization: Bearer <token>.",
                             "A valid admin token is required: Authorization: Bearer <token>.")
CONSOLE_TOKEN_WRONG = Message("Dit beheertoken klopt niet (of is ingetrokken). Controleer het en probeer het opnieuw.",
                              "This admin token is not valid (or has been revoked). Check it and try again.")
CONSOLE_CSRF = Message("Dit formulier is verlopen of kwam niet van de beheeromgeving. Open de pagina opnieuw en "
                       "probeer het nog eens; er is niets veranderd.",
                       "This form has expired or did not come from the admin console. Open the page again and "
                       "retry; nothing was changed.")


def meetup_not_found(meetup_id: str) -> Message:
    shown = str(meetup_id)[:100]
    return Message(f"Er is geen meetup met id {shown!r}.", f"No meetup with id {shown!r}.")
LINK_EXPIRED = Message("Deze link is verlopen. Vraag een nieuwe aan via 'Stuur mijn link opnieuw'.",
                       "This link has expired. Ask for a new one with 'Mail me my link'.")
DATA_ERASED = Message("Deze link werkt niet meer: de gegevens waar hij bij hoorde zijn gewist.",
                      "This link no longer works: the data it was for has been erased.")
TABLE_FULL = Message("Deze thematafel is vol. Kies een andere tafel of 'geen voorkeur'.",
                     "This theme table is full. Please choose another table or 'no preference'.")
