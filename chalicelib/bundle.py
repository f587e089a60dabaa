"""The bundle for the final meeting (25 May): per province the meetups of its chains and their
final outcomes, then the national part (conditions ranked by how many provinces raised them, by
tag), the youth council's approved ideas, and which meetups have no final outcomes yet.

Cost: the tour has a few dozen meetups, so an admin request may read all of it: one Query of the
tour listing (whole meetup items), then per meetup one Query of its outcomes partition and one
Query of its registrations (only `role`, `status` and `joined_at` are read: no personal data),
and one Query per province of approved ideas. No Scan. With 40 meetups: about 95 requests.
Only final outcomes go in.
"""
from __future__ import annotations

import csv
import io

from chalicelib import catalogue, clock, outcomes, youth
from chalicelib.messages import Message
from chalicelib.models import REGISTRATION_PREFIX, Meetup, Registration
from chalicelib.statuses import MeetupState, OutcomeStatus, RegistrationStatus
from chalicelib.storage import storage_errors
from chalicelib.validation import Fields

FORMATS = ("html", "pdf", "json", "csv")
NO_PROVINCE = "Landelijk"  # meetups (e.g. the extra online ones) without a province
ACTOR_NAMES = {"school": ("school", "school"), "gemeente": ("gemeente", "municipality"),
               "rijk": ("rijk", "national government"), "other": ("anders", "other")}


def read_query(params: dict) -> tuple[str, str | None]:
    params = dict(params or {})
    f = Fields(params)
    fmt = f.choice("format", FORMATS, default="json")
    raw = params.get("province")
    province = None
    if raw:  # empty: the whole country, as a form's "all provinces" sends it
        province = catalogue.normalise_province(raw)
        if province is None:
            f.fail("province", "choice", options=", ".join(catalogue.PROVINCES))
    f.check()
    return fmt, province


def _counts(meetup_id: str) -> tuple[dict[str, int], int]:
    """Confirmed people by role, and how many followed their join link: only those attributes read."""
    by_role: dict[str, int] = {}
    joined = 0
    with storage_errors():
        for reg in Registration.query(meetup_id, Registration.sk.startswith(REGISTRATION_PREFIX),
                                      attributes_to_get=["role", "status", "joined_at"]):
            if reg.status == RegistrationStatus.CONFIRMED:
                by_role[reg.role] = by_role.get(reg.role, 0) + 1
            if reg.joined_at:
                joined += 1
    return dict(sorted(by_role.items())), joined


def _date(value: str) -> str:
    return clock.to_public(clock.from_storage(value))


