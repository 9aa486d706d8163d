"""The specification's examples: which request examples a request equals (`match`), and the answer each example's
paired response shows (`answer`), for a message about a prescription the session does not hold.

A request equals an example when their JSON is equal: the same objects, arrays, strings, booleans and numbers, in
any key order and layout (1 and 1.0 alike); nothing else is ignored, so a changed id, date or signature is a new
request, answered by the session's prescriptions. Example requests are kept only as SHA-256 digests of their
canonical JSON (published/examples.yaml); every answer is made here, from the request and our own synthetic
prescription content (published/prescription.yaml), in the status and shape of the example's paired response:
- orders, dispense notifications, claims, returns and withdrawals: OperationOutcome informational (200);
- cancellations: the prescription-order-response Bundle live makes from the cancellation (R-0001, 200);
- releases: Parameters passedPrescriptions/failedPrescriptions, a synthetic prescription-order message for the
  example's prescription id (or, for a nominated release, one made for the pharmacy), and as many failed
  prescriptions (a signature Spine could not verify) as the example's answer shows;
- the claim example without a dispenser endorsement: live's 400 verification error (the checks refuse it first,
  EPS-VER-014; this answer is the same, for when they are off).
routes.py asks for `answer` only for the stateful messages (context: CANCEL, RELEASE, DISPENSE, CLAIM, RETURN,
WITHDRAW); orders, $prepare and $convert are worked out by their handlers, with `call.example` set."""

from __future__ import annotations

import base64
import functools
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import yaml

from sandbox.conformance.parsing import canonical_json, json_digest
from sandbox.services.eps import cancellations, prescription_ids, prescriptions, releases, resources
from sandbox.services.eps.context import (
    EPS_ISSUE_CODES,
    ITEM_ID_SYSTEM,
    MESSAGE_EVENT_SYSTEM,
    NHS_NUMBER_SYSTEM,
    ODS_SYSTEM,
    PRESCRIPTION_ID_SYSTEM,
    PRESCRIPTION_UUID_SYSTEM,
    ROLE_PROFILE_SYSTEM,
    SPINE_CODES,
    USER_ID_SYSTEM,
    UUID_SYSTEM,
    Answer,
    EpsCall,
)
from sandbox.services.eps.errors import informational, issue, outcome
from sandbox.services.eps.validation import MISSING_ENDORSEMENT

DATA = Path(__file__).parent / "published"
SIGNATURE_INVALID = "Signature is invalid."  # live's failedPrescriptions issue for a signature that does not verify
_NAMESPACE = uuid.UUID("7c1f0a52-5d0e-4b8e-9a57-0e1b5e7a2c41")  # synthetic content's ids: uuid5(this, id/part)
_SNOMED = "http://snomed.info/sct"
_DSIG = "http://www.w3.org/2000/09/xmldsig#"


@dataclass(frozen=True)
class Example:
    """One request example of the specification (every file equal to it as JSON, the first naming it)."""

    names: tuple[str, ...]  # paths below examples/
    digest: str
    operation: str  # the context operation id it goes to
    status: int  # its paired response's status
    answer: str  # how the answer is made: a key of ANSWERS
    failed: int = 0  # releases: failed prescriptions the paired answer lists

    @property
    def name(self) -> str:
        return self.names[0]


# ---- equality ------------------------------------------------------------------------------------------------

@functools.cache
def examples() -> dict[str, Example]:
    """The specification's request examples by digest."""
    with open(DATA / "examples.yaml", encoding="utf-8") as handle:
        rows = yaml.safe_load(handle)["examples"]
    return {row["digest"]: Example(tuple(row["names"]), row["digest"], row["operation"], int(row["status"]),
                                   row["answer"], int(row.get("failed", 0))) for row in rows}


