"""Assurance plans: validated on load (a bad file names the file and the field), listed by CLI and control API."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sandbox.cli import main
from sandbox.runtime import Sandbox, StartupError

GOOD = """
id: mine
title: My plan
services: [pds]
scenarios: [pds-get-patient-exists, {id: pds-rate-limited, note: back off}]
requirements: [PDS-HDR-001]
manual: [PDS-GET-003]
"""


def plan_folder(tmp_path, text: str, name: str = "bad.yaml"):
    folder = tmp_path / "extra"
    (folder / "plans").mkdir(parents=True, exist_ok=True)
    (folder / "plans" / name).write_text(text)
    return folder


def test_the_built_in_pds_plans_load_with_real_scenarios_and_requirements(sandbox):
    assert {"pds-healthcare-worker", "pds-application-restricted"} <= set(sandbox.plans.ids())
    for plan in sandbox.plans:
        assert plan.steps and plan.requirements
        assert all(sandbox.scenarios.get(s) for s in plan.scenario_ids)
        assert all(r in sandbox.requirements for r in plan.all_requirements)
    worker = sandbox.plans.get("pds-healthcare-worker")
    assert "PDS-UPD-001" in worker.requirements and "PDS-GET-003" in worker.manual


def test_a_good_extra_plan_loads_with_its_notes(settings, tmp_path):
    sandbox = Sandbox.build(settings.replace(scenarios=(plan_folder(tmp_path, GOOD, "mine.yaml"),)))
    plan = sandbox.plans.get("mine")
    assert [(s.scenario, s.note) for s in plan.steps] == [("pds-get-patient-exists", ""),
                                                          ("pds-rate-limited", "back off")]
    assert plan.verification("PDS-GET-003") == "manual" and plan.verification("PDS-HDR-001") == "automatic"


@pytest.mark.parametrize("change, expected", [
    (("title: My plan\n", ""), "at /: 'title' is required"),
    (("services: [pds]", "services: [pds, fax]"), "field 'services[1]': unknown service 'fax'"),
    (("pds-get-patient-exists,", "pds-nope,"), "field 'scenarios[0]': unknown scenario 'pds-nope'"),
    (("[PDS-HDR-001]", "[PDS-HDR-001, PDS-XXX-999]"), "field 'requirements[1]': unknown requirement 'PDS-XXX-999'"),
    (("manual: [PDS-GET-003]", "manual: [PDS-HDR-001]"), "field 'manual': PDS-HDR-001 cannot be both"),
    (("requirements: [PDS-HDR-001]", "requirements: []"), "at /requirements: [] should be non-empty"),
    (("id: mine", "id: Mine Plan"), "at /id: 'Mine Plan' does not match"),
    (("note: back off", "notes: back off"), "at /scenarios/1"),
    (("id: mine", "id: [unclosed"), "not valid YAML at line"),
])
def test_a_bad_plan_is_a_clear_startup_error_naming_file_and_field(settings, tmp_path, change, expected):
    folder = plan_folder(tmp_path, GOOD.replace(*change))
    with pytest.raises(StartupError) as error:
        Sandbox.build(settings.replace(scenarios=(folder,)))
    assert "plans/bad.yaml" in str(error.value) and expected in str(error.value)


def test_a_plan_id_defined_twice_is_refused(settings, tmp_path):
    folder = plan_folder(tmp_path, GOOD, "a.yaml")
    plan_folder(tmp_path, GOOD, "b.yaml")
    with pytest.raises(StartupError, match="plan 'mine' is already defined in .*a.yaml"):
        Sandbox.build(settings.replace(scenarios=(folder,)))


def test_plans_cli_lists_and_shows():
    runner = CliRunner()
    listed = runner.invoke(main, ["plans"])
    assert listed.exit_code == 0 and "pds-healthcare-worker" in listed.output
    items = json.loads(runner.invoke(main, ["plans", "--json"]).output)
    worker = next(p for p in items if p["id"] == "pds-healthcare-worker")
    assert worker["services"] == ["pds"] and "PDS-GET-003" in worker["manual"]
    shown = runner.invoke(main, ["plans", "show", "pds-application-restricted"])
    assert shown.exit_code == 0 and "nhs_number=9999000010" in shown.output and "PDS-ERR-001" in shown.output
    assert json.loads(runner.invoke(main, ["plans", "show", "pds-healthcare-worker", "--json"]).output)["id"] == \
        "pds-healthcare-worker"
    missing = runner.invoke(main, ["plans", "show", "nope"])
    assert missing.exit_code == 1 and "no assurance plan 'nope'; plans: " in missing.output


def test_plans_control_api(client):
    plans = client.get("/_sandbox/plans").get_json()["plans"]
    assert {"pds-healthcare-worker", "pds-application-restricted"} <= {p["id"] for p in plans}
    one = client.get("/_sandbox/plans/pds-healthcare-worker").get_json()
    assert one["scenarios"][0]["id"] == "pds-get-patient-exists" and one["scenarios"][0]["note"]
    missing = client.get("/_sandbox/plans/nope")
    assert missing.status_code == 404 and "no assurance plan 'nope'" in missing.get_json()["message"]


def test_a_step_is_exercised_only_by_requests_that_reached_its_scenario(sandbox, pds):
    """Requests refused by a check (here: no X-Request-ID) do not exercise a plan step, however many are sent."""
    from sandbox.assurance.reports import make_report
    from sandbox.assurance.sessions import create_session

    record, _ = create_session(sandbox.store, sandbox.plans, "pds-application-restricted", "Acme", "PAS")
    pds.session = record.id

    def step():
        report = make_report(sandbox, record.id)
        return next(s for s in report["steps"] if s["scenario"] == "pds-get-patient-exists")

    for _ in range(3):
        assert pds.get("/Patient/9000000009", headers={"X-Request-ID": None}).status_code == 400
    assert step() == {**step(), "exchanges": 0, "exercised": False}
    assert pds.get("/Patient/9000000009").status_code == 200
    assert step() == {**step(), "exchanges": 1, "exercised": True}
