"""HTTP plumbing shared by the blueprints: body parsing, content negotiation, responses,
and the one place where domain errors become HTTP answers."""
from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chalice import Response

from chalicelib.errors import DomainError, MalformedRequest, UnsupportedMediaType
from chalicelib.messages import Message
from chalicelib.rendering import BASE_PATH, current_base
from chalicelib.validation import FormBody

MAX_BODY_BYTES = 64 * 1024
# No body the service takes is more than three levels deep; anything far deeper is not meant
# for us (and would exhaust the parser's recursion: a 500 instead of a 400).
MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
HTML_TYPE = "text/html; charset=utf-8"
# Chalice answers other content types itself, in its own error shape; let them through so that
# `parse_body` refuses them with the contract's JSON error instead.
ROUTED_BODY_TYPES = [JSON_TYPE, FORM_TYPE, "text/plain", "multipart/form-data", "application/xml", "text/xml",
                     "application/octet-stream"]


def _header(request, name: str) -> str:
    return (request.headers.get(name) or "") if request.headers else ""


def wants_html(request) -> bool:
    """A browser asks for text/html; API clients ask for JSON or nothing."""
    if (request.query_params or {}).get("format") == "json":
        return False
    accept = _header(request, "accept").lower()
    if "text/html" not in accept:
        return False
    json_at = accept.find(JSON_TYPE)
    return json_at == -1 or accept.find("text/html") < json_at


def is_form_post(request) -> bool:
    return _header(request, "content-type").split(";")[0].strip().lower() == FORM_TYPE


def language(request, default: str = "nl") -> str:
    """`?lang=` when given, else `default` (Dutch first)."""
    lang = (request.query_params or {}).get("lang")
    return lang if lang in ("nl", "en") else default


def message_language(request) -> str:
    """The language of an error's texts: `?lang=`, else English only for a client whose
    Accept-Language prefers English over Dutch; Dutch otherwise."""
    lang = (request.query_params or {}).get("lang")
    if lang in ("nl", "en"):
        return lang
    accept = _header(request, "accept-language").lower()
    english, dutch = accept.find("en"), accept.find("nl")
    return "en" if english != -1 and (dutch == -1 or english < dutch) else "nl"


def parse_body(request) -> dict[str, Any]:
    """A JSON object or a form-encoded body as a dict; anything else is a clear 4xx."""
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise MalformedRequest(f"The body is larger than {MAX_BODY_BYTES} bytes", code="body_too_large")
    content_type = _header(request, "content-type").split(";")[0].strip().lower()
    if content_type == FORM_TYPE:
        try:
            # Bytes that are not UTF-8 stay visible as lone surrogates, which the field's text
            # validation refuses with a 422 naming that field (never stored as U+FFFD).
            fields = parse_qs(raw.decode("utf-8", "surrogateescape"), keep_blank_values=True, strict_parsing=False,
                              max_num_fields=100, encoding="utf-8", errors="surrogateescape")
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedRequest("The form body could not be read as form data") from exc
        return FormBody((name, values[-1]) for name, values in fields.items())
    if content_type in (JSON_TYPE, "") or content_type.endswith("+json"):
        if not raw.strip():
            raise MalformedRequest("The request body is empty; a JSON object is expected")
        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        except RecursionError as exc:
            raise MalformedRequest("The JSON body is nested too deeply", code="too_deep") from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedRequest(f"The request body is not valid JSON: {exc}"[:200]) from exc
        if not isinstance(body, dict):
            raise MalformedRequest("The request body must be a JSON object")
        if _depth(body) > MAX_JSON_DEPTH:
            raise MalformedRequest(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep",
                                   code="too_deep")
        return body
    raise UnsupportedMediaType(  # the request's own header is not repeated back
        Message(f"Dit soort inhoud kennen we niet; gebruik application/json of {FORM_TYPE}.",
                f"This Content-Type is not supported; use application/json or {FORM_TYPE}."))


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _depth(value) -> int:
    """How deeply lists and objects nest in `value` (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def encodable(text: str) -> str:
    """`text` as UTF-8 can carry it: a lone surrogate stored before validation refused them
    becomes U+FFFD instead of dropping the whole answer."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        from chalicelib.observability import logger
        logger.warning("answer held text that is not valid Unicode; replaced")
        return _SURROGATE.sub("\ufffd", text)


# --- the base path: pages work under any prefix (the execute-api URL's stage, /api) -------------

_SAFE_BASE = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")