@functools.cache
def content() -> dict:
    """Our synthetic prescription content."""
    with open(DATA / "prescription.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def example_of(body: Any) -> Example | None:
    """The specification's request example a JSON value equals, whatever it is sent to (e.g. each prescription of
    a $verify-signature Bundle: an example order's NHS signature is trusted); else None."""
    return examples().get(json_digest(body)) if isinstance(body, dict) else None


def match(call: EpsCall) -> Example | None:
    """The specification example the request equals, sent to the operation it is an example of (a release example
    POSTed to /Claim is not the example); else None."""
    found = example_of(call.body)
    return found if found is not None and found.operation == call.operation else None


def answer(call: EpsCall, example: Example) -> Answer:
    """The example's paired answer, made for this request."""
    made = ANSWERS[example.answer](call, example)
    made.published = example.name
    return made


# ---- the answers ---------------------------------------------------------------------------------------------

def _informational(call: EpsCall, example: Example) -> Answer:
    return Answer(example.status, informational())


def _cancelled(call: EpsCall, example: Example) -> Answer:
    """A cancellation of a prescription Spine has not released: cancelled (R-0001), in the response Bundle live
    makes from the cancellation itself."""
    return cancellations.answer("R-0001", call.body, prescriptions.now(call.session))


def _missing_endorsement(call: EpsCall, example: Example) -> Answer:
    return Answer(400, outcome(issue("invalid", diagnostics=MISSING_ENDORSEMENT)))


def _patient_deceased(call: EpsCall, example: Example) -> Answer:
    """The order for a patient recorded as deceased (the example's folder names the Spine error; the specification
    gives no answer body): refused as the order handler refuses it."""
    return Answer(400, outcome({"severity": "error", "code": "business-rule", "details": {"coding": [
        {"system": EPS_ISSUE_CODES, "code": "PATIENT_DECEASED", "display": "Patient is recorded as dead"}]}}))


def _prepare(call: EpsCall, example: Example) -> Answer:
    from sandbox.services.eps import signatures  # only when asked: $prepare is its handler's

    return Answer(200, signatures.prepare(call))


def _released(call: EpsCall, example: Example) -> Answer:
    """The release of a prescription the session does not hold: our synthetic prescription, released to the
    release's owner, for the example's prescription id (a nominated release: one made for the pharmacy)."""
    moment = prescriptions.now(call.session)
    pharmacy = _owner(call.body)
    wanted = _group_identifier(call.body) or synthetic_id(example.digest, content()["organisation"]["ods"])
    passed = [synthetic_order(wanted, pharmacy, moment)]
    body = releases.response([{"bundle": bundle} for bundle in passed], moment)
    failed = resources.parameter(body, "failedPrescriptions")
    searchset = failed.get("resource") if failed else None
    if isinstance(searchset, dict) and example.failed:
        for number in range(example.failed):
            other = synthetic_id(f"{example.digest}/failed/{number}", content()["organisation"]["ods"])
            bundle = synthetic_order(other, pharmacy, moment)
            searchset["entry"] = [*searchset.get("entry", []), _failure(bundle, moment),
                                  {"fullUrl": f"urn:uuid:{bundle['id']}", "resource": bundle}]
        searchset["total"] = len(searchset["entry"])  # 2n: each failed prescription's outcome and message
    return Answer(200, body)


ANSWERS = {"informational": _informational, "cancelled": _cancelled, "released": _released,
           "missing-endorsement": _missing_endorsement, "patient-deceased": _patient_deceased, "prepare": _prepare}


def _group_identifier(body: Any) -> str | None:
    found = resources.parameter(body, "group-identifier")
    value = found.get("valueIdentifier") if found else None
    return value.get("value") if isinstance(value, dict) and isinstance(value.get("value"), str) else None


def _owner(body: Any) -> tuple[str, str]:
    """(ODS code, name) of the pharmacy releasing: the owner parameter's Organization, else our synthetic one."""
    found = resources.parameter(body, "owner")
    organization = found.get("resource") if found else None
    organization = organization if isinstance(organization, dict) else {}
    ods = resources.identifier_value(organization.get("identifier"), ODS_SYSTEM)
    if ods:
        name = organization.get("name")
        return ods, name if isinstance(name, str) else ods
    return content()["pharmacy"]["ods"], content()["pharmacy"]["name"]


def _failure(bundle: dict, moment: datetime) -> dict:
    """failedPrescriptions' OperationOutcome for a released prescription whose signature does not verify."""
    outcome_id = _id(bundle["id"], "failure")
    return {"fullUrl": f"urn:uuid:{outcome_id}", "resource": {
        "resourceType": "OperationOutcome", "id": outcome_id, "meta": {"lastUpdated": prescriptions.stamp(moment)},
        "extension": [{"url": "https://fhir.nhs.uk/StructureDefinition/Extension-Spine-supportingInfo-prescription",
                       "valueReference": {"identifier": dict(bundle["identifier"])}}],
        "issue": [{"severity": "error", "code": "invalid", "details": {"coding": [
            {"system": SPINE_CODES, "code": "INVALID_VALUE", "display": SIGNATURE_INVALID}]},
            "expression": ["Provenance.signature.data"]}]}}


# ---- synthetic prescriptions -----------------------------------------------------------------------------------

def _id(seed: str, part: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{seed}/{part}"))


def synthetic_id(seed: str, ods: str) -> str:
    """A valid short-form prescription id made from `seed` (the same seed, the same id)."""
    hashed = hashlib.sha256(seed.encode()).hexdigest().upper()
    ods_part = "".join(ch for ch in ods.upper() if ch.isalnum())[-6:].rjust(6, "0")
    body = f"{hashed[:6]}-{ods_part}-{hashed[6:11]}"
    return body + prescription_ids.check_character(body)


def synthetic_order(short_form: str, pharmacy: tuple[str, str], moment: datetime) -> dict:
    """A prescription-order message of our synthetic content for this prescription id, nominated to `pharmacy`
    (ODS code, name), as a release passes it on (each item with dispenser). Ids derive from the prescription id."""
    data, when = content(), prescriptions.stamp(moment)
    ids = {part: _id(short_form, part) for part in ("bundle", "identifier", "header", "patient", "role",
                                                    "practitioner", "organisation", "provenance", "long-form")}
    items = [_medication_request(short_form, number, item, ids, pharmacy) for number, item in
             enumerate(data["items"])]
    practitioner_role = _practitioner_role(data["prescriber"], ids)
    entries = [_header(ids, items, pharmacy, data["organisation"]), *items, _patient(data["patient"], ids),
               practitioner_role, _practitioner(data["prescriber"], ids), _organisation(data["organisation"], ids),
               _provenance(ids, items, when)]
    return {"resourceType": "Bundle", "id": ids["bundle"], "timestamp": when,
            "identifier": {"system": UUID_SYSTEM, "value": ids["identifier"]}, "type": "message",
            "entry": [{"fullUrl": f"urn:uuid:{entry['id']}", "resource": entry} for entry in entries]}


def _header(ids: dict, items: list[dict], pharmacy: tuple[str, str], organisation: dict) -> dict:
    focus = [*(item["id"] for item in items), ids["role"], ids["patient"], ids["provenance"]]
    return {"resourceType": "MessageHeader", "id": ids["header"],
            "eventCoding": {"system": MESSAGE_EVENT_SYSTEM, "code": "prescription-order",
                            "display": "Prescription Order"},
            "destination": [{"endpoint": f"urn:nhs-uk:addressing:ods:{pharmacy[0]}",
                             "receiver": {"identifier": {"system": ODS_SYSTEM, "value": pharmacy[0]},
                                          "display": pharmacy[1]}}],
            "sender": {"identifier": {"system": ODS_SYSTEM, "value": organisation["ods"]},
                       "display": organisation["name"]},
            "source": {"endpoint": f"urn:nhs-uk:addressing:ods:{organisation['ods']}"},
            "focus": [{"reference": f"urn:uuid:{reference}"} for reference in focus]}


def _medication_request(short_form: str, number: int, item: dict, ids: dict, pharmacy: tuple[str, str]) -> dict:
    item_id = _id(short_form, f"item/{number}")
    return {
        "resourceType": "MedicationRequest", "id": item_id,
        "extension": [
            {"url": "https://fhir.nhs.uk/StructureDefinition/Extension-DM-PrescriptionType",
             "valueCoding": {"system": "https://fhir.nhs.uk/CodeSystem/prescription-type", "code": "0101"}},
            {"url": "https://fhir.nhs.uk/StructureDefinition/Extension-EPS-DispensingInformation", "extension": [
                {"url": "dispenseStatus", "valueCoding": {"system": "https://fhir.nhs.uk/CodeSystem/medicationdispense-type",
                                                          "code": "0008", "display": "Item with dispenser"}}]}],
        "identifier": [{"system": ITEM_ID_SYSTEM, "value": item_id}],
        "status": "active", "intent": "order",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                                  "code": "community", "display": "Community"}]}],
        "medicationCodeableConcept": {"coding": [{"system": _SNOMED, "code": item["snomed"],
                                                  "display": item["display"]}]},
        "subject": {"reference": f"urn:uuid:{ids['patient']}"},
        "requester": {"reference": f"urn:uuid:{ids['role']}"},
        "groupIdentifier": {"system": PRESCRIPTION_ID_SYSTEM, "value": short_form, "extension": [
            {"url": "https://fhir.nhs.uk/StructureDefinition/Extension-DM-PrescriptionId",
             "valueIdentifier": {"system": PRESCRIPTION_UUID_SYSTEM, "value": ids["long-form"]}}]},
        "courseOfTherapyType": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", "code": "acute",
            "display": "Short course (acute) therapy"}]},
        "dosageInstruction": [{"text": item["dosage"]}],
        "dispenseRequest": {
            "extension": [{"url": "https://fhir.nhs.uk/StructureDefinition/Extension-DM-PerformerSiteType",
                           "valueCoding": {"system": "https://fhir.nhs.uk/CodeSystem/dispensing-site-preference",
                                           "code": "P1"}}],
            "quantity": {"value": item["quantity"], "unit": item["unit"], "system": _SNOMED,
                         "code": item["unit_code"]},
            "performer": {"identifier": {"system": ODS_SYSTEM, "value": pharmacy[0]}}},
        "substitution": {"allowedBoolean": False}}


