"""Judging the supplier's answers: what an HTTP answer or a POSTed acknowledgement means for a delivery, and the
findings over the supplier's behaviour (SPINE-REL-*)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sandbox.conformance.findings import Finding
from sandbox.messaging import MessagingError, ebxml
from sandbox.services.spine import outbox

if TYPE_CHECKING:
    from sandbox.services.spine import sending

# Requirement ids (sandbox/services/spine/requirements.yaml, the "# spine-out" block).
REQ_ACK_IN_TIME = "SPINE-REL-101"
REQ_ACK_ONCE = "SPINE-REL-102"
REQ_DUPLICATE_ANSWER = "SPINE-REL-103"
REQ_NO_NACK = "SPINE-REL-104"
REQ_SAME_MESSAGE_ID = "SPINE-REL-105"
REQ_EXPRESS_ACCEPTED = "SPINE-REL-106"
REQUIREMENTS = (REQ_ACK_IN_TIME, REQ_ACK_ONCE, REQ_DUPLICATE_ANSWER, REQ_NO_NACK, REQ_SAME_MESSAGE_ID,
                REQ_EXPRESS_ACCEPTED)


@dataclass
class Verdict:
    """What one answer means for the delivery."""

    kind: str  # ack | nack | no-ack | accepted | refused
    detail: str
    findings: list[Finding] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)


def parse_answer(headers: list[tuple[str, str]], body: bytes):
    """The ebXML header of an HTTP answer, or None when it holds none (empty, not XML, no eb:MessageHeader)."""
    if not body.strip():
        return None
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "text/xml")
    try:
        return ebxml.parse(content_type, body).header
    except MessagingError:
        return None


def answer_of(header) -> tuple[str | None, tuple | None]:
    """(the MessageId an acknowledgement acknowledges, or None; the eb:Errors of a MessageError, or None)."""
    ack_of = getattr(header, "acknowledgment_of", None)
    if not ack_of and getattr(header, "is_acknowledgment", False):
        ack_of = header.ref_to_message_id
    errors = tuple(getattr(header, "errors", ()) or ())
    if not ack_of and (errors or getattr(header, "is_message_error", False)):
        return None, errors
    return ack_of, None


def judge_answer(record: dict, result: sending.HttpResult, number: int) -> Verdict:
    where = f"HTTP response of attempt {number} from {record['endpoint']}"
    if result.error:
        return Verdict("no-ack" if record["reliable"] else "refused", f"{result.error}: {result.detail}")
    header = parse_answer(result.headers, result.body)
    message_id = record["message_id"]
    findings: list[Finding] = []
    if header is not None:
        ack_of, errors = answer_of(header)
        errors = errors or ()
        if ack_of:
            if ack_of == message_id:
                return Verdict("ack", f"acknowledged in the HTTP response (HTTP {result.status})")
            findings.append(Finding.failed(
                REQ_ACK_ONCE, f"The acknowledgement in the HTTP response names RefToMessageId {ack_of}; the "
                f"message sent was MessageId {message_id}. It does not acknowledge this message.",
                f"{where}: eb:Acknowledgment/eb:RefToMessageId"))
        elif errors and header.ref_to_message_id in (message_id, None):
            described = [error_dict(e) for e in errors]
            if any((e["severity"] or "Error").lower() == "error" for e in described):  # warnings alone: no NACK
                return Verdict("nack", f"ebXML MessageError in the HTTP response (HTTP {result.status}): "
                               + errors_text(errors), errors=described)
    if not record["reliable"]:
        if 200 <= result.status < 300:
            return Verdict("accepted", f"HTTP {result.status}", findings)
        return Verdict("refused", f"HTTP {result.status}", findings)
    if 200 <= result.status < 300:
        detail = f"HTTP {result.status} without an acknowledgement (one may still be POSTed to the sandbox)"
    else:
        detail = f"HTTP {result.status} without an acknowledgement"
    return Verdict("no-ack", detail, findings)


def judge_outcome(record: dict, verdict: Verdict, number: int) -> list[Finding]:
    """Findings once an attempt's answer settled the delivery (or showed how the supplier treats a re-send)."""
    found: list[Finding] = []
    mid = record["message_id"]
    where = f"HTTP response of attempt {number} from {record['endpoint']}"
    if not record["reliable"]:
        if verdict.kind == "accepted":
            found.append(Finding.passed(REQ_EXPRESS_ACCEPTED, f"The express message {mid} "
                                        f"({record['interaction']}) was accepted: {verdict.detail}.", where))
        else:
            found.append(Finding.failed(REQ_EXPRESS_ACCEPTED, f"The express message {mid} ({record['interaction']}) "
                                        f"was not accepted: {verdict.detail}; an MHS answers HTTP 202 (or 200).",
                                        where))
        return found
    if verdict.kind == "ack":
        found.append(_ack_in_time(record, number, "in the HTTP response", where))
        found.append(Finding.passed(REQ_NO_NACK, f"The well-formed message {mid} was acknowledged, not refused.",
                                    where))
        if number > 1:
            found.append(Finding.passed(REQ_DUPLICATE_ANSWER, f"The re-sent message {mid} (attempt {number}) was "
                                        "answered with an acknowledgement.", where))
    elif verdict.kind == "nack":
        found.append(Finding.failed(
            REQ_NO_NACK, f"The supplier answered the well-formed message {mid} ({record['interaction']}) with an "
            f"ebXML MessageError: {verdict.detail}. A message Spine sends is acknowledged; it is not retried.",
            f"{where}: eb:ErrorList"))
        if number > 1:
            found.append(Finding.failed(
                REQ_DUPLICATE_ANSWER, f"The re-sent message {mid} (attempt {number}, the same MessageId) was "
                "answered with a MessageError; a duplicate is answered as the original was (acknowledged), "
                "not refused.", f"{where}: eb:ErrorList"))
    return found


