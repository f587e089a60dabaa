"""Routes of the admin console (pages under /admin/console/, /admin redirects there): sign in with
an admin token, the meetups, their registrations, theme tables and handover, organisers and the
digests, erasure, a background job's progress, the youth council's ideas and codes, the outcomes
of each meetup (the admin's audited corrections) and the bundle. Each view parses the form, calls
the capability's own function (the one the JSON admin route calls) and answers a page; sessions
and CSRF are chalicelib.console's."""
import functools
from urllib.parse import quote

from chalice import Blueprint, Response

from chalicelib import (catalogue, console, digest, handover, meetup_changes, messages, outcomes, privacy, registration,
                        rendering, suppression, theme_tables)
from chalicelib.errors import Conflict, Forbidden, NotFound, ValidationFailed
from chalicelib.http import (current_base, encodable, html_response, language, parse_body, redirect, routes,
                             security_headers)
from chalicelib.messages import CONSOLE_CSRF
from chalicelib.statuses import IdeaStatus

bp = Blueprint(__name__)
route = routes(bp)
PATH = console.PATH
# A run started from the console answers within API Gateway's 29 s, like POST /admin/digests/run.
DIGEST_RUN_TIME_BUDGET_SECONDS = 20.0


def _lang() -> str:
    return language(bp.current_request)


def _q(lang: str) -> str:
    return "?lang=en" if lang == "en" else ""


def _page(template: str, session: console.Session | None, here: str, status: int = 200, **context) -> Response:
    lang = _lang()
    context.setdefault("errors", {})
    context.setdefault("problem", None)
    context.setdefault("values", {})
    context.setdefault("saved", (bp.current_request.query_params or {}).get("saved") == "1")
    context.setdefault("province_options", [(p, p) for p in catalogue.PROVINCES])
    page = rendering.render_page(template, lang, c=console.TEXTS[lang], q=_q(lang), here=here, console_path=PATH,
                                 session=session, csrf=session.csrf if session else "", fid=console.field_id,
                                 **context)
    return html_response(page, status)


