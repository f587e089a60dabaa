"""Routes of the theme tables: the admin sets a meetup's tables, reads each table's list (JSON,
CSV) and Zoom's breakout pre-assignment file, and spreads those without a table."""
from chalice import Blueprint, Response

from chalicelib import catalogue, theme_tables
from chalicelib.http import admin, json_response, language, parse_body

bp = Blueprint(__name__)
admin_route = admin(bp)


def _csv(body: str, filename: str) -> Response:
    return Response(body=body, status_code=200, headers={"Content-Type": "text/csv; charset=utf-8",
                                                        "Content-Disposition": f'attachment; filename="{filename}"'})


@admin_route("/admin/meetups/{meetup_id}/tables", methods=["PUT"])
def set_tables(meetup_id):
    return json_response(catalogue.admin_view(theme_tables.set_tables(meetup_id, parse_body(bp.current_request))))


@admin_route("/admin/meetups/{meetup_id}/tables", methods=["GET"])
def table_lists(meetup_id):
    request = bp.current_request
    fmt, separator = theme_tables.read_list_query(request.query_params or {})
    if fmt == "csv":
        return _csv(theme_tables.lists_csv(meetup_id, language(request), separator), f"tafels-{meetup_id}.csv")
    return json_response(theme_tables.lists(meetup_id, language(request)))


@admin_route("/admin/meetups/{meetup_id}/tables/zoom.csv", methods=["GET"])
def zoom_assignment(meetup_id):
    return _csv(theme_tables.zoom_csv(meetup_id), f"zoom-breakout-{meetup_id}.csv")


@admin_route("/admin/meetups/{meetup_id}/tables/spread", methods=["POST"])
def spread(meetup_id):
    return json_response({"placed": theme_tables.spread(meetup_id)})
