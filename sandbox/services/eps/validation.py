"""The specification's verification errors (its 'Verification errors' table, with the exact texts live EPS sends:
coordinator/src/models/errors/validation-errors.ts) as pure functions over a parsed body, and `$validate`, which
answers every problem the front-door checks find as one OperationOutcome.

Live EPS collects every verification error of a message and answers them together (400); the sandbox's checks
answer the first (the pipeline refuses with one error) and record every one as a finding."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sandbox.conformance.findings import Outcome, SpineError
from sandbox.services.eps.context import (
    CANCEL,
    CLAIM,
    DISPENSE,
    EVENTS,
    ITEM_ID_SYSTEM,
    ORDER,
    PREPARE,
    PROCESS_UNKNOWN,
    RELEASE,
    RETURN,
    TASK_STATUSES,
    TASK_UNKNOWN,
    WITHDRAW,
    Answer,
    EpsCall,
)
from sandbox.services.eps.errors import eps_error, issue, outcome
from sandbox.services.eps.resources import (
    as_dict,
    entries,
    event_code,
    identifier_value,
    message_operation,
    parameter,
    task_operation,
)
from sandbox.web.pipeline import ExchangeContext

# ---- requirement ids (requirements/checks.yaml)
REQ_EVENT, REQ_INTENT, REQ_CONSISTENT, REQ_DUPLICATE_ID, REQ_PROFESSIONAL_CODE = (
    "EPS-VER-001", "EPS-VER-002", "EPS-VER-003", "EPS-VER-004", "EPS-VER-005")
REQ_CANCEL_ONE, REQ_STATUS_REASON, REQ_MEDICATION_FIELDS, REQ_REFERENCES, REQ_HEALTHCARE_SERVICE = (
    "EPS-VER-006", "EPS-VER-007", "EPS-VER-008", "EPS-VER-009", "EPS-VER-010")
REQ_PART_OF, REQ_OWNER, REQ_AGENT, REQ_ENDORSEMENT, REQ_REIMBURSEMENT, REQ_REIMBURSEMENT_ODS = (
    "EPS-VER-011", "EPS-VER-012", "EPS-VER-013", "EPS-VER-014", "EPS-VER-015", "EPS-VER-016")
REQ_MR_STATUS, REQ_REPEAT, REQ_DOSAGE, REQ_TASK, REQ_DISPENSE_CONSISTENT = (
    "EPS-VER-017", "EPS-VER-018", "EPS-VER-019", "EPS-VER-020", "EPS-VER-021")
REQUIREMENTS = (REQ_EVENT, REQ_INTENT, REQ_CONSISTENT, REQ_DUPLICATE_ID, REQ_PROFESSIONAL_CODE, REQ_CANCEL_ONE,
                REQ_STATUS_REASON, REQ_MEDICATION_FIELDS, REQ_REFERENCES, REQ_HEALTHCARE_SERVICE, REQ_PART_OF,
                REQ_OWNER, REQ_AGENT, REQ_ENDORSEMENT, REQ_REIMBURSEMENT, REQ_REIMBURSEMENT_ODS, REQ_MR_STATUS,
                REQ_REPEAT, REQ_DOSAGE, REQ_TASK, REQ_DISPENSE_CONSISTENT)

# Operations whose body is a message Bundle, and what each takes as its resourceType.
BUNDLE_OPERATIONS = (PREPARE, ORDER, CANCEL, DISPENSE, PROCESS_UNKNOWN)
TASK_OPERATIONS = (RETURN, WITHDRAW, TASK_UNKNOWN)
EXPECTED_TYPE = {**{op: "Bundle" for op in BUNDLE_OPERATIONS}, RELEASE: "Parameters", CLAIM: "Claim",
                 **{op: "Task" for op in TASK_OPERATIONS}}
ACCEPTED_EVENTS = tuple(EVENTS)
SUPPORTED_INTENTS = ("order", "original-order", "instance-order")

SDS_EXT = "https://fhir.nhs.uk/StructureDefinition/"
RESPONSIBLE_PRACTITIONER = SDS_EXT + "Extension-DM-ResponsiblePractitioner"
PRESCRIPTION_TYPE = SDS_EXT + "Extension-DM-PrescriptionType"
PERFORMER_SITE_TYPE = SDS_EXT + "Extension-DM-PerformerSiteType"
ORGANISATION_RELATIONSHIPS = SDS_EXT + "Extension-ODS-OrganisationRelationships"
EPS_REPEAT_INFORMATION = SDS_EXT + "Extension-EPS-RepeatInformation"
UK_REPEAT_INFORMATION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
GMP_NUMBER = "https://fhir.hl7.org.uk/Id/gmp-number"
REPEAT_DISPENSING = "continuous-repeat-dispensing"
ENDORSEMENT_SYSTEM = "https://fhir.nhs.uk/CodeSystem/medicationdispense-endorsement"
TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
WITHDRAW_REASONS = "https://fhir.nhs.uk/CodeSystem/EPS-task-dispense-withdraw-reason"
RETURN_REASONS = "https://fhir.nhs.uk/CodeSystem/EPS-task-dispense-return-status-reason"
# The MedicationRequest fields that must be the same on every item of one prescription (live's list).
CONSISTENT_PATHS = (
    "groupIdentifier", "category", "authoredOn", "subject", "requester", "dispenseRequest.performer",
    "dispenseRequest.validityPeriod", "dispenseRequest.expectedSupplyDuration",
    f'dispenseRequest.extension("{PERFORMER_SITE_TYPE}")', f'extension("{PRESCRIPTION_TYPE}")',
    f'extension("{RESPONSIBLE_PRACTITIONER}")')
DISPENSE_CONSISTENT_PATHS = ("whenHandedOver", "subject.identifier.value", f'extension("{EPS_REPEAT_INFORMATION}")')
CONFLICTING = ("CONFLICTING_VALUES", "Conflicting values have been specified in different fields")
MISSING_ENDORSEMENT = "The claim is missing the required endorsement code."


@dataclass(frozen=True)
class Problem:
    """One verification error: the requirement it breaks and the issue live EPS answers with."""

    requirement: str
    status: int
    issue_code: str
    diagnostics: str
    code: str = ""
    display: str = ""
    location: str = "body"

    def error(self) -> SpineError:
        return eps_error(self.status, self.issue_code, self.code, self.display, self.diagnostics)


def _value(requirement: str, diagnostics: str, location: str = "body") -> Problem:
    return Problem(requirement, 400, "value", diagnostics, location=location)


def _invalid(requirement: str, diagnostics: str, location: str = "body") -> Problem:
    return Problem(requirement, 400, "invalid", diagnostics, location=location)


def resource_type_problem(operation: str, body: Any) -> Problem | None:
    """'Incorrect FHIR resource type. Expected Bundle.' (and Parameters, Task, Claim): the first thing live checks."""
    expected = EXPECTED_TYPE.get(operation)
    if expected is None:
        return None
    found = body.get("resourceType") if isinstance(body, dict) else None
    if found == expected:
        return None
    return Problem("EPS-BODY-003", 400, "value", f"Incorrect FHIR resource type. Expected {expected}.",
                   location="/resourceType")


def verification_problems(operation: str, body: Any) -> list[Problem]:
    """Every verification error of the specification's table in this body, for the operation it was sent to (the
    body has the expected resourceType; resource_type_problem says when not)."""
    if not isinstance(body, dict):
        return []
    rules = RULES.get(operation)
    return list(rules(body)) if rules else []


# ================= reading FHIR loosely (any field may be missing or of the wrong type) =================

def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _extensions(resource: Any, url: str) -> list[dict]:
    return [e for e in _list(as_dict(resource).get("extension")) if isinstance(e, dict) and e.get("url") == url]


def _extension(resource: Any, url: str) -> dict | None:
    return next(iter(_extensions(resource, url)), None)


def _codes(concept: Any) -> list:
    return [c.get("code") for c in _list(as_dict(concept).get("coding")) if isinstance(c, dict)]


def _reference(value: Any) -> str | None:
    target = value.get("reference") if isinstance(value, dict) else None
    return target if isinstance(target, str) else None


def _is_reference(value: Any) -> bool:
    return _reference(value) is not None


def _is_identifier_reference(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("identifier"), dict)


def _resolve(bundle: dict, reference: Any) -> dict | None:
    """The entry a reference names by its fullUrl (urn:uuid:…), or by resourceType/id."""
    target = _reference(reference)
    if target is None:
        return None
    for entry in _list(bundle.get("entry")):
        resource = as_dict(entry).get("resource")
        if not isinstance(resource, dict):
            continue
        if entry.get("fullUrl") == target or f"{resource.get('resourceType')}/{resource.get('id')}" == target:
            return resource
    return None


def _contained(resource: dict, reference: Any) -> dict | None:
    target = _reference(reference)
    if target is None or not target.startswith("#"):
        return None
    return next((c for c in _list(resource.get("contained"))
                 if isinstance(c, dict) and c.get("id") == target[1:]), None)


def path_values(resource: Any, path: str) -> list:
    """The values at a FHIRPath-like path ('a.b', 'extension("url")'), lists flattened, as live's applyFhirPath."""
    values = [resource]
    for step in _steps(path):
        found: list = []
        for value in values:
            if step.startswith("extension("):
                found += _extensions(value, step[len('extension("'):-2])
                continue
            child = as_dict(value).get(step)
            found += child if isinstance(child, list) else [] if child is None else [child]
        values = found
    return values


