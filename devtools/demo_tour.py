"""The demo tour, loaded idempotently by `make run`: the sources' days and months, moved into
the coming year so that sign-up is open. Cities the sources name are used where they name one
(Lelystad, Helmond, Groningen, Den Haag); the other host municipalities are plausible demo data.
The two handovers the sources name (Lelystad to Almere, Helmond to Den Bosch) are made through
the handover service, about two months after their regional meetups."""
from __future__ import annotations

from datetime import date, datetime, time

from chalicelib import catalogue, clock
from chalicelib.errors import Conflict

# (province, city, month, day, capacity, from the sources?)
REGIONAL = [
    ("Flevoland", "Lelystad", 2, 1, 150, True),       # the national kick-off, online
    ("Noord-Brabant", "Helmond", 2, 4, 150, True),
    ("Drenthe", "Assen", 2, 11, 120, False),
    ("Friesland", "Leeuwarden", 2, 18, 120, False),
    ("Overijssel", "Zwolle", 2, 25, 150, False),
    ("Gelderland", "Arnhem", 3, 4, 150, False),
    ("Utrecht", "Utrecht", 3, 11, 150, False),
    ("Noord-Holland", "Haarlem", 3, 18, 150, False),
    ("Zuid-Holland", "Rotterdam", 3, 25, 150, False),
    ("Groningen", "Groningen", 4, 1, 180, True),      # 180 sign-ups in the source
    ("Zeeland", "Middelburg", 4, 8, 100, False),
    ("Limburg", "Maastricht", 4, 15, 120, False),
]


def tour_year(today: date | None = None) -> int:
    """The first year whose tour (from 1 February) is still ahead."""
    today = today or clock.now().astimezone(clock.AMSTERDAM).date()
    return today.year if today < date(today.year, 2, 1) else today.year + 1


def _at(year: int, month: int, day: int, hour: int, minute: int = 0) -> str:
    return clock.to_public(datetime.combine(date(year, month, day), time(hour, minute), tzinfo=clock.AMSTERDAM))


def demo_meetups(year: int) -> list[tuple[str, dict]]:
    meetups = []
    for province, city, month, day, capacity, sourced in REGIONAL:
        meetups.append((f"{province.lower()}-{year}", {
            "title": f"Klassen Meetup {province}",
            "kind": "regional", "province": province, "city": city, "mode": "online",
            "host": {"name": f"Gemeente {city}", "email": f"onderwijs@{city.lower().replace(' ', '')}.example.nl"},
            "starts_at": _at(year, month, day, 19, 30), "ends_at": _at(year, month, day, 21, 30),
            "capacity": capacity, "waitlist": {"enabled": True},
            "join_url": f"https://zoom.example.nl/klassen-{province.lower()}",
            "description": ("Aan thematafels in gesprek over kansengelijkheid in het onderwijs, met fragmenten "
                            "uit de serie Klassen als startpunt." +
                            ("" if sourced else " (Demogegevens: de gastgemeente is als voorbeeld gekozen.)")),
        }))
    for day in (12, 19):
        meetups.append((f"extra-{day}-april-{year}", {
            "title": f"Extra online Klassen Meetup {day} april",
            "kind": "extra", "province": None, "city": None, "mode": "online",
            "host": {"name": "Gelijke Kansen Alliantie", "email": "meetups@gka.example.nl"},
            "starts_at": _at(year, 4, day, 19, 30), "ends_at": _at(year, 4, day, 21, 30),
            "capacity": 300, "waitlist": {"enabled": True},
            "join_url": f"https://zoom.example.nl/klassen-extra-{day}",
            "description": "Extra landelijke online meetup, toegevoegd vanwege de grote belangstelling.",
        }))
    meetups.append((f"slotbijeenkomst-{year}", {
        "title": "Landelijke slotbijeenkomst Klassen",
        "kind": "final", "province": "Zuid-Holland", "city": "Den Haag", "mode": "in_person",
        "venue": "Den Haag (demolocatie)",
        "host": {"name": "Klassen impactprogramma", "email": "slot@klassen.example.nl"},
        "starts_at": _at(year, 5, 25, 14, 0), "ends_at": _at(year, 5, 25, 17, 0),
        "capacity": 250, "waitlist": {"enabled": True},
        "description": "Alle opbrengsten van de meetups worden gebundeld en overhandigd aan landelijke beleidsmakers.",
    }))
    return meetups


# (outgoing province, incoming city, follow-up id, month, day): the handovers the sources name.
HANDOVERS = [
    ("Flevoland", "Almere", "almere", 4, 2),
    ("Noord-Brabant", "'s-Hertogenbosch", "den-bosch", 4, 9),
]


