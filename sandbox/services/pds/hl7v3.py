"""PDS over Spine core messaging (HL7v3): the interactions PDS answers, from the same records as its FHIR API.

The spine service dispatches each interaction here (SERVICE.hl7v3); a handler reads the patient through
PatientRecords, so a patient updated over HL7v3 is the same patient over FHIR and the other way round.

    QUPA_IN040000UK32  PDS Retrieval Query (sync)       -> QUPA_IN050000UK32 in retrievalQueryResponse
    QUPA_IN000008UK02  PDS Retrieval Query (sync)       -> QUPA_IN000009UK03 in retrievalQueryResponse
    QUPA_IN000008UK05  (the later release of the same)  -> QUPA_IN000009UK03
    QUPA_IN000005UK01  PDS Simple Trace Query (sync)    -> QUPA_IN000007UK01 in traceQueryResponse
    QUPA_IN000006UK02  PDS Advanced Trace (async-express) -> QUPA_IN000011UK02, sent to the requester
    PRPA_IN000203UK03  PDS Update Request (async-reliable) -> MCCI_IN010000UK13 application acknowledgement

A query PDS cannot answer (no match, an invalid or invalidated NHS number) gets QUQI_IN010000UK14 "query act
failed" with AE and the PDS detected-issue codes (2.16.840.1.113883.2.1.3.2.4.17.42), the shape of live PDS's
answer to an unknown NHS number as an NHS GP2GP client's captured answer shows it. Which codes are the sandbox's
own choice is said in requirements.yaml (PDS-HL7-*).
"""

from __future__ import annotations

from sandbox.conformance.findings import Finding, SpineError
from sandbox.messaging.business import InteractionReply, InteractionRequest
from sandbox.services.pds import fixtures
from sandbox.services.pds import hl7v3_patient as patient
from sandbox.services.pds import hl7v3_query as query
from sandbox.services.pds.hl7v3_patient import el
from sandbox.services.pds.hl7v3_reply import add_reasons, query_ack, query_act_failed, reply_message
from sandbox.services.pds.hl7v3_response import advanced_trace_match, pds_response
from sandbox.services.pds.hl7v3_update import handle as update
from sandbox.services.pds.matching import Match
from sandbox.services.pds.records import PatientRecords, Record, for_retrieval
from sandbox.services.pds.search import find_matches

# PDS detected-issue codes (code system 2.16.840.1.113883.2.1.3.2.4.17.42) with the qualifier PDS gives them:
# ER an error, WG a warning that comes with data.
NO_MATCH = ("1", "No match to a Service User record", "ER")
NO_MATCH_RETRIEVAL = ("RT003", "No match to a Service User record", "ER")
MULTIPLE_MATCHES = ("2", "Multiple matches found", "ER")
SENSITIVE = ("9", "Successful retrieval - Information returned limited by sensitivity conditions", "WG")
SENSITIVE_TRACE = ("5", "Match - NHS Number and limited data only returned (sensitivity conditions apply)", "WG")
SUPERSEDED = ("24", "NHS Number supplied as a parameter has been superseded and superseding NHS Number returned",
              "WG")
REQ_SUPERSEDED, REQ_RESTRICTED = "PDS-HL7-005", "PDS-HL7-006"


def _find(request: InteractionRequest, number: str | None) -> Record | None:
    """The current record, following a merge; None when PDS has no live record under that number."""
    if number is None:
        return None
    try:
        return PatientRecords(request.sandbox, request.session).find(number)
    except SpineError:  # unknown, invalidated or an invalid number: PDS answers "no match" to each
        return None


def _as_asked(record: Record, with_history: bool) -> dict:
    """The record as a retrieval returns it: a restricted patient's location data withheld (as PDS FHIR does),
    and without history (ended names and addresses) unless historicDataIndicator asked for it."""
    resource = for_retrieval(record.resource)
    if with_history:
        return resource
    current = dict(resource)
    for field in ("name", "address", "telecom"):
        if field in current:
            kept = [item for item in current[field] if not (item.get("period") or {}).get("end")]
            if kept:
                current[field] = kept
            else:
                del current[field]
    return current


def _notes(request: InteractionRequest, record: Record, sensitive: tuple[str, str, str]) -> list[tuple[str, str, str]]:
    """The warnings a successful answer carries, with evidence for the assessor about what the supplier must do."""
    issues = []
    if record.superseded:
        issues.append(SUPERSEDED)
        request.exchange.add(Finding.info(REQ_SUPERSEDED, f"NHS number {record.requested} is superseded by "
                                          f"{record.nhs_number}: the answer is the superseding record; the supplier "
                                          "must use the new number from now on.", "replacementOf"))
    if record.restricted:
        issues.append(sensitive)
        request.exchange.add(Finding.info(REQ_RESTRICTED, f"Patient {record.nhs_number} is restricted (sensitive): "
                                          "addresses, telecoms and GP are withheld; the supplier must not store or "
                                          "show location data for them.", "confidentialityCode"))
    return issues


