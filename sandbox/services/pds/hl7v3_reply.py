"""The envelope of every PDS HL7v3 answer: addressed back to the requester, acknowledging its message, authored by
Spine; and QUQI_IN010000UK14, the answer to a query PDS cannot answer."""

from __future__ import annotations

from lxml import etree

from sandbox.messaging import SPINE_ASID, new_id
from sandbox.messaging.business import InteractionReply, InteractionRequest
from sandbox.messaging.hl7 import SPINE_ERROR_CODE_SYSTEM, control_act, new_message
from sandbox.services.pds.hl7v3_patient import el

QUERY_ACT_FAILED = "QUQI_IN010000UK14"


def reply_message(request: InteractionRequest, interaction: str, *, ack_type: str = "AA",
                  version_code: str | None = None) -> tuple[etree._Element, etree._Element]:
    """The answer's root and its ControlActEvent, addressed back to the requester and acknowledging its message."""
    root = new_message(interaction, message_id=new_id(), sender_asid=SPINE_ASID,
                       receiver_asid=request.wrapper.sender_asid or "", ack_type=ack_type,
                       ack_ref=request.wrapper.message_id or "", version_code=version_code)
    return root, control_act(root, author_asid=SPINE_ASID)


def add_reasons(event: etree._Element, issues: list[tuple[str, str, str]]) -> None:
    for code, display, qualifier in issues:
        issue = el(el(event, "reason", typeCode="RSON"), "justifyingDetectedIssueEvent", classCode="ALRT",
                   moodCode="EVN")
        el(el(issue, "code", code=code, codeSystem=SPINE_ERROR_CODE_SYSTEM, displayName=display), "qualifier",
           code=qualifier)


def query_ack(event: etree._Element, code: str) -> None:
    el(el(event, "queryAck", type="QueryAck"), "queryResponseCode", code=code)


def query_act_failed(request: InteractionRequest, issues: list[tuple[str, str, str]], wrapper: str | None,
                     to_party: str | None = None) -> list[InteractionReply]:
    """QUQI_IN010000UK14: the query could not be answered (AE, the PDS codes as reasons, queryResponseCode ID)."""
    root, event = reply_message(request, QUERY_ACT_FAILED, ack_type="AE")
    add_reasons(event, issues)
    query_ack(event, "ID")
    return [InteractionReply(root, wrapper=wrapper, to_party=to_party)]
