"""RCMR_IN010000UK05, the GP2GP EHR request (forward reliable, to the patient's registered practice): the sandbox
practice checks it and answers the requester with the EHR extract (RCMR_IN030000UK06) — followed, for a large
record, by one COPC_IN000001UK01 fragment per attachment — or with a negative application acknowledgement carrying
the GP2GP error code, as a sending practice does."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from sandbox.conformance.findings import Finding, SpineError
from sandbox.messaging import hl7, new_id
from sandbox.messaging.business import InteractionReply, InteractionRequest
from sandbox.messaging.hl7read import NHS_NUMBER_ROOT, first, where
from sandbox.services.gp2gp import errors, records
from sandbox.services.gp2gp.extract import build_extract
from sandbox.services.gp2gp.fragments import attachment_part, build_fragment
from sandbox.services.gp2gp.practice import (
    ODS_ROOT,
    PRACTICE_ASID,
    PRACTICE_ODS,
    PRACTICE_PARTY_KEY,
    answers_for,
)
from sandbox.services.gp2gp.transfers import Transfers
from sandbox.services.pds.records import PatientRecords
from sandbox.synthetic.identifiers import is_valid_nhs_number
from sandbox.synthetic.population import Person

REQUEST = "hl7:ControlActEvent/hl7:subject/hl7:EhrRequest"
PATIENT_ID = f"{REQUEST}/hl7:recordTarget/hl7:patient/hl7:id"
REQUEST_ID = f"{REQUEST}/hl7:id/@root"
REQUESTER = f"{REQUEST}/hl7:author/hl7:AgentOrgSDS/hl7:agentOrganizationSDS/hl7:id"
SENDER = f"{REQUEST}/hl7:destination/hl7:AgentOrgSDS/hl7:agentOrganizationSDS/hl7:id"
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_ODS = re.compile(r"^[A-Za-z0-9]{3,10}$")


@dataclass
class Checked:
    """The request as read, and the GP2GP error the sending practice answers with (None: send the extract)."""

    nhs_number: str | None = None
    request_id: str | None = None
    requester_ods: str | None = None
    sender_ods: str | None = None
    person: Person | None = None
    error: tuple[str, str] | None = None
    findings: list[Finding] = field(default_factory=list)

    def refuse(self, code: str) -> None:
        if self.error is None or self.error[0] == "06" and code == "18":  # a malformed request says so first
            self.error = errors.error(code)


def handle_ehr_request(request: InteractionRequest) -> list[InteractionReply]:
    root = request.wrapper.root
    checked = Checked()
    transfers = Transfers(request.sandbox, request.session)
    _check_request_id(root, checked, transfers)
    _check_practices(root, checked)
    _check_receiver(request, root, checked)
    _check_patient(request, root, checked)
    request.exchange.facts.update(nhs_number=checked.nhs_number, gp2gp_large_record=bool(
        checked.person and records.is_large_record(checked.person)))
    request.exchange.add(*checked.findings)
    refusal = checked.error or (errors.error("06") if checked.person is None else None)
    request.exchange.facts["gp2gp_error"] = refusal[0] if refusal else "none"
    if refusal is not None:
        nack = hl7.application_ack(request.wrapper, type_code="AE", errors=[refusal],
                                   sender_asid=PRACTICE_ASID, message_id=new_id(),
                                   code_system=errors.GP2GP_ERROR_CODE_SYSTEM)
        return [InteractionReply(message=nack, to_party=request.from_party, from_party=PRACTICE_PARTY_KEY)]
    return _extract_and_fragments(request, checked, transfers)


def _extract_and_fragments(request: InteractionRequest, checked: Checked,
                           transfers: Transfers) -> list[InteractionReply]:
    person = checked.person
    assert person is not None and checked.request_id is not None
    requester_asid = request.wrapper.sender_asid or ""
    documents = records.documents(person)
    extract_message_id = new_id()
    extract = build_extract(person=person, message_id=extract_message_id, extract_id=new_id(),
                            request_id=checked.request_id, requester_asid=requester_asid,
                            requester_ods=checked.requester_ods or "", notes=records.notes(person),
                            documents=documents)
    replies = [InteractionReply(message=extract, to_party=request.from_party, from_party=PRACTICE_PARTY_KEY)]
    fragment_ids = []
    for document in documents:
        fragment_id = new_id()
        fragment_ids.append(fragment_id)
        fragment = build_fragment(document=document, message_id=fragment_id, requester_asid=requester_asid,
                                  requester_party=request.from_party)
        replies.append(InteractionReply(message=fragment, attachments=(attachment_part(document),),
                                        to_party=request.from_party, from_party=PRACTICE_PARTY_KEY))
    transfer = {"request_id": checked.request_id, "request_message_id": request.wrapper.message_id,
                "nhs_number": person.nhs_number, "requester_ods": checked.requester_ods,
                "requester_party": request.from_party, "conversation_id": request.conversation_id,
                "fragments": fragment_ids, "documents": [d.id for d in documents], "acknowledgement": None}
    request.exchange.write_with_record(
        lambda: transfers.record(checked.request_id or "", extract_message_id, transfer))
    return replies


def _check_request_id(root: etree._Element, checked: Checked, transfers: Transfers) -> None:
    location = where(root, REQUEST_ID.removesuffix("/@root"))
    request_id = checked.request_id = first(root, REQUEST_ID)
    if not request_id or not _UUID.match(request_id):
        checked.findings.append(Finding.failed(
            "GP2GP-REQ-004", f"The EHR request must carry its own id, a UUID, in EhrRequest/id/@root; saw "
            f"{request_id!r}. The sending practice answers AE 18.", location))
        checked.refuse("18")
        return
    earlier = transfers.answered(request_id)
    if earlier:
        checked.findings.append(Finding.failed(
            "GP2GP-REQ-004", f"EHR request id {request_id} was already used by an earlier request (answered with "
            f"extract message {earlier}); every new request needs a new id. The extract is sent again.", location))
    else:
        checked.findings.append(Finding.passed("GP2GP-REQ-004", f"EHR request id {request_id} is a new UUID.",
                                               location))


def _check_practices(root: etree._Element, checked: Checked) -> None:
    for xpath, attribute, who in ((REQUESTER, "requester_ods", "requesting practice (EhrRequest/author)"),
                                  (SENDER, "sender_ods", "sending practice (EhrRequest/destination)")):
        ods = first(root, f"{xpath}/@extension")
        id_root = first(root, f"{xpath}/@root")
        setattr(checked, attribute, ods)
        if not ods or not _ODS.match(ods) or id_root != ODS_ROOT:
            checked.findings.append(Finding.failed(
                "GP2GP-REQ-002", f"The {who} must be named by its ODS code with root {ODS_ROOT}; saw {ods!r} with "
                f"root {id_root!r}. The sending practice answers AE 18.", where(root, xpath)))
            checked.refuse("18")
        else:
            checked.findings.append(Finding.passed("GP2GP-REQ-002", f"The {who} is ODS {ods}.", where(root, xpath)))
    if checked.requester_ods and checked.sender_ods and checked.requester_ods.upper() == checked.sender_ods.upper():
        checked.findings.append(Finding.failed(
            "GP2GP-REQ-002", f"The requesting and sending practices are both {checked.requester_ods}: a practice "
            "requests a record from the patient's previous practice, never from itself.", where(root, REQUEST)))
        checked.refuse("18")


def _check_receiver(request: InteractionRequest, root: etree._Element, checked: Checked) -> None:
    receivers = request.wrapper.receiver_asids
    location = where(root, "hl7:communicationFunctionRcv/hl7:device/hl7:id")
    if PRACTICE_ASID in receivers:
        checked.findings.append(Finding.passed("GP2GP-REQ-005", f"Addressed to the sending practice's ASID "
                                               f"{PRACTICE_ASID}.", location))
    else:
        checked.findings.append(Finding.failed(
            "GP2GP-REQ-005", f"The request must be addressed (communicationFunctionRcv) to the sending practice's "
            f"ASID as SDS gives it for RCMR_IN010000UK05 ({PRACTICE_ASID} for ODS {PRACTICE_ODS}); saw "
            f"{', '.join(receivers) or 'none'}.", location))


def _check_patient(request: InteractionRequest, root: etree._Element, checked: Checked) -> None:
    location = where(root, PATIENT_ID)
    number = checked.nhs_number = first(root, f"{PATIENT_ID}/@extension")
    id_root = first(root, f"{PATIENT_ID}/@root")
    if not number or not is_valid_nhs_number(number) or id_root != NHS_NUMBER_ROOT:
        checked.findings.append(Finding.failed(
            "GP2GP-REQ-001", f"The EHR request must name the patient by a valid NHS number (Modulus 11) with root "
            f"{NHS_NUMBER_ROOT}; saw {number!r} with root {id_root!r}. The sending practice answers AE 18.",
            location))
        checked.refuse("18")
        return
    try:
        record = PatientRecords(request.sandbox, request.session).find(number)
    except SpineError as refusal:
        checked.findings.append(Finding.failed(
            "GP2GP-REQ-001", f"NHS number {number} is not a patient PDS knows (PDS {refusal.code}); trace the "
            "patient on PDS before requesting the record. The sending practice answers AE 06.", location))
        checked.refuse("06")
        return
    if record.superseded:
        checked.findings.append(Finding.warning(
            "GP2GP-REQ-001", f"NHS number {number} is superseded by {record.nhs_number} in PDS; request the record "
            "by the current NHS number.", location))
    else:
        checked.findings.append(Finding.passed("GP2GP-REQ-001", f"NHS number {number} is known to PDS.", location))
    registered = next((gp.get("identifier", {}).get("value") for gp in record.resource.get("generalPractitioner", [])),
                      None)
    person = request.sandbox.population.by_nhs_number(record.nhs_number)
    sender_location = where(root, SENDER)
    if person is None or not registered:
        why = ("has no registered practice in PDS" if person is not None or not registered else
               "is not one of the synthetic population, whose records the sandbox practice holds")
        checked.findings.append(Finding.failed(
            "GP2GP-REQ-003", f"NHS number {record.nhs_number} {why}; the sending practice answers AE 06 (patient "
            "not at surgery).", sender_location))
        checked.refuse("06")
        return
    if not answers_for(checked.sender_ods, registered):
        checked.findings.append(Finding.failed(
            "GP2GP-REQ-003", f"The request goes to the patient's current practice as PDS records it ({registered}; "
            f"the sandbox practice {PRACTICE_ODS} answers for every synthetic practice); it was addressed to "
            f"{checked.sender_ods!r}. That practice answers AE 06 (patient not at surgery).", sender_location))
        checked.refuse("06")
        return
    stand_in = "" if (checked.sender_ods or "").upper() == registered.upper() else \
        f" (the sandbox practice {PRACTICE_ODS} standing in for {registered})"
    checked.findings.append(Finding.passed(
        "GP2GP-REQ-003", f"Addressed to the patient's registered practice{stand_in}.", sender_location))
    checked.person = person

