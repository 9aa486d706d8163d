"""Sessions bound to plans (CLI and control API), their credentials, progress, attestations and verdicts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sandbox.app import create_app
from sandbox.assurance.verdicts import requirement_verdict, session_verdict
from sandbox.cli import main
from tests.conftest import PdsClient

SMALL_PLAN = """
id: small
title: Retrieve one patient
services: [pds]
scenarios: [pds-get-patient-exists]
requirements: [PDS-HDR-001, PDS-GET-001]
manual: [PDS-GET-003]
"""
NO_COUNTS = {"pass": 0, "fail": 0, "warning": 0, "info": 0}


# --- the rules ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("verification, counts, attestation, expected", [
    ("automatic", {"pass": 4, "fail": 1}, None, "fail"),
    ("automatic", {"pass": 4}, None, "pass"),
    ("automatic", {}, None, "not exercised"),
    ("automatic", {"warning": 2}, None, "not exercised"),  # a warning is no passing evidence
    ("manual", {"pass": 3}, None, "manual"),  # automatic evidence does not stand in for the assessor
    ("manual", {}, {"verdict": "pass", "by": "A. Assessor"}, "pass"),
    ("manual", {"fail": 1}, {"verdict": "fail", "by": "A. Assessor"}, "fail"),
])
def test_requirement_verdicts(verification, counts, attestation, expected):
    verdict, reason = requirement_verdict(verification, {**NO_COUNTS, **counts}, attestation)
    assert verdict == expected and reason


def _req(verdict):
    return {"id": f"R-{verdict}", "verdict": verdict}


@pytest.mark.parametrize("verdicts, exercised, expected, reason", [
    (["pass", "pass"], [True], "pass", "every plan requirement"),
    (["pass", "fail", "not exercised"], [False], "fail", "failed: R-fail"),
    (["pass", "not exercised"], [True], "incomplete", "no passing evidence yet: R-not exercised"),
    (["pass", "manual"], [True], "incomplete", "awaiting attestation: R-manual"),
    (["pass"], [True, False], "incomplete", "steps not exercised: s1"),
])
def test_session_verdicts(verdicts, exercised, expected, reason):
    steps = [{"scenario": f"s{n}", "exercised": e} for n, e in enumerate(exercised)]
    verdict, reasons = session_verdict([_req(v) for v in verdicts], steps)
    assert verdict == expected and any(reason in r for r in reasons)


# --- over the CLI and the control API --------------------------------------------------------------------------------
@pytest.fixture
def small(settings, tmp_path):
    folder = tmp_path / "extra" / "plans"
    folder.mkdir(parents=True)
    (folder / "small.yaml").write_text(SMALL_PLAN)
    return settings.replace(scenarios=(folder.parent,))


def cli(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_session_created_on_the_cli_is_used_with_its_token_and_reaches_pass(small):
    env = {"SANDBOX_SCENARIOS": str(small.scenarios[0])}
    made = cli("sessions", "create", "--plan", "small", "--supplier", "Acme Health", "--system", "Acme PAS 1.2",
               "--data-dir", str(small.data_dir), "--json", env=env)
    assert made.exit_code == 0, made.output
    creds = json.loads(made.output)
    assert creds["session"].startswith("sess-") and creds["token"].startswith("sst_")
    assert creds["headers"] == {"X-Sandbox-Session": creds["session"]}

    app = create_app(small)
    pds = PdsClient(app.test_client())
    answered = pds.get("/Patient/9000000009", headers={"Authorization": f"Bearer {creds['token']}"})
    assert answered.status_code == 200
    assert app.extensions["sandbox"].store.journal.exchange(answered.headers["X-Sandbox-Exchange"]).session == creds["session"]

    progress = app.test_client().get(f"/_sandbox/sessions/{creds['session']}").get_json()
    assert progress["verdict"] == "incomplete" and progress["awaiting_attestation"] == ["PDS-GET-003"]
    assert progress["steps"] == [{"scenario": "pds-get-patient-exists", "title": "Patient exists", "exercised": True,
                                  "exchanges": 1}]
    shown = cli("sessions", "show", creds["session"], "--data-dir", str(small.data_dir), env=env)
    assert "INCOMPLETE so far" in shown.output and "[x] pds-get-patient-exists" in shown.output

    attested = cli("attest", creds["session"], "PDS-GET-003", "--verdict", "pass", "--by", "A. Assessor",
                   "--note", "Restricted banner shown; no address stored.", "--data-dir", str(small.data_dir), env=env)
    assert attested.exit_code == 0 and "Recorded: PDS-GET-003 pass" in attested.output
    final = json.loads(cli("sessions", "show", creds["session"], "--json", "--data-dir", str(small.data_dir),
                           env=env).output)
    assert final["verdict"] == "pass" and final["without_evidence"] == [] and final["awaiting_attestation"] == []
    listed = json.loads(cli("sessions", "list", "--json", "--data-dir", str(small.data_dir)).output)
    assert [s["session"] for s in listed] == [creds["session"]] and "token" not in listed[0]


def test_control_api_creates_sessions_records_attestations_and_reports_progress(small):
    client = create_app(small).test_client()
    made = client.post("/_sandbox/sessions", json={"plan": "small", "supplier": "Acme", "system": "PAS 2"})
    assert made.status_code == 201
    session = made.get_json()["session"]
    pds = PdsClient(client, session)
    pds.get("/Patient/9000000009", headers={"X-Request-ID": "not-a-uuid"})  # outside the plan: no effect
    progress = client.get(f"/_sandbox/sessions/{session}").get_json()
    assert progress["verdict"] == "incomplete" and progress["awaiting_attestation"] == ["PDS-GET-003"]
    pds.get("/Patient/9000000000")
    progress = client.get(f"/_sandbox/sessions/{session}").get_json()
    assert progress["verdict"] == "fail" and progress["reasons"][0] == "failed: PDS-GET-001"
    by_id = {r["id"]: r for r in progress["requirements"]}
    assert by_id["PDS-HDR-001"]["verdict"] == "pass" and by_id["PDS-GET-001"]["counts"]["fail"] == 1
    attest = client.post(f"/_sandbox/sessions/{session}/attestations",
                         json={"requirement": "PDS-GET-003", "verdict": "fail", "by": "B. Assessor",
                               "note": "Address of a restricted patient was shown."})
    assert attest.status_code == 201 and attest.get_json()["verdict"] == "fail"
    after = client.get(f"/_sandbox/sessions/{session}").get_json()
    assert next(r for r in after["requirements"] if r["id"] == "PDS-GET-003")["verdict"] == "fail"


@pytest.mark.parametrize("body, status, message", [
    ({"plan": "nope", "supplier": "A", "system": "B"}, 404, "no assurance plan 'nope'"),
    ({"plan": "small", "system": "B"}, 400, "supplier is required"),
    ({"plan": "small", "supplier": "A", "system": "x\x00y"}, 400, "printable characters"),
    (["not", "an", "object"], 400, "must be a JSON object"),
])
def test_session_creation_errors_are_clear(small, body, status, message):
    answer = create_app(small).test_client().post("/_sandbox/sessions", json=body)
    assert answer.status_code == status and message in answer.get_json()["message"]


def test_attestation_errors_are_clear(small):
    client = create_app(small).test_client()
    session = client.post("/_sandbox/sessions", json={"plan": "small", "supplier": "A", "system": "B"}).get_json()
    url = f"/_sandbox/sessions/{session['session']}/attestations"
    base = {"requirement": "PDS-GET-003", "verdict": "pass", "by": "A", "note": "checked"}
    for change, message in (({"requirement": "PDS-HDR-001"}, "not verified manually in plan small; attest one of: "
                                                             "PDS-GET-003"),
                            ({"verdict": "maybe"}, "must be pass or fail"), ({"note": " "}, "a note is required"),
                            ({"by": ""}, "by is required")):
        answer = client.post(url, json={**base, **change})
        assert answer.status_code == 400 and message in answer.get_json()["message"], change
    assert client.post("/_sandbox/sessions/nope/attestations", json=base).status_code == 404
    cli_answer = CliRunner().invoke(main, ["attest", "nope", "PDS-GET-003", "--verdict", "pass", "--by", "A",
                                           "--note", "n", "--data-dir", str(small.data_dir)])
    assert cli_answer.exit_code == 1 and "no session 'nope' bound to a plan" in cli_answer.output


def test_unknown_or_conflicting_session_credentials_get_spine_shaped_errors(small):
    client = create_app(small).test_client()
    session = client.post("/_sandbox/sessions", json={"plan": "small", "supplier": "A", "system": "B"}).get_json()
    pds = PdsClient(client)
    unknown = pds.get("/Patient/9000000009", headers={"Authorization": "Bearer sst_forged"})
    assert unknown.status_code == 401
    assert unknown.get_json()["issue"][0]["details"]["coding"][0]["code"] == "ACCESS_DENIED"
    conflict = pds.get("/Patient/9000000009", headers={"Authorization": f"Bearer {session['token']}",
                                                       "X-Sandbox-Session": "someone-else"})
    assert conflict.status_code == 400 and "different session" in conflict.get_json()["issue"][0]["diagnostics"]
    ordinary = pds.get("/Patient/9000000009", headers={"Authorization": "Bearer some-oauth-token"})
    assert ordinary.status_code == 200  # only sst_ tokens select a session


def test_an_unbound_session_is_judged_against_a_named_plan(small):
    client = create_app(small).test_client()
    PdsClient(client, "adhoc").get("/Patient/9000000009")
    assert client.get("/_sandbox/sessions/adhoc").status_code == 400
    judged = client.get("/_sandbox/sessions/adhoc?plan=small").get_json()
    assert judged["verdict"] == "incomplete" and judged["steps"][0]["exercised"]
    assert client.get("/_sandbox/sessions/never-used?plan=small").status_code == 404


@pytest.mark.parametrize("auth", ["strict", "lenient"])
def test_a_session_token_stands_in_for_an_access_token_of_the_plans_mode(settings, auth):
    from sandbox.app import create_app
    from tests.conftest import PdsClient

    client = create_app(settings.replace(auth=auth)).test_client()
    created = client.post("/_sandbox/sessions", json={"plan": "pds-healthcare-worker", "supplier": "Acme",
                                                       "system": "PAS 1"}).get_json()
    pds = PdsClient(client)
    response = pds.get("/Patient/9000000009", headers={"Authorization": f"Bearer {created['token']}"})
    assert response.status_code == 200
    record = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    assert record["session"] == created["session"]
    auth_finding = next(f for f in record["findings"] if f["requirement"] == "PDS-HDR-005")
    assert auth_finding["outcome"] == "pass"
    assert "standing in for a healthcare-worker access token" in auth_finding["message"]
    unknown = pds.get("/Patient/9000000009", headers={"Authorization": "Bearer sst_not-a-real-token"})
    assert unknown.status_code == 401


def test_a_session_created_without_a_plan_has_a_token_and_is_judged_only_against_a_named_plan(small):
    from sandbox.assurance.sessions import SessionError, create_unbound_session

    client = create_app(small).test_client()
    sandbox = client.application.extensions["sandbox"]
    record, token = create_unbound_session(sandbox.store, "t0001-unbound", "Acme", "PAS 1")
    assert record.plan is None and token.startswith("sst_")
    response = PdsClient(client).get("/Patient/9000000009", headers={"Authorization": f"Bearer {token}"})
    detail = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    assert detail["session"] == "t0001-unbound"
    assert {f["requirement"]: f["outcome"] for f in detail["findings"]}["PDS-HDR-005"] == "pass"  # application
    unjudged = client.get("/_sandbox/sessions/t0001-unbound")
    assert unjudged.status_code == 400 and "is not bound to a plan; name one with --plan" in unjudged.get_data(True)
    assert client.get("/_sandbox/sessions/t0001-unbound?plan=small").get_json()["steps"][0]["exercised"]
    with pytest.raises(SessionError, match="already exists") as taken:
        create_unbound_session(sandbox.store, "t0001-unbound", "Acme", "PAS 1")
    assert taken.value.status == 409