def base_path(request) -> str:
    """The prefix before the app's own path in the URL the browser used: "/api" on the
    execute-api URL (API Gateway strips the stage from the event's `path` but not from
    `requestContext.path`), a custom domain's base path mapping, "" on a custom domain's root
    and locally. Only plain path segments; anything else is "" (never echo a header)."""
    context = (request.context or {}) if request is not None else {}
    full = context.get("path") or ""
    event = request.to_original_event() if request is not None and hasattr(request, "to_original_event") else {}
    own = (event or {}).get("path") or ""
    if own and full.endswith(own) and full != own:
        base = full[:-len(own)]
    elif not own and context.get("stage") and full.startswith(f"/{context['stage']}/"):
        base = f"/{context['stage']}"
    else:
        base = ""
    base = base.rstrip("/")
    return base if _SAFE_BASE.match(base) else ""


# --- responses ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _content_security_policy() -> str:
    from chalicelib import rendering
    from chalicelib.config import get_settings
    parts = urlsplit(get_settings().public_base_url)
    public_origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    styles = " ".join(rendering.inline_style_hashes())
    return "; ".join([
        "default-src 'none'", f"style-src {styles}".strip(),
        # The sign-up form's answer is a 303 to the manage link, which is on PUBLIC_BASE_URL.
        f"form-action 'self' {public_origin}".strip(), "base-uri 'none'", "frame-ancestors 'none'",
    ])


def security_headers(html: bool = True) -> dict[str, str]:
    """Pages carry URLs with tokens (manage, accept, unsubscribe): no referrer, no framing,
    nothing but our own inline style; HSTS on every deployed (HTTPS) stage."""
    from chalicelib.config import get_settings
    headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
    if html:
        headers.update({"Content-Security-Policy": _content_security_policy(), "X-Frame-Options": "DENY"})
    if not get_settings().is_local:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return headers


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(body=encodable(json.dumps(body, ensure_ascii=False)), status_code=status,
                    headers={"Content-Type": "application/json; charset=utf-8", **security_headers(html=False),
                             **(headers or {})})


def html_response(html: str, status: int = 200) -> Response:
    return Response(body=encodable(html), status_code=status,
                    headers={"Content-Type": HTML_TYPE, "Cache-Control": "no-store", **security_headers()})


def redirect(location: str) -> Response:
    """303 to `location`; a root-relative one is under the request's base path."""
    if location.startswith("/") and not location.startswith("//"):
        location = current_base() + location
    return Response(body="", status_code=303, headers={"Location": location, "Cache-Control": "no-store",
                                                       **security_headers()})


def error_response(error: DomainError, *, html: bool = False, lang: str = "nl") -> Response:
    """The one mapping from domain errors to HTTP."""
    if html:
        from chalicelib import rendering
        return html_response(rendering.render_page("error.html", lang, error=error.body(lang),
                                                   status=error.status), error.status)
    return json_response(error.body(lang), error.status)


def correlation_id(request) -> str:
    """API Gateway's request id; a caller's X-Request-Id where there is none (locally); else new."""
    import uuid
    return ((request.context or {}).get("requestId") or _header(request, "x-request-id")[:100]
            or uuid.uuid4().hex)


def routes(blueprint):
    """`route = routes(bp)` gives a decorator like `bp.route` whose views answer domain errors
    through `error_response`, log with the request's correlation id and never leak a stack trace;
    pages and redirects are built under the request's base path (`base_path`)."""
    from chalicelib.errors import DomainError
    from chalicelib.observability import logger

    def route(path: str, **options):
        options.setdefault("content_types", ROUTED_BODY_TYPES)

        def decorate(view):
            @functools.wraps(view)
            def handle(*args, **kwargs):
                request = blueprint.current_request
                logger.set_correlation_id(correlation_id(request))
                base = BASE_PATH.set(base_path(request))
                try:
                    return view(*args, **kwargs)
                except DomainError as error:
                    logger.info("request refused", extra={"path": request.path, "status": error.status,
                                                          "error": error.code})
                    html = wants_html(request)
                    return error_response(error, html=html,
                                          lang=language(request) if html else message_language(request))
                except Exception:  # the last guard: log it, answer a plain 500
                    logger.exception("unhandled error", extra={"path": request.path})
                    return json_response({"error": "internal", "message": "Er ging iets mis aan onze kant. (An internal error occurred.)"}, 500)
                finally:
                    BASE_PATH.reset(base)
            return blueprint.route(path, **options)(handle)
        return decorate
    return route


def admin(blueprint):
    """Like `routes`, for admin views: the bearer token is checked before the view runs."""
    route = routes(blueprint)

    def admin_route(path: str, **options):
        def decorate(view):
            from chalicelib import auth

            @functools.wraps(view)
            def guarded(*args, **kwargs):
                auth.authenticate(blueprint.current_request.headers)
                return view(*args, **kwargs)
            return route(path, **options)(guarded)
        return decorate
    return admin_route
