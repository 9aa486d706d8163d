"""EPS request checks over HTTP: the API platform's token, X-Request-ID and role headers (strict and lenient), the
access modes and roles (application, each synthetic worker, patient, AAL2), the body's reading and resourceType,
every verification error of the specification with its exact live text, the short-form id's check character, the
request profiles as findings, and $validate."""

from __future__ import annotations

import copy
import json
import uuid

import pytest

from sandbox.services.eps.checks import BODY_SCHEMAS, request_problems
from tests.eps_helpers import (
    ADMIN,
    DISPENSER,
    DISPENSING,
    EXCHANGE,
    LEGACY,
    NURSE,
    PRESCRIBER,
    PRESCRIBING,
    Tokens,
    eps_headers,
    example_json,
)
from tests.oauth_helpers import assertion, cc_form, post_token

MEDICAL = ("primary-care", "acute", "nominated-pharmacy", "medical-prescriber")
PREPARE = f"{PRESCRIBING}/$prepare"
PROCESS = f"{PRESCRIBING}/$process-message"
DISPENSE_PROCESS = f"{DISPENSING}/$process-message"
RELEASE = f"{DISPENSING}/Task/$release"
TASK = f"{DISPENSING}/Task"
CLAIM = f"{DISPENSING}/Claim"
VALIDATE = f"{LEGACY}/$validate"
PRESCRIBING_ONLY = "Prescribing functionality can only be accessed using the user-restricted access mode."
DISPENSING_ONLY = "Dispensing functionality can only be accessed using the user-restricted access mode."


def prepare_body() -> dict:
    return example_json(*MEDICAL, "1-Prepare-Request-200_OK.json")


def order_body() -> dict:
    return example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json")


def cancel_body() -> dict:
    return example_json(*MEDICAL, "cancellations", "1-Process-Request-Cancel-200_OK.json")


def release_body() -> dict:
    return example_json("spec", "dispensing", "release", "acute-primary-example-req.json")


def nominated_release_body() -> dict:
    return example_json("spec", "dispense", "Nominated-Pharmacy-Request-Release-200_OK.json")


def dispense_body() -> dict:
    return example_json("spec", "dispensing", "dispense-notification", "acute-primary-example-01-req.json")


def claim_body() -> dict:
    return example_json("spec", "dispensing", "claim", "acute-primary-example-req.json")


def return_body() -> dict:
    return example_json("spec", "dispensing", "return", "acute-primary-example-req.json")


def withdraw_body() -> dict:
    return example_json("spec", "dispensing", "withdraw", "acute-primary-example-req.json")


@pytest.fixture
def tokens(client) -> Tokens:
    return Tokens(client)


@pytest.fixture
def strict(sandbox):
    sandbox.settings = sandbox.settings.replace(auth="strict")
    return sandbox


def findings(client, response) -> dict[str, list[dict]]:
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    found: dict[str, list[dict]] = {}
    for finding in exchange["findings"]:
        found.setdefault(finding["requirement"], []).append(finding)
    return found


def outcomes(client, response, requirement: str) -> list[str]:
    return [f["outcome"] for f in findings(client, response).get(requirement, [])]


def only_issue(response) -> dict:
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    assert len(body["issue"]) == 1
    return body["issue"][0]