def collect(province: str | None = None) -> dict:
    meetups = [m for m in catalogue.tour() if m.state != MeetupState.CANCELLED]
    by_id = {m.id: m for m in meetups}
    chains: dict[str, list[Meetup]] = {}
    for meetup in meetups:  # oldest first: the index is by start
        chains.setdefault(meetup.chain_id or meetup.id, []).append(meetup)

    def chain_province(members: list[Meetup]) -> str:
        root = by_id.get(members[0].chain_id or members[0].id, members[0])
        return root.province or next((m.province for m in members if m.province), None) or NO_PROVINCE

    provinces: dict[str, list[dict]] = {}
    missing: list[dict] = []
    conditions: list[tuple[str, dict, dict]] = []
    for chain_id, members in chains.items():
        where = chain_province(members)
        if province is not None and where != province:
            continue
        chain = {"chain_id": chain_id, "meetups": []}
        for meetup in members:
            state, items, _ = outcomes.load(meetup.id)
            final = outcomes.is_final(state)
            by_role, joined = _counts(meetup.id)
            before = by_id.get(meetup.follows) if meetup.follows else None
            entry = {
                "id": meetup.id, "title": meetup.title, "city": meetup.city, "province": meetup.province,
                "starts_at": _date(meetup.starts_at), "ends_at": _date(meetup.ends_at), "host": meetup.host_name,
                "handed_over_from": ({"meetup_id": before.id, "city": before.city, "host": before.host_name}
                                     if before else None),
                "participants": by_role, "participants_total": sum(by_role.values()), "joined": joined,
                "outcomes_status": OutcomeStatus.FINAL if final else OutcomeStatus.DRAFT,
                "finalised_at": _date(state.finalised_at) if final else None,
                "tables": [],
            }
            if final:
                for table in outcomes.tables_of(meetup):
                    mine = [outcomes.item_view(i) for i in items if i.table_id == table["id"]]
                    if mine:
                        entry["tables"].append({"id": table["id"], "name": table["name"], "name_en": table["name_en"],
                                                "conditions": [i for i in mine if i["kind"] == "condition"],
                                                "solutions": [i for i in mine if i["kind"] == "solution"]})
                        conditions += [(where, entry, i) for i in mine if i["kind"] == "condition"]
            else:
                missing.append({"id": meetup.id, "title": meetup.title, "city": meetup.city, "province": where,
                                "starts_at": entry["starts_at"],
                                "ended": meetup.ends_at <= clock.to_storage(clock.now())})
            chain["meetups"].append(entry)
        provinces.setdefault(where, []).append(chain)

    ranked: dict[str, dict] = {}
    for where, meetup, item in conditions:
        for tag in item["tags"]:
            found = ranked.setdefault(tag, {"tag": tag, "provinces": set(), "conditions": []})
            found["provinces"].add(where)
            found["conditions"].append({"title": item["title"], "explanation": item["explanation"],
                                        "actors": item["actors"], "province": where, "meetup_id": meetup["id"],
                                        "city": meetup["city"]})
    national = sorted(({"tag": r["tag"], "province_count": len(r["provinces"]), "provinces": sorted(r["provinces"]),
                        "conditions": r["conditions"]} for r in ranked.values()),
                      key=lambda r: (-r["province_count"], -len(r["conditions"]), r["tag"]))
    ideas = youth.approved_ideas(province) if province else youth.approved_ideas(everywhere=True)
    order = list(catalogue.PROVINCES) + [NO_PROVINCE]
    return {
        "title": "Klassen meetups: voorwaarden en oplossingen voor gelijke kansen",
        "generated_at": clock.to_public(clock.now()),
        "province_filter": province,
        "provinces": [{"province": p, "chains": provinces[p]} for p in sorted(provinces, key=order.index)],
        "national": {"conditions_by_tag": national},
        "youth_ideas": [youth.idea_view(i) for i in ideas],
        "without_final_outcomes": missing,
    }


# --- renderings -------------------------------------------------------------------------------------

CSV_COLUMNS = ("type", "province", "chain_id", "meetup_id", "meetup_title", "city", "date", "table", "title",
               "explanation", "actors", "tags", "age_band")


