"""A cancellation's outcome as live EPS answers it: the cancellation status (R-0001 … R-5888) Spine gives for the
prescription's state, and the answer's shape: a prescription-order-response message Bundle (R-0001 at 200; R-0002 …
R-0007 and R-0010 at 400) or an OperationOutcome (R-0008, R-0009, R-5000, R-5888 at 400). Texts are live's
(coordinator translation/response/cancellation/cancellation-medication-request.ts); the refused cancellations'
MedicationRequest.status is "active", as every one of the specification's examples and its schema (active, cancelled,
completed) have it, where the coordinator's source would say completed, stopped or unknown."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sandbox.services.eps import resources
from sandbox.services.eps.context import (
    CANCELLED,
    CLAIMED,
    DISPENSED,
    EXPIRED,
    MESSAGE_EVENT_SYSTEM,
    NO_CLAIMED,
    NOT_DISPENSED,
    ODS_SYSTEM,
    STATUS_HISTORY,
    TO_BE_DISPENSED,
    UUID_SYSTEM,
    WITH_DISPENSER,
    WITH_DISPENSER_ACTIVE,
    Answer,
)
from sandbox.services.eps.errors import issue, outcome
from sandbox.services.eps.prescriptions import stamp


@dataclass(frozen=True)
class Outcome:
    code: str
    display: str
    medication_request_status: str | None  # Bundle answers; None: an OperationOutcome answer
    issue_code: str = "invalid"  # OperationOutcome answers

    @property
    def status(self) -> int:
        return 200 if self.code == "R-0001" else 400


OUTCOMES = {o.code: o for o in (
    Outcome("R-0001", "Prescription/item was cancelled", "cancelled"),
    Outcome("R-0002", "Prescription/item was not cancelled. With dispenser. Marked for cancellation", "active"),
    Outcome("R-0003", "Prescription/item was not cancelled. With dispenser active. Marked for cancellation",
            "active"),
    Outcome("R-0004", "Prescription/item was not cancelled. Prescription has been dispensed.", "active"),
    Outcome("R-0005", "Prescription/item has expired", "active"),
    Outcome("R-0006", "Prescription/item had already been cancelled", "active"),
    Outcome("R-0007", "Prescription/item cancellation requested by another prescriber", "active"),
    Outcome("R-0008", "Prescription/item not found", None, "not-found"),
    Outcome("R-0009", "Cancellation functionality disabled in SPINE", None, "not-supported"),
    Outcome("R-0010", "Prescription/item was not cancelled. Prescription has been not dispensed.", "active"),
    Outcome("R-5000", "Unable to process message. Information missing or invalid - Mismatch between prescription "
            "and cancellation NHSNumber", None, "processing"),
    Outcome("R-5888", "Invalid Message.", None, "invalid"),
)}

# The prescription's state -> the cancellation status Spine answers (pending cancellations are decided before).
BY_STATUS = {
    TO_BE_DISPENSED: "R-0001", WITH_DISPENSER: "R-0002", WITH_DISPENSER_ACTIVE: "R-0003", DISPENSED: "R-0004",
    CLAIMED: "R-0004", EXPIRED: "R-0005", CANCELLED: "R-0006", NOT_DISPENSED: "R-0010", NO_CLAIMED: "R-0010",
}
MARKS_PENDING = ("R-0002", "R-0003")  # the prescription is marked for cancellation


_KEPT = ("Patient", "Practitioner", "PractitionerRole", "Organization")  # the cancellation's own, answered back


def _urn(value: str) -> str:
    return f"urn:uuid:{value}"


def _whole(resource: dict) -> bool:
    """Live answers with the people it knows from Spine: a PractitionerRole always names its practitioner (a bare
    organisation role of the request, e.g. a responsible-party organisation, is not answered back)."""
    return resource.get("resourceType") != "PractitionerRole" or isinstance(resource.get("practitioner"), dict)


def _full_url(bundle: dict, resource: dict) -> str:
    """How the Bundle refers to one of its resources: its entry's fullUrl, else urn:uuid:<id>."""
    for entry in bundle.get("entry") if isinstance(bundle.get("entry"), list) else []:
        if isinstance(entry, dict) and entry.get("resource") is resource and isinstance(entry.get("fullUrl"), str):
            return entry["fullUrl"]
    return _urn(str(resource.get("id", "")))


