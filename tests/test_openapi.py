"""The OpenAPI document (chalicelib/openapi.json, served at /openapi.json): a valid document, the
same routes as the app registers, and answers of real requests that match its response schemas."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import jsonschema
import pytest
from openapi_spec_validator import validate

from tests.factories import make_meetup, meetup_payload

DOCUMENT_PATH = Path(__file__).resolve().parent.parent / "chalicelib" / "openapi.json"
DOCUMENT = json.loads(DOCUMENT_PATH.read_text())
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def test_the_document_is_valid_openapi():
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")


# The admin console (chalicelib/routes/console.py) is pages for people in a browser, signed in with
# a session cookie and CSRF tokens: no API, and not part of the contract (issue 14 allows leaving it
# out). Documented, its cookie-and-form routes would also be fuzzed by Schemathesis as bearer routes.
def _console_route(path: str) -> bool:
    return path == "/admin" or path == "/admin/console" or path.startswith("/admin/console/")


def test_the_document_and_the_route_table_name_the_same_operations(app):
    documented = {(path, method.upper()) for path, item in DOCUMENT["paths"].items()
                  for method in item if method in HTTP_METHODS}
    registered = {(path, method) for path, views in app.routes.items() for method in views
                  if not _console_route(path)}
    assert documented == registered
    assert any(_console_route(path) for path in app.routes), "the console is registered"
    assert not any(_console_route(path) for path in DOCUMENT["paths"]), "the console stays out of the contract"


def test_admin_operations_and_only_they_need_the_bearer_token():
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            admin = path.startswith("/admin/")
            assert operation["security"] == ([{"bearerAuth": []}] if admin else []), (method, path)
            if admin:
                assert "401" in operation["responses"], (method, path)


def test_the_service_serves_the_document(client):
    answer = client.http.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert json.loads(answer.body) == DOCUMENT


# --- answers against the document ----------------------------------------------------------------

def _resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        target = DOCUMENT
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def check_answer(path: str, method: str, answer) -> None:
    """The answer's status is documented for the operation, and its JSON body matches the schema."""
    operation = DOCUMENT["paths"][path][method.lower()]
    status = str(answer.status_code)
    assert status in operation["responses"], f"{method} {path}: {status} is not documented"
    response = _resolve(operation["responses"][status])
    content_type = answer.headers.get("Content-Type", "").split(";")[0].strip()
    if "content" not in response:
        return
    assert content_type in response["content"], f"{method} {path} {status}: {content_type} is not documented"
    if content_type == "application/json":
        schema = {**response["content"][content_type]["schema"], "components": DOCUMENT["components"]}
        jsonschema.validate(json.loads(answer.body), schema, cls=jsonschema.Draft202012Validator,
                            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def sign_up(client, meetup_id, email=None, **extra):
    body = {"name": "Schema Tester", "email": email or f"s-{secrets.token_hex(4)}@example.org",
            "role": "teacher", "consent": True, **extra}
    return client.http.post(f"/meetups/{meetup_id}/registrations", body=json.dumps(body),
                            headers={"Content-Type": "application/json"})


def test_answers_of_the_public_routes_match_the_document(client):
    meetup = make_meetup(capacity=1)
    calls = [
        ("/meetups", "GET", client.http.get("/meetups")),
        ("/meetups", "GET", client.http.get("/meetups?province=Atlantis")),
        ("/", "GET", client.http.get("/")),
        ("/meetups/{meetup_id}", "GET", client.http.get(f"/meetups/{meetup.id}")),
        ("/meetups/{meetup_id}", "GET", client.http.get("/meetups/nope")),
        ("/meetups/{meetup_id}/chain", "GET", client.http.get(f"/meetups/{meetup.id}/chain")),
        ("/meetups/{meetup_id}/register", "GET", client.http.get(f"/meetups/{meetup.id}/register")),
        ("/privacy", "GET", client.http.get("/privacy")),
        ("/openapi.json", "GET", client.http.get("/openapi.json")),
    ]
    created = sign_up(client, meetup.id)
    calls.append(("/meetups/{meetup_id}/registrations", "POST", created))
    calls.append(("/meetups/{meetup_id}/registrations", "POST", sign_up(client, meetup.id)))  # waitlisted
    calls.append(("/meetups/{meetup_id}/registrations", "POST", sign_up(client, meetup.id, name="")))  # 422
    calls.append(("/meetups/{meetup_id}/registrations", "POST", sign_up(client, "nope")))  # 404
    calls.append(("/meetups/{meetup_id}/registrations", "POST", client.http.post(
        f"/meetups/{meetup.id}/registrations", body="x", headers={"Content-Type": "text/plain"})))  # 415
    calls.append(("/meetups/{meetup_id}/registrations", "POST", client.http.post(
        f"/meetups/{meetup.id}/registrations", body="{", headers={"Content-Type": "application/json"})))  # 400
    token = json.loads(created.body)["manage_url"].rsplit("/", 1)[1]
    calls.append(("/registrations/{token}", "GET", client.http.get(f"/registrations/{token}")))
    calls.append(("/registrations/{token}", "GET", client.http.get("/registrations/a.b")))
    calls.append(("/registrations/{token}/cancel", "POST", client.http.post(f"/registrations/{token}/cancel")))
    calls.append(("/handovers/{token}", "GET", client.http.get("/handovers/a.b")))
    calls.append(("/organisers/unsubscribe/{token}", "GET", client.http.get("/organisers/unsubscribe/a.b")))
    statuses = {answer.status_code for *_, answer in calls}
    assert statuses >= {200, 201, 400, 404, 415, 422}
    for path, method, answer in calls:
        check_answer(path, method, answer)


def test_answers_of_the_admin_routes_match_the_document(client, admin_headers):
    later = make_meetup(city="Lelystad", capacity=3)
    calls = []

    def call(path, method, url, body=None, headers=admin_headers):
        answer = client.http.request(method, url, headers=headers, body=json.dumps(body) if body is not None else b"")
        calls.append((path, method, answer))
        return answer

    created = call("/admin/meetups", "POST", "/admin/meetups", meetup_payload())
    meetup_id = json.loads(created.body)["id"]
    call("/admin/meetups", "POST", "/admin/meetups", {"title": ""})
    call("/admin/meetups", "POST", "/admin/meetups", meetup_payload(), headers={"Content-Type": "application/json"})
    call("/admin/meetups/{meetup_id}", "PATCH", f"/admin/meetups/{meetup_id}", {"capacity": 10, "status": "closed"})
    call("/admin/meetups/{meetup_id}", "PATCH", "/admin/meetups/nope", {"capacity": 10})
    sign_up(client, later.id)
    call("/admin/meetups/{meetup_id}", "PATCH", f"/admin/meetups/{later.id}", {"capacity": 0})  # 409
    call("/admin/meetups/{meetup_id}/registrations", "GET", f"/admin/meetups/{later.id}/registrations")
    call("/admin/meetups/{meetup_id}/registrations", "GET", f"/admin/meetups/{later.id}/registrations?format=csv")
    handover = {"city": "Almere", "host_name": "Gemeente Almere", "host_email": "almere@example.org",
                "starts_at": "2031-04-02T19:30:00+02:00", "ends_at": "2031-04-02T21:30:00+02:00",
                "mode": "in_person", "capacity": 80}
    call("/admin/meetups/{meetup_id}/handover", "POST", f"/admin/meetups/{later.id}/handover", handover)
    call("/admin/meetups/{meetup_id}/handover", "POST", f"/admin/meetups/{later.id}/handover", handover)  # 409
    call("/admin/meetups/{meetup_id}/handover", "GET", f"/admin/meetups/{later.id}/handover")
    call("/admin/handovers/{meetup_id}/complete", "POST", f"/admin/handovers/{later.id}/complete")  # 409
    subscribed = call("/admin/organisers", "POST", "/admin/organisers",
                      {"email": f"o-{secrets.token_hex(3)}@example.org", "name": "Organiser", "scope": "all",
                       "frequency": "weekly"})
    organiser_id = json.loads(subscribed.body)["id"]
    call("/admin/organisers", "GET", "/admin/organisers")
    call("/admin/organisers/{organiser_id}", "GET", f"/admin/organisers/{organiser_id}")
    call("/admin/organisers/{organiser_id}", "DELETE", f"/admin/organisers/{organiser_id}")
    call("/admin/organisers/{organiser_id}", "GET", f"/admin/organisers/{organiser_id}")  # 404
    call("/admin/digests/run", "POST", "/admin/digests/run")
    statuses = {answer.status_code for *_, answer in calls}
    assert statuses >= {200, 201, 401, 404, 409, 422}
    for path, method, answer in calls:
        check_answer(path, method, answer)


def test_answers_of_the_privacy_routes_match_the_document(client, admin_headers):
    from chalicelib import privacy, registration, tokens
    from chalicelib.clock import now
    from datetime import timedelta
    meetup = make_meetup(capacity=3)
    email = f"p-{secrets.token_hex(4)}@example.org"
    created = sign_up(client, meetup.id, email, follow_up_opt_in=True)
    token = json.loads(created.body)["manage_url"].rsplit("/", 1)[1]
    browser = {"Accept": "text/html"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    as_json = {"Content-Type": "application/json"}
    reg_id = json.loads(created.body)["registration"]["id"]
    follow_token = tokens.sign(privacy.FOLLOW_UP_PURPOSE, meetup.id, reg_id,
                               expires=now() + timedelta(days=1))
    expired = tokens.sign(registration.MANAGE_PURPOSE, meetup.id, reg_id, expires=now() - timedelta(days=1))
    post = client.http.post
    calls = [
        ("/registrations/{token}", "GET", client.http.get(f"/registrations/{token}")),
        ("/registrations/{token}", "GET", client.http.get(f"/registrations/{expired}")),  # 410
        ("/registrations/resend", "GET", client.http.get("/registrations/resend")),
        ("/registrations/resend", "GET", client.http.get("/registrations/resend?sent=1", headers=browser)),
        ("/registrations/resend", "POST", post("/registrations/resend", body=json.dumps({"email": email}),
                                               headers=as_json)),
        ("/registrations/resend", "POST", post("/registrations/resend", body="email=x", headers=form)),  # 422
        ("/registrations/resend", "POST", post("/registrations/resend", body=f"email={email}",
                                               headers={**form, **browser})),  # 303
        ("/registrations/{token}/data", "GET", client.http.get(f"/registrations/{token}/data")),
        ("/registrations/{token}/follow-up", "POST", post(f"/registrations/{token}/follow-up",
                                                          body=json.dumps({"follow_up_opt_in": False}),
                                                          headers=as_json)),
        ("/registrations/{token}/follow-up", "POST", post(f"/registrations/{token}/follow-up",
                                                          body="follow_up_opt_in=true&language=en",
                                                          headers={**form, **browser})),  # 303
        ("/registrations/{token}/follow-up", "POST", post(f"/registrations/{token}/follow-up",
                                                          body=json.dumps({"follow_up_opt_in": 2}),
                                                          headers=as_json)),  # 422
        ("/follow-up/unsubscribe/{token}", "GET", client.http.get(f"/follow-up/unsubscribe/{follow_token}")),
        ("/follow-up/unsubscribe/{token}", "GET", client.http.get("/follow-up/unsubscribe/a.b")),  # 404
        ("/follow-up/unsubscribe/{token}", "POST", post(f"/follow-up/unsubscribe/{follow_token}")),
        ("/follow-up/unsubscribe/{token}", "POST", post(f"/follow-up/unsubscribe/{follow_token}",
                                                        headers=browser)),  # 303
        ("/registrations/{token}/erase", "GET", client.http.get(f"/registrations/{token}/erase")),
        ("/registrations/{token}/erase", "GET", client.http.get(f"/registrations/{token}/erase", headers=browser)),
        ("/registrations/{token}/erase", "POST", post(f"/registrations/{token}/erase",
                                                      body=json.dumps({"confirm": False}), headers=as_json)),  # 422
        ("/registrations/{token}/erase", "POST", post(f"/registrations/{token}/erase",
                                                      body=json.dumps({"confirm": True}), headers=as_json)),
        ("/registrations/{token}/erase", "POST", post(f"/registrations/{token}/erase",
                                                      body=json.dumps({"confirm": True}), headers=as_json)),  # 404
        ("/registrations/erased", "GET", client.http.get("/registrations/erased")),
        ("/admin/erasures", "POST", post("/admin/erasures", body=json.dumps({"email": email}), headers=admin_headers)),
        ("/admin/erasures", "POST", post("/admin/erasures", body=json.dumps({"email": "x"}), headers=admin_headers)),
        ("/admin/erasures", "POST", post("/admin/erasures", body=json.dumps({"email": email}), headers=as_json)),
        ("/admin/meetups/{meetup_id}/registrations", "GET",  # an erased row: null name and email
         client.http.get(f"/admin/meetups/{meetup.id}/registrations", headers=admin_headers)),
    ]
    statuses = {answer.status_code for *_, answer in calls}
    assert statuses >= {200, 303, 401, 404, 410, 422}
    erased_rows = json.loads(calls[-1][2].body)["registrations"]
    assert erased_rows and erased_rows[0]["erased"] and erased_rows[0]["name"] is None
    for path, method, answer in calls:
        check_answer(path, method, answer)
