"""POST /oauth2/token with a signed JWT: every rule, passing and failing, with live's status and error body."""

from __future__ import annotations

import time

import pytest

from tests.oauth_helpers import (
    FORM,
    KeyPair,
    assertion,
    cc_form,
    findings,
    jwks,
    outcome,
    post_token,
    register,
)


@pytest.fixture(scope="module")
def keys():
    return KeyPair("test-1"), KeyPair("test-2"), KeyPair("stranger")


@pytest.fixture
def app_key(client, keys):
    return register(client, keys=jwks(keys[0], keys[1]))["api_key"]


def error_of(response) -> tuple[int, str, str]:
    body = response.get_json()
    assert set(body) == {"error", "error_description", "message_id"}
    assert body["message_id"] == response.headers["X-Sandbox-Exchange"]  # the journal's id: support can find it
    return response.status_code, body["error"], body["error_description"]


def test_valid_assertion_gets_a_token_and_every_rule_passes(client, keys, app_key):
    response = post_token(client, cc_form(assertion(keys[0], app_key)))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "expires_in", "token_type", "issued_at"}
    assert body["expires_in"] == "599" and body["token_type"] == "Bearer"
    assert abs(int(body["issued_at"]) / 1000 - time.time()) < 5
    found = findings(client, response)
    rules = [f"OAUTH-CA-{n:03}" for n in range(1, 20)] + ["OAUTH-TOK-001", "OAUTH-TOK-002", "OAUTH-TOK-003"]
    assert {r: outcome(found, r) for r in rules} == {r: "pass" for r in rules}  # positive evidence for each


# (name, how to break the request, status, error, live error_description, the requirement that fails)
BAD = [
    ("json body", lambda k, a: ({"json": True}, cc_form(assertion(k, a))), 415, "invalid_request",
     "Content-Type header must be application/x-www-urlencoded", "OAUTH-TOK-001"),
    ("no grant_type", lambda k, a: ({}, cc_form(assertion(k, a), grant_type=...)), 400, "invalid_request",
     "grant_type is missing", "OAUTH-TOK-002"),
    ("unknown grant_type", lambda k, a: ({}, cc_form(assertion(k, a), grant_type="password")), 400,
     "unsupported_grant_type", "grant_type is invalid", "OAUTH-TOK-003"),
    ("no client_assertion_type", lambda k, a: ({}, cc_form(assertion(k, a), client_assertion_type=...)), 400,
     "invalid_request", "Missing or invalid client_assertion_type - must be "
     "'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'", "OAUTH-CA-001"),
    ("no client_assertion", lambda k, a: ({}, cc_form("", client_assertion=...)), 400, "invalid_request",
     "Missing client_assertion", "OAUTH-CA-002"),
    ("not a JWT", lambda k, a: ({}, cc_form("invalid")), 400, "invalid_request", "Malformed JWT in client_assertion",
     "OAUTH-CA-003"),
    ("RS256", lambda k, a: ({}, cc_form(assertion(k, a, algorithm="RS256"))), 400, "invalid_request",
     "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'", "OAUTH-CA-004"),
    ("HS512", lambda k, a: ({}, cc_form(assertion(k, a, algorithm="HS512", key="s" * 64))),
     400, "invalid_request", "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be "
     "'RS512'", "OAUTH-CA-004"),
    ("expired", lambda k, a: ({}, cc_form(assertion(k, a, exp=int(time.time()) - 20))), 400, "invalid_request",
     "Invalid 'exp' claim in client_assertion JWT - JWT has expired", "OAUTH-CA-005"),
    ("no kid", lambda k, a: ({}, cc_form(assertion(k, a, headers={"kid": ...}))), 400, "invalid_request",
     "Missing 'kid' header in client_assertion JWT", "OAUTH-CA-006"),
    ("typ invalid", lambda k, a: ({}, cc_form(assertion(k, a, headers={"typ": "invalid"}))), 400,
     "invalid_request", "Invalid 'typ' header in client_assertion JWT - must be 'JWT'", "OAUTH-CA-007"),
    ("no typ", lambda k, a: ({}, cc_form(assertion(k, a, headers={"typ": None}))), 400, "invalid_request",
     "Invalid 'typ' header in client_assertion JWT - must be 'JWT'", "OAUTH-CA-007"),
    ("no exp", lambda k, a: ({}, cc_form(assertion(k, a, exp=...))), 400, "invalid_request",
     "Missing 'exp' claim in client_assertion JWT", "OAUTH-CA-008"),
    ("exp a string", lambda k, a: ({}, cc_form(assertion(k, a, exp=str(int(time.time()) + 300)))), 400,
     "invalid_request", "Invalid 'exp' claim in client_assertion JWT - must be an integer", "OAUTH-CA-009"),
    ("sub differs", lambda k, a: ({}, cc_form(assertion(k, a, sub="invalid"))), 400, "invalid_request",
     "Missing or non-matching 'iss'/'sub' claims in client_assertion JWT", "OAUTH-CA-010"),
    ("no iss", lambda k, a: ({}, cc_form(assertion(k, a, iss=...))), 400, "invalid_request",
     "Missing or non-matching 'iss'/'sub' claims in client_assertion JWT", "OAUTH-CA-010"),
    ("no jti", lambda k, a: ({}, cc_form(assertion(k, a, jti=...))), 400, "invalid_request",
     "Missing 'jti' claim in client_assertion JWT", "OAUTH-CA-011"),
    ("jti an integer", lambda k, a: ({}, cc_form(assertion(k, a, jti=1234567890))), 400, "invalid_request",
     "Invalid 'jti' claim in client_assertion JWT - must be a unique string value such as a GUID", "OAUTH-CA-012"),
    ("exp 6 minutes ahead", lambda k, a: ({}, cc_form(assertion(k, a, exp=int(time.time()) + 360))), 400,
     "invalid_request", "Invalid 'exp' claim in client_assertion JWT - more than 5 minutes in future",
     "OAUTH-CA-014"),
    ("unknown API key", lambda k, a: ({}, cc_form(assertion(k, "invalid", iss="invalid", sub="invalid"))), 401,
     "invalid_request", "Invalid 'iss'/'sub' claims in client_assertion JWT", "OAUTH-CA-015"),
    ("unknown kid", lambda k, a: ({}, cc_form(assertion(k, a, headers={"kid": "invalid"}))), 401,
     "invalid_request", "Invalid 'kid' header in client_assertion JWT - no matching public key", "OAUTH-CA-017"),
    ("aud invalid", lambda k, a: ({}, cc_form(assertion(k, a, aud="invalid"))), 401, "invalid_request",
     "Missing or invalid 'aud' claim in client_assertion JWT", "OAUTH-CA-019"),
    ("no aud", lambda k, a: ({}, cc_form(assertion(k, a, aud=...))), 401, "invalid_request",
     "Missing or invalid 'aud' claim in client_assertion JWT", "OAUTH-CA-019"),
]