def answer(code: str, request: dict | None, moment: datetime, owner: dict | None = None) -> Answer:
    """Live's answer to a cancellation with this outcome; `request` is the cancellation Bundle (for the message
    Bundle answers), `owner` the dispenser holding the prescription (named in the answer when there is one)."""
    found = OUTCOMES[code]
    if found.medication_request_status is None or not isinstance(request, dict):
        return Answer(found.status, outcome(issue(found.issue_code, code, found.display)))
    return Answer(found.status, response_bundle(found, request, moment, owner))


def response_bundle(found: Outcome, request: dict, moment: datetime, owner: dict | None) -> dict:
    """The prescription-order-response message: the cancelled MedicationRequest with its status history, and the
    cancellation's own Patient, practitioners and organisations."""
    message_id = str(uuid.uuid4())
    header_id = str(uuid.uuid4())
    original = resources.first(request, "MedicationRequest") or {}
    patient = resources.first(request, "Patient") or {}
    medication_request = _medication_request(found, original, moment, owner)
    sender = resources.first(request, "MessageHeader") or {}
    sender_ods = resources.find_identifier(sender.get("sender"), ODS_SYSTEM) or ""
    entries = [{"fullUrl": _urn(header_id), "resource": {
        "resourceType": "MessageHeader", "id": header_id,
        "extension": [{"url": "https://fhir.nhs.uk/StructureDefinition/Extension-Spine-MessageHeader-messageId",
                       "valueIdentifier": {"system": UUID_SYSTEM, "value": message_id}}],
        "eventCoding": {"system": MESSAGE_EVENT_SYSTEM, "code": "prescription-order-response",
                        "display": "Prescription Order Response"},
        "destination": [{"endpoint": f"urn:nhs-uk:addressing:ods:{sender_ods}",
                         "receiver": {"identifier": {"system": ODS_SYSTEM, "value": sender_ods}}}],
        "sender": {"identifier": {"system": ODS_SYSTEM, "value": "X2601"}, "display": "NHS Digital Spine"},
        "source": {"name": "NHS Spine", "endpoint": "/$process-message"},
        "response": {"identifier": message_id, "code": "ok"},
        "focus": [{"reference": _full_url(request, patient)},
                  {"reference": _urn(medication_request["id"])}]}},
        {"fullUrl": _urn(medication_request["id"]), "resource": medication_request}]
    for entry in request.get("entry") if isinstance(request.get("entry"), list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") in _KEPT and _whole(resource):
            entries.append({"fullUrl": str(entry.get("fullUrl") or _urn(str(resource.get("id", uuid.uuid4())))),
                            "resource": resource})
    return {"resourceType": "Bundle", "type": "message",
            "identifier": {"system": UUID_SYSTEM, "value": message_id}, "timestamp": stamp(moment),
            "entry": entries}


def _medication_request(found: Outcome, original: dict, moment: datetime, owner: dict | None) -> dict:
    resource_id = str(uuid.uuid4())
    requester = original.get("requester") if isinstance(original.get("requester"), dict) else {}
    extension = [
        {"url": "https://fhir.nhs.uk/StructureDefinition/Extension-DM-PrescriptionStatusHistory", "extension": [
            {"url": "status", "valueCoding": {"system": STATUS_HISTORY, "code": found.code,
                                              "display": found.display}},
            {"url": "statusDate", "valueDateTime": stamp(moment)}]},
        {"url": "https://fhir.nhs.uk/StructureDefinition/Extension-DM-ResponsiblePractitioner",
         "valueReference": {"reference": str(requester.get("reference", ""))}}]
    resource = {
        "resourceType": "MedicationRequest", "id": resource_id, "extension": extension,
        "identifier": [item for item in original.get("identifier") or [] if isinstance(item, dict)],
        "status": found.medication_request_status, "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "763158003",
                                                  "display": "Medicinal product"}]},
        "subject": original.get("subject") or {}, "requester": requester,
        "groupIdentifier": original.get("groupIdentifier") or {},
    }
    if owner and owner.get("ods"):
        performer = {"identifier": {"system": ODS_SYSTEM, "value": owner["ods"]}}
        if owner.get("name"):
            performer["display"] = owner["name"]
        resource["dispenseRequest"] = {"performer": performer}
    return resource