def _patient(patient: dict, ids: dict) -> dict:
    return {"resourceType": "Patient", "id": ids["patient"],
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": patient["nhs_number"]}],
            "name": [{"use": "usual", "family": patient["family"], "given": list(patient["given"]),
                      "prefix": list(patient["prefix"])}],
            "gender": patient["gender"], "birthDate": patient["birth_date"],
            "address": [{"use": "home", "line": list(patient["address"]), "postalCode": patient["postal_code"]}]}


def _practitioner_role(prescriber: dict, ids: dict) -> dict:
    return {"resourceType": "PractitionerRole", "id": ids["role"],
            "identifier": [{"system": ROLE_PROFILE_SYSTEM, "value": prescriber["role_id"]}],
            "practitioner": {"reference": f"urn:uuid:{ids['practitioner']}"},
            "organization": {"reference": f"urn:uuid:{ids['organisation']}"},
            "code": [{"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode",
                                  "code": prescriber["role_code"], "display": prescriber["role_display"]}]}],
            "telecom": [{"system": "phone", "use": "work", "value": prescriber["telephone"]}]}


def _practitioner(prescriber: dict, ids: dict) -> dict:
    return {"resourceType": "Practitioner", "id": ids["practitioner"],
            "identifier": [{"system": USER_ID_SYSTEM, "value": prescriber["user_id"]},
                           dict(prescriber["professional_code"])],
            "name": [{"family": prescriber["family"], "given": list(prescriber["given"]),
                      "prefix": list(prescriber["prefix"])}]}