# --- retrieval ----------------------------------------------------------------------------------------------------
def retrieval(request: InteractionRequest) -> list[InteractionReply]:
    """QUPA_IN040000UK32 -> QUPA_IN050000UK32 (PdsSuccessfulRetrieval), or QUQI_IN010000UK14 when there is none."""
    def subject(event, record, resource):
        patient.successful_retrieval(el(event, "subject", typeCode="SUBJ"), resource,
                                     superseded=record.requested if record.superseded else None)

    return _retrieve(request, "QUPA_IN050000UK32", subject)


def retrieval_uk02(request: InteractionRequest) -> list[InteractionReply]:
    """QUPA_IN000008UK02 / UK05 -> QUPA_IN000009UK03 (PDSResponse), or QUQI_IN010000UK14 when there is none."""
    return _retrieve(request, "QUPA_IN000009UK03",
                     lambda event, record, resource: pds_response(el(event, "subject", typeCode="SUBJ"), resource))


def _retrieve(request: InteractionRequest, answer: str, subject) -> list[InteractionReply]:
    """A retrieval by NHS number: the record as asked for (`subject` writes it into the answer), or query act
    failed."""
    number, history, judgement = query.retrieval_query(request.wrapper.root)
    request.exchange.add(*judgement.findings)
    record = _find(request, number)
    if record is None:
        return query_act_failed(request, [NO_MATCH, NO_MATCH_RETRIEVAL], "retrievalQueryResponse")
    root, event = reply_message(request, answer)
    add_reasons(event, _notes(request, record, SENSITIVE))
    subject(event, record, _as_asked(record, history))
    query_ack(event, "OK")
    return [InteractionReply(root, wrapper="retrievalQueryResponse")]


# --- traces -------------------------------------------------------------------------------------------------------
def _trace_matches(request: InteractionRequest) -> tuple[list[Match], PatientRecords] | None:
    search, judgement = query.trace_query(request.wrapper.root)
    request.exchange.add(*judgement.findings)
    if search is None:
        return None
    records = PatientRecords(request.sandbox, request.session)
    examples = {n: fixtures.client_example(n, request.sandbox.population) for n in fixtures.CLIENT_EXAMPLE_NUMBERS}
    return find_matches(records, search, {**examples, **records.session_patients()}), records


def simple_trace(request: InteractionRequest) -> list[InteractionReply]:
    """QUPA_IN000005UK01 -> QUPA_IN000007UK01 (PdsTraceMatch) for exactly one match; otherwise query act failed."""
    found = _trace_matches(request)
    if found is None or not found[0]:
        return query_act_failed(request, [NO_MATCH], "traceQueryResponse")
    matches, records = found
    best = [m for m in matches if m.score == matches[0].score]
    if len(best) > 1:
        return query_act_failed(request, [MULTIPLE_MATCHES], "traceQueryResponse")
    record = records.find(best[0].nhs_number)
    root, event = reply_message(request, "QUPA_IN000007UK01")
    add_reasons(event, _notes(request, record, SENSITIVE_TRACE))
    patient.trace_match(el(event, "subject", typeCode="SUBJ"), for_retrieval(record.resource))
    query_ack(event, "OK")
    return [InteractionReply(root, wrapper="traceQueryResponse")]


def advanced_trace(request: InteractionRequest) -> list[InteractionReply]:
    """QUPA_IN000006UK02 (async express) -> QUPA_IN000011UK02 with every match, sent back to the requester."""
    found = _trace_matches(request)
    if found is None or not found[0]:
        return query_act_failed(request, [NO_MATCH], None, to_party=request.from_party)
    matches, records = found
    root, event = reply_message(request, "QUPA_IN000011UK02")
    resources = [for_retrieval(records.find(m.nhs_number).resource) for m in matches[:50]]
    advanced_trace_match(el(event, "subject", typeCode="SUBJ"), resources, [m.score for m in matches[:50]])
    query_ack(event, "OK")
    return [InteractionReply(root, to_party=request.from_party)]


HANDLERS = {
    "QUPA_IN040000UK32": retrieval,
    "QUPA_IN000008UK02": retrieval_uk02,
    "QUPA_IN000008UK05": retrieval_uk02,
    "QUPA_IN000005UK01": simple_trace,
    "QUPA_IN000006UK02": advanced_trace,
    "PRPA_IN000203UK03": update,
}
