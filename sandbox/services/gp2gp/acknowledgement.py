"""MCCI_IN010000UK13 from the requesting practice: its application acknowledgement of the extract the sandbox
practice sent — AA when integrated, AE with a GP2GP error code when not. Recorded against the transfer; nothing is
sent back."""

from __future__ import annotations

from sandbox.conformance.findings import Finding
from sandbox.messaging.business import InteractionReply, InteractionRequest
from sandbox.messaging.hl7read import first, where
from sandbox.services.gp2gp import errors
from sandbox.services.gp2gp.practice import PRACTICE_ASID
from sandbox.services.gp2gp.transfers import Transfers

DETAIL = "hl7:acknowledgement/hl7:acknowledgementDetail/hl7:code"
REASON = "hl7:ControlActEvent/hl7:reason/hl7:justifyingDetectedIssueEvent/hl7:code"


def handle_acknowledgement(request: InteractionRequest) -> list[InteractionReply]:
    wrapper = request.wrapper
    root = wrapper.root
    transfers = Transfers(request.sandbox, request.session)
    ref_location = where(root, "hl7:acknowledgement/hl7:messageRef/hl7:id")
    extract = transfers.extract(wrapper.ack_ref) if wrapper.ack_ref else None
    if extract is None and PRACTICE_ASID not in wrapper.receiver_asids:
        # Not for the sandbox practice (another service's acknowledgement): not GP2GP's to judge.
        request.exchange.add(Finding.info(
            "GP2GP-ACK-001", f"MCCI_IN010000UK13 addressed to {', '.join(wrapper.receiver_asids) or 'no ASID'}, not "
            f"to the sandbox practice ({PRACTICE_ASID}), and acknowledging no extract it sent: not judged as GP2GP.",
            ref_location))
        return []
    if extract is None:
        request.exchange.add(Finding.failed(
            "GP2GP-ACK-001", f"The acknowledgement must refer (acknowledgement/messageRef/id/@root) to the message "
            f"id of an EHR extract the sandbox practice sent in this session; saw {wrapper.ack_ref!r}.",
            ref_location))
    else:
        request.exchange.add(Finding.passed("GP2GP-ACK-001", f"Acknowledges the extract {wrapper.ack_ref} for NHS "
                                            f"number {extract['nhs_number']}.", ref_location))
    type_location = where(root, "hl7:acknowledgement/@typeCode")
    code = first(root, f"{DETAIL}/@code") or first(root, f"{REASON}/@code")
    if wrapper.ack_type == "AA":
        request.exchange.add(Finding.passed("GP2GP-ACK-002", "The extract is acknowledged AA (integrated).",
                                            type_location))
    elif wrapper.ack_type == "AE" and code in errors.CODES:
        request.exchange.add(Finding.passed(
            "GP2GP-ACK-002", f"The extract is acknowledged AE with GP2GP error {code} ({errors.CODES[code]}).",
            where(root, DETAIL)))
    else:
        request.exchange.add(Finding.failed(
            "GP2GP-ACK-002", f"The extract is acknowledged AA, or AE with a GP2GP error code "
            f"({', '.join(errors.CODES)}) in acknowledgementDetail/code, code system "
            f"{errors.GP2GP_ERROR_CODE_SYSTEM}; saw typeCode {wrapper.ack_type!r} and code {code!r}.",
            type_location))
    if extract is not None and wrapper.ack_ref:
        ack = {"type": wrapper.ack_type, "code": code, "message_id": wrapper.message_id}
        request.exchange.write_with_record(lambda: transfers.acknowledge(wrapper.ack_ref or "", ack))
    return []
