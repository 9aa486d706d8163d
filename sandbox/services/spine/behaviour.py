"""Spine behavioural checks over a session's history: message ids are unique, a retry re-uses the MessageId of the
message it re-sends, a refused message is not re-sent unchanged, and a retriable fault is retried.

Each exchange a supplier sends is indexed by its transport MessageId (eb:MessageId or wsa:MessageID), the id of
its HL7 message and the digest of its body; a check looks back at the session's earlier exchanges under those keys.
"""

from __future__ import annotations

import hashlib
import re

from lxml import etree

from sandbox.conformance.findings import Finding
from sandbox.conformance.history import History, HistoryCheckSet
from sandbox.conformance.parsing import Malformed, parse_xml
from sandbox.journal.exchange import Exchange
from sandbox.services.spine import errors
from sandbox.services.spine.inbound import Inbound, endpoint_of
from sandbox.services.spine.inbound import parse as parse_inbound
from sandbox.web import current

history = HistoryCheckSet("spine")

OWN_OPERATIONS = ("deliver", "delivery-outcome")  # what the sandbox sent, not the supplier
TRANSIENT_STATUSES = {502, 503, 504}
_NEGATIVE_ACK = re.compile(rb'<(?:[A-Za-z0-9_]+:)?acknowledgement\b[^>]*typeCode="A[ER]"')
RETRY_WINDOW_S = 24 * 3600.0  # later than this, a message with the same HL7 id is not a retry


def _message(ex: Exchange) -> Inbound | None:
    if ex.operation in OWN_OPERATIONS or endpoint_of(ex.request.path) is None:
        return None
    live = current.exchange()
    if live is not None and live.id == ex.id and live.facts.get("message") is not None:
        return live.facts["message"]
    try:
        return parse_inbound(ex.request.path, ex.request.headers, ex.request.body)
    except Exception:  # a journaled request the parser cannot read: no history keys
        return None


def _digest(ex: Exchange) -> str:
    return hashlib.sha256(ex.request.body).hexdigest()


def outcome(ex: Exchange) -> str:
    """"ok", "retriable" (a fault the sender should retry: SOAP fault 200/206/208, 502/503/504) or "final" (an
    ebXML MessageError, any other SOAP fault, any other error, an HL7 application acknowledgement AE/AR)."""
    status = ex.response.status
    if status < 400:
        # A synchronous answer may be a business refusal: an HL7 acknowledgement AE or AR in the SOAP body.
        return "final" if _NEGATIVE_ACK.search(ex.response.body[:20000]) else "ok"
    if status in TRANSIENT_STATUSES:
        return "retriable"
    codes = _fault_codes(ex.response.body)
    if codes and all(code in errors.RETRIABLE_TMS_CODES for code in codes):
        return "retriable"
    return "final"


def _fault_codes(body: bytes) -> list[str]:
    if b"Fault" not in body[:4000]:
        return []
    try:
        root = parse_xml(body)
    except Malformed:
        return []
    return [e.text.strip() for e in root.iter(f"{{{errors.NASP}}}errorCode") if e.text]


@history.key(newest_only=True)  # the checks ask only for the newest earlier message with the id
def keys(ex: Exchange):
    message = _message(ex)
    if message is None:
        return
    if message.message_id:
        yield f"message-id:{message.message_id.upper()}"
    if message.wrapper is not None and message.wrapper.message_id and message.kind == "message":
        yield f"hl7-id:{message.wrapper.message_id.upper()}"


@history.register("SPINE-EBX-007", "SPINE-BEH-002", "SPINE-BEH-003")
def message_ids_are_unique(ex: Exchange, past: History):
    message = _message(ex)
    if message is None or not message.message_id:
        return
    mid = message.message_id.upper()
    earlier = past.related(f"message-id:{mid}")
    where = "eb:MessageId" if message.transport == "ebxml" else "wsa:MessageID"
    if not earlier:
        yield Finding.passed("SPINE-EBX-007", f"MessageId {message.message_id} is new in this session.", where)
        return
    previous = earlier[0]
    if _digest(previous) != _digest(ex):
        yield Finding.failed("SPINE-EBX-007", f"MessageId {message.message_id} was already used by exchange "
                             f"{previous.id} for a different message: every new message needs a new MessageId; "
                             "only a re-send of the same message re-uses it.", where)
        return
    result = outcome(previous)
    yield Finding.passed("SPINE-EBX-007", f"MessageId {message.message_id} is re-used to re-send exchange "
                         f"{previous.id} unchanged.", where)
    if result == "final":
        yield Finding.failed("SPINE-BEH-002", f"Exchange {previous.id} refused this message (HTTP "
                             f"{previous.response.status}, a final error); re-sending it unchanged cannot succeed: "
                             "correct it (a new message with a new MessageId) or report the error.", where)
    elif result == "retriable":
        yield Finding.passed("SPINE-BEH-003", f"The retriable fault of exchange {previous.id} (HTTP "
                             f"{previous.response.status}) is retried with the same MessageId.", where)


@history.register("SPINE-BEH-001", "SPINE-BEH-002")
def retries_reuse_the_message_id(ex: Exchange, past: History):
    message = _message(ex)
    if message is None or message.kind != "message" or message.wrapper is None or not message.wrapper.message_id:
        return
    hl7_id = message.wrapper.message_id.upper()
    earlier = [e for e in past.related(f"hl7-id:{hl7_id}") if ex.started_at - e.started_at <= RETRY_WINDOW_S]
    if not earlier:
        return
    previous = earlier[0]
    before = _message(previous)
    if before is None or not before.message_id or not message.message_id:
        return
    if before.message_id.upper() == message.message_id.upper():
        return  # the same message re-sent: judged by message_ids_are_unique
    result = outcome(previous)
    where = "eb:MessageId" if message.transport == "ebxml" else "wsa:MessageID"
    if result == "retriable":
        yield Finding.failed("SPINE-BEH-001", f"HL7 message {hl7_id} is re-sent after the retriable fault of "
                             f"exchange {previous.id} with a new MessageId {message.message_id} (it was "
                             f"{before.message_id}): a retry must re-use the MessageId, or Spine cannot eliminate "
                             "the duplicate.", where)
    elif result == "final" and _same_payload(previous, ex):
        yield Finding.failed("SPINE-BEH-002", f"HL7 message {hl7_id} was refused by exchange {previous.id} (HTTP "
                             f"{previous.response.status}) and is sent again unchanged under a new MessageId: "
                             "correct the message before sending it again.", where)
    else:
        yield Finding.failed("SPINE-BEH-001", f"HL7 message {hl7_id} was already sent in exchange {previous.id} "
                             f"(MessageId {before.message_id}); a new transmission of it needs a new HL7 id, a "
                             "re-send the same MessageId.", where)


def _same_payload(first: Exchange, second: Exchange) -> bool:
    a, b = _message(first), _message(second)
    if a is None or b is None or a.hl7 is None or b.hl7 is None:
        return False
    return _canonical(a.hl7) == _canonical(b.hl7)


def _canonical(xml: bytes) -> bytes:
    try:
        return etree.tostring(parse_xml(xml), method="c14n")
    except (Malformed, ValueError):
        return xml