def entries_of(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


# ================= access modes and roles =================

@pytest.mark.parametrize("path, body, sentence", [
    (PREPARE, prepare_body, PRESCRIBING_ONLY), (PROCESS, order_body, PRESCRIBING_ONLY),
    (PROCESS, cancel_body, PRESCRIBING_ONLY), (RELEASE, release_body, DISPENSING_ONLY),
    (DISPENSE_PROCESS, dispense_body, DISPENSING_ONLY), (CLAIM, claim_body, DISPENSING_ONLY),
    (TASK, return_body, DISPENSING_ONLY), (TASK, withdraw_body, DISPENSING_ONLY),
])
def test_an_application_token_is_refused_with_the_live_sentence(client, tokens, path, body, sentence):
    response = client.post(path, json=body(), headers=eps_headers(tokens.application()))
    assert response.status_code == 403
    assert only_issue(response) == {"severity": "error", "code": "forbidden", "diagnostics": sentence}
    assert outcomes(client, response, "EPS-AUTH-002") == ["fail"]


def test_an_application_token_may_release_nominated_prescriptions_and_track(client, tokens):
    token = tokens.application()
    released = client.post(RELEASE, json=nominated_release_body(), headers=eps_headers(token))
    assert released.status_code != 403
    assert outcomes(client, released, "EPS-AUTH-002") == ["pass"]
    tracked = client.get(f"{DISPENSING}/Task?focus:identifier=24F5DA-A83008-7EFE6Z", headers=eps_headers(token))
    assert tracked.status_code != 403 and outcomes(client, tracked, "EPS-AUTH-002") == ["pass"]


@pytest.mark.parametrize("user, path, body, allowed", [
    (PRESCRIBER, PREPARE, prepare_body, True), (NURSE, PREPARE, prepare_body, True),
    (DISPENSER, PREPARE, prepare_body, True), (ADMIN, PREPARE, prepare_body, False),
    (ADMIN, PROCESS, cancel_body, False),
    (DISPENSER, RELEASE, release_body, True), (ADMIN, RELEASE, release_body, True),
    (PRESCRIBER, RELEASE, release_body, False), (NURSE, CLAIM, claim_body, False),
    (PRESCRIBER, TASK, return_body, False),
])
def test_the_role_must_permit_the_function(client, tokens, user, path, body, allowed):
    response = client.post(path, json=body(), headers=eps_headers(tokens.worker(user), user))
    if allowed:
        assert response.status_code != 403
        assert outcomes(client, response, "EPS-AUTH-003") == ["pass"]
        return
    feature, needed = ("prescribing", "R8000, R8001, R8003") if path in (PREPARE, PROCESS) else \
        ("dispensing", "R8003, R8008")
    assert response.status_code == 403
    assert only_issue(response) == {
        "severity": "error", "code": "forbidden",
        "details": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode",
                                "code": "ACCESS_DENIED", "display": "Access has been denied to process this request"}]},
        "diagnostics": f"The user's role {user.role_id} ({user.role_code}) does not permit {feature}: it needs one of "
                       f"the national RBAC roles {needed}."}
    assert outcomes(client, response, "EPS-AUTH-003") == ["fail"]


def test_the_session_role_header_chooses_another_role_of_the_same_user(client, tokens):
    # Sam Okafor logs in as Admin/Clinical Support (R8008) but acts as Health Professional (R8003, 555021941104).
    token = tokens.worker(ADMIN)
    response = client.post(PREPARE, json=prepare_body(),
                           headers=eps_headers(token, NHSD_Session_URID="555021941104"))
    assert response.status_code != 403
    found = findings(client, response)
    assert [f["outcome"] for f in found["EPS-HDR-005"]] == ["pass"]
    assert "555021941104 (R8003) may use prescribing" in found["EPS-AUTH-003"][0]["message"]


@pytest.mark.parametrize("value", ["555021938105", "12ab"])
def test_a_session_role_the_user_does_not_hold_is_refused(client, tokens, value):
    response = client.post(PREPARE, json=prepare_body(),
                           headers=eps_headers(tokens.worker(PRESCRIBER), NHSD_Session_URID=value))
    assert response.status_code == 400
    issue = only_issue(response)
    assert issue["code"] == "value" and issue["details"]["coding"][0]["code"] == "INVALID_VALUE"
    assert issue["diagnostics"] == f"Invalid value - '{value}' in header 'NHSD-Session-URID'"
    assert "fail" in outcomes(client, response, "EPS-HDR-005" if value.isdigit() else "EPS-HDR-004")


def test_without_a_session_role_the_login_role_is_used(client, tokens):
    headers = eps_headers(tokens.worker(PRESCRIBER))
    response = client.post(PREPARE, json=prepare_body(), headers=headers)
    assert response.status_code != 403
    assert outcomes(client, response, "EPS-HDR-004") == ["info"]
    assert outcomes(client, response, "EPS-AUTH-003") == ["pass"]


