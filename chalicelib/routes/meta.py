"""The service describing itself: its OpenAPI document (chalicelib/openapi.json, packaged with the code)."""
import functools
from pathlib import Path

from chalice import Blueprint, Response

from chalicelib.http import routes

bp = Blueprint(__name__)
route = routes(bp)
DOCUMENT = Path(__file__).resolve().parent.parent / "openapi.json"


@functools.lru_cache(maxsize=1)
def document_text() -> str:
    return DOCUMENT.read_text(encoding="utf-8")


@route("/openapi.json", methods=["GET"])
def openapi():
    return Response(body=document_text(), status_code=200,
                    headers={"Content-Type": "application/json; charset=utf-8", "Cache-Control": "max-age=300"})
