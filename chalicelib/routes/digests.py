"""Routes of the organisers' digests: subscriptions (admin), the run now (admin), and the
signed unsubscribe link in every digest (GET shows, POST unsubscribes)."""
from chalice import Blueprint

from chalicelib import digest, rendering
from chalicelib.http import (admin, html_response, is_form_post, json_response, language, parse_body, redirect,
                             routes, wants_html)

bp = Blueprint(__name__)
route = routes(bp)
admin_route = admin(bp)
# A run started over HTTP has to answer within API Gateway's 29 s; the rest waits for the schedule.
HTTP_RUN_TIME_BUDGET_SECONDS = 20.0


@admin_route("/admin/organisers", methods=["POST"])
def subscribe():
    organiser, created = digest.subscribe(parse_body(bp.current_request))
    return json_response(digest.view(organiser), 201 if created else 200)


@admin_route("/admin/organisers", methods=["GET"])
def organisers():
    return json_response({"organisers": [digest.view(o) for o in digest.list_organisers()]})


@admin_route("/admin/organisers/{organiser_id}", methods=["GET"])
def organiser(organiser_id):
    return json_response(digest.view(digest.load(organiser_id)))


@admin_route("/admin/organisers/{organiser_id}", methods=["DELETE"])
def remove_organiser(organiser_id):
    return json_response({"organiser": digest.view(digest.remove(organiser_id))})


@admin_route("/admin/digests/run", methods=["POST"])
def run_digests():
    return json_response(digest.run(time_budget=HTTP_RUN_TIME_BUDGET_SECONDS))


def _unsubscribe_answer(token: str, subscription):
    request = bp.current_request
    lang = language(request, subscription.language if subscription else "nl")
    if wants_html(request):
        label = digest.describe_scope(subscription, lang) if subscription else ""
        return html_response(rendering.render_page(
            "organiser_unsubscribe.html", lang, token=token, scope_label=label,
            subscription=digest.public_view(subscription) if subscription else None))
    if subscription is None:
        return json_response({"subscribed": False})
    return json_response({"subscribed": True, "subscription": digest.public_view(subscription)})


@route("/organisers/unsubscribe/{token}", methods=["GET"])
def unsubscribe_page(token):
    """Shows, never changes: mail scanners open every link."""
    return _unsubscribe_answer(token, digest.find_by_token(token))


@route("/organisers/unsubscribe/{token}", methods=["POST"])
def unsubscribe(token):
    """Unsubscribes; again, or on an ended subscription, the same answer. Also the target of
    one-click unsubscribing from the mail client (RFC 8058 List-Unsubscribe-Post)."""
    request = bp.current_request
    digest.unsubscribe(token)
    if is_form_post(request) and wants_html(request):
        return redirect(f"/organisers/unsubscribe/{token}?lang={language(request)}")
    return _unsubscribe_answer(token, None)
