"""Routes of the youth council: the idea form (reached with a council code, no login), the
admin's council codes and review of ideas. Nothing about a council member's request is logged."""
from chalice import Blueprint

from chalicelib import auth, outcomes, rendering, youth
from chalicelib.errors import ValidationFailed
from chalicelib.http import admin, html_response, json_response, language, parse_body, routes, wants_html

bp = Blueprint(__name__)
route = routes(bp)
admin_route = admin(bp)


def _form(lang: str, status: int = 200, **context):
    from chalicelib import catalogue
    context.setdefault("values", {})
    context.setdefault("errors", {})
    context.setdefault("sent", False)
    return html_response(rendering.render_page(
        "jeugdraad.html", lang, provinces=catalogue.PROVINCES, tags=outcomes.get_tags(), age_bands=youth.AGE_BANDS,
        max_text=youth.TEXT_MAX, **context), status)


@route("/jeugdraad", methods=["GET"])
def form():
    return _form(language(bp.current_request))


@route("/jeugdraad", methods=["POST"])
def submit():
    request = bp.current_request
    body = parse_body(request)
    if not wants_html(request):
        return json_response({"idea": youth.submit(body)}, 201)
    lang = language(request)
    try:
        youth.submit(body)
    except ValidationFailed as error:  # the form again, each problem beside its field
        return _form(lang, 422, values=dict(body), errors=error.field_messages(lang))
    return _form(lang, 201, sent=True)


@admin_route("/admin/council-codes", methods=["POST"])
def create_code():
    return json_response(youth.create_code(parse_body(bp.current_request)), 201)


@admin_route("/admin/council-codes/{code}", methods=["DELETE"])
def revoke_code(code):
    return json_response(youth.revoke_code(code))


@admin_route("/admin/ideas", methods=["GET"])
def ideas():
    return json_response({"ideas": youth.list_ideas((bp.current_request.query_params or {}).get("status"))})


@admin_route("/admin/ideas/{idea_id}/approve", methods=["POST"])
def approve(idea_id):
    return json_response(youth.decide(idea_id, "approve", outcomes.admin_actor(auth.authenticate(
        bp.current_request.headers))))


@admin_route("/admin/ideas/{idea_id}/reject", methods=["POST"])
def reject(idea_id):
    return json_response(youth.decide(idea_id, "reject", outcomes.admin_actor(auth.authenticate(
        bp.current_request.headers))))


@admin_route("/admin/ideas/{idea_id}", methods=["PATCH"])
def edit(idea_id):
    request = bp.current_request
    return json_response(youth.edit(idea_id, parse_body(request), outcomes.admin_actor(
        auth.authenticate(request.headers))))


@admin_route("/admin/ideas/{idea_id}/audit", methods=["GET"])
def audit(idea_id):
    return json_response({"audit": youth.audit_of(idea_id)})
