"""No secret is ever shown back: the journal, the control API, the CLI and every report show a fingerprint instead.

One session gets traffic carrying every kind of credential (a session token, an OAuth access token, an NHSMESH
token, client secrets, client assertions, passwords, private keys, cookies, sandbox keys); then every place a user
can look (the exchange, the listings, the CLI, the four report files, the journal's own files) is searched for them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sandbox.cli import main
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.journal.redaction import (
    JSON_SECRETS,
    fingerprint,
    is_redacted,
    redact_body,
    redact_headers,
    redact_query,
    redacted,
)
from tests.conftest import PdsClient
from tests.mesh_helpers import Mesh
from tests.oauth_helpers import KeyPair, assertion, cc_form, jwks, post_token, register

PLAN = "pds-application-restricted"
FINGERPRINT = re.compile(r"\[redacted(?: private key)? sha256:[0-9a-f]{8}\]")


def private_jwk(pair: KeyPair) -> dict:
    """The whole key pair as a JWK: the private members a JWKS must never carry."""
    return {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(pair.private)), "kid": pair.kid}


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def traffic(app, client):
    """A session's traffic with every kind of secret in it: the secrets, and the exchanges that carried them."""
    made = client.post("/_sandbox/sessions", json={"plan": PLAN, "supplier": "Acme", "system": "PAS"}).get_json()
    session, session_token = made["session"], made["token"]
    pair = KeyPair("red-1")
    application = register(client, name="Redaction app", keys=jwks(pair), session=session,
                           redirect_uris=["https://app.example/callback"])
    client_assertion = assertion(pair, application["api_key"])
    issued = post_token(client, cc_form(client_assertion))
    assert issued.status_code == 200, issued.get_json()
    access_token = issued.get_json()["access_token"]
    exchanges = [issued.headers["X-Sandbox-Exchange"]]
    secrets = {"session token": session_token, "client secret": application["secret"], "access token": access_token,
               "client assertion signature": client_assertion.rsplit(".", 1)[1], "password": "hunter2-correct-horse",
               "cookie": "cookie-value-0123456789", "sandbox key": "sbk_" + "k" * 32,
               "private key": pair.pem.splitlines()[5], "jwk d": private_jwk(pair)["d"]}

    pds = PdsClient(client)
    sent = [PdsClient(app.test_client(use_cookies=False)).get(  # Cookie as sent, not the test client's jar
                "/Patient/9000000009", headers={"Authorization": f"Bearer {session_token}",
                                                "X-Sandbox-Key": secrets["sandbox key"],
                                                "Cookie": f"theme=dark; sid={secrets['cookie']}"}),
            pds.get("/Patient/9000000000", headers={"Authorization": f"bearer {session_token}"}),  # fails: evidence
            pds.get(f"/Patient?family=Smith&_session={session_token}", headers={"Authorization": f"Bearer {access_token}"}),
            pds.post("/Patient", json={"jwks": {"keys": [private_jwk(pair)]}, "key": pair.pem},
                     headers={"Authorization": f"Bearer {session_token}"}),
            post_token(client, {"grant_type": "authorization_code", "client_id": application["api_key"],
                                "client_secret": application["secret"], "code": "not-a-code",
                                "redirect_uri": "https://app.example/callback"}),
            post_token(client, {"grant_type": "password", "username": "someone", "password": secrets["password"],
                                "client_assertion": client_assertion}),
            Mesh(client, session=session).inbox()]
    mesh_token = sent[-1].request.headers["Authorization"]
    secrets["NHSMESH token"] = mesh_token.split(" ", 1)[1]
    exchanges += [response.headers["X-Sandbox-Exchange"] for response in sent]
    # Private keys sent to the control API are refused, and not echoed back.
    refused = client.put(f"/_sandbox/oauth/apps/{application['api_key']}/jwks", json={"keys": [private_jwk(pair)]})
    assert refused.status_code == 400 and secrets["jwk d"] not in refused.get_data(as_text=True)
    return {"session": session, "secrets": secrets, "exchanges": exchanges, "app": application,
            "fingerprints": {name: fingerprint(value) for name, value in
                             (("session token", session_token), ("access token", access_token),
                              ("client secret", application["secret"]), ("NHSMESH token", secrets["NHSMESH token"]))}}


def assert_no_secret(text: str, secrets: dict[str, str], where: str) -> None:
    for name, secret in secrets.items():
        assert secret not in text, f"{where} shows the {name}"


