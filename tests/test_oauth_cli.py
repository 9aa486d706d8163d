"""`spine-sandbox apps …` and a live server: registrations by the CLI take effect without a restart."""

from __future__ import annotations

import json
import uuid

import jwt
import requests
from click.testing import CliRunner

from sandbox.cli import main
from sandbox.journal.redaction import redacted
from tests.conftest import PDS_BASE, LiveServer, free_port
from tests.oauth_helpers import JWT_BEARER, KeyPair, jwks


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def write_jwks(tmp_path, *pairs) -> str:
    path = tmp_path / f"jwks-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(jwks(*pairs)))
    return str(path)


def test_register_prints_json_and_lists(tmp_path):
    data = str(tmp_path / "data")
    one, two = KeyPair("k-1"), KeyPair("k-2")
    made = json.loads(run("apps", "register", "--name", "My app", "--jwks", write_jwks(tmp_path, one, two),
                          "--data-dir", data, "--json"))
    assert set(made) == {"api_key", "name", "kids", "secret"} and made["kids"] == ["k-1", "k-2"]
    assert len(made["api_key"]) == 32 and len(made["secret"]) == 16  # the secret: shown this once
    listed = json.loads(run("apps", "list", "--data-dir", data, "--json"))
    assert made["api_key"] in {a["api_key"] for a in listed}
    shown = json.loads(run("apps", "show", made["api_key"], "--data-dir", data, "--json"))
    assert shown["session"] == made["api_key"] and shown["secret"] == redacted(made["secret"])
    rotated = json.loads(run("apps", "set-jwks", made["api_key"], "--jwks", write_jwks(tmp_path, two),
                             "--data-dir", data, "--json"))
    assert rotated["kids"] == ["k-2"]
    assert "revoked" in run("apps", "revoke", made["api_key"], "--data-dir", data)


def test_bad_jwks_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keys": [{"kty": "EC", "kid": "x"}]}))
    result = CliRunner().invoke(main, ["apps", "register", "--name", "x", "--jwks", str(bad),
                                       "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "kty 'EC'" in result.output and "RS512 needs an RSA key" in result.output
    private = tmp_path / "private.json"
    key = KeyPair("p").jwk
    key["d"] = "secret"
    private.write_text(json.dumps({"keys": [key]}))
    result = CliRunner().invoke(main, ["apps", "register", "--name", "x", "--jwks", str(private),
                                       "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "contains a private key" in result.output


def test_id_tokens_from_the_command_line(tmp_path):
    data = str(tmp_path)
    token = run("apps", "id-token", "--user", "555021935107", "--aal", "AAL2", "--data-dir", data).strip()
    assert jwt.decode(token, options={"verify_signature": False})["acr"] == "AAL2_ANY"
    number = json.loads(run("patients", "list", "--limit", "1", "--json", "--population", "2000"))[0]["nhs_number"]
    patient = run("apps", "id-token", "--nhs-number", number, "--population", "2000", "--data-dir", data).strip()
    assert jwt.decode(patient, options={"verify_signature": False})["nhs_number"] == number
    result = CliRunner().invoke(main, ["apps", "id-token", "--data-dir", data])
    assert result.exit_code == 2 and "either --user" in result.output


def test_live_server_strict_mode_and_registration_without_restart(tmp_path):
    data = tmp_path / "live"
    server = LiveServer(data, free_port(), extra_env={"SANDBOX_AUTH": "strict"}).wait()
    try:
        assert requests.get(server.url + "/_sandbox/health", timeout=5).json()["auth"] == "strict"
        pair = KeyPair("live-1")
        made = json.loads(run("apps", "register", "--name", "Live", "--jwks", write_jwks(tmp_path, pair),
                              "--data-dir", str(data), "--json"))
        claims_aud = server.url + "/oauth2/token"
        signed = run("apps", "assertion", "--api-key", made["api_key"], "--kid", "live-1", "--aud", claims_aud,
                     "--key", str(_pem(tmp_path, pair))).strip()
        answer = requests.post(claims_aud, data={"grant_type": "client_credentials", "client_assertion": signed,
                                                 "client_assertion_type": JWT_BEARER}, timeout=5)
        assert answer.status_code == 200, answer.text
        headers = {"X-Request-ID": str(uuid.uuid4())}
        refused = requests.get(f"{server.url}{PDS_BASE}/Patient/9000000009", headers=headers, timeout=5)
        assert refused.status_code == 401 and refused.json()["issue"][0]["details"]["coding"][0]["code"] == \
            "ACCESS_DENIED"
        headers = {"X-Request-ID": str(uuid.uuid4()), "Authorization": f"Bearer {answer.json()['access_token']}"}
        assert requests.get(f"{server.url}{PDS_BASE}/Patient/9000000009", headers=headers, timeout=5).status_code == 200
        demo = run("apps", "assertion", "--aud", claims_aud).strip()  # the ready-made demo application
        assert requests.post(claims_aud, data={"grant_type": "client_credentials", "client_assertion": demo,
                                               "client_assertion_type": JWT_BEARER}, timeout=5).status_code == 200
    finally:
        output = server.stop()
    assert "Authorisation (SANDBOX_AUTH)" in output and "strict" in output


def _pem(tmp_path, pair):
    path = tmp_path / f"{pair.kid}.pem"
    path.write_text(pair.pem)
    return path


def test_demo_application(tmp_path):
    shown = json.loads(run("apps", "demo", "--data-dir", str(tmp_path), "--json"))
    assert shown["api_key"] == "sandbox-demo-application" and shown["kid"] == "sandbox-demo-1"
    assert "DEMO" in run("apps", "demo", "--data-dir", str(tmp_path))


def test_two_worker_processes_share_applications_jtis_and_tokens(tmp_path):
    data = tmp_path / "shared"
    server = LiveServer(data, free_port(), extra_env={"SANDBOX_AUTH": "strict", "SANDBOX_WORKERS": "2"}).wait()
    try:
        url = server.url + "/oauth2/token"
        tokens = []
        for _ in range(8):  # fresh connections: granian spreads them over both workers
            signed = run("apps", "assertion", "--aud", url).strip()
            form = {"grant_type": "client_credentials", "client_assertion": signed,
                    "client_assertion_type": JWT_BEARER}
            first = requests.post(url, data=form, timeout=5)
            replay = requests.post(url, data=form, timeout=5)
            assert first.status_code == 200 and replay.status_code == 400, (first.text, replay.text)
            assert replay.json()["error_description"] == "Non-unique 'jti' claim in client_assertion JWT"
            tokens.append(first.json()["access_token"])
        for token in tokens:
            headers = {"X-Request-ID": str(uuid.uuid4()), "Authorization": f"Bearer {token}"}
            response = requests.get(f"{server.url}{PDS_BASE}/Patient/9000000009", headers=headers, timeout=5)
            assert response.status_code == 200
    finally:
        server.stop()
