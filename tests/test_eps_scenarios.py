"""The EPS scenario catalogue (scenarios/eps/): every live error a supplier must handle, forced with the
X-Sandbox-Scenario header on one request, answers with live's status and exact body; the same request without the
header is answered normally; the specification's patient-deceased example is refused as live refuses it; and the
workflow steps tag requests without changing their answers."""

from __future__ import annotations

import uuid

import pytest

from tests.eps_helpers import (
    DISPENSER,
    DISPENSING,
    PRESCRIBER,
    PRESCRIBING,
    Tokens,
    eps_headers,
    example_json,
)

SCENARIO = "X-Sandbox-Scenario"
PLATFORM = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"
SPINE = "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode"
EPS = "https://fhir.nhs.uk/CodeSystem/EPS-IssueCode"
STATUS_HISTORY = "https://fhir.nhs.uk/CodeSystem/medicationrequest-status-history"
PREPARE_BODY = ("prepare", "eRD-primary-example-req.json")
RELEASE_BODY = ("dispensing", "release", "eRD-primary-example-req.json")
CANCEL_BODY = ("prescribing", "prescription-order-update", "eRD-primary-example-req.json")
CLAIM_BODY = ("dispensing", "claim", "eRD-primary-example-req.json")
ORDER_BODY = ("prescribing", "prescription-order", "eRD-primary-example-req.json")
DECEASED = ("errors", "example-b-spine-error-patient-deceased", "SendRequest-FhirMessageSigned.json")

# scenario id -> (the request it is forced on, status, content type, issue code, coding system, coding code)
FAULTS = {
    "eps-access-token-invalid": ("prepare", 401, "application/json", "forbidden", PLATFORM, "ACCESS_DENIED"),
    "eps-forbidden": ("release", 403, "application/json", "forbidden", PLATFORM, "FORBIDDEN"),
    "eps-rate-limited": ("tracker", 429, "application/json", "value", PLATFORM, "TOO_MANY_REQUESTS"),
    "eps-gateway-timeout": ("order", 504, "application/json", "timeout", PLATFORM, "GATEWAY_TIMEOUT"),
    "eps-service-unavailable": ("claim", 503, "application/json", "timeout", PLATFORM, "SERVICE_UNAVAILABLE"),
    "eps-internal-error": ("release", 500, "application/fhir+json", "invalid", None, None),
    "eps-prescribing-disabled": ("prepare", 400, "application/fhir+json", "not-supported", None, None),
    "eps-cancellation-disabled": ("cancel", 400, "application/fhir+json", "not-supported", STATUS_HISTORY,
                                  "R-0009"),
    "eps-patient-deceased": ("order", 400, "application/fhir+json", "business-rule", EPS, "PATIENT_DECEASED"),
    "eps-order-failure-to-process": ("order", 400, "application/fhir+json", "processing", SPINE,
                                     "FAILURE_TO_PROCESS_MESSAGE"),
    "eps-dispensing-failure-to-process": ("claim", 400, "application/fhir+json", "processing", SPINE,
                                          "FAILURE_TO_PROCESS_MESSAGE"),
    "eps-claim-invalid-message": ("claim", 400, "application/fhir+json", "structure", EPS, "INVALID_MESSAGE"),
    "eps-no-more-prescriptions": ("release", 200, "application/fhir+json", "informational", EPS,
                                  "NO_MORE_PRESCRIPTIONS"),
}


@pytest.fixture
def tokens(client) -> Tokens:
    return Tokens(client)