def demo_handovers(year: int) -> list[tuple[str, str, dict]]:
    """(outgoing meetup id, follow-up meetup id, handover request)."""
    handovers = []
    for province, city, slug, month, day in HANDOVERS:
        handovers.append((f"{province.lower()}-{year}", f"{slug}-{year}", {
            "city": city, "host_name": f"Gemeente {city}",
            "host_email": f"onderwijs@{slug}.example.nl", "mode": "in_person",
            "venue": f"{city} (demolocatie)", "title": f"Klassen vervolgmeetup {city}",
            "starts_at": _at(year, month, day, 19, 30), "ends_at": _at(year, month, day, 21, 30),
            "capacity": 100, "waitlist": {"enabled": True},
            "description": "Vervolgmeetup: het stokje van de regionale meetup is doorgegeven aan deze gemeente.",
        }))
    return handovers


def load(year: int | None = None) -> int:
    """Create the demo meetups and handovers that do not exist yet; returns how many meetups were created."""
    from chalicelib import handover

    year = year or tour_year()
    created = 0
    for meetup_id, payload in demo_meetups(year):
        try:
            catalogue.create_meetup(payload, meetup_id=meetup_id, demo=True)
            created += 1
        except Conflict:
            pass  # loaded on an earlier run
    for outgoing_id, follow_up_id, request in demo_handovers(year):
        try:
            handover.hand_over(outgoing_id, request, actor="demo tour", meetup_id=follow_up_id, demo=True)
            created += 1
        except Conflict as conflict:
            if conflict.code not in ("already_handed_over", "exists"):
                raise  # else: handed over on an earlier run
    load_outcomes(year)
    return created


# Final outcomes of a few meetups and approved youth council ideas, so the bundle
# (GET /admin/bundle) shows something real at once. Demo data, written in the sources' spirit.
DEMO_OUTCOMES = {
    "Flevoland": [
        ("condition", "Eén schooladvies dat kansen openhoudt", "Een later en breder advies, met ruimte om op te stromen.",
         ["school", "rijk"], ["schooladvies", "kansengelijkheid"]),
        ("condition", "Kinderopvang en voorschool voor élk kind", "Toegang los van het werk van de ouders.",
         ["rijk", "gemeente"], ["kinderopvang", "kansengelijkheid"]),
        ("solution", "Brede brugklassen in Lelystad", "Scholen spreken samen af dat ze brede brugklassen aanbieden.",
         ["school", "gemeente"], ["schooladvies"]),
    ],
    "Groningen": [
        ("condition", "Genoeg leraren in krimpgebieden", "Kleine scholen moeten leraren kunnen houden.",
         ["rijk"], ["lerarentekort", "kansengelijkheid"]),
        ("condition", "Ouders betrekken in hun eigen taal", "Informatieavonden en gesprekken met tolken.",
         ["school", "gemeente"], ["ouderbetrokkenheid", "taal"]),
    ],
    "Limburg": [
        ("condition", "Kinderopvang in de buurt van de school", "Opvang en school onder één dak.",
         ["gemeente"], ["kinderopvang", "huisvesting"]),
        ("solution", "Taalcoach voor nieuwkomers", "Extra taalles in de eerste twee jaar.", ["school"], ["taal"]),
    ],
}
DEMO_IDEAS = [
    ("flevoland-000000000001", "Huiswerkklas op school", "Niet iedereen heeft thuis een rustige plek of iemand die "
     "kan helpen. Een huiswerkklas na school, gratis, voor iedereen.", "14-15", "Flevoland", "kansengelijkheid"),
    ("landelijk-000000000002", "Vraag het ons ook", "Als er iets over school wordt besloten, vraag dan ook wat "
     "leerlingen ervan vinden. Wij zitten er elke dag.", "16", None, None),
    ("groningen-000000000003", "Bus naar school betalen", "Als je ver weg woont is de bus duur. Dan kies je een "
     "school dichtbij, ook als die niet bij je past.", "12-13", "Groningen", "segregatie"),
]


def load_outcomes(year: int) -> None:
    """Idempotent: a meetup whose outcomes are final is left alone; ideas have fixed ids."""
    from pynamodb.exceptions import PutError

    from chalicelib import clock, outcomes
    from chalicelib.models import IDEA_PREFIX, IDEAS_PREFIX, Idea

    for province, items in DEMO_OUTCOMES.items():
        meetup = catalogue.load(f"{province.lower()}-{year}")
        state, existing, _ = outcomes.load(meetup.id)
        if outcomes.is_final(state):
            continue
        if not existing:
            for kind, title, explanation, actors, tags in items:
                outcomes.add(meetup, None, {"kind": kind, "title": title, "explanation": explanation,
                                            "actors": actors, "tags": tags}, "host")
        outcomes.finalise(meetup, "host")
    for idea_id, title, text, age_band, province, tag in DEMO_IDEAS:
        slug = idea_id.rpartition("-")[0]
        idea = Idea(pk=IDEAS_PREFIX + slug, sk=IDEA_PREFIX + idea_id, id=idea_id, title=title, text=text,
                    age_band=age_band, province=province, tag=tag, status="approved",
                    submitted_on=clock.now().date().isoformat())
        try:
            idea.save(Idea.sk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
