"""Access modes end to end: token -> PDS GET, allowed, or refused with 401 in strict mode; lenient records the
failing finding; off records nothing. Each mode's per-operation rules: tests/test_pds_access_modes.py."""

from __future__ import annotations

import time

import pytest

from tests.conftest import PDS_BASE, pds_headers
from tests.oauth_helpers import KeyPair, assertion, cc_form, findings, jwks, post_token, register

PATIENT = f"{PDS_BASE}/Patient/9000000009"


@pytest.fixture(scope="module")
def key():
    return KeyPair("access-1")


@pytest.fixture
def app_key(client, key):
    return register(client, name="Access app", keys=jwks(key))["api_key"]


def token(client, key, app_key, **form) -> str:
    response = post_token(client, cc_form(assertion(key, app_key), **form))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def strict(sandbox):
    sandbox.settings = sandbox.settings.replace(auth="strict")


def get(client, bearer: str | None, path: str = PATIENT, **headers):
    auth = f"Bearer {bearer}" if bearer is not None else None
    return client.get(path, headers=pds_headers(Authorization=auth, **headers))


def hdr5(client, response) -> dict:
    return findings(client, response)["PDS-HDR-005"][0]


def test_lenient_lets_any_token_through_but_records_the_failure(client):
    response = get(client, "sandbox-test-token")
    assert response.status_code == 200
    finding = hdr5(client, response)
    assert finding["outcome"] == "fail" and "SANDBOX_AUTH=lenient" in finding["message"]
    assert "was not issued by this sandbox's identity service" in finding["message"]
    missing = get(client, None)
    assert missing.status_code == 200 and hdr5(client, missing)["outcome"] == "fail"


def test_application_restricted_token_passes(client, key, app_key):
    response = get(client, token(client, key, app_key))
    assert response.status_code == 200
    finding = hdr5(client, response)
    assert finding["outcome"] == "pass" and "application-restricted token of application 'Access app'" in \
        finding["message"]
    journal = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    assert journal["session"] == app_key  # the application is its own tenant


def operation_outcome(response) -> tuple[int, str, str, str]:
    issue = response.get_json()["issue"][0]
    return (response.status_code, issue["code"], issue["details"]["coding"][0]["code"], issue["diagnostics"])


DENIED = (401, "forbidden", "ACCESS_DENIED", "Access token missing, invalid or expired, or calling application not "
          "configured for this operation.")


def test_strict_refuses_missing_unknown_and_malformed_tokens_as_pds_does(client, sandbox):
    strict(sandbox)
    for bearer, seen in ((None, "Authorization header is missing"), ("made-up", "was not issued"),):
        response = get(client, bearer)
        assert operation_outcome(response) == DENIED
        assert seen in hdr5(client, response)["message"]
    malformed = client.get(PATIENT, headers=pds_headers(Authorization="Basic abc"))
    assert operation_outcome(malformed) == DENIED
    # The platform checks the token first: a missing X-Request-ID is not what a tokenless request hears about.
    assert operation_outcome(get(client, None, **{"X-Request-ID": None})) == DENIED


def test_strict_refuses_expired_and_revoked_tokens(client, sandbox, key, app_key):
    strict(sandbox)
    short = token(client, key, app_key, _access_token_expiry_ms="1")
    time.sleep(0.01)
    expired = get(client, short)
    assert operation_outcome(expired) == DENIED and "expired" in hdr5(client, expired)["message"]
    live = token(client, key, app_key)
    assert get(client, live).status_code == 200
    assert client.post(f"/_sandbox/oauth/tokens/{live}/revoke").status_code == 200
    revoked = get(client, live)
    assert operation_outcome(revoked) == DENIED and "revoked" in hdr5(client, revoked)["message"]
    other = token(client, key, app_key)
    client.delete(f"/_sandbox/oauth/apps/{app_key}")  # revoking the application revokes its tokens
    assert get(client, other).status_code == 401


def test_strict_allows_each_user_restricted_mode(client, sandbox, key, app_key):
    strict(sandbox)
    exchange = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}
    worker = client.post("/_sandbox/oauth/cis2/id-token", json={"user_id": "555021937109", "aal": "AAL2"})
    number = next(p for p in sandbox.population if p.kind == "standard").nhs_number
    person = client.post("/_sandbox/oauth/nhs-login/id-token", json={"nhs_number": number})
    for issued, expected in ((worker, "healthcare worker token (CIS2 user 555021937109"),
                             (person, f"patient token (NHS login, NHS number {number}")):
        form = cc_form(assertion(key, app_key), subject_token=issued.get_json()["id_token"], **exchange)
        bearer = post_token(client, form).get_json()["access_token"]
        response = get(client, bearer, f"{PDS_BASE}/Patient/{number}")  # a patient reaches only their own record
        assert response.status_code == 200
        assert expected in hdr5(client, response)["message"]


def test_off_records_nothing(client, sandbox):
    sandbox.settings = sandbox.settings.replace(auth="off")
    response = get(client, None)
    assert response.status_code == 200 and "PDS-HDR-005" not in findings(client, response)


def test_scenarios_can_trigger_on_the_access_mode(tmp_path, settings, key):
    from sandbox.app import create_app

    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "by-mode.yaml").write_text(
        "id: only-app-restricted-refused\nservice: pds\ntitle: refuse application-restricted callers\n"
        "trigger: {operation: get-patient, facts: {access_mode: application}}\n"
        "response: {status: 403, error: {code: ACCESS_DENIED, diagnostics: scripted by access mode}}\n")
    app = create_app(settings.replace(scenarios=(tmp_path / "pack",)))
    client = app.test_client()
    app_key = register(client, keys=jwks(key))["api_key"]
    population = app.extensions["sandbox"].population
    standard = f"{PDS_BASE}/Patient/{next(p for p in population if p.kind == 'standard').nhs_number}"
    assert get(client, "fake", standard).status_code == 200
    refused = get(client, token(client, key, app_key), standard)
    assert refused.status_code == 403 and refused.headers["X-Sandbox-Scenario"] == "only-app-restricted-refused"


def test_health_and_settings_show_the_mode(client, settings):
    assert client.get("/_sandbox/health").get_json()["auth"] == "lenient"
    from sandbox.settings import SettingError, Settings

    assert Settings.load(environ={"SANDBOX_AUTH": "strict"}).auth == "strict"
    with pytest.raises(SettingError, match="SANDBOX_AUTH='loose' is not one of strict, lenient, off"):
        Settings.load(environ={"SANDBOX_AUTH": "loose"})
