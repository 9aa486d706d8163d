"""User-restricted access: mock NHS CIS2 / NHS login ID tokens, the token-exchange grant, the authorisation-code
("combined") pattern with its sign-in page, and refresh tokens."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from tests.oauth_helpers import KeyPair, assertion, findings, jwks, outcome, post_token, register

ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
CALLBACK = "https://app.example/callback"


@pytest.fixture(scope="module")
def key():
    return KeyPair("ur-1")


@pytest.fixture
def user_app(client, key):
    return register(client, name="User app", keys=jwks(key), redirect_uris=[CALLBACK])


def exchange_form(key, api_key, subject, **changes):
    form = {"grant_type": EXCHANGE, "subject_token_type": ID_TOKEN, "subject_token": subject,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(key, api_key)}
    form.update(changes)
    return {k: v for k, v in form.items() if v is not ...}


def cis2_token(client, **body):
    response = client.post("/_sandbox/oauth/cis2/id-token", json={"user_id": "555021935107", **body})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["id_token"]


def patient(sandbox, kind="standard"):
    return next(p for p in sandbox.population if p.kind == kind).nhs_number


def test_cis2_exchange_gives_a_healthcare_worker_token(client, key, user_app):
    subject = cis2_token(client, role_id="555021936103", aal="AAL3")
    claims = jwt.decode(subject, options={"verify_signature": False})
    assert claims["selected_roleid"] == "555021936103" and claims["acr"] == "AAL3_ANY"
    response = post_token(client, exchange_form(key, user_app["api_key"], subject))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["expires_in"] == "599" and body["token_type"] == "Bearer"
    identity = client.get(f"/_sandbox/oauth/tokens/{body['access_token']}").get_json()
    assert identity == {**identity, "mode": "healthcare-worker", "user_id": "555021935107",
                        "role_id": "555021936103", "role_code": "S8000:G8000:R8000", "aal": "AAL3"}
    found = findings(client, response)
    assert all(outcome(found, f"OAUTH-TEX-{n:03}") == "pass" for n in range(1, 14))


def test_nhs_login_exchange_gives_a_patient_token(client, sandbox, key, user_app):
    number = patient(sandbox)
    issued = client.post("/_sandbox/oauth/nhs-login/id-token", json={"nhs_number": number, "vot": "P9.Cp.Cd"})
    subject = issued.get_json()["id_token"]
    response = post_token(client, exchange_form(key, user_app["api_key"], subject))
    identity = client.get(f"/_sandbox/oauth/tokens/{response.get_json()['access_token']}").get_json()
    assert identity["mode"] == "patient" and identity["nhs_number"] == number
    assert identity["vot"] == "P9.Cp.Cd" and identity["proofing_level"] == "P9"


def test_id_tokens_only_for_synthetic_people(client):
    assert "no synthetic healthcare worker" in client.post("/_sandbox/oauth/cis2/id-token",
                                                           json={"user_id": "1"}).get_json()["message"]
    bad = client.post("/_sandbox/oauth/nhs-login/id-token", json={"nhs_number": "9000000009"})
    assert bad.status_code == 400 and "synthetic population" in bad.get_json()["message"]
    assert client.post("/_sandbox/oauth/cis2/id-token", json={"user_id": "555021935107", "aal": "AAL9"}
                       ).status_code == 400
    users = client.get("/_sandbox/oauth/cis2/users").get_json()["users"]
    assert any(len(u["roles"]) > 1 for u in users)


def _forge(token: str) -> str:
    head, claims, sig = token.split(".")
    return f"{head}.{claims}.{sig[:-6]}AAAAAA"


def _unsigned(claims: dict, headers: dict) -> str:
    return jwt.encode(claims, "k" * 64, algorithm="HS512", headers=headers)


EXCHANGE_BAD = [
    ("no subject_token", lambda c: ..., 400, "invalid_request", "Missing subject_token", "OAUTH-TEX-002"),
    ("subject_token not a JWT", lambda c: "nope", 400, "invalid_request", "subject_token is invalid", "OAUTH-TEX-003"),
    ("expired ID token", lambda c: "expired", 400, "invalid_request",
     "Invalid 'exp' claim in subject_token JWT - JWT has expired", "OAUTH-TEX-008"),
    ("unknown issuer", lambda c: _unsigned({"iss": "https://elsewhere", "aud": "x", "exp": int(time.time()) + 60},
                                           {"kid": "k", "typ": "JWT"}), 400, "invalid_request",
     "Missing or non-matching iss/sub claims in JWT", "OAUTH-TEX-011"),
    ("no aud", lambda c: _unsigned({"iss": "https://elsewhere", "exp": int(time.time()) + 60},
                                   {"kid": "k", "typ": "JWT"}), 401, "invalid_request",
     "Missing 'aud' claim in subject_token JWT", "OAUTH-TEX-010"),
    ("no kid", lambda c: _unsigned({"iss": "x", "aud": "x", "exp": int(time.time()) + 60}, {"typ": "JWT"}), 400,
     "invalid_request", "Missing 'kid' header in subject_token JWT", "OAUTH-TEX-004"),
    ("typ invalid", lambda c: _unsigned({"iss": "x", "aud": "x", "exp": 9e9}, {"kid": "k", "typ": "at+jwt"}), 400,
     "invalid_request", "Invalid 'typ' header in subject_token JWT - must be 'JWT'", "OAUTH-TEX-005"),
    ("exp a string", lambda c: _unsigned({"iss": "x", "aud": "x", "exp": "soon"}, {"kid": "k", "typ": "JWT"}), 400,
     "invalid_request", "Invalid 'exp' claim in subject_token JWT - must be an integer", "OAUTH-TEX-007"),
    ("no iss", lambda c: _unsigned({"aud": "x", "exp": int(time.time()) + 60}, {"kid": "k", "typ": "JWT"}), 400,
     "invalid_request", "Missing 'iss' claim in subject_token JWT", "OAUTH-TEX-009"),
    ("altered ID token", lambda c: _forge(cis2_token(c)), 401, "public_key error",
     "subject_token JWT signature verification failed", "OAUTH-TEX-013"),
]


@pytest.mark.parametrize("name,subject,status,error,description,requirement", EXCHANGE_BAD,
                         ids=[b[0] for b in EXCHANGE_BAD])
def test_subject_token_rules(client, sandbox, key, user_app, name, subject, status, error, description,
                             requirement):
    token = subject(client)
    if token == "expired":
        from sandbox.services.oauth import idp
        token = idp.cis2_id_token(sandbox.store, "555021935107", lifetime=-5)
    response = post_token(client, exchange_form(key, user_app["api_key"], token))
    body = response.get_json()
    assert (response.status_code, body["error"], body["error_description"]) == (status, error, description)
    assert outcome(findings(client, response), requirement) == "fail"


def test_exchange_form_rules(client, key, user_app):
    subject = cis2_token(client)
    wrong_type = post_token(client, exchange_form(key, user_app["api_key"], subject, subject_token_type="x"))
    assert wrong_type.get_json()["error_description"] == ("missing or invalid subject_token_type - must be "
                                                          "'urn:ietf:params:oauth:token-type:id_token'")
    wrong_grant = post_token(client, exchange_form(key, user_app["api_key"], subject, grant_type="client_credentials",
                                                   client_assertion_type="invalid"))
    assert wrong_grant.get_json()["error_description"].startswith("Missing or invalid client_assertion_type")
    grant_only = post_token(client, exchange_form(key, user_app["api_key"], subject, grant_type="invalid"))
    assert (grant_only.status_code, grant_only.get_json()["error_description"]) == (400, "grant_type is invalid")
    bad_assertion = post_token(client, exchange_form(key, user_app["api_key"], subject, client_assertion="invalid"))
    assert bad_assertion.get_json()["error_description"] == "Malformed JWT in client_assertion"


def sign_in(client, app, *, idp="cis2", state="xyz", **choice):
    page = client.get("/oauth2/authorize", query_string={"client_id": app["api_key"], "redirect_uri": CALLBACK,
                                                         "response_type": "code", "state": state})
    assert page.status_code == 200 and "mock sign-in" in page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    request_id = html.split('name="request" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/oauth2/simulated_auth", data={"request": request_id, "idp": idp, **choice})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return parse_qs(urlsplit(answer.headers["Location"]).query), answer.headers["Location"]


def code_form(app, issued, **changes):
    form = {"grant_type": "authorization_code", "client_id": app["api_key"], "client_secret": app["secret"],
            "redirect_uri": CALLBACK, "code": issued}
    form.update(changes)
    return {k: v for k, v in form.items() if v is not ...}


def test_combined_pattern_healthcare_worker(client, user_app):
    query, location = sign_in(client, user_app, worker="555021939101/555021941104", aal="AAL2")
    assert location.startswith(CALLBACK) and query["state"] == ["xyz"]
    response = post_token(client, code_form(user_app, query["code"][0]))
    body = response.get_json()
    assert response.status_code == 200, body
    assert set(body) == {"access_token", "expires_in", "refresh_token", "refresh_count", "refresh_token_expires_in",
                         "token_type", "issued_at"}
    assert body["refresh_count"] == "0" and body["refresh_token_expires_in"] == "43199"
    identity = client.get(f"/_sandbox/oauth/tokens/{body['access_token']}").get_json()
    assert (identity["mode"], identity["role_id"], identity["aal"]) == ("healthcare-worker", "555021941104", "AAL2")
    reused = post_token(client, code_form(user_app, query["code"][0]))
    assert (reused.status_code, reused.get_json()["error"]) == (400, "invalid_grant")  # a code works once

    refreshed = post_token(client, {"grant_type": "refresh_token", "client_id": user_app["api_key"],
                                    "client_secret": user_app["secret"], "refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200 and refreshed.get_json()["refresh_count"] == "1"
    again = post_token(client, {"grant_type": "refresh_token", "client_id": user_app["api_key"],
                                "client_secret": user_app["secret"], "refresh_token": body["refresh_token"]})
    assert (again.status_code, again.get_json()["error_description"]) == (401, "refresh_token is invalid")


def test_combined_pattern_patient(client, sandbox, user_app):
    number = patient(sandbox)
    query, _ = sign_in(client, user_app, idp="nhs-login", nhs_number=number, vot="P9.Cp.Ck")
    body = post_token(client, code_form(user_app, query["code"][0])).get_json()
    assert body["refresh_token_expires_in"] == "3599"
    identity = client.get(f"/_sandbox/oauth/tokens/{body['access_token']}").get_json()
    assert (identity["mode"], identity["nhs_number"], identity["vot"]) == ("patient", number, "P9.Cp.Ck")


CODE_BAD = [
    ({"client_id": ...}, 401, "invalid_request", "client_id is missing", "OAUTH-CLI-001"),
    ({"client_id": "invalid"}, 401, "invalid_client", "client_id or client_secret is invalid", "OAUTH-CLI-002"),
    ({"client_secret": ...}, 401, "invalid_request", "client_secret is missing", "OAUTH-CLI-003"),
    ({"client_secret": "invalid"}, 401, "invalid_client", "client_id or client_secret is invalid", "OAUTH-CLI-004"),
    ({"redirect_uri": ...}, 400, "invalid_request", "redirect_uri is missing", "OAUTH-ACG-001"),
    ({"redirect_uri": "https://evil.example/cb"}, 400, "invalid_request", "redirect_uri is invalid", "OAUTH-ACG-002"),
    ({"code": ...}, 400, "invalid_request", "authorization_code is missing", "OAUTH-ACG-003"),
    ({"code": "invalid"}, 400, "invalid_grant", "authorization_code is invalid", "OAUTH-ACG-004"),
]


@pytest.mark.parametrize("change,status,error,description,requirement", CODE_BAD, ids=[c[4] for c in CODE_BAD])
def test_authorization_code_rules(client, user_app, change, status, error, description, requirement):
    query, _ = sign_in(client, user_app, worker="555021935107/555021936103", aal="AAL3")
    response = post_token(client, code_form(user_app, query["code"][0], **change))
    body = response.get_json()
    assert (response.status_code, body["error"], body["error_description"]) == (status, error, description)
    assert outcome(findings(client, response), requirement) == "fail"


AUTHORIZE_BAD = [
    ({"client_id": ...}, 401, "client_id is missing"),
    ({"client_id": "invalid"}, 401, "client_id is invalid"),
    ({"redirect_uri": ...}, 400, "redirect_uri is missing"),
    ({"redirect_uri": "/invalid"}, 400, "redirect_uri is invalid"),
]


@pytest.mark.parametrize("change,status,description", AUTHORIZE_BAD, ids=[a[2] for a in AUTHORIZE_BAD])
def test_authorize_errors_answered_directly(client, user_app, change, status, description):
    args = {"client_id": user_app["api_key"], "redirect_uri": CALLBACK, "response_type": "code", "state": "s", **change}
    response = client.get("/oauth2/authorize", query_string={k: v for k, v in args.items() if v is not ...})
    assert (response.status_code, response.get_json()["error_description"]) == (status, description)


@pytest.mark.parametrize("change,error,description", [
    ({"state": ...}, "invalid_request", "state is missing"),
    ({"response_type": ...}, "invalid_request", "response_type is missing"),
    ({"response_type": "token"}, "unsupported_response_type", "response_type is invalid"),
])
def test_authorize_errors_redirected_to_the_client(client, user_app, change, error, description):
    args = {"client_id": user_app["api_key"], "redirect_uri": CALLBACK, "response_type": "code", "state": "s", **change}
    response = client.get("/oauth2/authorize", query_string={k: v for k, v in args.items() if v is not ...})
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == [error] and query["error_description"] == [description]


def test_sign_in_page_refuses_bad_choices_clearly(client, user_app):
    response = client.post("/oauth2/simulated_auth", data={"request": "stale", "idp": "cis2"})
    assert response.status_code == 400 and "expired" in response.get_json()["error_description"]