def test_a_patient_token_is_refused(client, tokens, sandbox):
    number = next(p for p in sandbox.population if p.kind == "standard").nhs_number
    issued = client.post("/_sandbox/oauth/nhs-login/id-token", json={"nhs_number": number}).get_json()["id_token"]
    form = cc_form(assertion(Tokens._key, tokens.app_key), subject_token=issued, **EXCHANGE)
    token = post_token(client, form).get_json()["access_token"]
    response = client.post(PREPARE, json=prepare_body(), headers=eps_headers(token))
    assert response.status_code == 403
    assert only_issue(response)["diagnostics"] == ("Your app does not have permission to access prescribing "
                                                   "functionality.")
    assert outcomes(client, response, "EPS-AUTH-004") == ["fail"]


def test_a_worker_below_aal3_is_refused(client, tokens):
    response = client.post(RELEASE, json=release_body(),
                           headers=eps_headers(tokens.worker(DISPENSER, aal="AAL2"), DISPENSER))
    assert response.status_code == 403
    assert only_issue(response)["diagnostics"] == ("Your app does not have permission to access dispensing "
                                                   "functionality.")
    assert outcomes(client, response, "EPS-AUTH-005") == ["fail"]


@pytest.mark.parametrize("plan, mode", [("pds-healthcare-worker", "healthcare-worker"),
                                        ("pds-application-restricted", "application")])
def test_a_session_token_is_not_judged_by_mode_or_role(client, plan, mode):
    made = client.post("/_sandbox/sessions", json={"plan": plan, "supplier": "Acme", "system": "Rx 1"})
    assert made.status_code == 201, made.get_data(as_text=True)
    response = client.post(PREPARE, json=prepare_body(), headers=eps_headers(made.get_json()["token"]))
    assert response.status_code != 403
    assert outcomes(client, response, "EPS-AUTH-002") == ["info"]
    assert "EPS-AUTH-003" not in findings(client, response)


# ================= the API platform's headers: strict and lenient =================

def test_strict_refuses_a_missing_token_with_401(client, strict):
    response = client.post(PREPARE, json=prepare_body(), headers=eps_headers(None))
    assert response.status_code == 401
    issue = only_issue(response)
    assert issue["code"] == "forbidden" and issue["details"]["coding"][0]["code"] == "ACCESS_DENIED"


def test_lenient_records_a_missing_token_and_answers(client):
    response = client.post(PREPARE, json=prepare_body(), headers=eps_headers(None))
    assert response.status_code not in (401, 403)
    assert outcomes(client, response, "EPS-AUTH-001") == ["fail"]


def test_strict_refuses_a_missing_request_id(client, tokens, strict):
    headers = eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER)
    del headers["X-Request-ID"]
    response = client.post(PREPARE, json=prepare_body(), headers=headers)
    assert response.status_code == 400
    assert only_issue(response) == {"severity": "error", "code": "value", "details": {"coding": [{
        "system": "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode", "code": "MISSING_FIELD",
        "display": "X-Request-ID header missing or malformed"}]}}
    assert findings(client, response)["EPS-HDR-001"][0]["location"] == "header:X-Request-ID"


def test_strict_refuses_a_request_id_that_is_not_a_uuid(client, tokens, strict):
    headers = eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER, **{"X-Request-ID": "req-1"})
    response = client.post(PREPARE, json=prepare_body(), headers=headers)
    assert response.status_code == 400
    issue = only_issue(response)
    assert issue["details"]["coding"][0]["code"] == "INVALID_VALUE"
    assert issue["diagnostics"] == "Invalid value - 'req-1' in header 'X-Request-ID'"