def to_csv(bundle: dict) -> bytes:
    """UTF-8 with BOM, `;`-separated (as Dutch Excel opens it): one row per final outcome and per idea."""
    out = io.StringIO()
    rows = csv.writer(out, delimiter=";", lineterminator="\r\n")
    rows.writerow(CSV_COLUMNS)

    def write(row: list) -> None:
        rows.writerow([_cell(value) for value in row])
    for section in bundle["provinces"]:
        for chain in section["chains"]:
            for meetup in chain["meetups"]:
                for table in meetup["tables"]:
                    for item in table["conditions"] + table["solutions"]:
                        write([item["kind"], section["province"], chain["chain_id"], meetup["id"],
                                         meetup["title"], meetup["city"] or "", meetup["starts_at"][:10],
                                         table["name"], item["title"], item["explanation"] or "",
                                         ",".join(item["actors"]), ",".join(item["tags"]), ""])
    for idea in bundle["youth_ideas"]:
        write(["youth_idea", idea["province"] or NO_PROVINCE, "", "", "", "", idea["submitted_on"], "",
                         idea["title"], idea["text"], "", idea["tag"] or "", idea["age_band"]])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell(value) -> str:
    """A spreadsheet never reads a cell as a formula: one starting with = + - @ gets a quote."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def html(bundle: dict, lang: str) -> str:
    from chalicelib import rendering
    return rendering.render_page("bundle.html", lang, bundle=bundle, actor_names=ACTOR_NAMES)


def _latin(text: str | None) -> str:
    """Text as the PDF's core fonts (Windows-1252) carry it: Dutch letters (é, ë, ï, ĳ as ij),
    quotes and dashes stay; anything else is spelled without accents, or '?'."""
    import unicodedata
    if not text:
        return ""
    out = []
    for ch in text.replace("\u0133", "ij").replace("\u0132", "IJ"):
        try:
            ch.encode("cp1252")
            out.append(ch)
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", ch).encode("cp1252", "ignore").decode("cp1252")
            out.append(plain or "?")
    return "".join(out)


def pdf(bundle: dict, lang: str = "nl") -> bytes:
    """The bundle as a PDF, made here (fpdf2, pure Python, imported only for this)."""
    from fpdf import FPDF  # lazy: cold starts of every other request stay as they were

    en = lang == "en"
    doc = FPDF(format="A4")
    doc.core_fonts_encoding = "windows-1252"
    doc.set_auto_page_break(True, margin=15)
    doc.set_title(_latin(bundle["title"]))
    doc.add_page()
    width = doc.w - doc.l_margin - doc.r_margin

    def line(text: str, size: float = 10, style: str = "", gap: float = 1.5) -> None:
        doc.set_font("Helvetica", style, size)
        doc.set_x(doc.l_margin)
        doc.multi_cell(width, size * 0.5, _latin(text))
        doc.ln(gap)

    line(bundle["title"], 16, "B", 3)
    line(("Bundle for the final meeting on 25 May" if en else "Bundel voor de slotbijeenkomst op 25 mei")
         + f" - {bundle['generated_at'][:10]}", 10, "I", 4)
    for section in bundle["provinces"]:
        line(section["province"], 14, "B", 2)
        for chain in section["chains"]:
            for m in chain["meetups"]:
                line(f"{m['starts_at'][:10]} - {m['city'] or 'online'}: {m['title']} ({m['host']})", 11, "B")
                if m["handed_over_from"]:
                    line((f"Handed over by {m['handed_over_from']['host']} ({m['handed_over_from']['city']})" if en else
                          f"Overgedragen door {m['handed_over_from']['host']} ({m['handed_over_from']['city']})"), 9, "I")
                roles = ", ".join(f"{r}: {n}" for r, n in m["participants"].items()) or "-"
                line(("Taking part" if en else "Deelnemers") + f": {m['participants_total']} ({roles}); "
                     + ("joined online" if en else "online binnengekomen") + f": {m['joined']}", 9)
                if m["outcomes_status"] != OutcomeStatus.FINAL:
                    line("No final outcomes yet." if en else "Nog geen vastgestelde uitkomsten.", 9, "I")
                for table in m["tables"]:
                    line((table["name_en"] if en else table["name"]), 10, "B")
                    for heading, items in (("Conditions" if en else "Voorwaarden", table["conditions"]),
                                           ("Solutions" if en else "Oplossingen", table["solutions"])):
                        if items:
                            line(heading, 10, "U")
                        for item in items:
                            who = ", ".join(ACTOR_NAMES[a][1 if en else 0] for a in item["actors"])
                            line(f"- {item['title']}", 10, "B", 0.5)
                            line(f"{item['explanation'] or ''} [{who}; {', '.join(item['tags'])}]", 9)
        doc.ln(2)
    doc.add_page()
    line("National: conditions by how many provinces raised them" if en else
         "Landelijk: voorwaarden naar het aantal provincies dat ze noemde", 14, "B", 3)
    for rank, row in enumerate(bundle["national"]["conditions_by_tag"], 1):
        line(f"{rank}. {row['tag']} - {row['province_count']} "
             + ("provinces" if en else "provincies") + f" ({', '.join(row['provinces'])})", 11, "B")
        for c in row["conditions"]:
            line(f"- {c['title']} ({c['province']}, {c['city'] or 'online'})", 9)
    line("Ideas of the youth council" if en else "Ideeën van de jeugdraad", 14, "B", 3)
    for idea in bundle["youth_ideas"]:
        line(f"{idea['title']} ({idea['age_band']}" + (f", {idea['province']}" if idea["province"] else "") + ")",
             10, "B", 0.5)
        line(idea["text"], 9)
    if not bundle["youth_ideas"]:
        line("None yet." if en else "Nog geen.", 9, "I")
    line("Meetups without final outcomes" if en else "Meetups zonder vastgestelde uitkomsten", 14, "B", 3)
    for m in bundle["without_final_outcomes"]:
        line(f"- {m['starts_at'][:10]} {m['city'] or 'online'} ({m['province']}): {m['title']}", 9, "", 0.5)
    return bytes(doc.output())
