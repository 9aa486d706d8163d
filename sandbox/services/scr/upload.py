"""REPC_IN150016UK05, the GP summary upload (async reliable): checked for what suppliers most often get wrong,
stored per session and NHS number, and answered with the application acknowledgement PSIS gives (AA, or AE with
the PSIS code pair)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from sandbox.conformance.findings import Finding, SpineError
from sandbox.messaging import SPINE_ASID, hl7, new_id
from sandbox.messaging.business import InteractionReply, InteractionRequest
from sandbox.messaging.hl7read import NHS_NUMBER_ROOT, first, present, where
from sandbox.services.pds.records import PatientRecords
from sandbox.services.scr import errors
from sandbox.services.scr.summaries import StoredSummary, Summaries
from sandbox.synthetic.identifiers import is_valid_nhs_number

SUMMARY = "hl7:ControlActEvent/hl7:subject/hl7:GPSummary"
PATIENT_ID = f"{SUMMARY}/hl7:recordTarget/hl7:patient/hl7:id"
DOCUMENT_ID = f"{SUMMARY}/hl7:id/@root"
USER_AUTHOR = "hl7:ControlActEvent/hl7:author/hl7:AgentPersonSDS"
SUMMARY_AUTHOR = f"{SUMMARY}/hl7:author"
REFUSAL = f"{SUMMARY}//hl7:UKCT_MT144056UK01.Refusal"
CLINICAL = (f"{SUMMARY}/hl7:pertinentInformation2/hl7:pertinentCREType/hl7:component"
            "/*[not(self::hl7:templateId or self::hl7:seperatableInd or self::hl7:UKCT_MT144056UK01.Refusal)]")


@dataclass
class Verdict:
    """What the checks found: the PSIS reasons for an AE (none: AA) and the findings."""

    reasons: list[tuple[str, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def refuse(self, general: tuple[str, str], specific: tuple[str, str] | None = None) -> None:
        if general not in self.reasons:
            self.reasons.append(general)
        if specific is not None:
            self.reasons.append(specific)


def handle_upload(request: InteractionRequest) -> list[InteractionReply]:
    root = request.wrapper.root
    summaries = Summaries(request.sandbox, request.session)
    verdict = Verdict()
    nhs_number = _check_patient(request, root, verdict)
    document_id = _check_document(root, nhs_number, summaries, verdict)
    author = _check_author(root, verdict)
    refused = _check_consent(root, verdict)
    request.exchange.add(*verdict.findings)
    request.exchange.facts["scr_acknowledgement"] = "AE" if verdict.reasons else "AA"
    if verdict.reasons:
        ack = _ack(request, "AE", verdict.reasons)
    else:
        summary = StoredSummary(
            document_id=document_id or "", nhs_number=nhs_number or "", message_id=request.wrapper.message_id or "",
            received=hl7.format_ts(), effective_time=first(root, f"{SUMMARY}/hl7:effectiveTime/@value") or "",
            author_sds_user=author.get("sds_user"), author_role_profile=author.get("role_profile"),
            author_name=author.get("name"), size=len(etree.tostring(root)), refused_consent=refused)
        request.exchange.write_with_record(lambda: summaries.add(summary))
        ack = _ack(request, "AA", [])
    return [InteractionReply(message=ack)]


def _ack(request: InteractionRequest, type_code: str, reasons: list[tuple[str, str]]) -> etree._Element:
    return hl7.application_ack(request.wrapper, type_code=type_code, errors=reasons, sender_asid=SPINE_ASID,
                               message_id=new_id(), code_system=errors.PSIS_CODE_SYSTEM)


def _check_patient(request: InteractionRequest, root: etree._Element, verdict: Verdict) -> str | None:
    location = where(root, PATIENT_ID)
    number = first(root, f"{PATIENT_ID}/@extension")
    id_root = first(root, f"{PATIENT_ID}/@root")
    request.exchange.facts["nhs_number"] = number
    if not number or not is_valid_nhs_number(number) or id_root != NHS_NUMBER_ROOT:
        seen = (f"NHS number {number!r}" if number else "no NHS number") + f" with root {id_root!r}"
        verdict.findings.append(Finding.failed(
            "SCR-UPL-001", f"The GP summary must name the patient by a valid NHS number (10 digits, Modulus 11 "
            f"check digit) with root {NHS_NUMBER_ROOT}; saw {seen}. PSIS answers AE PSIS-35160.", location))
        verdict.refuse(errors.INVALID_REQUEST, errors.nhs_number_missing_or_incorrect())
        return number
    verdict.findings.append(Finding.passed("SCR-UPL-001", f"NHS number {number} is valid.", location))
    try:
        record = PatientRecords(request.sandbox, request.session).find(number)
    except SpineError as refusal:
        what = "is invalidated" if refusal.code == "INVALIDATED_RESOURCE" else "is not known to PDS"
        verdict.findings.append(Finding.failed(
            "SCR-UPL-002", f"A summary can only be stored for a patient PDS knows; NHS number {number} {what} "
            f"(PDS {refusal.code}). PSIS answers AE PSIS-35160.", location))
        verdict.refuse(errors.INVALID_REQUEST, errors.nhs_number_missing_or_incorrect())
        return number
    if record.superseded:
        verdict.findings.append(Finding.warning(
            "SCR-UPL-002", f"NHS number {number} is superseded by {record.nhs_number} in PDS; upload against the "
            f"current NHS number (the summary is stored under {number} as sent).", location))
    else:
        verdict.findings.append(Finding.passed("SCR-UPL-002", f"NHS number {number} is known to PDS.", location))
    return number


def _check_document(root: etree._Element, nhs_number: str | None, summaries: Summaries,
                    verdict: Verdict) -> str | None:
    location = where(root, DOCUMENT_ID)
    document_id = first(root, DOCUMENT_ID)
    if not document_id:
        verdict.findings.append(Finding.failed("SCR-UPL-005", "The GP summary has no document id "
                                               "(GPSummary/id/@root, a UUID).", location))
        verdict.refuse(errors.INVALID_REQUEST)
        return None
    used_for = summaries.document_used(document_id)
    if used_for is not None:
        verdict.findings.append(Finding.failed(
            "SCR-UPL-005", f"Document id {document_id} was already used by an earlier upload (for NHS number "
            f"{used_for}); every upload, a replacement included, needs a new document id. PSIS answers AE "
            f"PSIS-30134.", location))
        verdict.refuse(errors.INVALID_REQUEST, errors.duplicate_event(document_id, nhs_number or used_for))
    else:
        verdict.findings.append(Finding.passed("SCR-UPL-005", f"Document id {document_id} is new.", location))
    return document_id


def _check_author(root: etree._Element, verdict: Verdict) -> dict[str, str | None]:
    author = {
        "sds_user": first(root, f"{USER_AUTHOR}/hl7:agentPersonSDS/hl7:id/@extension"),
        "role_profile": first(root, f"{USER_AUTHOR}/hl7:id/@extension"),
        "name": first(root, f"{SUMMARY_AUTHOR}/*/hl7:agentPersonSDS/hl7:name//text()")
        or first(root, f"{SUMMARY_AUTHOR}/*/hl7:agentPerson/hl7:name//text()"),
    }
    missing = []
    if not author["sds_user"]:
        missing.append("the uploading user's SDS user id (ControlActEvent/author/AgentPersonSDS/agentPersonSDS/id)")
    if not author["role_profile"]:
        missing.append("the user's SDS role profile id (ControlActEvent/author/AgentPersonSDS/id)")
    if not first(root, f"{USER_AUTHOR}/hl7:part/hl7:partSDSRole/hl7:id/@extension"):
        missing.append("the user's SDS job role (ControlActEvent/author/AgentPersonSDS/part/partSDSRole/id)")
    if not first(root, f"{SUMMARY_AUTHOR}/hl7:time/@value"):
        missing.append("the time the summary was authored (GPSummary/author/time)")
    if not present(root, f"{SUMMARY_AUTHOR}/*[contains(local-name(), 'AgentPerson')]"):
        missing.append("the clinician who authored it (GPSummary/author/UKCT_MT160018UK01.AgentPersonSDS)")
    location = where(root, "hl7:ControlActEvent/hl7:author")
    if missing:
        verdict.findings.append(Finding.failed(
            "SCR-UPL-003", "The upload must say who made it; missing: " + "; ".join(missing) + ".", location))
        verdict.refuse(errors.INVALID_REQUEST)
    else:
        verdict.findings.append(Finding.passed(
            "SCR-UPL-003", f"Authored by SDS user {author['sds_user']} in role profile {author['role_profile']}.",
            location))
    return author


def _check_consent(root: etree._Element, verdict: Verdict) -> bool:
    """A summary that records the patient's refusal of consent to upload (UKCT_MT144056UK01.Refusal) carries no
    clinical content: PSIS will not store clinical data the patient has refused to share."""
    refused = present(root, REFUSAL)
    clinical = present(root, CLINICAL)
    location = where(root, f"{SUMMARY}/hl7:pertinentInformation2")
    if refused and clinical:
        verdict.findings.append(Finding.failed(
            "SCR-UPL-004", "The summary records that the patient refused consent to upload "
            "(UKCT_MT144056UK01.Refusal, 416308001) and yet carries clinical content; send the refusal on its "
            "own. PSIS answers AE 420 PSIS-30418.", location))
        verdict.refuse(errors.ACCESS_CONTROL, errors.access_not_permitted())
    elif refused:
        verdict.findings.append(Finding.passed("SCR-UPL-004", "The summary records the patient's refusal of "
                                               "consent and carries no clinical content.", location))
    else:
        verdict.findings.append(Finding.passed("SCR-UPL-004", "No refusal of consent is recorded; the summary "
                                               "is shared under the patient's consent.", location))
    return refused