def test_lenient_records_request_id_problems_without_refusing(client, tokens):
    headers = eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER)
    del headers["X-Request-ID"]
    missing = client.post(PREPARE, json=prepare_body(), headers=headers)
    assert missing.status_code != 400 or "X-Request-ID" not in missing.get_data(as_text=True)
    assert outcomes(client, missing, "EPS-HDR-001") == ["fail"]
    upper = client.post(PREPARE, json=prepare_body(), headers=eps_headers(
        tokens.worker(PRESCRIBER), PRESCRIBER, **{"X-Request-ID": str(uuid.uuid1()).upper()}))
    assert outcomes(client, upper, "EPS-HDR-003") == ["warning"]


def test_a_correlation_id_with_a_dot_is_a_warning_and_is_mirrored(client, tokens):
    response = client.post(PREPARE, json=prepare_body(), headers=eps_headers(
        tokens.worker(PRESCRIBER), PRESCRIBER, **{"X-Correlation-ID": "abc.def"}))
    assert outcomes(client, response, "EPS-HDR-006") == ["warning"]
    assert response.headers["X-Correlation-ID"] == "abc.def"


# ================= reading the body =================

def test_a_body_that_is_not_json_is_refused(client, tokens):
    response = client.post(PREPARE, data=b"{not json", headers=eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER))
    assert response.status_code == 400
    assert only_issue(response) == {"severity": "error", "code": "invalid",
                                    "diagnostics": "Invalid request payload JSON format"}


def test_a_body_that_is_not_json_by_type_is_refused_with_415(client, tokens):
    response = client.post(PREPARE, data=json.dumps(prepare_body()), headers=eps_headers(
        tokens.worker(PRESCRIBER), PRESCRIBER, **{"Content-Type": "text/plain"}))
    assert response.status_code == 415
    assert outcomes(client, response, "EPS-HDR-007") == ["fail"]


@pytest.mark.parametrize("path, user, body, expected", [
    (PREPARE, PRESCRIBER, release_body, "Bundle"), (PROCESS, PRESCRIBER, claim_body, "Bundle"),
    (RELEASE, DISPENSER, prepare_body, "Parameters"), (CLAIM, DISPENSER, return_body, "Claim"),
    (TASK, DISPENSER, claim_body, "Task"), (PREPARE, PRESCRIBER, dict, "Bundle"),
])
def test_a_body_of_the_wrong_resource_type_is_refused(client, tokens, path, user, body, expected):
    response = client.post(path, json=body(), headers=eps_headers(tokens.worker(user), user))
    assert response.status_code == 400
    assert only_issue(response) == {"severity": "error", "code": "value",
                                    "diagnostics": f"Incorrect FHIR resource type. Expected {expected}."}


# ================= the specification's verification errors =================

def _set_intent(bundle):
    entries_of(bundle, "MedicationRequest")[0]["intent"] = "plan"


