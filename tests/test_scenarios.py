"""Scenario files: validated on load with errors naming file and field; triggers, forcing, faults, `times`."""

from __future__ import annotations

import time

import pytest

from sandbox.runtime import Sandbox, StartupError
from tests.conftest import pds_headers


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("text, expected", [
    ("id: x\nservice: pds\ntitle: T\n", "at /: 'trigger' is required; at /title: 'T' is too short"),
    ("id: x\nservice: nope\ntitle: Title\ntrigger: {operation: get-patient}\n", "field 'service': unknown service 'nope'"),
    ("id: x\nservice: pds\ntitle: Title\ntrigger: {operation: fly}\n", "field 'trigger.operation': pds has no operation 'fly'"),
    ("id: x\nservice: pds\ntitle: Title\ntrigger: {operation: get-patient}\nrequirements: [NOPE-1]\n",
     "field 'requirements': unknown requirement 'NOPE-1'"),
    ("id: x\nservice: pds\ntitle: Title\ntrigger: {operation: get-patient}\nresponse: {status: 999}\n",
     "at /response/status"),
    ("id: [unclosed\n", "not valid YAML at line"),
])
def test_a_bad_scenario_file_is_a_clear_startup_error(settings, tmp_path, text, expected):
    folder = write(tmp_path / "extra", "bad.yaml", text)
    with pytest.raises(StartupError) as error:
        Sandbox.build(settings.replace(scenarios=(folder,)))
    assert "bad.yaml" in str(error.value) and expected in str(error.value)


def test_a_custom_scenario_answers_with_a_templated_error(settings, tmp_path):
    from sandbox.app import create_app

    folder = write(tmp_path / "extra", "mine.yaml", """
id: my-gone
service: pds
title: Gone for this patient
trigger: {operation: get-patient, params: {nhs_number: "9000000017"}, headers: {X-Test: "*"}}
response:
  status: 404
  error: {code: RESOURCE_NOT_FOUND, diagnostics: "No {{ params.nhs_number }} for {{ headers['x-test'] }}"}
""")
    client = create_app(settings.replace(scenarios=(folder,))).test_client()
    url = "/personal-demographics/FHIR/R4/Patient/9000000017"
    assert client.get(url, headers=pds_headers()).status_code == 200  # header trigger not met
    response = client.get(url, headers=pds_headers(**{"X-Test": "abc"}))
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["diagnostics"] == "No 9000000017 for abc"
    assert response.headers["X-Sandbox-Scenario"] == "my-gone"


def test_rate_limit_and_timeout_scenarios(pds):
    limited = pds.get("/Patient/9999000002")
    assert limited.status_code == 429
    assert limited.get_json()["issue"][0]["details"]["coding"][0]["code"] == "TOO_MANY_REQUESTS"
    timeout = pds.get("/Patient/9999000029")
    assert timeout.status_code == 408


def test_service_unavailable_once_then_the_retry_succeeds_per_session(pds):
    first = pds.get("/Patient/9999000010")
    assert first.status_code == 503 and first.headers["Retry-After"] == "2"
    assert first.get_json()["issue"][0]["code"] == "timeout"
    retry = pds.get("/Patient/9999000010")
    assert retry.status_code == 200 and retry.get_json()["id"] == "9999000010"
    other_session = pds.get("/Patient/9999000010", headers={"X-Sandbox-Session": "s2"})
    assert other_session.status_code == 503


def test_slow_and_malformed_answers(pds):
    started = time.monotonic()
    slow = pds.get("/Patient/9999000037")
    assert slow.status_code == 200 and time.monotonic() - started >= 3
    broken = pds.get("/Patient/9999000053")
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.get_json(force=True, silent=False)


def test_a_scenario_can_be_forced_by_header(pds):
    forced = pds.get("/Patient/9000000009", headers={"X-Sandbox-Scenario": "pds-rate-limited"})
    assert forced.status_code == 429
    wrong = pds.get("/Patient/9000000009", headers={"X-Sandbox-Scenario": "no-such-scenario"})
    assert wrong.status_code == 400
    assert "pds-rate-limited" in wrong.get_json()["issue"][0]["diagnostics"]
