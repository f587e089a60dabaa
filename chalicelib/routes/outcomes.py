"""Routes of a meetup's outcomes: the moderators' and host's signed links (the form), the admin's
view and corrections, and the admin's tag list."""
from chalice import Blueprint

from chalicelib import auth, outcomes, rendering
from chalicelib.http import (admin, html_response, json_response, language, parse_body, redirect, routes,
                             wants_html)

bp = Blueprint(__name__)
route = routes(bp)
admin_route = admin(bp)


def _admin_name() -> str:
    return auth.authenticate(bp.current_request.headers)


def _back(token: str, body: dict, status: int = 200):
    """A browser's form post goes back to the form (303); an API client gets JSON."""
    request = bp.current_request
    if wants_html(request):
        return redirect(f"/outcomes/{token}?lang={language(request)}")
    return json_response(body, status)


@route("/outcomes/{token}", methods=["GET"])
def show(token):
    """The outcomes form: shows, never changes (mail scanners open every link)."""
    request = bp.current_request
    found = outcomes.show(token)
    if wants_html(request):
        return html_response(rendering.render_page("outcomes.html", language(request), token=token, **found))
    return json_response(found)


@route("/outcomes/{token}/items", methods=["POST"])
def add(token):
    return _back(token, outcomes.add_by_link(token, parse_body(bp.current_request)), 201)


@route("/outcomes/{token}/items/{item_id}", methods=["POST"])
def change(token, item_id):
    return _back(token, outcomes.change_by_link(token, item_id, parse_body(bp.current_request)))


@route("/outcomes/{token}/items/{item_id}/delete", methods=["POST"])
def remove(token, item_id):
    outcomes.remove_by_link(token, item_id)
    return _back(token, {"removed": item_id})


@route("/outcomes/{token}/finalise", methods=["POST"])
def finalise(token):
    return _back(token, outcomes.finalise_by_link(token))


@admin_route("/admin/tags", methods=["GET"])
def tags():
    return json_response({"tags": outcomes.get_tags()})


@admin_route("/admin/tags", methods=["PUT"])
def put_tags():
    return json_response({"tags": outcomes.put_tags(parse_body(bp.current_request),
                                                    outcomes.admin_actor(_admin_name()))})


@admin_route("/admin/meetups/{meetup_id}/outcomes", methods=["GET"])
def admin_show(meetup_id):
    return json_response(outcomes.admin_show(meetup_id))


@admin_route("/admin/meetups/{meetup_id}/outcomes/items", methods=["POST"])
def admin_add(meetup_id):
    return json_response(outcomes.admin_add(meetup_id, parse_body(bp.current_request), _admin_name()), 201)


@admin_route("/admin/meetups/{meetup_id}/outcomes/items/{item_id}", methods=["PATCH"])
def admin_change(meetup_id, item_id):
    return json_response(outcomes.admin_change(meetup_id, item_id, parse_body(bp.current_request), _admin_name()))


@admin_route("/admin/meetups/{meetup_id}/outcomes/items/{item_id}", methods=["DELETE"])
def admin_remove(meetup_id, item_id):
    return json_response(outcomes.admin_remove(meetup_id, item_id, _admin_name()))


@admin_route("/admin/meetups/{meetup_id}/outcomes/finalise", methods=["POST"])
def admin_finalise(meetup_id):
    return json_response(outcomes.admin_finalise(meetup_id, _admin_name()))


@admin_route("/admin/meetups/{meetup_id}/outcomes/reopen", methods=["POST"])
def admin_reopen(meetup_id):
    return json_response(outcomes.admin_reopen(meetup_id, _admin_name()))