def _two_performers(bundle):
    entries_of(bundle, "MedicationRequest")[1]["dispenseRequest"]["performer"] = {
        "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "FX999"}}


def _duplicate_item(bundle):
    first, second = entries_of(bundle, "MedicationRequest")[:2]
    second["identifier"] = copy.deepcopy(first["identifier"])


def _gmp_number(bundle):
    entries_of(bundle, "Practitioner")[0]["identifier"].append(
        {"system": "https://fhir.hl7.org.uk/Id/gmp-number", "value": "G1234567"})


def _both_medications(bundle):
    entries_of(bundle, "MedicationRequest")[0]["medicationReference"] = {"reference": "urn:uuid:medication"}


def _practitioner_not_reference(bundle):
    entries_of(bundle, "PractitionerRole")[0]["practitioner"] = {
        "identifier": {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "555021935107"}}


def _healthcare_service(bundle):
    entries_of(bundle, "PractitionerRole")[0]["healthcareService"] = [{"reference": "urn:uuid:service"}]


def _no_part_of(bundle):
    for organization in entries_of(bundle, "Organization"):
        organization.pop("partOf", None)


def _second_cancel_item(bundle):
    bundle["entry"].append(copy.deepcopy(next(e for e in bundle["entry"]
                                              if e["resource"]["resourceType"] == "MedicationRequest")))


def _no_status_reason(bundle):
    entries_of(bundle, "MedicationRequest")[0].pop("statusReason")


def _no_owner(parameters):
    parameters["parameter"] = [p for p in parameters["parameter"] if p["name"] != "owner"]


def _agent_reference(parameters):
    agent = next(p for p in parameters["parameter"] if p["name"] == "agent")
    agent["resource"]["practitioner"] = {"reference": "Practitioner/1"}


def _no_reimbursement_authority(bundle):
    entries_of(bundle, "Organization")[0].pop("extension")


def _no_reimbursement_ods(bundle):
    entries_of(bundle, "Organization")[0]["extension"][0]["extension"] = []


def _task_status(task):
    task["status"] = "completed"


def _withdraw_without_code(task):
    task.pop("code")


def _return_reason_system(task):
    task["statusReason"]["coding"][0]["system"] = "http://snomed.info/sct"


def _not_active(bundle):
    entries_of(bundle, "MedicationRequest")[0]["status"] = "on-hold"


def _no_dosage(bundle):
    entries_of(bundle, "MedicationRequest")[0]["dosageInstruction"] = []


def _unnumbered_dosages(bundle):
    request = entries_of(bundle, "MedicationRequest")[0]
    request["dosageInstruction"] = [{"text": "one a day"}, {"text": "two at night"}]


def _handed_over_twice(bundle):
    entries_of(bundle, "MedicationDispense")[1]["whenHandedOver"] = "2001-01-01T00:00:00+00:00"


def _claim_practitioner_reference(claim):
    role = next(c for c in claim["contained"] if f"#{c.get('id')}" == claim["provider"]["reference"])
    role["practitioner"] = {"reference": "Practitioner/1"}


def _unknown_event(bundle):
    entries_of(bundle, "MessageHeader")[0]["eventCoding"]["code"] = "prescription-order-response"


VERIFICATION_ERRORS = [
    ("EPS-VER-001", PREPARE, PRESCRIBER, prepare_body, _unknown_event, "value", "MessageHeader.eventCoding.code must be "
     "one of: prescription-order, prescription-order-update, dispense-notification."),
    ("EPS-VER-002", PREPARE, PRESCRIBER, prepare_body, _set_intent, "value",
     "MedicationRequest.intent must be order, original-order or instance-order."),
    ("EPS-VER-003", PREPARE, PRESCRIBER, prepare_body, _two_performers, "value",
     "Expected all MedicationRequests to have the same value for dispenseRequest.performer. Received "
     '[{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"FA565"}},'
     '{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"FX999"}}].'),
    ("EPS-VER-004", PREPARE, PRESCRIBER, prepare_body, _duplicate_item, "value",
     "Expected all MedicationRequests to have a different value for identifier."),
    ("EPS-VER-005", PREPARE, PRESCRIBER, prepare_body, _gmp_number, "value", "Bundle resource "
     "Practitioner.identifier expected exactly one professional code from GMC|NMC|GPhC|HCPC|professional-code."),
    ("EPS-VER-008", PREPARE, PRESCRIBER, prepare_body, _both_medications, "structure",
     "MedicationRequest cannot contain both medicationReference and medicationCodeableConcept fields."),
    ("EPS-VER-009", PREPARE, PRESCRIBER, prepare_body, _practitioner_not_reference, "invalid",
     "practitionerRole.practitioner populated incorrectly. Please populate with Reference to resource within Bundle."),
    ("EPS-VER-010", PREPARE, PRESCRIBER, prepare_body, _healthcare_service, "invalid",
     "Unexpected field of practitionerRole.healthcareService."),
    ("EPS-VER-011", PREPARE, PRESCRIBER, prepare_body, _no_part_of, "invalid",
     "Required field organization.partOf is missing."),
    ("EPS-VER-017", PREPARE, PRESCRIBER, prepare_body, _not_active, "value", "MedicationRequest.status must be active."),
    ("EPS-VER-019", PREPARE, PRESCRIBER, prepare_body, _no_dosage, "invalid",
     "Required field dosageInstructions is missing."),
    ("EPS-VER-021", DISPENSE_PROCESS, DISPENSER, dispense_body, _handed_over_twice, "value",
     "Expected all MedicationDispenses to have the same value for whenHandedOver. Received "
     '["2022-11-27T11:45:00+00:00","2001-01-01T00:00:00+00:00"].'),
    ("EPS-VER-013", CLAIM, DISPENSER, claim_body, _claim_practitioner_reference, "invalid", 'Parameters.parameter('
     '"agent").resource.practitioner populated incorrectly. Please populate with Identifier and Display.'),
    ("EPS-VER-006", PROCESS, PRESCRIBER, cancel_body, _second_cancel_item, "value", "The Bundle must contain exactly "
     "one MedicationRequest if MessageHeader.eventCoding.code is 'prescription-order-update'."),
    ("EPS-VER-007", PROCESS, PRESCRIBER, cancel_body, _no_status_reason, "value",
     "Expected MedicationRequest to have a value for statusReason."),
    ("EPS-VER-012", RELEASE, DISPENSER, release_body, _no_owner, "invalid", "Required parameter owner is missing."),
    ("EPS-VER-013", RELEASE, DISPENSER, release_body, _agent_reference, "invalid", 'Parameters.parameter("agent")'
     ".resource.practitioner populated incorrectly. Please populate with Identifier and Display."),
    ("EPS-VER-015", DISPENSE_PROCESS, DISPENSER, dispense_body, _no_reimbursement_authority, "invalid",
     "The dispense notification is missing the reimbursement authority and it should be provided."),
    ("EPS-VER-016", DISPENSE_PROCESS, DISPENSER, dispense_body, _no_reimbursement_ods, "invalid",
     "The dispense notification is missing the ODS code for reimbursement authority and it should be provided."),
    ("EPS-VER-020", TASK, DISPENSER, return_body, _task_status, "value",
     "Task.status must be one of: 'in-progress', 'rejected'."),
    ("EPS-VER-020", TASK, DISPENSER, withdraw_body, _withdraw_without_code, "value",
     "Task.code is required when Task.status is 'in-progress'."),
    ("EPS-VER-020", TASK, DISPENSER, return_body, _return_reason_system, "value", "Task.reasonCode must have a system "
     "of 'https://fhir.nhs.uk/CodeSystem/EPS-task-dispense-return-status-reason' and a value from that system."),
]


@pytest.mark.parametrize("requirement, path, user, body, change, code, diagnostics", VERIFICATION_ERRORS,
                         ids=[f"{case[0]}-{case[4].__name__}" for case in VERIFICATION_ERRORS])
def test_each_verification_error_is_answered_as_live(client, tokens, requirement, path, user, body, change, code,
                                                      diagnostics):
    message = body()
    change(message)
    response = client.post(path, json=message, headers=eps_headers(tokens.worker(user), user))
    assert response.status_code == 400, response.get_data(as_text=True)
    issue = only_issue(response)
    assert issue["code"] == code and issue["diagnostics"] == diagnostics
    assert "fail" in outcomes(client, response, requirement)


def test_several_unnumbered_dosage_lines_are_refused_with_missing_value(client, tokens):
    message = prepare_body()
    _unnumbered_dosages(message)
    response = client.post(PREPARE, json=message, headers=eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER))
    assert response.status_code == 400
    assert only_issue(response)["details"]["coding"][0]["display"] == (
        "The request contains multiple dosage instruction lines but no corresponding dosage sequence number.")


