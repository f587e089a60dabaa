"""Serve the Chalice app locally as `chalice local` does (same LocalGateway, routing and
authorizers), on a server that stands a sign-up rush: `chalice local`'s listen backlog of 5
resets connections under load, and it never fires `@app.schedule`, so the scheduled jobs
run here on timers instead."""
from __future__ import annotations

import contextlib
import json
import os
import socketserver
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from chalice.app import _matches_content_type
from chalice.local import ChaliceRequestHandler, LocalDevServer, LocalGateway

from chalicelib.observability import logger


class RushReadyHTTPServer(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog
    allow_reuse_address = True


# The methods of HTTP itself (RFC 9110, PATCH, and the newer QUERY): answered 405 with `Allow` where a path lacks
# them. Any other method is a 501.
KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY")
# The contract's error codes for the gateway's own answers.
ERROR_CODES = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed", 411: "length_required",
               413: "body_too_large", 414: "uri_too_long", 415: "unsupported_media_type",
               431: "headers_too_large", 500: "internal", 501: "not_implemented",
               505: "http_version_not_supported"}
# The gateway cannot tell the caller's language: Dutch first, English after it.
MESSAGES = {
    404: "Hier is niets te vinden. (There is nothing at this address.)",
    405: "Dit adres kent deze methode niet; zie de Allow-header. (This address does not take this method; "
         "see the Allow header.)",
    415: "Dit soort inhoud kennen we niet; gebruik application/json of application/x-www-form-urlencoded. "
         "(This Content-Type is not supported; use application/json or application/x-www-form-urlencoded.)",
    500: "Er ging iets mis aan onze kant. (An internal error occurred.)",
    501: "Deze HTTP-methode kennen we niet. (This HTTP method is not supported.)",
}
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def error_body(status: int, message: str | None = None) -> bytes:
    """The contract's error shape. Never built from anything the request sent (no header, no path)."""
    return json.dumps({"error": ERROR_CODES.get(status, "error"),
                       "message": message or MESSAGES.get(status) or HTTPStatus(status).phrase}).encode()


def _answer(status: int, body: bytes | str | None, headers: dict | None = None) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
            "multiValueHeaders": {}, "body": body}


class ContractGateway(LocalGateway):
    """Chalice's LocalGateway, with the gateway's own answers in the contract's shape: 404 for an
    unknown path (a Dutch page for a browser), 405 with `Allow`, 415 for a body type the route does
    not list, OPTIONS with `Allow`, HEAD as the GET without its body; no request header is ever
    echoed (Chalice's 403 for an unknown path repeats the Authorization header)."""

    def allowed(self, route: str) -> list[str]:
        methods = set(self._app_object.routes[route]) | {"OPTIONS"}
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)

    def handle_request(self, method, path, headers, body):
        lower = {str(k).lower(): v for k, v in headers.items()}
        try:
            match = self.event_converter._route_matcher.match_route(path)
        except ValueError:
            return self._not_found(path, lower)
        if any(value == "" for value in match.captured.values()):  # `/meetups//registrations`
            return self._not_found(path, lower)
        views = self._app_object.routes[match.route]
        allow = ", ".join(self.allowed(match.route))
        if method == "OPTIONS" and "OPTIONS" not in views:
            return {"statusCode": 204, "headers": {"Allow": allow}, "multiValueHeaders": {}, "body": None}
        if method == "HEAD" and "HEAD" not in views and "GET" in views:
            method = "GET"  # the handler sends the GET's status and headers, and no body
        if method not in views:
            return _answer(405, error_body(405), {"Allow": allow})
        content_type = lower.get("content-type")
        if content_type and views[method].content_types and not _matches_content_type(
                content_type, views[method].content_types):
            return _answer(415, error_body(415))
        return contract_shaped(super().handle_request(method, path, headers, body))

    def _not_found(self, path: str, headers: dict) -> dict:
        from chalicelib import http
        request = SimpleNamespace(headers=headers, query_params={
            name: values[-1] for name, values in parse_qs(urlsplit(path).query).items()})
        if http.wants_html(request):
            from chalicelib import rendering
            lang = http.language(request)
            message = "Deze pagina bestaat niet." if lang == "nl" else "This page does not exist."
            page = rendering.render_page("error.html", lang, error={"error": "not_found", "message": message},
                                         status=404)
            return {"statusCode": 404, "headers": {"Content-Type": http.HTML_TYPE, "Cache-Control": "no-store"},
                    "multiValueHeaders": {}, "body": page}
        return _answer(404, error_body(404))


def contract_shaped(response: dict) -> dict:
    """Chalice's own error answers (`{"Code": ..., "Message": ...}`: a 415, a 500 from outside any
    view) in the contract's shape. Their messages are not kept: some repeat request headers."""
    if response.get("statusCode", 200) < 400 or response.get("isBase64Encoded"):
        return response
    try:
        body = json.loads(response.get("body") or "")
    except (TypeError, ValueError):
        return response
    if isinstance(body, dict) and set(body) == {"Code", "Message"}:
        status = response["statusCode"]
        headers = {k: v for k, v in (response.get("headers") or {}).items() if k.lower() != "content-type"}
        return {**response, "headers": {**headers, "Content-Type": JSON_CONTENT_TYPE}, "body": error_body(status)}
    return response


