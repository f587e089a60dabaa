"""The bundle for the final meeting: HTML to print, PDF, JSON and CSV."""
from chalice import Blueprint, Response

from chalicelib import bundle
from chalicelib.http import admin, html_response, json_response, language, security_headers

bp = Blueprint(__name__)
admin_route = admin(bp)


@admin_route("/admin/bundle", methods=["GET"])
def get_bundle():
    request = bp.current_request
    fmt, province = bundle.read_query(request.query_params or {})
    found = bundle.collect(province)
    lang = language(request)
    if fmt == "html":
        return html_response(bundle.html(found, lang))
    name = f"klassen-bundel{'-' + province.lower() if province else ''}"
    if fmt == "pdf":
        return Response(body=bundle.pdf(found, lang), status_code=200, headers={
            "Content-Type": "application/pdf", "Content-Disposition": f'attachment; filename="{name}.pdf"',
            **security_headers(html=False)})
    if fmt == "csv":
        return Response(body=bundle.to_csv(found).decode("utf-8"), status_code=200, headers={
            "Content-Type": "text/csv; charset=utf-8", "Content-Disposition": f'attachment; filename="{name}.csv"',
            **security_headers(html=False)})
    return json_response(found)
