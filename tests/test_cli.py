"""The command line: every listing has --json; errors are clear messages, not tracebacks."""

from __future__ import annotations

import json

import requests
from click.testing import CliRunner

from sandbox.cli import main
from tests.conftest import LiveServer, free_port, pds_headers


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_scenarios_catalogue_lists_triggers():
    items = json.loads(run("scenarios", "--json", "--service", "pds"))
    by_id = {s["id"]: s for s in items}
    assert "nhs_number=9999000002" in by_id["pds-rate-limited"]["trigger"]
    assert "pds-rate-limited" in run("scenarios")
    shown = json.loads(run("scenarios", "show", "pds-service-unavailable-once", "--json"))
    assert shown["response"]["headers"] == {"Retry-After": "2"}


def test_unknown_scenario_is_a_clear_error():
    result = CliRunner().invoke(main, ["scenarios", "show", "nope"])
    assert result.exit_code == 1 and "no scenario 'nope'" in result.output


def test_patients_list_show_and_export(tmp_path):
    listed = json.loads(run("patients", "list", "--kind", "deceased", "--limit", "3", "--json", "--population", "2000"))
    assert len(listed) == 3 and all(p["kind"] == "deceased" and p["death_date"] for p in listed)
    shown = json.loads(run("patients", "show", listed[0]["nhs_number"], "--json", "--population", "2000"))
    assert shown["resourceType"] == "Patient" and shown["id"] == listed[0]["nhs_number"]
    out = tmp_path / "patients.ndjson"
    run("patients", "export", "--limit", "25", "--out", str(out), "--population", "2000")
    lines = out.read_text().splitlines()
    assert len(lines) == 25 and all(json.loads(line)["resourceType"] == "Patient" for line in lines)
    bundle = json.loads(run("patients", "export", "--limit", "2", "--format", "bundle", "--population", "2000"))
    assert bundle["type"] == "collection" and bundle["total"] == 2


def test_bad_kind_is_refused():
    result = CliRunner().invoke(main, ["patients", "list", "--kind", "wizard"])
    assert result.exit_code == 2 and "'wizard' is not one of" in result.output


def test_requirements_catalogue():
    rows = json.loads(run("requirements", "--json", "--service", "pds"))
    assert {"PDS-HDR-001", "PDS-GET-001"} <= {r["id"] for r in rows}
    assert all(r["level"] in ("MUST", "SHOULD", "MAY") and r["source"] for r in rows)


def test_serve_journals_every_answer_durably_even_when_killed(tmp_path):
    data = tmp_path / "data"
    server = LiveServer(data, free_port()).wait()
    try:
        health = requests.get(server.url + "/_sandbox/health", timeout=5).json()
        assert health["status"] == "ok" and health["services"]["pds"] == ["/personal-demographics/FHIR/R4"]
        ids = []
        for number in ("9000000009", "9000000000"):
            response = requests.get(f"{server.url}/personal-demographics/FHIR/R4/Patient/{number}",
                                    headers=pds_headers(), timeout=5)
            ids.append(response.headers["X-Sandbox-Exchange"])
    finally:
        output = server.stop(kill=True)  # SIGKILL: no chance to flush anything
    assert "Personal Demographics Service" in output
    journal = json.loads(run("exchanges", "list", "--data-dir", str(data), "--json"))
    assert [e["id"] for e in journal] == ids[::-1]
    shown = run("exchanges", "show", ids[1], "--data-dir", str(data))
    assert "PDS-GET-001" in shown and "fails the Modulus 11 check" in shown
