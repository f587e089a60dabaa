"""Routes of privacy: the statement, "mail me my link", download and erase my data (manage link),
the follow-up opt-in and its one-click link, and the admin's erasure of an address."""
from chalice import Blueprint, Response

from chalicelib import auth, privacy, rendering
from chalicelib.http import (admin, encodable, html_response, json_response, language, parse_body, redirect,
                             routes, wants_html)

bp = Blueprint(__name__)
route = routes(bp)
admin_route = admin(bp)


def _lang(payload: dict | None = None, default: str = "nl") -> str:
    chosen = (payload or {}).get("language")
    return chosen if chosen in ("nl", "en") else language(bp.current_request, default)


@route("/privacy", methods=["GET"])
def statement():
    """The privacy statement the sign-up form asks people to accept (its periods come from settings)."""
    return html_response(rendering.render_page("privacy.html", _lang(), **privacy.statement_context()))


@route("/registrations/resend", methods=["GET"])
def resend_form():
    """Shows the form (never sends: mail scanners open every link)."""
    request = bp.current_request
    sent = (request.query_params or {}).get("sent") == "1"
    if wants_html(request):
        return html_response(rendering.render_page("resend.html", _lang(), sent=sent, errors={}, values={}))
    return json_response({"message": rendering.TEXTS[_lang()]["resend_intro"]})


@route("/registrations/resend", methods=["POST"])
def resend():
    """The same answer whether or not the address has registrations."""
    request = bp.current_request
    payload = parse_body(request)
    lang = _lang(payload)
    from chalicelib.errors import ValidationFailed
    try:
        privacy.resend_links(payload)
    except ValidationFailed as error:
        if not wants_html(request):
            raise
        return html_response(rendering.render_page("resend.html", lang, sent=False, errors=error.fields,
                                                   values=payload), 422)
    if wants_html(request):
        return redirect(f"/registrations/resend?sent=1&lang={lang}")
    return json_response({"message": rendering.TEXTS[lang]["resend_sent"]})


@route("/registrations/erased", methods=["GET"])
def erased_page():
    return html_response(rendering.render_page("erased.html", _lang(), periods=privacy.periods()))


@route("/registrations/{token}/data", methods=["GET"])
def download(token):
    """Everything stored about this registration, as a JSON file (the right of access)."""
    import json
    body = json.dumps(privacy.export(token), ensure_ascii=False, indent=2)
    return Response(body=encodable(body), status_code=200, headers={
        "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store",
        "Content-Disposition": 'attachment; filename="klassen-meetups-mijn-gegevens.json"'})


@route("/registrations/{token}/erase", methods=["GET"])
def erase_confirmation(token):
    """The confirmation step: shows what erasing does, changes nothing."""
    from chalicelib import catalogue, registration
    found = registration.by_token(token)
    lang = _lang(default=found.language)
    if wants_html(bp.current_request):
        return html_response(rendering.render_page(
            "erase.html", lang, token=token, meetup=catalogue.get_meetup(found.meetup_id),
            active=found.status in privacy.ACTIVE))
    return json_response({"message": "POST {\"confirm\": true} to this address to erase this registration's data"})


@route("/registrations/{token}/erase", methods=["POST"])
def erase(token):
    request = bp.current_request
    payload = parse_body(request)
    lang = _lang(payload)
    erased = privacy.erase_by_token(token, payload)
    if wants_html(request):
        return redirect(f"/registrations/erased?lang={lang}")
    return json_response({"erased": erased})


@route("/registrations/{token}/follow-up", methods=["POST"])
def follow_up(token):
    request = bp.current_request
    payload = parse_body(request)
    changed = privacy.change_follow_up(token, payload)
    if wants_html(request):
        return redirect(f"/registrations/{token}?lang={_lang(payload, changed.language)}")
    return json_response({"follow_up_opt_in": bool(changed.follow_up_opt_in)})


def _follow_up_answer(token: str, found):
    request = bp.current_request
    if wants_html(request):
        lang = _lang(default=found.language if found else "nl")
        return html_response(rendering.render_page("follow_up.html", lang, token=token,
                                                   subscribed=bool(found and found.follow_up_opt_in)))
    return json_response({"follow_up_opt_in": bool(found and found.follow_up_opt_in)})


@route("/follow-up/unsubscribe/{token}", methods=["GET"])
def follow_up_page(token):
    """Shows, never changes: mail scanners open every link."""
    return _follow_up_answer(token, privacy.follow_up_subscription(token))


@route("/follow-up/unsubscribe/{token}", methods=["POST"])
def follow_up_unsubscribe(token):
    """One click, also from the mail client (RFC 8058 List-Unsubscribe-Post). Again: the same."""
    request = bp.current_request
    privacy.follow_up_unsubscribe(token)
    if wants_html(request):
        return redirect(f"/follow-up/unsubscribe/{token}?lang={_lang()}")
    return json_response({"follow_up_opt_in": False})


@admin_route("/admin/erasures", methods=["POST"])
def erase_address():
    request = bp.current_request
    email = privacy.read_erasure_request(parse_body(request))
    return json_response(privacy.erase_address(email, actor="admin " + auth.authenticate(request.headers)))
