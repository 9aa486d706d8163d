"""QUPC_IN160101UK05, the SCR event list query (async express): answered with QUPC_IN160102UK05 listing the
session's latest GP summary for the patient (its document metadata, as PSIS lists it), or PSIS's "case instance
not found" answer when the session holds none."""

from __future__ import annotations

from lxml import etree

from sandbox.conformance.findings import Finding, SpineError
from sandbox.messaging import SPINE_ASID, hl7, new_id
from sandbox.messaging.business import InteractionReply, InteractionRequest
from sandbox.messaging.hl7read import NHS_NUMBER_ROOT, first, where
from sandbox.services.pds.records import PatientRecords
from sandbox.services.scr import errors
from sandbox.services.scr.summaries import StoredSummary, Summaries
from sandbox.synthetic.identifiers import is_valid_nhs_number

RESPONSE = "QUPC_IN160102UK05"
QUERY_NHS_NUMBER = "hl7:ControlActEvent/hl7:query/hl7:nHSNumber/hl7:value"
PSIS_VOCAB = "2.16.840.1.113883.2.1.3.2.4.17.177"  # the PSIS document metadata codes (DCOL, PDMD, DCST...)
GP_SUMMARY_CODE = "196981000000101"  # SNOMED CT: General Practice Summary
SNOMED = "2.16.840.1.113883.2.1.3.2.4.15"
LOCALISATION = "NPFIT:HL7:Localisation"


def handle_query(request: InteractionRequest) -> list[InteractionReply]:
    root = request.wrapper.root
    location = where(root, QUERY_NHS_NUMBER)
    number = first(root, f"{QUERY_NHS_NUMBER}/@extension")
    id_root = first(root, f"{QUERY_NHS_NUMBER}/@root")
    request.exchange.facts["nhs_number"] = number
    if not number or not is_valid_nhs_number(number) or id_root != NHS_NUMBER_ROOT:
        request.exchange.add(Finding.failed(
            "SCR-QRY-001", f"The query must name the patient by a valid NHS number with root {NHS_NUMBER_ROOT} "
            f"(query/nHSNumber/value); saw {number!r} with root {id_root!r}. PSIS answers AE PSIS-35160.",
            location))
        return [_answer(request, "AE", [errors.INVALID_REQUEST, errors.nhs_number_missing_or_incorrect()],
                        [], "QE")]
    try:
        PatientRecords(request.sandbox, request.session).find(number)
    except SpineError as refusal:
        request.exchange.add(Finding.failed(
            "SCR-QRY-001", f"NHS number {number} is not a patient PDS knows (PDS {refusal.code}). PSIS answers AE "
            f"PSIS-35160.", location))
        return [_answer(request, "AE", [errors.INVALID_REQUEST, errors.nhs_number_missing_or_incorrect()],
                        [], "QE")]
    request.exchange.add(Finding.passed("SCR-QRY-001", f"NHS number {number} is valid and known to PDS.", location))
    latest = Summaries(request.sandbox, request.session).latest(number)
    if latest is None:
        # As PSIS answers a patient without a summary: a warning pair and no document list.
        return [_answer(request, "AE", [errors.SUCCESS_WITH_WARNING, errors.case_not_found(number)], [], "ID")]
    return [_answer(request, "AA", [], [latest], "OK")]


def _answer(request: InteractionRequest, ack: str, reasons: list[tuple[str, str]], found: list[StoredSummary],
            response_code: str) -> InteractionReply:
    request.exchange.facts["scr_acknowledgement"] = ack
    message = hl7.new_message(RESPONSE, message_id=new_id(), sender_asid=SPINE_ASID,
                              receiver_asid=request.wrapper.sender_asid or "", ack_type=ack,
                              ack_ref=request.wrapper.message_id or "")
    event = hl7.control_act(message, author_asid=SPINE_ASID)
    for code, text in reasons:
        issue = _sub(_sub(event, "reason", typeCode="RSON"), "justifyingDetectedIssueEvent", classCode="ALRT",
                     moodCode="EVN")
        _sub(issue, "code", code=code, codeSystem=errors.PSIS_CODE_SYSTEM, displayName=text)
    if found:
        _document_list(_sub(event, "subject", typeCode="SUBJ"), found)
    _sub(_sub(event, "queryAck", type="QueryAck"), "queryResponseCode", code=response_code)
    return InteractionReply(message=message)