def test_exchanges_over_the_control_api_show_fingerprints(client, traffic):
    secrets, fp = traffic["secrets"], traffic["fingerprints"]
    shown = {ex: client.get(f"/_sandbox/exchanges/{ex}").get_data(as_text=True) for ex in traffic["exchanges"]}
    for ex, text in shown.items():
        assert_no_secret(text, secrets, f"/_sandbox/exchanges/{ex}")
    every = "\n".join(shown.values())
    token_response, session_token_get = (json.loads(shown[traffic["exchanges"][i]]) for i in (0, 1))
    assert json.loads(token_response["response"]["body"])["access_token"] == f"[redacted sha256:{fp['access token']}]"
    assert dict(session_token_get["request"]["headers"])["Authorization"] == \
        f"Bearer [redacted sha256:{fp['session token']}]"
    assert re.search(r"sid=\[redacted sha256:[0-9a-f]{8}\]", every) and "X-Sandbox-Key" in every
    assert f"Bearer [redacted sha256:{fp['access token']}]" in every  # a supplier matches its own requests
    assert f"_session=[redacted+sha256:{fp['session token']}]" in every
    assert f"client_secret=[redacted+sha256:{fp['client secret']}]" in every
    assert f"NHSMESH [redacted sha256:{fp['NHSMESH token']}]" in every
    assert "[redacted private key sha256:" in every and '\\"d\\": \\"[redacted sha256:' in every
    # A client assertion keeps its header and claims readable, and loses its signature.
    assert re.search(r"client_assertion=eyJ[\w-]+\.eyJ[\w-]+\.\[redacted\+sha256:[0-9a-f]{8}\]", every)
    listing = client.get(f"/_sandbox/exchanges?session={traffic['session']}").get_data(as_text=True)
    assert_no_secret(listing, secrets, "the exchange listing")


def test_the_cli_shows_fingerprints(traffic, settings):
    data = str(settings.data_dir)
    secrets, fp = traffic["secrets"], traffic["fingerprints"]
    shown = "\n".join(run("exchanges", "show", ex, "--data-dir", data) for ex in traffic["exchanges"])
    shown_json = "\n".join(run("exchanges", "show", ex, "--data-dir", data, "--json") for ex in traffic["exchanges"])
    listed = run("exchanges", "list", "--data-dir", data, "--json", "--limit", "100")
    for where, text in (("exchanges show", shown), ("exchanges show --json", shown_json), ("exchanges list", listed)):
        assert_no_secret(text, secrets, where)
    assert f"Authorization: Bearer [redacted sha256:{fp['session token']}]" in shown
    apps = run("apps", "show", traffic["app"]["api_key"], "--data-dir", data, "--json")
    assert_no_secret(apps, secrets, "apps show")
    assert json.loads(apps)["secret"] == f"[redacted sha256:{fp['client secret']}]"
    assert_no_secret(run("apps", "list", "--data-dir", data, "--json"), secrets, "apps list")


def test_every_report_file_shows_fingerprints(traffic, settings, tmp_path):
    out = tmp_path / "report"
    CliRunner().invoke(main, ["report", traffic["session"], "--out-dir", str(out), "--data-dir",
                              str(settings.data_dir)], catch_exceptions=False)
    files = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()}
    assert {"report.json", "report.html", "junit.xml", "summary.md"} <= set(files)
    for name, text in files.items():
        assert_no_secret(text, traffic["secrets"], name)
    assert f"[redacted sha256:{traffic['fingerprints']['session token']}]" in files["report.json"]
    assert f"[redacted sha256:{traffic['fingerprints']['session token']}]" in files["report.html"]


def test_the_journal_files_never_hold_a_secret(sandbox, traffic, settings):
    sandbox.store.journal.catch_up()  # spooled exchanges into SQLite, as the next query would
    # Every file but the session state (which holds what the services must check: client secrets, issued tokens).
    journal = [p for p in Path(settings.data_dir).rglob("*") if p.is_file() and ".state.lmdb" not in p.name]
    assert any(p.name == "journal.sqlite3" for p in journal)
    for path in journal:
        data = path.read_bytes()
        for name, secret in traffic["secrets"].items():
            assert secret.encode() not in data, f"{path.name} holds the {name}"
    assert any(f"sha256:{traffic['fingerprints']['session token']}".encode() in p.read_bytes() for p in journal)


def test_control_api_shows_stored_secrets_once(client, traffic):
    app, fp = traffic["app"], traffic["fingerprints"]
    listed = client.get("/_sandbox/oauth/apps").get_data(as_text=True)
    one = client.get(f"/_sandbox/oauth/apps/{app['api_key']}").get_json()
    assert app["secret"] not in listed and one["secret"] == f"[redacted sha256:{fp['client secret']}]"
    made = client.post("/_sandbox/oauth/apps", json={"name": "Once"}).get_json()
    assert len(made["secret"]) == 16 and not is_redacted(made["secret"])  # shown when registered, and only then
    assert client.get(f"/_sandbox/oauth/apps/{made['api_key']}").get_json()["secret"] == redacted(made["secret"])