def _organisation(organisation: dict, ids: dict) -> dict:
    return {"resourceType": "Organization", "id": ids["organisation"],
            "identifier": [{"system": ODS_SYSTEM, "value": organisation["ods"]}], "name": organisation["name"],
            "address": [{"use": "work", "line": list(organisation["address"]), "city": organisation["city"],
                         "postalCode": organisation["postal_code"]}],
            "partOf": {"identifier": {"system": ODS_SYSTEM, "value": organisation["part_of"]["ods"]},
                       "display": organisation["part_of"]["display"]}}


def _provenance(ids: dict, items: list[dict], when: str) -> dict:
    """The prescriber's signature as the release passes it on. Synthetic content carries an unsigned XML-DSig
    Signature (SignatureValue and certificate empty, as the specification's own release examples carry): its digest
    is of the items, so a dispensing system can read it but not mistake it for a smartcard's signature."""
    item_digest = base64.b64encode(hashlib.sha256(canonical_json(items)).digest()).decode()
    signature = (f'<Signature xmlns="{_DSIG}"><SignedInfo><CanonicalizationMethod '
                 'Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><SignatureMethod '
                 'Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><Reference><Transforms><Transform '
                 'Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms><DigestMethod '
                 f'Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue>{escape(item_digest)}'
                 '</DigestValue></Reference></SignedInfo><SignatureValue></SignatureValue><KeyInfo><X509Data>'
                 '<X509Certificate></X509Certificate></X509Data></KeyInfo></Signature>')
    role = {"reference": f"urn:uuid:{ids['role']}"}
    return {"resourceType": "Provenance", "id": ids["provenance"], "agent": [{"who": role}], "recorded": when,
            "signature": [{"when": when, "who": role, "data": base64.b64encode(signature.encode()).decode(),
                           "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1"}]}],
            "target": [{"reference": f"urn:uuid:{item['id']}"} for item in items]}
