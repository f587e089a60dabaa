"""Routes of the host-to-host handover: the admin hands a meetup over and completes the handover,
the incoming host accepts through the signed link in their email, anyone reads a chain."""
from chalice import Blueprint

from chalicelib import auth, handover, rendering
from chalicelib.http import (admin, html_response, json_response, language, parse_body, redirect,
                             routes, wants_html)

bp = Blueprint(__name__)
route = routes(bp)
admin_route = admin(bp)


def _admin_name() -> str:
    """Who is acting, for the audit trail (`admin_route` has checked the token already)."""
    return "admin " + auth.authenticate(bp.current_request.headers)


@admin_route("/admin/meetups/{meetup_id}/handover", methods=["POST"])
def hand_over(meetup_id):
    request = bp.current_request
    body = handover.hand_over(meetup_id, parse_body(request), actor=_admin_name(),
                              idempotency_key=(request.headers or {}).get("idempotency-key"),
                              lambda_context=request.lambda_context)
    return json_response(body, 201)


@admin_route("/admin/meetups/{meetup_id}/handover", methods=["GET"])
def admin_handover(meetup_id):
    return json_response(handover.admin_handover(meetup_id))


@admin_route("/admin/handovers/{meetup_id}/complete", methods=["POST"])
def complete(meetup_id):
    return json_response(handover.complete(meetup_id, actor=_admin_name()))


def _answer(found: dict, token: str):
    request = bp.current_request
    if wants_html(request):
        return html_response(rendering.render_page("handover.html", language(request), token=token, **found))
    return json_response(found)


@route("/handovers/{token}", methods=["GET"])
def show(token):
    """Shows, never changes: mail scanners open every link."""
    return _answer(handover.find_by_token(token), token)


@route("/handovers/{token}/accept", methods=["POST"])
def accept(token):
    request = bp.current_request
    accepted = handover.accept(token)
    if wants_html(request):  # a browser's form post: 303 to the page
        return redirect(f"/handovers/{token}?lang={language(request)}")
    return _answer(accepted, token)


@route("/meetups/{meetup_id}/chain", methods=["GET"])
def chain(meetup_id):
    return json_response({"chain": handover.chain(meetup_id)})