def _request(kind: str) -> tuple[str, str, dict | None, object]:
    """(method, path, body, user) of a request of this kind, from the specification's examples."""
    if kind == "prepare":
        return "POST", f"{PRESCRIBING}/$prepare", example_json("spec", *PREPARE_BODY), PRESCRIBER
    if kind == "order":
        return "POST", f"{PRESCRIBING}/$process-message", example_json("spec", *ORDER_BODY), PRESCRIBER
    if kind == "cancel":
        return "POST", f"{PRESCRIBING}/$process-message", example_json("spec", *CANCEL_BODY), PRESCRIBER
    if kind == "release":
        return "POST", f"{DISPENSING}/Task/$release", example_json("spec", *RELEASE_BODY), DISPENSER
    if kind == "claim":
        return "POST", f"{DISPENSING}/Claim", example_json("spec", *CLAIM_BODY), DISPENSER
    return "GET", f"{DISPENSING}/Task?focus:identifier=24F5DA-A83008-7EFE6Z", None, DISPENSER


def _send(client, tokens: Tokens, kind: str, scenario: str | None = None, session: str = "eps-scenarios"):
    method, path, body, user = _request(kind)
    headers = eps_headers(tokens.worker(user), user, **{"X-Sandbox-Session": session})
    if scenario:
        headers[SCENARIO] = scenario
    return client.open(path, method=method, headers=headers, json=body)


def _issue(body: dict) -> dict:
    assert body["resourceType"] == "OperationOutcome", body
    assert len(body["issue"]) == 1, body
    return body["issue"][0]


@pytest.mark.parametrize("scenario", sorted(FAULTS))
def test_a_forced_fault_answers_with_lives_status_and_body(client, tokens, scenario):
    kind, status, content_type, issue_code, system, code = FAULTS[scenario]
    answer = _send(client, tokens, kind, scenario)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"].startswith(content_type)
    assert answer.headers.get(SCENARIO) == scenario
    issue = _issue(answer.get_json())
    assert issue["code"] == issue_code
    if system is None:
        assert "details" not in issue or issue["details"]["coding"][0]["system"] != PLATFORM
    else:
        coding = issue["details"]["coding"][0]
        assert (coding["system"], coding["code"]) == (system, code), coding
        assert coding["display"]
    if system == PLATFORM:  # the API platform's own shape: version 1, diagnostics, no meta
        assert coding["version"] == "1" and issue["diagnostics"] and "meta" not in answer.get_json()
    elif content_type == "application/fhir+json":
        assert answer.get_json()["meta"]["lastUpdated"]


def test_the_platform_timeouts_say_how_to_retry(client, tokens):
    timeout = _send(client, tokens, "order", "eps-gateway-timeout")
    assert "identical payload" in _issue(timeout.get_json())["diagnostics"]
    unavailable = _send(client, tokens, "claim", "eps-service-unavailable")
    assert unavailable.headers["Retry-After"] == "5"
    assert "same 'X-Request-ID'" in _issue(unavailable.get_json())["diagnostics"]


def test_the_exact_live_texts(client, tokens):
    disabled = _issue(_send(client, tokens, "prepare", "eps-prescribing-disabled").get_json())
    assert disabled["diagnostics"] == "Prescribing functionality is disabled."
    spine = _issue(_send(client, tokens, "cancel", "eps-cancellation-disabled").get_json())
    assert spine["details"]["coding"][0]["display"] == "Cancellation functionality disabled in SPINE"
    dead = _issue(_send(client, tokens, "order", "eps-patient-deceased").get_json())
    assert dead["details"]["coding"][0]["display"] == "Patient is recorded as dead"
    unauthorised = _issue(_send(client, tokens, "release", "eps-access-token-invalid").get_json())
    assert (unauthorised["details"]["coding"][0]["display"], unauthorised["diagnostics"]) == (
        "Access Denied - Unauthorised", "Invalid access token")


def test_the_request_id_is_mirrored_on_a_fault(client, tokens):
    method, path, body, user = _request("order")
    request_id = str(uuid.uuid4())
    answer = client.open(path, method=method, json=body, headers=eps_headers(
        tokens.worker(user), user, **{"X-Request-ID": request_id, SCENARIO: "eps-gateway-timeout"}))
    assert answer.status_code == 504 and answer.headers["X-Request-ID"] == request_id


