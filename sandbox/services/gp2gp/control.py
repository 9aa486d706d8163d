"""GP2GP control endpoints at /_sandbox/gp2gp/ (mounted by the GP2GP SERVICE):
  GET /practice      the sandbox sending practice's identity (ODS, party key, ASID, CPA id) as SDS holds it, and
                     patients of the running population with a large record (the extract comes with fragments)
  GET /transfers     the session's transfers: each EHR request answered, its extract, fragments and acknowledgement
"""

from __future__ import annotations

from itertools import islice

from flask import Blueprint, jsonify, request

from sandbox.runtime import current_sandbox
from sandbox.services.gp2gp import practice, records
from sandbox.services.gp2gp.transfers import EXTRACTS
from sandbox.web.sessions import control_session

control = Blueprint("gp2gp-control", __name__)
EXAMPLES = 10


@control.get("/practice")
def sending_practice():
    population = current_sandbox().population
    large = (p for p in population if records.is_large_record(p) and p.gp and p.kind != "invalidated")
    return jsonify(
        ods=practice.PRACTICE_ODS, party_key=practice.PRACTICE_PARTY_KEY, asid=practice.PRACTICE_ASID,
        cpa_id=practice.PRACTICE_CPA_ID, name=practice.PRACTICE_NAME, interactions=list(practice.INTERACTIONS),
        large_record_rule=f"population patients whose index ends in {records.LARGE_RECORD_REMAINDER} "
                          f"({records.ATTACHMENTS_PER_LARGE_RECORD} attachments of "
                          f"{records.ATTACHMENT_BYTES} bytes, each in a COPC_IN000001UK01 fragment)",
        large_record_examples=[{"nhs_number": p.nhs_number, "kind": p.kind, "registered_practice": p.gp}
                               for p in islice(large, EXAMPLES)])


@control.get("/transfers")
def transfers():
    session, wrong = control_session(request)
    if wrong:
        return jsonify(error="bad_request", message=wrong), 400
    stored = current_sandbox().store.state.items(session, EXTRACTS)
    found = [{"extract_message_id": key, **item.value} for key, item in stored.items()]
    return jsonify(session=session, transfers=found, count=len(found))
