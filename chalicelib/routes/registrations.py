"""Routes of sign-up and self-service: the form, sign-up, the manage link, cancellation,
and the admin's list of registrations."""
from chalice import Blueprint, Response

from chalicelib import catalogue, registration, rendering, theme_tables
from chalicelib.errors import ValidationFailed
from chalicelib.http import (admin, encodable, html_response, json_response, language, parse_body,
                             redirect, routes, wants_html)

bp = Blueprint(__name__)
route = routes(bp)
admin_route = admin(bp)


def _form_page(meetup_id: str, lang: str, *, values: dict | None = None, errors: dict | None = None,
               status: int = 200) -> Response:
    meetup = catalogue.page_meetup(meetup_id)
    tables = theme_tables.choices(catalogue.load(meetup_id), None)
    page = rendering.render_page("register.html", lang, meetup=meetup, roles=registration.ROLES,
                                 values=values or {}, errors=errors or {}, tables=tables)
    return html_response(page, status)


@route("/meetups/{meetup_id}/register", methods=["GET"])
def sign_up_form(meetup_id):
    return _form_page(meetup_id, language(bp.current_request))


@route("/meetups/{meetup_id}/registrations", methods=["POST"])
def sign_up(meetup_id):
    request = bp.current_request
    browser = wants_html(request)  # the contract: `Accept: text/html` is a browser, whatever the body
    payload = parse_body(request)
    lang = payload.get("language") if payload.get("language") in ("nl", "en") else language(request)
    try:
        outcome = registration.sign_up(meetup_id, payload)
    except ValidationFailed as error:
        if not browser:
            raise
        return _form_page(meetup_id, lang, values=payload, errors=error.field_messages(lang), status=422)
    if browser:
        if outcome.created:
            return redirect(f"{outcome.manage_url}?lang={lang}")
        return redirect(f"/meetups/{meetup_id}/registered?already=1&lang={lang}")
    if outcome.created:
        return json_response({"registration": registration.view(outcome.registration, outcome.position),
                              "manage_url": outcome.manage_url}, 201)
    # Nothing of the existing registration: the address's owner gets its link by email.
    return json_response({"already_registered": True, "message": rendering.TEXTS[lang]["already"]})


@route("/meetups/{meetup_id}/registered", methods=["GET"])
def signed_up(meetup_id):
    request = bp.current_request
    meetup = catalogue.get_meetup(meetup_id)
    already = (request.query_params or {}).get("already") == "1"
    return html_response(rendering.render_page("registered.html", language(request), meetup=meetup, already=already))


def _manage_answer(outcome_registration, position, lang):
    request = bp.current_request
    token = request.uri_params["token"]
    mine = registration.privacy_view(outcome_registration, token)
    if wants_html(request):
        meetup = catalogue.page_meetup(outcome_registration.meetup_id)
        tables = theme_tables.choices(catalogue.load(outcome_registration.meetup_id), outcome_registration.table_id)
        return html_response(rendering.render_page(
            "manage.html", lang, registration=registration.view(outcome_registration, position),
            meetup=meetup, token=token, privacy=mine, tables=tables))
    return json_response({"registration": registration.view(outcome_registration, position), "privacy": mine})


@route("/registrations/{token}", methods=["GET"])
def manage(token):
    """Shows, never changes: mail scanners open every link."""
    found, position = registration.find_by_token(token)
    return _manage_answer(found, position, language(bp.current_request, found.language))


@route("/registrations/{token}/cancel", methods=["GET"])
def cancel_confirmation(token):
    """The confirmation step before cancelling ("Ja, annuleer" posts, "Nee, ik kom" goes back).
    Shows, never changes: only the POST below cancels."""
    request = bp.current_request
    found, position = registration.find_by_token(token)
    lang = language(request, found.language)
    if wants_html(request):
        return html_response(rendering.render_page(
            "cancel.html", lang, registration=registration.view(found, position),
            meetup=catalogue.page_meetup(found.meetup_id), token=token))
    return json_response({"message": "POST to this address to cancel this registration"})


@route("/registrations/{token}/cancel", methods=["POST"])
def cancel(token):
    request = bp.current_request
    outcome = registration.cancel(token)
    lang = language(request, outcome.registration.language)
    if wants_html(request):  # a browser's form post: 303 to the page
        return redirect(f"/registrations/{token}?lang={lang}")
    return _manage_answer(outcome.registration, None, lang)


@route("/registrations/{token}/table", methods=["POST"])
def change_table(token):
    """Change theme table from the manage page (a form) or as JSON `{"table_id"}` ("none": no preference)."""
    request = bp.current_request
    person = theme_tables.change_table(registration.by_token(token), parse_body(request))
    if wants_html(request):
        return redirect(f"/registrations/{token}?lang={language(request, person.language)}#table")
    return json_response({"table_id": person.table_id})


@admin_route("/admin/meetups/{meetup_id}/registrations", methods=["GET"])
def admin_registrations(meetup_id):
    """One page (`limit`, default 500, at most 1000; `cursor` from the previous page's
    `next_cursor`): JSON, or with `format=csv` the same page as CSV, the next cursor in the
    `X-Next-Cursor` header and a `Link: <...>; rel="next"`. No answer nears Lambda's 6 MB."""
    request = bp.current_request
    params = request.query_params or {}
    limit, cursor = registration.read_page_request(params)
    from chalicelib import suppression
    rows, next_cursor = registration.list_registrations(meetup_id, limit=limit, cursor=cursor)
    found = suppression.flag(rows)  # + `suppressed`: no mail reaches it
    if params.get("format") == "csv":
        headers = {"Content-Type": "text/csv; charset=utf-8",
                   "Content-Disposition": f'attachment; filename="registrations-{meetup_id}.csv"'}
        separator = params.get("separator")
        if next_cursor:
            from urllib.parse import urlencode
            headers["X-Next-Cursor"] = next_cursor
            query = urlencode({"format": "csv", "limit": limit, "cursor": next_cursor, "separator": separator or ";"})
            headers["Link"] = f'</admin/meetups/{meetup_id}/registrations?{query}>; rel="next"'
        return Response(body=encodable(registration.to_csv(found, separator, header=cursor is None)), status_code=200,
                        headers=headers)
    return json_response({"registrations": found, "next_cursor": next_cursor})