class ContractRequestHandler(ChaliceRequestHandler):
    """Chalice's request handler on the ContractGateway; the server's own errors (unknown method,
    malformed request line, oversized headers) in the contract's shape, and a HEAD without a body."""

    def __init__(self, request, client_address, server, app_object, config):
        self.local_gateway = ContractGateway(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)  # handles the request

    def __getattr__(self, name: str):
        # BaseHTTPRequestHandler answers a method without a `do_` handler with an HTML 501 that
        # closes the connection; here it is a JSON 501 that keeps it.
        if name.startswith("do_"):
            return self._generic_handle if name[3:] in KNOWN_METHODS else self._not_implemented
        raise AttributeError(name)

    def _not_implemented(self) -> None:
        if self._read_body() is not False:
            self._send_http_response(501, {"Content-Type": JSON_CONTENT_TYPE}, error_body(501))

    def _read_body(self):
        """The body by Content-Length; None if there is none; False (answered, connection closed)
        if it cannot be read."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            self.send_error(411)
            return False
        raw = (self.headers.get("content-length") or "0").strip()
        if not raw.isdigit():
            self.send_error(400)
            return False
        length = int(raw)
        return self.rfile.read(length) if length > 0 else None

    def _parse_payload(self):
        body = self._read_body()
        if body is False:
            raise _Answered()
        return dict(self.headers), body

    # Chalice binds do_GET, do_POST, ... to its own `_generic_handle` in the class body, which
    # would bypass this class's and its subclasses' (the 500 in the contract's shape, the app's
    # concurrency limit): they call the method by name instead.
    def _dispatch(self) -> None:
        self._generic_handle()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    def _generic_handle(self) -> None:
        try:
            super()._generic_handle()
        except _Answered:
            pass
        except Exception:  # the gateway itself failed: still an answer in the contract's shape
            logger.exception("local gateway error", extra={"method": self.command})
            self._send_http_response(500, {"Content-Type": JSON_CONTENT_TYPE}, error_body(500))

    def _send_http_response_with_body(self, code, headers, body) -> None:
        if self.command != "HEAD":
            return super()._send_http_response_with_body(code, headers, body)
        if not isinstance(body, bytes):
            body = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))  # the GET's length; no body follows
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self._send_headers(headers)

    def send_error(self, code, message=None, explain=None) -> None:
        """http.server's own errors (a malformed request line, too long headers, ...), in the
        contract's shape; they close the connection, as the request could not be read."""
        self.close_connection = True
        body = error_body(code)
        try:
            self.send_response(code)
            self.send_header("Connection", "close")
            self.send_header("Content-Type", JSON_CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if getattr(self, "command", None) != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass


class _Answered(Exception):
    """The request was answered already (its body could not be read)."""


class RequestsInFlight:
    """How many requests the server is handling (or holding for the app) right now: the
    background mail deliverer waits while there are any (`outbox.defer_to_requests`)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._count = 0

    def __enter__(self):
        with self._lock:
            self._count += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._count -= 1

    def serving(self) -> bool:
        return self._count > 0


class QuietHandler(ContractRequestHandler):
    """Every connection gets a thread, but only a few requests run the app at once: DynamoDB
    Local slows down sharply with many concurrent transactions, and one Python process gains
    nothing from more threads than it can feed. The rest wait their turn in order."""

    in_app = threading.BoundedSemaphore(int(os.environ.get("LOCAL_APP_CONCURRENCY", "12")))
    timeout = 30  # an idle keep-alive connection is closed after this
    in_flight = None  # the server's RequestsInFlight (set by build_server)

    def _generic_handle(self) -> None:
        with self.in_flight or contextlib.nullcontext(), self.in_app:
            super()._generic_handle()

    def log_message(self, format, *args):  # one line per request is noise under a rush
        pass


def build_server(host: str, port: int, stage: str = "dev") -> LocalDevServer:
    from pathlib import Path

    from chalice.cli.factory import CLIFactory
    from chalice.local import CustomLocalChalice, LocalChalice

    factory = CLIFactory(project_dir=str(Path(__file__).resolve().parent.parent))
    config = factory.create_config_obj(chalice_stage_name=stage)
    app = config.chalice_app
    # As chalice.local.create_local_server does: a thread-local current_request per request.
    if not isinstance(app, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    from chalicelib import outbox

    in_flight = RequestsInFlight()
    handler = type("Handler", (QuietHandler,), {"in_flight": in_flight})
    outbox.defer_to_requests(in_flight.serving)
    return LocalDevServer(app, config, host, port, handler_cls=handler, server_cls=RushReadyHTTPServer)


class Every(threading.Thread):
    """Runs `job` every `seconds` until stopped; a failing run is logged and retried next time."""

    def __init__(self, name: str, seconds: float, job):
        super().__init__(name=name, daemon=True)
        self.seconds, self.job, self.stopped = seconds, job, threading.Event()

    def run(self):
        while not self.stopped.wait(self.seconds):
            try:
                self.job()
            except Exception:
                logger.exception("scheduled job failed", extra={"job": self.name})


def scheduled_jobs() -> list[Every]:
    """The app's schedules, on timers: what EventBridge does when deployed."""
    import app as app_module
    jobs = []
    for name, seconds in LOCAL_SCHEDULES:
        handler = getattr(app_module, name, None)
        if handler is not None:
            jobs.append(Every(name, seconds, lambda handler=handler: handler.func(None)))
    return jobs


# (function in app.py, seconds between runs locally)
LOCAL_SCHEDULES = [("retry_outbox", 60), ("send_digests", 300), ("send_reminders", 60), ("apply_retention", 3600),
                   ("send_outcome_links", 600), ("resume_jobs", 60)]
