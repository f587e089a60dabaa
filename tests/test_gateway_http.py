"""The local gateway's own answers, over real HTTP against the service as `make run` serves it:
unknown paths, methods a path lacks, unknown methods, body types no route lists, HEAD and
OPTIONS, all in the contract's error shape, never echoing a request header, and each leaving
the kept-alive connection usable."""
from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
import requests

pytest_plugins = ["tests.e2e_support"]

TIMEOUT = 30


def assert_contract_error(answer, status: int, code: str):
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"error", "message", "fields"}
    return body


def still_serves(session: requests.Session, live_service):
    """The same kept-alive connection answers the next request."""
    answer = session.get(live_service.url("/meetups"), timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.json()["meetups"]


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


@pytest.fixture
def connection(live_service):
    parts = urlsplit(live_service.base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    yield conn
    conn.close()


def exchange(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    answer = conn.getresponse()
    return answer, answer.read()


def test_an_unknown_path_is_a_404_in_the_contract_shape(live_service, session):
    for path in ("/nothing-here", "/meetups/x/y/z", "/admin/nothing", "/meetups//registrations"):
        assert_contract_error(session.get(live_service.url(path), timeout=TIMEOUT), 404, "not_found")
        still_serves(session, live_service)


def test_a_browser_gets_a_dutch_404_page(live_service, session):
    answer = session.get(live_service.url("/nergens"), headers={"Accept": "text/html,application/xhtml+xml"},
                         timeout=TIMEOUT)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "Deze pagina bestaat niet" in answer.text and '<html lang="nl"' in answer.text
    still_serves(session, live_service)


def test_an_unknown_admin_path_never_echoes_the_bearer_token(live_service, session):
    token = live_service.admin_token
    for path in ("/admin/secret", "/admin/meetups/x/unknown"):
        answer = session.post(live_service.url(path), headers={"Authorization": f"Bearer {token}"},
                              json={}, timeout=TIMEOUT)
        assert_contract_error(answer, 404, "not_found")
        assert token not in answer.text and token not in json.dumps(dict(answer.headers))
        assert "Bearer" not in answer.text
    # Nor does any other answer of the gateway repeat what a header said.
    odd = "x-echo-" + token[-8:]
    for method, path in (("PUT", "/meetups"), ("TRACE", "/meetups"), ("FOO", "/meetups"), ("GET", "/nowhere")):
        answer = session.request(method, live_service.url(path), timeout=TIMEOUT,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": f"image/{odd}",
                                          "X-Anything": odd})
        assert answer.status_code in (404, 405, 501)
        assert odd not in answer.text and token not in answer.text
    still_serves(session, live_service)


def test_a_method_the_path_lacks_is_a_405_with_allow(live_service, session):
    for method in ("DELETE", "PUT", "TRACE", "CONNECT"):
        answer = session.request(method, live_service.url("/meetups"), timeout=TIMEOUT)
        assert_contract_error(answer, 405, "method_not_allowed")
        assert {m.strip() for m in answer.headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}
        still_serves(session, live_service)

    answer = session.put(live_service.url("/admin/organisers"), json={"a": 1}, timeout=TIMEOUT)
    assert_contract_error(answer, 405, "method_not_allowed")
    assert {m.strip() for m in answer.headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS", "POST"}
    still_serves(session, live_service)


def test_options_answers_allow_without_a_body(live_service, session):
    answer = session.options(live_service.url("/meetups/abc/registrations"), timeout=TIMEOUT)
    assert answer.status_code == 204 and answer.content == b""
    assert {m.strip() for m in answer.headers["Allow"].split(",")} == {"OPTIONS", "POST"}
    still_serves(session, live_service)


def test_a_body_type_no_route_lists_is_a_415(live_service, session):
    meetup_id = session.get(live_service.url("/meetups"), timeout=TIMEOUT).json()["meetups"][0]["id"]
    for content_type in ("image/png", "application/pdf", "text/csv"):
        answer = session.post(live_service.url(f"/meetups/{meetup_id}/registrations"), data=b"\x89PNG...",
                              headers={"Content-Type": content_type}, timeout=TIMEOUT)
        body = assert_contract_error(answer, 415, "unsupported_media_type")
        assert content_type not in body["message"]
        still_serves(session, live_service)


def test_an_unknown_method_is_a_501_in_json_and_keeps_the_connection(live_service, connection):
    for method in ("PROPFIND", "BREW", "FOO"):
        answer, raw = exchange(connection, method, "/meetups", body=b"some body",
                               headers={"Content-Type": "text/plain"})
        assert answer.status == 501
        assert answer.getheader("Content-Type").startswith("application/json")
        assert json.loads(raw)["error"] == "not_implemented"
        assert not answer.will_close
        answer, raw = exchange(connection, "GET", "/meetups")
        assert answer.status == 200 and json.loads(raw)["meetups"]


def test_head_is_the_get_without_a_body(live_service, connection, session):
    for path in ("/meetups", "/", "/privacy"):
        get = session.get(live_service.url(path), timeout=TIMEOUT)
        answer, raw = exchange(connection, "HEAD", path)
        assert answer.status == get.status_code == 200
        assert raw == b""
        assert answer.getheader("Content-Type") == get.headers["Content-Type"]
        assert int(answer.getheader("Content-Length")) == len(get.content)
        assert not answer.will_close
    # Errors too: the status and headers of the GET, no body.
    answer, raw = exchange(connection, "HEAD", "/meetups/does-not-exist")
    assert answer.status == 404 and raw == b""
    answer, raw = exchange(connection, "HEAD", "/no/such/path")
    assert answer.status == 404 and raw == b""
    answer, raw = exchange(connection, "HEAD", "/admin/meetups")  # POST only
    assert answer.status == 405 and raw == b"" and "POST" in answer.getheader("Allow")
    answer, raw = exchange(connection, "GET", "/meetups")  # the connection still works
    assert answer.status == 200 and json.loads(raw)["meetups"]


def test_every_gateway_error_keeps_the_connection(live_service, connection):
    """One connection through all of them, in a row; each answer fully framed."""
    steps = [("GET", "/nope", None, {}, 404), ("DELETE", "/meetups", None, {}, 405),
             ("POST", "/admin/meetups", b"x", {"Content-Type": "image/gif"}, 415),
             ("FOO", "/meetups", None, {}, 501), ("HEAD", "/meetups", None, {}, 200),
             ("OPTIONS", "/meetups", None, {}, 204), ("GET", "/meetups", None, {}, 200)]
    for method, path, body, headers, status in steps:
        answer, raw = exchange(connection, method, path, body=body, headers=headers)
        assert answer.status == status, (method, path, raw)
        assert not answer.will_close
        if status >= 400 and method != "HEAD":
            assert set(json.loads(raw)) == {"error", "message"}


def test_a_request_the_server_cannot_read_is_answered_in_json(live_service):
    import socket
    parts = urlsplit(live_service.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /meetups HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split()[1] == b"431"
    assert b"application/json" in head
    assert set(json.loads(body)) == {"error", "message"}