def _ack_in_time(record: dict, number: int, how: str, where: str) -> Finding:
    mid, interval = record["message_id"], record["retry_interval_s"]
    if number <= 1:
        return Finding.passed(REQ_ACK_IN_TIME, f"The reliable message {mid} ({record['interaction']}) was "
                              f"acknowledged {how}, at the first attempt.", where)
    return Finding.warning(REQ_ACK_IN_TIME, f"The reliable message {mid} ({record['interaction']}) was acknowledged "
                           f"{how} only at attempt {number}: the earlier attempt(s) got no acknowledgement within the "
                           f"retry interval ({interval:g} s), so Spine sent it again.", where)


def judge_posted_answer(record: dict, before: str, is_ack: bool, errors: tuple, now: float,
                         from_party: str | None = None) -> list[Finding]:
    mid = record["message_id"]
    where = ack_where(is_ack)
    number = len(record["attempts"])
    found: list[Finding] = []
    if from_party and from_party != record["to_party"]:
        found.append(Finding.failed(
            REQ_ACK_ONCE, f"MessageId {mid} was sent to party {record['to_party']} but the "
            f"{'acknowledgement' if is_ack else 'MessageError'} comes from party {from_party}; only the receiving "
            "MHS acknowledges a message.", "eb:MessageHeader/eb:From/eb:PartyId"))
    if not record["reliable"] and is_ack:
        return [*found, Finding.warning(
            REQ_ACK_ONCE, f"MessageId {mid} was sent express (no eb:AckRequested): it is not acknowledged.", where)]
    return found + _judge_posted(record, before, is_ack, errors, mid, where, number)


def _judge_posted(record: dict, before: str, is_ack: bool, errors: tuple, mid: str, where: str,
                  number: int) -> list[Finding]:
    if before == outbox.DELIVERED and is_ack:
        return [Finding.failed(REQ_ACK_ONCE, f"MessageId {mid} was acknowledged already "
                               f"({outcome_detail(record)}); this is a second acknowledgement of the same message.",
                               where)]
    if before in (outbox.FAILED, outbox.GIVEN_UP):
        return [Finding.failed(REQ_ACK_IN_TIME, f"An {'acknowledgement' if is_ack else 'MessageError'} for "
                               f"MessageId {mid} arrived after {'the sandbox had given up on it' if before == outbox.GIVEN_UP else 'it had failed'} "
                               f"({outcome_detail(record)}); it must come within the retry interval "
                               f"({record['retry_interval_s']:g} s).", where)]
    if is_ack:
        found = [_ack_in_time(record, max(1, number), "by a POSTed acknowledgement", where),
                 Finding.passed(REQ_NO_NACK, f"The well-formed message {mid} was acknowledged, not refused.", where)]
        if number > 1:
            found.append(Finding.passed(REQ_DUPLICATE_ANSWER, f"The re-sent message {mid} (attempt {number}) was "
                                        "answered with an acknowledgement.", where))
        return found
    return [Finding.failed(REQ_NO_NACK, f"The supplier answered the well-formed message {mid} "
                           f"({record['interaction']}) with an ebXML MessageError: {errors_text(errors)}. A message "
                           "Spine sends is acknowledged; it is not retried.", "eb:ErrorList")]


def outcome_detail(record: dict) -> str:
    outcome = record.get("outcome") or {}
    return outcome.get("detail") or record["status"]


def ack_where(is_ack) -> str:
    return "eb:Acknowledgment/eb:RefToMessageId" if is_ack else "eb:MessageHeader/eb:MessageData/eb:RefToMessageId"


def error_dict(error) -> dict:
    return {"code": getattr(error, "code", None), "severity": getattr(error, "severity", None),
            "description": getattr(error, "description", None)}


def errors_text(errors) -> str:
    described = [e if isinstance(e, dict) else error_dict(e) for e in errors]
    return "; ".join(f"{e['code']} ({e['description'] or 'no description'})" for e in described) or "no eb:Error"
