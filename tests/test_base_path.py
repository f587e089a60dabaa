"""Pages, form actions and redirects work under any base path: on the execute-api URL
(https://<id>.execute-api.<region>.amazonaws.com/api/...) API Gateway hands the app the path
without the stage, and only requestContext.path still holds "/api". And every page carries the
security headers.

`StagedClient` invokes the app the way API Gateway's REST proxy integration does (the event's
`path` is the app's own, `requestContext.path` and `stage` carry the prefix); chalice.test's
client cannot, its local gateway knows no stage."""
from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import replace
from urllib.parse import urlencode, urlsplit

import pytest

from chalicelib import config, digest, http
from tests.factories import make_meetup

LINKS = re.compile(r'(?:href|action)="([^"]*)"')
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
HTML = {"Accept": "text/html"}


class StagedClient:
    def __init__(self, app, stage: str = "api", prefix: str | None = None):
        from chalice.local import RouteMatcher
        self.app, self.stage = app, stage
        self.prefix = f"/{stage}" if prefix is None else prefix
        self.matcher = RouteMatcher(list(app.routes))

    def request(self, method: str, url: str, headers: dict | None = None, body: str = "") -> dict:
        from chalice.local import LambdaContext
        path = url.split("?")[0]
        match = self.matcher.match_route(url)
        headers = {k.lower(): v for k, v in (headers or {}).items()} | {"host": "abc123.execute-api.eu-west-1.amazonaws.com"}
        event = {
            "resource": match.route, "path": path, "httpMethod": method, "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in match.query_params.items()} or None,
            "multiValueQueryStringParameters": match.query_params or None,
            "pathParameters": match.captured or None, "stageVariables": None,
            "requestContext": {"resourcePath": match.route, "httpMethod": method, "stage": self.stage,
                               "path": self.prefix + path, "requestId": secrets.token_hex(8),
                               "identity": {"sourceIp": "203.0.113.9"}},
            "body": body or None, "isBase64Encoded": False,
        }
        answer = self.app(event, LambdaContext("APIHandler", 512))
        answer["text"] = answer.get("body") or ""
        return answer

    def get(self, url, headers=None):
        return self.request("GET", url, headers)

    def post(self, url, headers=None, body=""):
        return self.request("POST", url, headers, body)


@pytest.fixture
def staged(app):
    return StagedClient(app)


def own_path(link: str, prefix: str = "/api") -> str:
    """The app's path of a link on a page served under `prefix`; fails if the link lost it."""
    assert link.startswith(prefix + "/"), f"{link!r} is not under {prefix}"
    return link[len(prefix):]


def root_relative(html: str) -> list[str]:
    return [link for link in LINKS.findall(html) if link.startswith("/")]


def test_every_page_and_link_works_under_the_stage_prefix(staged):
    meetup = make_meetup(title="Prefix-test")
    pages = ["/", f"/meetups?lang=en", f"/meetups/{meetup.id}", f"/meetups/{meetup.id}/register",
             "/privacy?lang=en", f"/meetups/{meetup.id}/registered"]
    followed = set()
    for page in pages:
        answer = staged.get(page, HTML)
        assert answer["statusCode"] == 200, (page, answer["text"][:300])
        links = root_relative(answer["text"])
        assert links, page
        for link in links:
            path = own_path(link)
            if path in followed or "/registrations" in path:  # a form's action, posted below
                continue
            followed.add(path)
            target = staged.get(path, HTML)
            assert target["statusCode"] == 200, (page, link)
    assert f"/meetups/{meetup.id}/register" in followed


def test_sign_up_manage_and_cancel_by_form_under_the_stage_prefix(staged):
    meetup = make_meetup()
    form = staged.get(f"/meetups/{meetup.id}/register?lang=en", HTML)["text"]
    action = re.search(r'<form method="post" action="([^"]+)"', form).group(1)
    assert action == f"/api/meetups/{meetup.id}/registrations"
    email = f"prefix-{secrets.token_hex(4)}@example.nl"
    body = urlencode({"name": "Ada Prefix", "email": email, "role": "teacher", "consent": "true", "language": "en"})
    signed_up = staged.post(own_path(action), FORM, body)
    assert signed_up["statusCode"] == 303
    manage = signed_up["headers"]["Location"]
    settings = config.get_settings()
    assert manage.startswith(settings.public_base_url + "/registrations/"), "links in answers use PUBLIC_BASE_URL"
    manage_path = urlsplit(manage).path

    page = staged.get(manage_path, HTML)["text"]
    step = re.search(r'<a class="button secondary" id="cancel-link" href="([^"]+)"', page).group(1)
    assert step == f"/api{manage_path}/cancel?lang=en"  # the confirmation step first
    confirmation = staged.get(own_path(step), HTML)["text"]
    assert 'data-status="confirmed"' in staged.get(manage_path, HTML)["text"], "the confirmation step changes nothing"
    cancel = re.search(r'<form method="post" action="([^"]+)"', confirmation).group(1)
    assert cancel == f"/api{manage_path}/cancel?lang=en"
    assert re.search(rf'<a class="button secondary" href="/api{manage_path}\?lang=en">No, I&#39;m coming</a>', confirmation)
    cancelled = staged.post(own_path(cancel), FORM, "")
    assert cancelled["statusCode"] == 303
    assert cancelled["headers"]["Location"] == f"/api{manage_path}?lang=en"
    assert 'data-status="cancelled"' in staged.get(own_path(cancelled["headers"]["Location"]), HTML)["text"]

    again = staged.post(own_path(action), FORM, body)  # cancelled: a new sign-up
    assert again["statusCode"] == 303
    already = staged.post(own_path(action), FORM, body)
    assert already["headers"]["Location"] == f"/api/meetups/{meetup.id}/registered?already=1&lang=en"
    honeypot = staged.post(own_path(action), FORM, body + "&website=spam")
    # The honeypot answers like a real sign-up: a manage link of the same shape (that leads nowhere).
    assert honeypot["headers"]["Location"].startswith(settings.public_base_url + "/registrations/")