def test_mesh_passwords_are_fingerprints_and_round_trip(client):
    config = client.get("/_sandbox/mesh/config").get_json()["config"]
    assert all(m["password"] == redacted("password") for m in config["mailboxes"])
    config["limits"] = {"max_chunks": 4}  # what GET showed, sent back: the passwords stay as they were
    answer = client.put("/_sandbox/mesh/config?session=kept", json=config)
    assert answer.status_code == 200
    assert all(m["password"] == redacted("password") for m in answer.get_json()["config"]["mailboxes"])
    assert Mesh(client, "X26ABC1", session="kept").inbox().status_code == 200
    config["mailboxes"][0]["password"] = redacted("something else")
    wrong = client.put("/_sandbox/mesh/config?session=kept", json=config)
    assert wrong.status_code == 400 and "send the password itself" in wrong.get_json()["message"]


def test_an_older_journal_is_redacted_when_read(sandbox, client):
    token = "sst_" + "a" * 32
    raw = Exchange(new_exchange_id(), "old", "pds", "get-patient", 0.0, 1.0,
                   RecordedRequest("GET", "/x", "", [("Authorization", "Bearer placeholder")]),
                   RecordedResponse(200, [], b""))
    raw.request.headers = [("Authorization", f"Bearer {token}")]  # as an older sandbox stored it, unredacted
    sandbox.store.journal.record(raw)
    text = client.get(f"/_sandbox/exchanges/{raw.id}").get_data(as_text=True)
    assert token not in text and f"Bearer [redacted sha256:{fingerprint(token)}]" in text


# --- the redaction functions: total, idempotent, and never give the secret back ---------------------------------
SECRET = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=16,
                 max_size=64)


@settings(deadline=None, max_examples=200)
@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=200)), max_size=8), SECRET,
       st.sampled_from([("Authorization", "Bearer "), ("authorization", "bearer "), ("Authorization", "NHSMESH "),
                        ("Proxy-Authorization", "Basic "), ("X-Sandbox-Key", ""), ("apikey", ""),
                        ("Cookie", "a=b; sid="), ("Set-Cookie", "sid="), ("X-Sandbox-Session", "sst_")]))
def test_redact_headers_never_shows_a_credential(headers, secret, header):
    name, scheme = header
    assume(all(secret not in value for _, value in headers))
    shown = redact_headers([*headers, (name, scheme + secret)])
    whole = scheme + secret if scheme == "sst_" else secret  # a session token's fingerprint is of all of it
    assert secret not in shown[-1][1] and fingerprint(whole) in shown[-1][1]
    assert redact_headers(shown) == shown


@settings(deadline=None, max_examples=200)
@given(st.binary(max_size=400), st.text(max_size=60), SECRET,
       st.sampled_from([("sst_{}", "json"), ("sbk_{}", "json"), ('{{"client_secret": "{}"}}', "json"),
                        ('{{"Password":"{}"}}', "json"), ('{{"kty": "RSA", "d": "{}"}}', "json"),
                        ("client_secret={}&a=b", "x-www-form-urlencoded"), ("password={}", "x-www-form-urlencoded"),
                        ("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----", "octet-stream")]))
def test_redact_body_is_total_and_never_returns_the_secret(noise, content_type, secret, shaped):
    shape, form = shaped
    assume(secret.encode() not in noise)
    between = b"&" if form == "x-www-form-urlencoded" else b" "
    body = noise + between + shape.format(secret).encode() + between + noise
    shown = redact_body(body, f"application/{form}")
    assert secret.encode() not in shown
    assert redact_body(shown, f"application/{form}") == shown
    redact_body(noise, content_type)  # anything at all: no exception


@pytest.mark.parametrize("name", sorted(JSON_SECRETS))
def test_every_secret_json_member_is_redacted_in_any_case_however_often_the_same_body_is_seen(name):
    secret = "s3cret-value-0123456789"
    for spelled in (name, name.upper(), name.title()):
        body = json.dumps({"resourceType": "x", spelled: secret, "padding": "p" * 2000}).encode()
        for _ in range(3):  # a body seen before is answered from memory: the same redaction every time
            shown = redact_body(body, "application/json")
            assert secret.encode() not in shown and fingerprint(secret).encode() in shown


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=200), SECRET, st.sampled_from(["client_secret", "password", "access_token", "_x"]))
def test_redact_query_is_total(noise, secret, field):
    assume(secret not in noise)
    redact_query(noise)
    shown = redact_query(f"{field}={secret}&{noise}" if field != "_x" else f"a=sst_{secret}")
    assert secret not in shown and redact_query(shown) == shown


def test_a_marker_glued_to_a_secret_does_not_hide_it():
    glued = "s3cret-s3cret-s3cret" + redacted("x")
    shown = redact_headers([("Authorization", f"Bearer {glued}"), ("X-Sandbox-Key", glued)])
    assert all(glued not in value and "s3cret" not in value for _, value in shown)
    assert "s3cret" not in redact_query(f"client_secret={glued}")
    assert b"s3cret" not in redact_body(f'{{"password": "{glued}"}}'.encode(), "application/json")