def _steps(path: str) -> list[str]:
    """'dispenseRequest.extension("https://a.b/c")' -> ['dispenseRequest', 'extension("https://a.b/c")']."""
    steps, current, quoted = [], "", False
    for char in path:
        if char == '"':
            quoted = not quoted
        if char == "." and not quoted:
            steps.append(current)
            current = ""
        else:
            current += char
    return [*steps, current]


def _unique(values: list) -> list:
    seen, unique = set(), []
    for value in values:
        key = json.dumps(value, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(value)
    return unique


def _compact(values: list) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


# ================= Bundle messages: what every one is checked for =================

def _common(bundle: dict) -> Iterator[Problem]:
    requests = entries(bundle, "MedicationRequest")
    if any(r.get("intent") not in SUPPORTED_INTENTS for r in requests):
        yield _value(REQ_INTENT, "MedicationRequest.intent must be order, original-order or instance-order.",
                     "Bundle.entry.resource.ofType(MedicationRequest).intent")
    yield from _medication_conflict(requests, "MedicationRequest")
    responsible = {as_dict(as_dict(_extension(r, RESPONSIBLE_PRACTITIONER)).get("valueReference")).get("reference")
                   for r in requests} - {None}
    for entry in _list(bundle.get("entry")):
        role = as_dict(entry).get("resource")
        if isinstance(role, dict) and role.get("resourceType") == "PractitionerRole":
            yield from _practitioner_role(role, entry.get("fullUrl") in responsible)


def _medication_conflict(resources: list[dict], kind: str) -> Iterator[Problem]:
    if any("medicationCodeableConcept" in r and "medicationReference" in r for r in resources):
        yield Problem(REQ_MEDICATION_FIELDS, 400, "structure", f"{kind} cannot contain both medicationReference and "
                      "medicationCodeableConcept fields.", *CONFLICTING, location=f"Bundle.entry.resource.ofType({kind})")


def _practitioner_role(role: dict, responsible_party: bool) -> Iterator[Problem]:
    practitioner = role.get("practitioner")
    if practitioner is not None:
        if not responsible_party and not _is_reference(practitioner):
            yield _not_reference("practitionerRole.practitioner")
        elif responsible_party and _is_reference(practitioner) == _is_identifier_reference(practitioner):
            yield _invalid(REQ_REFERENCES, "Responsible practitioner must be either a reference to a Practitioner "
                           "resource or an identifier reference.", "practitionerRole.practitioner")
    if not _is_reference(role.get("organization")):
        yield _not_reference("practitionerRole.organization")
    for index, service in enumerate(_list(role.get("healthcareService"))):
        if not _is_reference(service):
            yield _not_reference(f"practitionerRole.healthcareService[{index}]")


def _not_reference(path: str) -> Problem:
    return _invalid(REQ_REFERENCES, f"{path} populated incorrectly. Please populate with Reference to resource "
                    "within Bundle.", path)


def _not_identifier(path: str) -> Problem:
    return _invalid(REQ_AGENT, f"{path} populated incorrectly. Please populate with Identifier and Display.", path)


def _message(operation: str, bundle: dict) -> Iterator[Problem]:
    """$process-message and $prepare: the event names the message, then its own rules."""
    event = event_code(bundle)
    if event not in ACCEPTED_EVENTS:
        yield _value(REQ_EVENT, f"MessageHeader.eventCoding.code must be one of: {', '.join(ACCEPTED_EVENTS)}.",
                     "Bundle.entry.resource.ofType(MessageHeader).eventCoding.code")
        return
    if operation == PREPARE and event != "prescription-order":
        yield _value(REQ_EVENT, f"$prepare encodes a new prescription for signing: MessageHeader.eventCoding.code "
                     f"must be prescription-order, not {event}.",
                     "Bundle.entry.resource.ofType(MessageHeader).eventCoding.code")
        return
    yield from _common(bundle)
    kind = EVENTS[event]
    if kind == ORDER:
        yield from _prescription(bundle)
    elif kind == CANCEL:
        yield from _cancellation(bundle)
    else:
        yield from _dispense(bundle)


def _prescription(bundle: dict) -> Iterator[Problem]:
    requests = entries(bundle, "MedicationRequest")
    for path in CONSISTENT_PATHS:
        yield from _consistent(requests, path, "MedicationRequest", REQ_CONSISTENT)
    if requests:
        yield from _prescriber(bundle, requests[0])
        if REPEAT_DISPENSING in _codes(requests[0].get("courseOfTherapyType")):
            yield from _repeat_dispensing(requests)
    if any(r.get("status") != "active" for r in requests):
        yield _value(REQ_MR_STATUS, "MedicationRequest.status must be active.",
                     "Bundle.entry.resource.ofType(MedicationRequest).status")
    items = [identifier_value(r.get("identifier"), ITEM_ID_SYSTEM) for r in requests]
    if len(set(items)) != len(items):
        yield _value(REQ_DUPLICATE_ID, "Expected all MedicationRequests to have a different value for identifier.",
                     "Bundle.entry.resource.ofType(MedicationRequest).identifier")
    for request in requests:
        yield from _dosage(request)


def _consistent(resources: list[dict], path: str, kind: str, requirement: str) -> Iterator[Problem]:
    unique = _unique([value for resource in resources for value in path_values(resource, path)])
    if len(unique) > 1:
        yield _value(requirement, f"Expected all {kind}s to have the same value for {path}. Received "
                     f"{_compact(unique)}.", f"Bundle.entry.resource.ofType({kind}).{path}")


def _prescriber(bundle: dict, request: dict) -> Iterator[Problem]:
    """The requester's PractitionerRole: primary-care rules, and the prescriber's professional code."""
    role = _resolve(bundle, request.get("requester"))
    if role is None:
        return
    prescription_type = as_dict(as_dict(_extension(request, PRESCRIPTION_TYPE)).get("valueCoding")).get("code")
    organization = _resolve(bundle, role.get("organization")) if _is_reference(role.get("organization")) else None
    if organization is not None and isinstance(prescription_type, str) and prescription_type.startswith("01"):
        if "healthcareService" in role:
            yield _invalid(REQ_HEALTHCARE_SERVICE, "Unexpected field of practitionerRole.healthcareService.",
                           "practitionerRole.healthcareService")
        elif not organization.get("partOf"):
            yield _invalid(REQ_PART_OF, "Required field organization.partOf is missing.", "organization.partOf")
    practitioner = _resolve(bundle, role.get("practitioner"))
    if practitioner is not None and identifier_value(practitioner.get("identifier"), GMP_NUMBER) is not None:
        yield _value(REQ_PROFESSIONAL_CODE, "Bundle resource Practitioner.identifier expected exactly one "
                     "professional code from GMC|NMC|GPhC|HCPC|professional-code.", "Practitioner.identifier")


def _repeat_dispensing(requests: list[dict]) -> Iterator[Problem]:
    paths = ["dispenseRequest.numberOfRepeatsAllowed"]
    if _list(as_dict(_extension(requests[0], UK_REPEAT_INFORMATION)).get("extension")):
        paths.append(f'extension("{UK_REPEAT_INFORMATION}")')
    for path in paths:
        yield from _consistent(requests, path, "MedicationRequest", REQ_REPEAT)
    dispense_request = as_dict(requests[0].get("dispenseRequest"))
    for field in ("validityPeriod", "expectedSupplyDuration"):
        if not dispense_request.get(field):
            yield _value(REQ_REPEAT, f"Expected MedicationRequest to have a value for dispenseRequest.{field}.",
                         f"Bundle.entry.resource.ofType(MedicationRequest).dispenseRequest.{field}")


def _dosage(request: dict) -> Iterator[Problem]:
    dosage = _list(request.get("dosageInstruction"))
    if not dosage:
        yield _invalid(REQ_DOSAGE, "Required field dosageInstructions is missing.", "MedicationRequest.dosageInstruction")
    elif len(dosage) > 1 and any(not as_dict(d).get("sequence") for d in dosage):
        yield Problem(REQ_DOSAGE, 400, "invalid", "", "MISSING_VALUE", "The request contains multiple dosage "
                      "instruction lines but no corresponding dosage sequence number.",
                      "MedicationRequest.dosageInstruction.sequence")


def _cancellation(bundle: dict) -> Iterator[Problem]:
    requests = entries(bundle, "MedicationRequest")
    where = "Bundle.entry.resource.ofType(MedicationRequest)"
    if len(requests) != 1:
        yield _value(REQ_CANCEL_ONE, "The Bundle must contain exactly one MedicationRequest if "
                     "MessageHeader.eventCoding.code is 'prescription-order-update'.", where)
    if any(r.get("status") != "cancelled" for r in requests):
        yield _value(REQ_MR_STATUS, "MedicationRequest.status must be cancelled.", f"{where}.status")
    if any(not r.get("statusReason") for r in requests):
        yield _value(REQ_STATUS_REASON, "Expected MedicationRequest to have a value for statusReason.",
                     f"{where}.statusReason")


def _dispense(bundle: dict) -> Iterator[Problem]:
    dispenses = entries(bundle, "MedicationDispense")
    for path in DISPENSE_CONSISTENT_PATHS:
        yield from _consistent(dispenses, path, "MedicationDispense", REQ_DISPENSE_CONSISTENT)
    actors = _unique([as_dict(p).get("actor") for d in dispenses for p in _list(d.get("performer"))])
    if len(actors) > 1:
        yield _value(REQ_DISPENSE_CONSISTENT, "Expected all MedicationDispenses to have the same value for "
                     f"performer. Received {_compact(actors)}.",
                     "Bundle.entry.resource.ofType(MedicationDispense).performer")
    if any(not _list(d.get("performer")) for d in dispenses):
        yield _value(REQ_DISPENSE_CONSISTENT, "Expected MedicationDispense to have a value for "
                     "performer.ofType(PractitionerRole).",
                     "Bundle.entry.resource.ofType(MedicationDispense).performer.ofType(PractitionerRole)")
    yield from _medication_conflict(dispenses, "MedicationDispense")
    if dispenses and _list(dispenses[0].get("performer")):
        role = _contained(dispenses[0], as_dict(_list(dispenses[0]["performer"])[0]).get("actor"))
        if role is not None:
            yield from _dispenser(bundle, role)


def _dispenser(bundle: dict, role: dict) -> Iterator[Problem]:
    """The dispensing PractitionerRole (contained): its practitioner an identifier, its organisation's NHSBSA
    reimbursement authority named."""
    if _is_reference(role.get("practitioner")):
        yield _not_identifier('Bundle.entry("PractitionerRole").practitioner')
    organization = _resolve(bundle, role.get("organization"))
    if organization is None:
        return
    relationships = _extension(organization, ORGANISATION_RELATIONSHIPS)
    if relationships is None:
        yield _invalid(REQ_REIMBURSEMENT, "The dispense notification is missing the reimbursement authority and it "
                       "should be provided.", "Organization.extension")
    elif _extension(relationships, "reimbursementAuthority") is None:
        yield _invalid(REQ_REIMBURSEMENT_ODS, "The dispense notification is missing the ODS code for reimbursement "
                       "authority and it should be provided.", "Organization.extension[0].extension")


# ================= Parameters (release), Task (return, withdraw), Claim =================

def _release(parameters: dict) -> Iterator[Problem]:
    if parameter(parameters, "owner") is None:
        yield _invalid(REQ_OWNER, "Required parameter owner is missing.", "Parameters.parameter")
    agent = as_dict(as_dict(parameter(parameters, "agent")).get("resource"))
    if not agent:
        return
    if _is_reference(agent.get("practitioner")):
        yield _not_identifier('Parameters.parameter("agent").resource.practitioner')
    if not _list(agent.get("telecom")):
        yield _invalid(REQ_AGENT, 'Required field Parameters.parameter("agent").resource.telecom is missing.',
                       'Parameters.parameter("agent").resource.telecom')


def _task(task: dict) -> Iterator[Problem]:
    if task.get("intent") != "order":
        yield _value(REQ_TASK, "Task.intent must be one of: 'order'.", "Task.intent")
    status = task.get("status")
    if not isinstance(status, str) or status not in TASK_STATUSES:
        yield _value(REQ_TASK, "Task.status must be one of: 'in-progress', 'rejected'.", "Task.status")
        return
    withdrawal = TASK_STATUSES[status] == WITHDRAW
    if withdrawal:
        code = task.get("code")
        if not code:
            yield _value(REQ_TASK, "Task.code is required when Task.status is 'in-progress'.", "Task.code")
        else:
            coding = next((c for c in _list(as_dict(code).get("coding"))
                           if isinstance(c, dict) and c.get("system") == TASK_CODE_SYSTEM), {})
            if coding.get("code") != "abort":
                yield _value(REQ_TASK, "Task.code.coding.code must be one of: 'abort'.", "Task.code.coding.code")
    # Live reads the reason from Task.statusReason (its text still says reasonCode, which carries a SNOMED code).
    system = WITHDRAW_REASONS if withdrawal else RETURN_REASONS
    if not any(isinstance(c, dict) and c.get("system") == system and c.get("code")
               for c in _list(as_dict(task.get("statusReason")).get("coding"))):
        yield _value(REQ_TASK, f"Task.reasonCode must have a system of '{system}' and a value from that system.",
                     "Task.statusReason")


def _claim(claim: dict) -> Iterator[Problem]:
    role = _contained(claim, claim.get("provider"))
    if role is not None and _is_reference(role.get("practitioner")):
        yield _not_identifier('Parameters.parameter("agent").resource.practitioner')  # live's text, sic
    details = [d for item in _list(claim.get("item")) for d in _list(as_dict(item).get("detail"))]
    if not details or any(not _endorsed(detail) for detail in details):
        yield _invalid(REQ_ENDORSEMENT, MISSING_ENDORSEMENT, "Claim.item.detail.programCode")


def _endorsed(detail: Any) -> bool:
    """A line of a claim carries an endorsement (NDEC when there is none to make) among its programCodes."""
    return any(isinstance(c, dict) and c.get("system") == ENDORSEMENT_SYSTEM and c.get("code")
               for concept in _list(as_dict(detail).get("programCode")) for c in _list(as_dict(concept).get("coding")))


RULES: dict[str, Callable[[dict], Iterator[Problem]]] = {
    **{op: functools.partial(_message, op) for op in BUNDLE_OPERATIONS}, RELEASE: _release, CLAIM: _claim,
    **{op: _task for op in TASK_OPERATIONS},
}
# The requirement a message that passes every rule is recorded against.
RULE_OF = {PREPARE: REQ_CONSISTENT, ORDER: REQ_CONSISTENT, CANCEL: REQ_CANCEL_ONE, DISPENSE: REQ_DISPENSE_CONSISTENT,
           PROCESS_UNKNOWN: REQ_EVENT, RELEASE: REQ_OWNER, CLAIM: REQ_ENDORSEMENT,
           **{op: REQ_TASK for op in TASK_OPERATIONS}}


# ================= $validate =================

def operation_of_body(body: Any) -> str | None:
    """Which message a body is, as $validate is told nothing else: a Bundle by its event, a Task by its status."""
    kind = body.get("resourceType") if isinstance(body, dict) else None
    if kind == "Bundle":
        operation = message_operation(body)
        return PREPARE if operation == ORDER and not entries(body, "Provenance") else operation
    if kind == "Parameters":
        return RELEASE
    if kind == "Task":
        return task_operation(body)
    if kind == "Claim":
        return CLAIM
    return None


def validate(call: EpsCall, ex: ExchangeContext) -> Answer:
    """$validate: 200 with one information issue when the message is valid; otherwise 400 with every problem the
    front-door checks find (the specification's verification errors, the request profile, the prescription id), as
    live answers with the FHIR validator's OperationOutcome."""
    from sandbox.services.eps.checks import as_issue, body_findings  # here: checks imports this module

    findings = body_findings(call.raw, operation_of_body(call.body))
    errors = [finding for finding in findings if finding.outcome == Outcome.FAIL]
    warnings = [finding for finding in findings if finding.outcome == Outcome.WARNING]
    if not errors:
        found = [issue("informational", severity="information")]
        found += [issue("informational", diagnostics=f"{w.message} ({w.requirement})", severity="warning")
                  for w in warnings]
        return Answer(200, outcome(*found))
    return Answer(400, outcome(*(as_issue(finding) for finding in errors + warnings)))
