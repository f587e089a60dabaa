"""Routes of the tour catalogue: public listing and detail, admin create and change."""
from chalice import Blueprint, Response

from chalicelib import calendars, catalogue, meetup_changes, rendering
from chalicelib.http import admin, html_response, json_response, language, parse_body, routes, wants_html

bp = Blueprint(__name__)
route = routes(bp)
admin_route = admin(bp)


@route("/", methods=["GET"])
def home():
    return meetups()


@route("/meetups", methods=["GET"])
def meetups():
    request = bp.current_request
    params = request.query_params or {}
    if wants_html(request):  # the page's province filter: a GET form whose "all" is `?province=`
        return html_response(rendering.render_page("meetups.html", language(request),
                                                   **catalogue.page_meetups(province=params.get("province"))))
    found = catalogue.list_meetups(province=params.get("province"), kind=params.get("kind"),
                                   upcoming=params.get("upcoming"))
    return json_response({"meetups": found})


@route("/meetups.ics", methods=["GET"])
def tour_calendar():
    """The tour as a calendar to subscribe to (`?province=`; `?meetup=` for one meetup)."""
    request = bp.current_request
    params = request.query_params or {}
    found = catalogue.find_calendar(province=params.get("province"), meetup_id=params.get("meetup"))
    return Response(body=calendars.tour_calendar(found, language(request)).decode("utf-8"), status_code=200,
                    headers={"Content-Type": "text/calendar; charset=utf-8",
                             "Content-Disposition": 'inline; filename="klassen-meetups.ics"',
                             "Cache-Control": "public, max-age=300"})


@route("/meetups/{meetup_id}", methods=["GET"])
def meetup(meetup_id):
    request = bp.current_request
    if wants_html(request):
        return html_response(rendering.render_page("meetup.html", language(request),
                                                   meetup=catalogue.page_meetup(meetup_id)))
    return json_response(catalogue.get_meetup(meetup_id))


@admin_route("/admin/meetups", methods=["POST"])
def create_meetup():
    created = catalogue.create_meetup(parse_body(bp.current_request))
    return json_response(catalogue.admin_view(created), 201)


@admin_route("/admin/meetups/{meetup_id}", methods=["PATCH"])
def update_meetup(meetup_id):
    updated, job = meetup_changes.update_meetup(meetup_id, parse_body(bp.current_request))
    body = catalogue.admin_view(updated)
    if job is not None:  # bulk work the change started (emails, promotions): GET job.url for its progress
        from chalicelib import jobs
        body["job"] = jobs.reference(job)
    return json_response(body)