def test_the_same_request_without_the_header_is_answered_normally(client, tokens):
    forced = _send(client, tokens, "prepare", "eps-rate-limited")
    assert forced.status_code == 429
    again = _send(client, tokens, "prepare")
    assert again.status_code == 200, again.get_data(as_text=True)
    assert {p["name"] for p in again.get_json()["parameter"]} >= {"digest", "timestamp", "algorithm"}
    assert again.headers.get(SCENARIO) == "eps-prepare"  # the workflow step, not the fault


def test_the_specifications_patient_deceased_example_is_refused_as_live(client, tokens):
    """examples/spec/errors/example-b-spine-error-patient-deceased has no response file: live answers Spine's
    prescribe error 0001 as 400 business-rule PATIENT_DECEASED, without any header."""
    body = example_json("spec", *DECEASED)
    answer = client.post(f"{PRESCRIBING}/$process-message", json=body,
                         headers=eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER))
    assert answer.status_code == 400, answer.get_data(as_text=True)
    coding = _issue(answer.get_json())["details"]["coding"][0]
    assert (coding["system"], coding["code"]) == (EPS, "PATIENT_DECEASED")
    assert answer.headers[SCENARIO] == "eps-patient-deceased"


def test_a_fault_on_an_operation_it_does_not_cover_is_refused_naming_the_choices(client, tokens):
    answer = _send(client, tokens, "tracker", "eps-cancellation-disabled")
    assert answer.status_code == 400
    text = answer.get_data(as_text=True)
    assert "eps-cancellation-disabled" in text and "eps-rate-limited" in text


def test_workflow_steps_tag_without_changing_the_answer(client, tokens):
    plain = _send(client, tokens, "prepare", session="eps-tag-a")
    assert plain.status_code == 200 and plain.headers.get(SCENARIO) == "eps-prepare"
    tracked = _send(client, tokens, "tracker", session="eps-tag-a")
    assert tracked.headers.get(SCENARIO) == "eps-track"
    by_id = _send(client, tokens, "release", session="eps-tag-b")
    assert by_id.headers.get(SCENARIO) == "eps-release-by-id"


def test_every_fault_is_tied_to_a_manual_requirement_of_the_catalogue(sandbox):
    faults = [s for s in sandbox.scenarios.for_service("eps") if "fault" in s.tags]
    assert {s.id for s in faults} == set(FAULTS)
    for scenario in faults:
        assert scenario.requirements, scenario.id
        for requirement in scenario.requirements:
            assert sandbox.requirements[requirement].verified == "manual", requirement
        assert scenario.id in scenario.description or scenario.trigger.body, scenario.id


OPERATION_IDS = {"prepare": "prepare-prescription", "order": "send-prescription-order-message",
                 "cancel": "send-prescription-order-update-message", "release": "release",
                 "claim": "send-dispense-claim-message", "tracker": "tracker"}


@pytest.mark.parametrize("scenario", sorted(FAULTS))
def test_a_forced_fault_meets_the_specifications_schema_where_it_documents_one(client, tokens, scenario):
    """Where the specification documents a JSON answer for the operation and status, the fault's body meets it; the
    API platform's own answers (401, 403, 429, 503, 504) it does not document."""
    from tests.eps_spec import assert_valid, documented

    kind, status = FAULTS[scenario][:2]
    operation = OPERATION_IDS[kind]
    answer = _send(client, tokens, kind, scenario)
    assert answer.status_code == status
    if not documented(operation, status):
        assert status in (401, 403, 429, 500, 503, 504), (scenario, operation, status)
        pytest.skip(f"the specification documents no JSON {status} answer for {operation}")
    if scenario == "eps-no-more-prescriptions":
        # Live answers Spine's release code 0006 with an informational OperationOutcome at 200 (as the session's own
        # empty nominated release does), which the release schema (a Parameters) does not describe.
        assert answer.get_json()["issue"][0]["severity"] == "information"
        pytest.skip("live's NO_MORE_PRESCRIPTIONS answer is an OperationOutcome, not the documented Parameters")
    assert_valid(operation, status, answer.get_json())