@pytest.mark.parametrize("name,build,status,error,description,requirement", BAD, ids=[b[0] for b in BAD])
def test_each_rule_fails_as_live(client, keys, app_key, name, build, status, error, description, requirement):
    options, form = build(keys[0], app_key)
    response = client.post("/oauth2/token", json=form) if options.get("json") else post_token(client, form)
    assert error_of(response) == (status, error, description)
    failed = findings(client, response)[requirement]
    assert failed[0]["outcome"] == "fail" and failed[0]["location"]
    assert f"Live answers {status} {error}: {description!r}" in failed[0]["message"]


def test_signature_by_another_key_is_refused(client, keys, app_key):
    forged = assertion(keys[2], app_key, headers={"kid": keys[0].kid})  # right kid, wrong private key
    response = post_token(client, cc_form(forged))
    assert error_of(response) == (401, "public_key error", "JWT signature verification failed")
    assert outcome(findings(client, response), "OAUTH-CA-018") == "fail"


def test_application_without_public_key_gets_403(client, keys):
    api_key = register(client, name="No keys", redirect_uris=["https://app.example/cb"])["api_key"]
    response = post_token(client, cc_form(assertion(keys[0], api_key)))
    assert error_of(response) == (403, "public_key error", "You need to register a public key to use this "
                                  "authentication method - please contact support to configure")


def test_every_problem_is_reported_and_live_order_picks_the_answer(client, keys, app_key):
    # Expired, no typ, jti a number and a wrong aud: live answers the expiry first; every one is a finding.
    token = assertion(keys[0], app_key, headers={"typ": None}, exp=int(time.time()) - 60, jti=7, aud="x")
    response = post_token(client, cc_form(token))
    assert error_of(response)[2] == "Invalid 'exp' claim in client_assertion JWT - JWT has expired"
    found = findings(client, response)
    assert {r for r, f in found.items() if f[0]["outcome"] == "fail"} == {
        "OAUTH-CA-005", "OAUTH-CA-007", "OAUTH-CA-012", "OAUTH-CA-019"}
    assert outcome(found, "OAUTH-CA-013") == "info"  # a number jti cannot be checked for reuse: said so


def test_undecodable_assertion_leaves_a_finding_for_every_later_rule(client):
    response = post_token(client, cc_form("a.b.c"))
    found = findings(client, response)
    assert all(outcome(found, f"OAUTH-CA-{n:03}") == "info" for n in range(4, 20))
    assert "could not be decoded" in found["OAUTH-CA-019"][0]["message"]


def test_jti_replay_is_refused_for_the_same_client_only(client, keys, app_key):
    token = assertion(keys[0], app_key, jti="same-jti")
    assert post_token(client, cc_form(token)).status_code == 200
    again = post_token(client, cc_form(token))
    assert error_of(again) == (400, "invalid_request", "Non-unique 'jti' claim in client_assertion JWT")
    other = register(client, name="Other", keys=jwks(keys[2]))["api_key"]
    assert post_token(client, cc_form(assertion(keys[2], other, jti="same-jti"))).status_code == 200