def signed_in(path: str, methods=("GET",)):
    """A console page: without a session a GET goes to the sign-in page; a POST needs the
    session and its CSRF token (else 403, nothing read or changed) and gets the form's fields."""
    def decorate(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            request = bp.current_request
            session = console.session_from(request.headers)
            if request.method == "POST":
                if session is None:
                    raise Forbidden(CONSOLE_CSRF, code="csrf")
                return view(session, console.check_csrf(session, parse_body(request)), *args, **kwargs)
            if session is None:
                return redirect(f"{PATH}/login{_q(_lang())}")
            return view(session, *args, **kwargs)
        return route(path, methods=list(methods))(guarded)
    return decorate


def _csv(body: str, filename: str) -> Response:
    return Response(body=encodable(body), status_code=200,
                    headers={"Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
                             "Content-Disposition": f'attachment; filename="{filename}"', **security_headers(html=False)})


# --- signing in and out ----------------------------------------------------------------------------

@route("/admin", methods=["GET"])
def admin_home():
    return redirect(f"{PATH}{_q(_lang())}")


@route(f"{PATH}/login", methods=["GET"])
def login_form():
    if console.session_from(bp.current_request.headers):
        return redirect(f"{PATH}{_q(_lang())}")
    return _page("console_login.html", None, f"{PATH}/login")


@route(f"{PATH}/login", methods=["POST"])
def login():
    try:
        cookie = console.sign_in(parse_body(bp.current_request).get("token"))
    except ValidationFailed as error:
        return _page("console_login.html", None, f"{PATH}/login", 401, errors=error.field_messages(_lang()))
    answer = redirect(f"{PATH}{_q(_lang())}")
    answer.headers["Set-Cookie"] = console.cookie_header(cookie, current_base())
    return answer


@route(f"{PATH}/logout", methods=["POST"])
def logout():
    """Signing out clears the session (without a valid session or CSRF token: only the cookie)."""
    answer = redirect(f"{PATH}/login{_q(_lang())}")
    answer.headers["Set-Cookie"] = console.cookie_header("", current_base())
    return answer


# --- meetups -----------------------------------------------------------------------------------------

@signed_in(PATH)
def meetups(session):
    found = catalogue.viewable(lambda m: catalogue.admin_view(m) | {"phase": catalogue.phase(m)},
                               catalogue.find_meetups())
    return _page("console_meetups.html", session, PATH, meetups=found)


def _meetup_form(session, here, *, meetup=None, values=None, errors=None, problem=None, status=200):
    return _page("console_meetup.html", session, here, status, meetup=meetup, errors=errors or {},
                 problem=problem, values=values or (console.meetup_form_values(meetup) if meetup else {}),
                 kinds=catalogue.KINDS, modes=catalogue.MODES, states=catalogue.STATES,
                 provinces=catalogue.PROVINCES)


@signed_in(f"{PATH}/meetups/new")
def new_meetup(session):
    return _meetup_form(session, f"{PATH}/meetups/new", values={"kind": "regional", "mode": "in_person",
                                                                 "waitlist.enabled": True, "status": "open"})


@signed_in(f"{PATH}/meetups", methods=("POST",))
def create_meetup(session, form):
    try:
        created = catalogue.create_meetup(console.meetup_payload(form))
    except ValidationFailed as error:
        return _meetup_form(session, f"{PATH}/meetups/new", values=form, errors=error.field_messages(_lang()),
                            status=422)
    return redirect(f"{PATH}/meetups/{created.id}{_q(_lang())}")


@signed_in(f"{PATH}/meetups/{{meetup_id}}")
def meetup(session, meetup_id):
    return _meetup_form(session, f"{PATH}/meetups/{meetup_id}", meetup=catalogue.admin_view(catalogue.load(meetup_id)))


@signed_in(f"{PATH}/meetups/{{meetup_id}}", methods=("POST",))
def update_meetup(session, form, meetup_id):
    current = catalogue.admin_view(catalogue.load(meetup_id, consistent=True))
    here = f"{PATH}/meetups/{meetup_id}"
    try:
        _, job = meetup_changes.update_meetup(meetup_id, console.meetup_payload(form, current), actor=session.actor)
    except ValidationFailed as error:
        return _meetup_form(session, here, meetup=current, values=form, errors=error.field_messages(_lang()),
                            status=422)
    except Conflict as error:
        return _meetup_form(session, here, meetup=current, values=form, problem=error.body(_lang())["message"],
                            status=409)
    if job is not None:  # the emails or promotions run in the background: show their progress
        return redirect(f"{PATH}/jobs/{job.id}" + ("?lang=en" if _lang() == "en" else ""))
    return redirect(f"{here}?saved=1" + ("&lang=en" if _lang() == "en" else ""))


# --- registrations and theme tables -------------------------------------------------------------------

def _registrations(meetup_id):
    """The first page (at most LIST_MAX), as GET /admin/meetups/{id}/registrations gives it."""
    rows, _ = registration.list_registrations(meetup_id, limit=registration.LIST_MAX)
    return suppression.flag(rows)


@signed_in(f"{PATH}/meetups/{{meetup_id}}/registrations")
def registrations(session, meetup_id):
    return _page("console_registrations.html", session, f"{PATH}/meetups/{meetup_id}/registrations",
                 meetup=catalogue.admin_view(catalogue.load(meetup_id)), registrations=_registrations(meetup_id))


@signed_in(f"{PATH}/meetups/{{meetup_id}}/registrations.csv")
def registrations_csv(session, meetup_id):
    return _csv(registration.to_csv(_registrations(meetup_id), (bp.current_request.query_params or {}).get("separator")),
                f"registrations-{meetup_id}.csv")


def _tables_page(session, meetup_id, *, rows=None, errors=None, problem=None, status=200):
    meetup = catalogue.admin_view(catalogue.load(meetup_id, consistent=True))
    return _page("console_tables.html", session, f"{PATH}/meetups/{meetup_id}/tables", status, meetup=meetup,
                 lists=theme_tables.lists(meetup_id, _lang()), rows=rows or console.table_rows(meetup),
                 change_until=console.local_input(meetup["table_change_until"]), errors=errors or {},
                 problem=problem)


@signed_in(f"{PATH}/meetups/{{meetup_id}}/tables")
def tables(session, meetup_id):
    return _tables_page(session, meetup_id)


@signed_in(f"{PATH}/meetups/{{meetup_id}}/tables", methods=("POST",))
def set_tables(session, form, meetup_id):
    body, rows, row_of = console.tables_payload(form)
    try:
        theme_tables.set_tables(meetup_id, body)
    except ValidationFailed as error:
        return _tables_page(session, meetup_id, rows=rows, status=422,
                            errors=console.table_errors(error.field_messages(_lang()), row_of))
    except Conflict as error:
        return _tables_page(session, meetup_id, rows=rows, status=409, problem=error.body(_lang())["message"])
    return redirect(f"{PATH}/meetups/{meetup_id}/tables{_q(_lang())}")


@signed_in(f"{PATH}/meetups/{{meetup_id}}/tables.csv")
def tables_csv(session, meetup_id):
    return _csv(theme_tables.lists_csv(meetup_id, _lang()), f"tafels-{meetup_id}.csv")


@signed_in(f"{PATH}/meetups/{{meetup_id}}/zoom.csv")
def zoom_csv(session, meetup_id):
    return _csv(theme_tables.zoom_csv(meetup_id), f"zoom-breakout-{meetup_id}.csv")


# --- handover -----------------------------------------------------------------------------------------

def _handover_page(session, meetup_id, *, values=None, errors=None, problem=None, status=200):
    outgoing = catalogue.admin_view(catalogue.load(meetup_id))
    try:
        existing = handover.admin_handover(meetup_id)
    except NotFound:  # not handed over yet (the meetup itself exists: loaded above)
        existing = None
    return _page("console_handover.html", session, f"{PATH}/meetups/{meetup_id}/handover", status,
                 meetup=outgoing, handover=existing, chain=handover.chain(meetup_id), values=values or {},
                 errors=errors or {}, problem=problem, modes=catalogue.MODES, provinces=catalogue.PROVINCES)


@signed_in(f"{PATH}/meetups/{{meetup_id}}/handover")
def handover_page(session, meetup_id):
    return _handover_page(session, meetup_id)


@signed_in(f"{PATH}/meetups/{{meetup_id}}/handover", methods=("POST",))
def hand_over(session, form, meetup_id):
    try:
        handover.hand_over(meetup_id, console.handover_payload(form), actor=session.actor)
    except ValidationFailed as error:
        return _handover_page(session, meetup_id, values=form, errors=error.field_messages(_lang()), status=422)
    except Conflict as error:
        return _handover_page(session, meetup_id, values=form, problem=error.body(_lang())["message"], status=409)
    return redirect(f"{PATH}/meetups/{meetup_id}/handover{_q(_lang())}")


# --- organisers and digests ---------------------------------------------------------------------------

def _organisers_page(session, *, values=None, errors=None, run=None, status=200):
    found = sorted(digest.list_organisers(), key=lambda o: (o.name.casefold(), o.id))
    return _page("console_organisers.html", session, f"{PATH}/organisers", status,
                 organisers=[digest.view(o) | {"scope_label": digest.describe_scope(o, _lang())} for o in found],
                 values=values or {"scope": "all", "frequency": "weekly", "language": "nl"}, errors=errors or {},
                 run=run, meetup_options=[(m.id, m.title) for m in catalogue.find_meetups()])


@signed_in(f"{PATH}/organisers")
def organisers(session):
    return _organisers_page(session)


@signed_in(f"{PATH}/organisers", methods=("POST",))
def subscribe(session, form):
    try:
        digest.subscribe(console.organiser_payload(form))
    except ValidationFailed as error:
        return _organisers_page(session, values=form, errors=error.field_messages(_lang()), status=422)
    return redirect(f"{PATH}/organisers{_q(_lang())}")


@signed_in(f"{PATH}/organisers/{{organiser_id}}/remove", methods=("POST",))
def remove_organiser(session, form, organiser_id):
    digest.remove(organiser_id)
    return redirect(f"{PATH}/organisers{_q(_lang())}")


@signed_in(f"{PATH}/digests/run", methods=("POST",))
def run_digests(session, form):
    before = digest.who_is_due()
    result = digest.run(time_budget=DIGEST_RUN_TIME_BUDGET_SECONDS)
    return _organisers_page(session, run=console.digest_run(result, before))


# --- erasure ------------------------------------------------------------------------------------------

@signed_in(f"{PATH}/erasures")
def erasure_form(session):
    return _page("console_erasure.html", session, f"{PATH}/erasures", values={}, erased=None)


@signed_in(f"{PATH}/erasures", methods=("POST",))
def erase(session, form):
    try:
        email = privacy.read_erasure_request(form)
    except ValidationFailed as error:
        return _page("console_erasure.html", session, f"{PATH}/erasures", 422, values=form, erased=None,
                     errors=error.field_messages(_lang()))
    return _page("console_erasure.html", session, f"{PATH}/erasures", values={},
                 erased=privacy.erase_address(email, actor=session.actor))


# --- background jobs, the youth council, the bundle --------------------------------------------------

@signed_in(f"{PATH}/jobs/{{job_id}}")
def job_page(session, job_id):
    from chalicelib import jobs
    found = jobs.view(jobs.load(job_id), _lang())
    return _page("console_job.html", session, f"{PATH}/jobs/{job_id}", job=found)


def _ideas_page(session, *, code=None, status=200, errors=None):
    from chalicelib import youth
    ideas = youth.list_ideas()
    order = {IdeaStatus.PENDING: 0, IdeaStatus.APPROVED: 1, IdeaStatus.REJECTED: 2}
    revoked = (bp.current_request.query_params or {}).get("revoked") == "1"
    return _page("console_ideas.html", session, f"{PATH}/ideas", status, code=code, errors=errors or {}, revoked=revoked,
                 ideas=sorted(ideas, key=lambda i: (order.get(i["status"], 3), i["submitted_on"])))


@signed_in(f"{PATH}/ideas")
def ideas(session):
    return _ideas_page(session)


@signed_in(f"{PATH}/ideas/{{idea_id}}", methods=("POST",))
def decide_idea(session, form, idea_id):
    from chalicelib import youth
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise ValidationFailed({"decision": messages.problem("choice", "decision", options="approve, reject")})
    youth.decide(idea_id, decision, session.actor)
    return redirect(f"{PATH}/ideas" + _q(_lang()))


@signed_in(f"{PATH}/council-codes", methods=("POST",))
def create_council_code(session, form):
    from chalicelib import youth
    try:
        created = youth.create_code({"label": form.get("label") or None})
    except ValidationFailed as error:
        return _ideas_page(session, status=422, errors=error.field_messages(_lang()))
    return _ideas_page(session, code=created)  # shown once: only its hash is kept


@signed_in(f"{PATH}/council-codes/revoke", methods=("POST",))
def revoke_council_code(session, form):
    from chalicelib import youth
    youth.revoke_code((form.get("code") or "").strip())
    return redirect(f"{PATH}/ideas?revoked=1" + ("&lang=en" if _lang() == "en" else ""))


@signed_in(f"{PATH}/bundle")
def bundle_page(session):
    """The bundle for the final meeting as the admin API gives it (`?format=pdf|csv` to download)."""
    from chalicelib import bundle
    params = bp.current_request.query_params or {}
    fmt, province = bundle.read_query(params)
    found = bundle.collect(province)
    if fmt == "pdf":
        return Response(body=bundle.pdf(found, _lang()), status_code=200, headers={
            "Content-Type": "application/pdf", "Content-Disposition": 'attachment; filename="klassen-bundel.pdf"',
            **security_headers(html=False)})
    if fmt == "csv":
        return _csv(bundle.to_csv(found).decode("utf-8"), "klassen-bundel.csv")
    # The printable page as GET /admin/bundle?format=html gives it, with (not printed) the way back
    # to the console and the downloads.
    lang = _lang()
    query = f"province={quote(province)}&" if province else ""
    return html_response(rendering.render_page(
        "bundle.html", lang, bundle=found, actor_names=bundle.ACTOR_NAMES, c=console.TEXTS[lang],
        console_links={"back": f"{PATH}/outcomes{_q(lang)}", "pdf": f"{PATH}/bundle?{query}format=pdf",
                       "csv": f"{PATH}/bundle?{query}format=csv"}))


# --- outcomes -----------------------------------------------------------------------------------------

@signed_in(f"{PATH}/outcomes")
def outcomes_overview(session):
    """Every meetup's outcomes: draft or final, and how many items (one Query per meetup, as the
    bundle reads them; the tour has a few dozen meetups)."""
    rows = []
    for found in catalogue.find_meetups():
        state, items, _ = outcomes.load(found.id)
        rows.append({"meetup": catalogue.admin_view(found) | {"phase": catalogue.phase(found)},
                     "status": "final" if outcomes.is_final(state) else "draft", "items": len(items)})
    return _page("console_outcomes_list.html", session, f"{PATH}/outcomes", rows=rows)


def _outcomes_page(session, meetup_id, *, scope=None, form=None, errors=None, problem=None, status=200):
    """A meetup's outcomes as GET /admin/meetups/{id}/outcomes gives them, with a form per table
    (add) and per item (change, remove); a refused form shown again as typed, its fields marked."""
    found = outcomes.admin_show(meetup_id)
    items = {item["id"]: item for table in found["tables"] for item in table["items"]}
    return _page("console_outcomes.html", session, f"{PATH}/meetups/{meetup_id}/outcomes", status, o=found,
                 meetup=found["meetup"], audit=console.outcome_audit(found["audit"], items),
                 failed_scope=scope, failed_item=console.outcome_form_item(form) if form is not None else None,
                 errors=errors or {}, problem=problem, scope_of=console.outcome_scope)


def _outcomes_done(meetup_id):
    return redirect(f"{PATH}/meetups/{meetup_id}/outcomes?saved=1" + ("&lang=en" if _lang() == "en" else ""))


def _outcome_change(session, meetup_id, scope, form, change):
    """Runs one of the admin's corrections: done, back to the page (303); refused by the rules
    (422, the form again), by the state or a change meanwhile (409) or an item gone (404): the
    page again with the reason."""
    catalogue.load(meetup_id)  # an unknown meetup: the usual 404 page
    try:
        change()
    except ValidationFailed as error:
        return _outcomes_page(session, meetup_id, scope=scope, form=form, status=422,
                              errors=console.scoped_errors(error.field_messages(_lang()), scope))
    except (Conflict, NotFound) as error:
        return _outcomes_page(session, meetup_id, problem=error.body(_lang())["message"], status=error.status)
    return _outcomes_done(meetup_id)


@signed_in(f"{PATH}/meetups/{{meetup_id}}/outcomes")
def outcomes_page(session, meetup_id):
    return _outcomes_page(session, meetup_id)


@signed_in(f"{PATH}/meetups/{{meetup_id}}/outcomes/items", methods=("POST",))
def add_outcome(session, form, meetup_id):
    scope = console.outcome_scope(table_id=form.get("table_id") or "")
    return _outcome_change(session, meetup_id, scope, form,
                           lambda: outcomes.admin_add(meetup_id, form, session.admin))


@signed_in(f"{PATH}/meetups/{{meetup_id}}/outcomes/items/{{item_id}}", methods=("POST",))
def change_outcome(session, form, meetup_id, item_id):
    return _outcome_change(session, meetup_id, console.outcome_scope(item_id=item_id), form,
                           lambda: outcomes.admin_change(meetup_id, item_id, form, session.admin))


@signed_in(f"{PATH}/meetups/{{meetup_id}}/outcomes/items/{{item_id}}/remove", methods=("POST",))
def remove_outcome(session, form, meetup_id, item_id):
    return _outcome_change(session, meetup_id, console.outcome_scope(item_id=item_id), form,
                           lambda: outcomes.admin_remove(meetup_id, item_id, session.admin))


@signed_in(f"{PATH}/meetups/{{meetup_id}}/outcomes/finalise", methods=("POST",))
def finalise_outcomes(session, form, meetup_id):
    return _outcome_change(session, meetup_id, "state", form, lambda: outcomes.admin_finalise(meetup_id, session.admin))


@signed_in(f"{PATH}/meetups/{{meetup_id}}/outcomes/reopen", methods=("POST",))
def reopen_outcomes(session, form, meetup_id):
    return _outcome_change(session, meetup_id, "state", form, lambda: outcomes.admin_reopen(meetup_id, session.admin))