def test_a_medication_in_both_forms_carries_the_conflicting_values_code(client, tokens):
    message = prepare_body()
    _both_medications(message)
    response = client.post(PREPARE, json=message, headers=eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER))
    assert only_issue(response)["details"]["coding"][0]["code"] == "CONFLICTING_VALUES"


def test_the_published_claim_without_endorsement_is_refused(client, tokens):
    claim = example_json(*MEDICAL, "2-Claim-Request-400_Missing_Endorsement_Code.json")
    response = client.post(CLAIM, json=claim, headers=eps_headers(tokens.worker(DISPENSER), DISPENSER))
    assert response.status_code == 400
    assert only_issue(response) == {"severity": "error", "code": "invalid",
                                    "diagnostics": "The claim is missing the required endorsement code."}


def test_a_message_header_event_eps_does_not_take_is_refused_on_process_message(client, tokens):
    message = order_body()
    _unknown_event(message)
    response = client.post(PROCESS, json=message, headers=eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER))
    assert response.status_code == 400
    assert outcomes(client, response, "EPS-VER-001") == ["fail"]


# ================= the short-form prescription id =================

def test_a_wrong_check_character_is_refused_naming_the_expected_one(client, tokens):
    message = order_body()
    for request in entries_of(message, "MedicationRequest"):
        request["groupIdentifier"]["value"] = "24F5DA-A83008-7EFE6Y"
    response = client.post(PROCESS, json=message, headers=eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER))
    assert response.status_code == 400
    issue = only_issue(response)
    assert issue["code"] == "processing"
    assert issue["details"]["coding"][0] == {"system": "https://fhir.nhs.uk/CodeSystem/EPS-IssueCode",
                                             "code": "FAILURE_TO_PROCESS_MESSAGE",
                                             "display": "Failure to process message"}
    assert issue["diagnostics"].startswith("Invalid prescription checksum. ")
    assert "it must be 'Z'" in issue["diagnostics"]
    assert outcomes(client, response, "EPS-BODY-004") == ["fail"]