def test_jti_of_a_refused_assertion_is_not_used_up_before_the_claims_pass(client, keys, app_key):
    # Live caches a jti only once the claim checks pass: fixing the exp and re-sending the same jti works.
    assert post_token(client, cc_form(assertion(keys[0], app_key, jti="retry", exp=int(time.time()) + 900))
                      ).status_code == 400
    assert post_token(client, cc_form(assertion(keys[0], app_key, jti="retry"))).status_code == 200


@pytest.mark.parametrize("ahead,status", [(300, 200), (310, 200), (312, 400)])
def test_exp_limit_has_the_live_ten_second_tolerance(client, keys, app_key, ahead, status):
    response = post_token(client, cc_form(assertion(keys[0], app_key, exp=int(time.time()) + ahead)))
    assert response.status_code == status


@pytest.mark.parametrize("behind,status", [(2, 200), (-1, 400)])  # live compares to the millisecond
def test_exp_at_the_edge_of_expiry(client, keys, app_key, behind, status):
    response = post_token(client, cc_form(assertion(keys[0], app_key, exp=int(time.time()) + behind)))
    assert response.status_code == status


def test_fractional_exp_is_accepted_like_live_with_a_warning(client, keys, app_key):
    response = post_token(client, cc_form(assertion(keys[0], app_key, exp=time.time() + 200.5)))
    assert response.status_code == 200
    assert any(f["outcome"] == "warning" for f in findings(client, response)["OAUTH-CA-009"])


def test_key_rotation_with_two_kids_and_a_retired_key(client, keys, app_key):
    for pair in keys[:2]:  # both published keys sign valid assertions
        assert post_token(client, cc_form(assertion(pair, app_key))).status_code == 200
    # Rotation: drop the old key; its kid stops working at once, the new one keeps working.
    assert client.put(f"/_sandbox/oauth/apps/{app_key}/jwks", json=jwks(keys[1])).status_code == 200
    old = post_token(client, cc_form(assertion(keys[0], app_key)))
    assert error_of(old)[2] == "Invalid 'kid' header in client_assertion JWT - no matching public key"
    assert post_token(client, cc_form(assertion(keys[1], app_key))).status_code == 200


def test_aud_may_be_the_configured_public_url(client, sandbox, keys, app_key):
    sandbox.settings = sandbox.settings.replace(public_url="https://sandbox.example.org/")
    public = assertion(keys[0], app_key, aud="https://sandbox.example.org/oauth2/token")
    assert post_token(client, cc_form(public)).status_code == 200
    called = assertion(keys[0], app_key, aud="http://localhost/oauth2-mock/token")
    assert post_token(client, cc_form(called), path="/oauth2-mock/token").status_code == 200
    assert post_token(client, cc_form(assertion(keys[0], app_key, aud="https://elsewhere/oauth2/token"))
                      ).status_code == 401


def test_revoked_application_cannot_get_tokens(client, keys, app_key):
    assert client.delete(f"/_sandbox/oauth/apps/{app_key}").status_code == 200
    response = post_token(client, cc_form(assertion(keys[0], app_key)))
    assert error_of(response)[:2] == (401, "invalid_request")


def test_wrong_method_and_unknown_path(client):
    response = client.get("/oauth2/token")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert response.get_json()["error"] == "invalid_request"
    missing = client.get("/oauth2/nowhere")
    assert missing.status_code == 404 and set(missing.get_json()) == {"error", "error_description", "message_id"}


def test_shortened_token_lifetime_like_live(client, keys, app_key):
    form = cc_form(assertion(keys[0], app_key), _access_token_expiry_ms="100000")
    assert post_token(client, form).get_json()["expires_in"] == "99"
    longer = cc_form(assertion(keys[0], app_key), _access_token_expiry_ms="9000000")
    assert post_token(client, longer).get_json()["expires_in"] == "599"  # never lengthened


def test_token_request_belongs_to_the_applications_session(client, keys, app_key):
    response = post_token(client, cc_form(assertion(keys[0], app_key)), headers=FORM)
    record = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    assert record["session"] == app_key


def test_control_api_registration_errors_and_demo(client):
    bad = client.post("/_sandbox/oauth/apps", json={"name": "x", "jwks": {"keys": [{"kty": "RSA"}]}})
    assert bad.status_code == 400 and "has no 'kid'" in bad.get_json()["message"]
    assert client.post("/_sandbox/oauth/apps", data="nope").status_code == 400
    assert client.get("/_sandbox/oauth/apps/unknown").status_code == 404
    demo = client.get("/_sandbox/oauth/demo").get_json()
    assert "DEMO" in demo["warning"] and demo["private_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    assert demo["api_key"] in {a["api_key"] for a in client.get("/_sandbox/oauth/apps").get_json()["applications"]}
    assert client.get("/_sandbox/oauth/cis2/jwks").get_json()["keys"][0]["kid"] == "mock-cis2-1"
