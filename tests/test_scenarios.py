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
    ("id: x\nservice: pds\ntitle: Title\ntrigger: {operation: fly}\n", "field 'trigger.operation': operation 'fly' is not a pds operation; known: create-patient, get-patient"),
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


def test_a_refused_request_does_not_use_up_a_times_scenario(pds, sandbox):
    """Only a request that reaches the scenario uses it up: one refused by a check first (no X-Request-ID) is
    answered with the refusal and journaled without the scenario."""
    refused = pds.get("/Patient/9999000010", headers={"X-Request-ID": None})
    assert refused.status_code == 400 and "X-Sandbox-Scenario" not in refused.headers
    assert sandbox.store.journal.exchange(refused.headers["X-Sandbox-Exchange"]).scenario is None
    first = pds.get("/Patient/9999000010")
    assert first.status_code == 503 and first.headers["X-Sandbox-Scenario"] == "pds-service-unavailable-once"
    assert pds.get("/Patient/9999000010").status_code == 200  # used up by the request that reached it


def test_a_forced_scenario_on_a_refused_request_is_not_recorded(pds, sandbox):
    refused = pds.get("/Patient/9000000009", headers={"X-Request-ID": "not-a-uuid",
                                                      "X-Sandbox-Scenario": "pds-rate-limited"})
    assert refused.status_code == 400 and "X-Sandbox-Scenario" not in refused.headers
    assert sandbox.store.journal.exchange(refused.headers["X-Sandbox-Exchange"]).scenario is None


def test_a_request_that_fails_on_the_way_uses_nothing_up(pds, sandbox, monkeypatch):
    """A request takes its use of a `times:` scenario when the scenario is chosen, and gives it back when it is not
    answered with it after all: the client gets the sandbox's 500 and the scenario is still there for the next
    request."""
    import sandbox.web.pipeline as pipeline

    def broken(*args):
        raise RuntimeError("the answer could not be built")

    monkeypatch.setattr(pipeline, "scripted_response", broken)
    failed = pds.get("/Patient/9999000010")
    assert failed.status_code == 500 and "failed to answer this request" in failed.get_data(as_text=True)
    monkeypatch.undo()
    real = sandbox.store.state.put

    def store_down(session, namespace, key, value, *args, **kwargs):
        if namespace == "scenario-uses":
            raise RuntimeError("the state store failed")
        return real(session, namespace, key, value, *args, **kwargs)

    monkeypatch.setattr(sandbox.store.state, "put", store_down)
    assert pds.get("/Patient/9999000010").status_code == 500  # the use could not be taken
    monkeypatch.undo()
    assert pds.get("/Patient/9999000010").status_code == 503
    assert pds.get("/Patient/9999000010").status_code == 200


def test_requests_racing_for_a_times_scenario_get_exactly_its_uses(settings, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from sandbox.app import create_app

    folder = write(tmp_path / "extra", "slow-once.yaml", """
id: slow-once
service: pds
title: Unavailable once, slowly
trigger: {operation: get-patient, params: {nhs_number: "9990000204"}}
response: {status: 503, times: 2, delay_ms: 300, error: {code: SERVICE_UNAVAILABLE, diagnostics: "Try again"}}
""")
    app = create_app(settings.replace(scenarios=(folder,)))
    url = "/personal-demographics/FHIR/R4/Patient/9990000204"  # a patient of the synthetic population
    with ThreadPoolExecutor(6) as pool:  # all six choose the scenario while the first ones still answer with it
        statuses = list(pool.map(lambda _: app.test_client().get(url, headers=pds_headers()).status_code, range(6)))
    assert sorted(statuses) == [200, 200, 200, 200, 503, 503]
    app.extensions["sandbox"].close()


def test_a_scenario_describing_a_refusal_is_recorded_with_it(settings, tmp_path):
    """A scenario that names the refusing requirement describes that refusal (as the access-mode ones do), so the
    refused request reaches it."""
    from sandbox.app import create_app

    folder = write(tmp_path / "extra", "mine.yaml", """
id: my-missing-request-id
service: pds
title: Retrieval without X-Request-ID (refused)
trigger: {operation: get-patient, params: {nhs_number: "9000000017"}, headers: {X-Test: "*"}}
requirements: [PDS-HDR-001]
""")
    app = create_app(settings.replace(scenarios=(folder,)))
    refused = app.test_client().get("/personal-demographics/FHIR/R4/Patient/9000000017",
                                    headers=pds_headers(**{"X-Request-ID": None, "X-Test": "1"}))
    assert refused.status_code == 400 and refused.headers["X-Sandbox-Scenario"] == "my-missing-request-id"
    app.extensions["sandbox"].close()


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


def test_the_most_specific_scenario_wins_and_ties_go_to_the_first_loaded():
    """Scenarios are looked up by one exact value each (a path parameter, a header, a fact) before they are matched:
    the choice must be the one matching every scenario in loading order would make."""
    from sandbox.conformance.checks import RequestView
    from sandbox.scripting.scenarios import Scenario, ScenarioCatalogue, Trigger

    def scenario(sid: str, **trigger) -> Scenario:
        return Scenario(sid, "pds", sid, Trigger(("get-patient",), **trigger))

    catalogue = ScenarioCatalogue([
        scenario("by-fact", facts={"patient_kind": "restricted"}),
        scenario("by-header", headers={"X-Mode": "Slow"}),
        scenario("any-header", headers={"X-Mode": "*"}),
        scenario("by-number-and-fact", params={"nhs_number": "9000000009"}, facts={"patient_kind": "restricted"}),
        scenario("forced", params={"nhs_number": "9000000009"}, forced_only=True),
    ])

    def chosen(number: str, headers: list[tuple[str, str]], kind: str) -> str | None:
        view = RequestView("GET", f"/Patient/{number}", {}, headers, b"", {"nhs_number": number})
        found = catalogue.select("pds", "get-patient", view, {"patient_kind": kind})
        return found.id if found else None

    assert chosen("9000000017", [], "standard") is None
    assert chosen("9000000017", [("x-mode", "SLOW")], "standard") == "by-header"  # names and values in any case
    assert chosen("9000000017", [("X-Mode", "fast")], "standard") == "any-header"
    assert chosen("9000000017", [("X-Mode", "slow")], "restricted") == "by-fact"  # as specific: loaded first
    assert chosen("9000000009", [("X-Mode", "slow")], "restricted") == "by-number-and-fact"  # more specific
    assert chosen("9000000009", [], "standard") is None  # a forced-only scenario is never selected