def test_handover_accept_by_form_under_the_stage_prefix(staged, client, admin_headers):
    from tests.test_handover import accept_path_of, handed_over
    outgoing, _, _ = handed_over(client, admin_headers)
    path = accept_path_of(outgoing).removesuffix("/accept")
    page = staged.get(path, HTML)["text"]
    assert f'action="/api{path}/accept?lang=nl"' in page
    accepted = staged.post(f"{path}/accept?lang=nl", FORM, "")
    assert accepted["statusCode"] == 303 and accepted["headers"]["Location"] == f"/api{path}?lang=nl"
    assert all(link.startswith("/api/") for link in root_relative(staged.get(path, HTML)["text"]))


def test_unsubscribe_by_form_under_the_stage_prefix(staged):
    organiser, _ = digest.subscribe({"email": f"org-{secrets.token_hex(4)}@example.nl", "name": "Org",
                                     "scope": "all", "frequency": "weekly"})
    path = f"/organisers/unsubscribe/{digest.unsubscribe_token(organiser)}"
    page = staged.get(path, HTML)["text"]
    assert f'action="/api{path}?lang=nl"' in page
    done = staged.post(f"{path}?lang=nl", FORM, "")
    assert done["statusCode"] == 303 and done["headers"]["Location"] == f"/api{path}?lang=nl"


def test_error_pages_link_under_the_stage_prefix(staged):
    answer = staged.get("/meetups/no-such-meetup", HTML)
    assert answer["statusCode"] == 404
    assert root_relative(answer["text"]) and all(link.startswith("/api/") for link in root_relative(answer["text"]))


def test_a_custom_domain_root_or_mapping_gets_its_own_base(app):
    meetup = make_meetup()
    root = StagedClient(app, prefix="")  # custom domain, no base path: requestContext.path == path
    links = root_relative(root.get(f"/meetups/{meetup.id}", HTML)["text"])
    assert links and all(not link.startswith("/api/") for link in links)
    mapped = StagedClient(app, prefix="/tour-2027")  # a base path mapping
    links = root_relative(mapped.get(f"/meetups/{meetup.id}", HTML)["text"])
    assert links and all(link.startswith("/tour-2027/") for link in links)


class _Request:
    def __init__(self, context, event_path=None):
        self.context = context
        self._event = {"path": event_path} if event_path else {}

    def to_original_event(self):
        return self._event


@pytest.mark.parametrize("context, event_path, base", [
    ({"path": "/api/meetups/x", "stage": "api"}, "/meetups/x", "/api"),
    ({"path": "/meetups/x", "stage": "api"}, "/meetups/x", ""),
    ({"path": "/api/meetups/x", "stage": "api"}, None, "/api"),  # no event path: the stage
    ({"path": "/meetups/x"}, None, ""),  # chalice's local gateway
    ({"path": "/a\"><script>/meetups/x", "stage": "api"}, "/meetups/x", ""),  # never markup
    ({}, None, ""),
])
def test_base_path_from_the_request_context(context, event_path, base):
    assert http.base_path(_Request(context, event_path)) == base


# --- security headers ---------------------------------------------------------------------------

def _pages(client) -> list[str]:
    meetup = make_meetup()
    return ["/", "/meetups", f"/meetups/{meetup.id}", f"/meetups/{meetup.id}/register", "/privacy",
            f"/meetups/{meetup.id}/registered", "/meetups/unknown-id"]


def test_every_html_page_carries_the_security_headers(client):
    for page in _pages(client):
        answer = client.http.get(page, headers=HTML)
        assert answer.headers["Content-Type"].startswith("text/html"), page
        csp = answer.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "'unsafe-inline'" not in csp
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in answer.headers, "local runs are plain HTTP"
        for style in re.findall(r"<style>(.*?)</style>", answer.body.decode(), re.S):
            digest_ = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
            assert f"'sha256-{digest_}'" in csp, "the page's own style is allowed by its hash"


def test_redirects_carry_the_headers_and_json_is_nosniff(client):
    meetup = make_meetup()
    body = urlencode({"name": "Bea", "email": f"bea-{secrets.token_hex(4)}@example.nl", "role": "teacher",
                      "consent": "true"})
    answer = client.http.post(f"/meetups/{meetup.id}/registrations", headers=FORM, body=body)
    assert answer.status_code == 303
    assert answer.headers["Referrer-Policy"] == "no-referrer" and "Content-Security-Policy" in answer.headers
    api = client.http.get("/meetups")
    assert api.headers["X-Content-Type-Options"] == "nosniff" and json.loads(api.body)["meetups"] is not None


def test_deployed_stages_send_hsts(client, monkeypatch):
    deployed = replace(config.get_settings(), stage="prod")
    monkeypatch.setattr(config, "get_settings", lambda: deployed)
    answer = client.http.get("/privacy", headers=HTML)
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=31536000")