def test_prepare_only_warns_about_a_wrong_check_character(client, tokens):
    message = prepare_body()
    for request in entries_of(message, "MedicationRequest"):
        request["groupIdentifier"]["value"] = "24F5DA-A83008-7EFE6Y"
    response = client.post(PREPARE, json=message, headers=eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER))
    assert response.status_code != 400 or "checksum" not in response.get_data(as_text=True)
    assert outcomes(client, response, "EPS-BODY-004") == ["warning"]


# ================= request profiles (findings) =================

def test_a_release_without_status_breaks_its_profile_as_a_finding(client, tokens):
    message = release_body()
    message["parameter"] = [p for p in message["parameter"] if p["name"] != "status"]
    response = client.post(RELEASE, json=message, headers=eps_headers(tokens.worker(DISPENSER), DISPENSER))
    found = findings(client, response)["EPS-BODY-014"]
    assert [f["outcome"] for f in found] == ["fail"] and found[0]["location"] == "/parameter"


@pytest.mark.parametrize("operation, body", [
    ("prepare-prescription", prepare_body), ("send-prescription-order-message", order_body),
    ("send-prescription-order-update-message", cancel_body), ("release", release_body),
    ("send-dispense-notification-message", dispense_body), ("send-dispense-claim-message", claim_body),
    ("return", return_body), ("withdraw", withdraw_body),
])
def test_the_specification_examples_follow_their_profiles(operation, body):
    assert operation in BODY_SCHEMAS
    assert request_problems(operation, body()) == []


# ================= $validate =================

def test_validate_answers_a_valid_message_with_information(client, tokens):
    response = client.post(VALIDATE, json=prepare_body(), headers=eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER))
    assert response.status_code == 200
    assert response.get_json()["issue"][0] == {"severity": "information", "code": "informational"}


def test_validate_lists_what_is_wrong(client, tokens):
    message = prepare_body()
    _set_intent(message)
    _gmp_number(message)
    response = client.post(VALIDATE, json=message, headers=eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER))
    assert response.status_code == 400
    diagnostics = [issue.get("diagnostics") for issue in response.get_json()["issue"]]
    assert "MedicationRequest.intent must be order, original-order or instance-order." in diagnostics
    assert any(d and d.startswith("Bundle resource Practitioner.identifier") for d in diagnostics)


def test_validate_says_a_body_is_not_json(client, tokens):
    response = client.post(VALIDATE, data=b"[", headers=eps_headers(tokens.worker(PRESCRIBER), PRESCRIBER))
    assert response.status_code == 400
    assert "Invalid request payload JSON format" in response.get_data(as_text=True)
