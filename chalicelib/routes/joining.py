"""Routes of the meetup evening: the personal join link."""
from chalice import Blueprint

from chalicelib import catalogue, clock, joining, rendering
from chalicelib.http import html_response, json_response, language, redirect, routes, wants_html

bp = Blueprint(__name__)
route = routes(bp)

# What a join link answers when it does not lead to the meetup.
STATUS = {joining.Door.NOT_YET: 200, joining.Door.NO_LINK: 200, joining.Door.ENDED: 410,
          joining.Door.MEETUP_CANCELLED: 410, joining.Door.NOT_CONFIRMED: 403}


@route("/join/{token}", methods=["GET"])
def join(token):
    """Opens the door in its window (a GET records only the first click, which is what the link
    is for); never shows the meetup's real join_url anywhere but in the redirect."""
    request = bp.current_request
    found = joining.visit(token)
    if found.door is joining.Door.OPEN:
        return redirect(found.meetup.join_url)
    lang = language(request, found.registration.language or "nl")
    status = STATUS[found.door]
    if wants_html(request):
        return html_response(rendering.render_page(
            "join.html", lang, meetup=catalogue.view(found.meetup), door=found.door.value,
            status=found.registration.status, opens_at=found.opens_at), status)
    return json_response({"door": found.door.value, "opens_at": clock.to_public(found.opens_at),
                          "registration": {"status": found.registration.status}}, status)