def _document_list(subject: etree._Element, found: list[StoredSummary]) -> None:
    collection = _sub(subject, "DocumentCollection", classCode="OBS", moodCode="EVN")
    _sub(collection, "code", code="DCOL", codeSystem=PSIS_VOCAB)
    for summary in found:
        meta = _sub(_sub(collection, "component", typeCode="COMP"), "pSISDocMetaData", classCode="OBS",
                    moodCode="EVN")
        _sub(meta, "availabilityTime", value=summary.received)
        _sub(meta, "code", code="PDMD", codeSystem=PSIS_VOCAB)
        _sub(meta, "effectiveTime", value=summary.effective_time or summary.received)
        _sub(meta, "id", root=summary.document_id)
        etree.SubElement(meta, f"{{{LOCALISATION}}}messageType", root="2.16.840.1.113883.2.1.3.2.4.18.17",
                         extension="REPC_MT150007UK05")
        state = _sub(_sub(meta, "component1", typeCode="COMP"), "documentState", classCode="OBS", moodCode="EVN")
        _sub(state, "code", code="DCST", codeSystem=PSIS_VOCAB)
        _sub(state, "value", code="1", codeSystem="2.16.840.1.113883.2.1.3.2.4.17.59", displayName="Normal")
        size = _sub(_sub(meta, "component14", typeCode="COMP"), "estDocSize", classCode="OBS", moodCode="EVN")
        _sub(size, "code", code="ESTD", codeSystem=PSIS_VOCAB)
        _sub(size, "value", value=str(summary.size))
        document = _sub(_sub(meta, "component3", typeCode="COMP"), "documentMetaData", classCode="DOCCLIN",
                        moodCode="EVN")
        _sub(document, "code", code=GP_SUMMARY_CODE, codeSystem=SNOMED)
        _sub(document, "effectiveTime", value=summary.effective_time or summary.received)
        _sub(document, "title").text = "General Practice Summary"
        author = _sub(_sub(document, "author2", typeCode="AUT", contextControlCode="AP"), "documentAuthor",
                      classCode="AGNT")
        if summary.author_sds_user:
            _sub(author, "id", root=hl7.SDS_USER_ROOT, extension=summary.author_sds_user)
        if summary.author_role_profile:
            _sub(author, "id", root=hl7.SDS_ROLE_PROFILE_ROOT, extension=summary.author_role_profile)
        person = _sub(author, "agentPlayingAuthor", classCode="PSN", determinerCode="INSTANCE")
        _sub(_sub(person, "name"), "family").text = summary.author_name or "Unknown"
        quality = _sub(_sub(meta, "component5", typeCode="COMP"), "documentDQState", classCode="OBS",
                       moodCode="EVN")
        _sub(quality, "code", code="DQST", codeSystem=PSIS_VOCAB)
        _sub(quality, "value", code="NORMAL", codeSystem="2.16.840.1.113883.2.1.3.2.4.17.189")
    record = _sub(_sub(collection, "component12", typeCode="COMP"), "careRecordState", classCode="OBS",
                  moodCode="EVN")
    _sub(record, "code", code="CRST", codeSystem=PSIS_VOCAB)
    _sub(record, "value", code="NORMAL")
    patient = _sub(_sub(collection, "recordTarget", typeCode="RCT"), "patient", classCode="PAT")
    _sub(patient, "id", root=NHS_NUMBER_ROOT, extension=found[0].nhs_number)


def _sub(parent: etree._Element, name: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{hl7.HL7}}}{name}", attrs)
