"""What every Spine check shares: the check set, the limits and patterns, and how a problem the messaging
library found becomes a finding under its requirement (and a refusal where the live Spine refuses)."""

from __future__ import annotations

import email.message
import re
from collections.abc import Iterator

from sandbox.conformance.checks import CheckContext, CheckSet
from sandbox.conformance.findings import Finding
from sandbox.messaging import Problem
from sandbox.services.spine import errors
from sandbox.services.spine.inbound import ENDPOINT_OF_PATTERN, Inbound

checks = CheckSet("spine")

MAX_MESSAGE_BYTES = 5_000_000  # Spine's limit on one HTTP request; larger content goes by large messaging
UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
VERSION_CODE = re.compile(r"^V?3NPfIT\d+(\.\d+)*$")
TO_PARTY_MSH = "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"
NEXT_MSH = "urn:oasis:names:tc:ebxml-msg:actor:nextMSH"
OFFLINE = "not checked offline: it depends on the SDS registrations of a session (send the message to the sandbox)"

# Which requirement a problem the messaging library found belongs to, by its code (then by where it is).
PROBLEM_REQUIREMENTS = {
    "mime.no-start": "SPINE-MIME-002", "mime.content-id": "SPINE-MIME-006", "mime.too-large": "SPINE-MIME-005",
    "mime.too-many-parts": "SPINE-MIME-005", "mime.unknown-charset": "SPINE-MIME-004",
    "ebxml.header-content-type": "SPINE-MIME-003", "ebxml.header-not-first": "SPINE-MIME-003",
    "ebxml.start-missing": "SPINE-MIME-002", "ebxml.payload-content-type": "SPINE-MIME-004",
    "ebxml.manifest-href": "SPINE-EBX-010", "ebxml.manifest-unresolved": "SPINE-EBX-010",
    "ebxml.manifest-payload": "SPINE-EBX-010", "ebxml.no-manifest": "SPINE-EBX-010",
    "ebxml.no-payload": "SPINE-EBX-010", "ebxml.unreferenced-part": "SPINE-EBX-010",
    "ebxml.hl7ebxml-namespace": "SPINE-EBX-010", "ebxml.payload-empty": "SPINE-EBX-010",
    "ebxml.payload-not-xml": "SPINE-HL7-001", "ebxml.party-type": "SPINE-EBX-002",
    "ebxml.message-id": "SPINE-EBX-006", "ebxml.timestamp": "SPINE-EBX-008", "ebxml.version": "SPINE-EBX-012",
    "ebxml.must-understand": "SPINE-EBX-012", "ebxml.empty-error-list": "SPINE-EBX-013",
    "soap.message-id": "SPINE-SOAP-002", "soap.action-mismatch": "SPINE-SOAP-003", "soap.asid": "SPINE-SOAP-005",
    "hl7.id": "SPINE-HL7-002", "hl7.creation-time": "SPINE-HL7-003", "hl7.interaction-id": "SPINE-HL7-004",
    "hl7.version-code": "SPINE-HL7-005", "hl7.processing-code": "SPINE-HL7-006",
    "hl7.processing-mode": "SPINE-HL7-006", "hl7.accept-ack": "SPINE-HL7-007", "hl7.asid": "SPINE-HL7-008",
}
MISSING_ELEMENT_REQUIREMENTS = (("eb:From", "SPINE-EBX-002"), ("eb:To", "SPINE-EBX-003"),
                                ("eb:CPAId", "SPINE-EBX-004"), ("eb:ConversationId", "SPINE-EBX-005"),
                                ("eb:MessageId", "SPINE-EBX-006"), ("eb:Timestamp", "SPINE-EBX-008"),
                                ("eb:Service", "SPINE-EBX-009"), ("eb:Action", "SPINE-EBX-009"),
                                ("eb:Acknowledgment", "SPINE-EBX-013"), ("wsa:MessageID", "SPINE-SOAP-002"),
                                ("wsa:Action", "SPINE-SOAP-003"), ("wsa:To", "SPINE-SOAP-004"))
# Problems after which the Spine cannot accept the message at all (it cannot tell what or whose it is).
REFUSING = {"ebxml.missing", "ebxml.not-soap", "ebxml.header-not-xml", "ebxml.manifest-unresolved",
            "ebxml.no-payload", "ebxml.payload-empty", "ebxml.payload-not-xml", "soap.missing", "soap.no-body",
            "soap.not-envelope", "soap.malformed", "soap.body-namespace", "hl7.malformed", "hl7.namespace",
            "mime.too-large", "mime.too-many-parts", "mime.not-related", "mime.boundary", "mime.body",
            "messaging.unreadable", "messaging.defect", "xml.doctype", "xml.too-deep", "xml.too-large"}


def message(ctx: CheckContext) -> Inbound:
    return ctx.facts["message"]


def requirement_of(problem: Problem, transport: str) -> str:
    if problem.code in PROBLEM_REQUIREMENTS:
        return PROBLEM_REQUIREMENTS[problem.code]
    if problem.code in ("ebxml.missing", "soap.missing"):
        for element, requirement in MISSING_ELEMENT_REQUIREMENTS:
            if element in problem.where or element in problem.message:
                return requirement
    prefix = problem.code.split(".")[0]
    if prefix == "hl7":
        return "SPINE-HL7-001"
    if prefix == "mime":
        return "SPINE-MIME-001"
    return "SPINE-SOAP-001" if transport == "soap" else "SPINE-EBX-001"


def problem_finding(problem: Problem, inbound: Inbound, *, fatal: bool = False) -> Finding:
    """A problem the messaging library found, as a finding; a refusal where the Spine would refuse (always when
    `fatal`: the message could not be read at all)."""
    requirement = requirement_of(problem, inbound.transport)
    reject = None
    missing_identity = problem.code in ("hl7.id", "hl7.interaction-id") and "missing" in problem.message
    if fatal or problem.code in REFUSING or missing_identity:  # without its id or interaction nothing answers it
        code = "MimeProblem" if problem.code.startswith(("mime.", "ebxml.manifest", "ebxml.no-payload")) \
            else "OtherXml"
        reject = errors.refusal(inbound.transport, code, problem.message, problem.where)
    if problem.code == "mime.no-start":
        return Finding.warning(requirement, problem.message, problem.where)
    return Finding.failed(requirement, problem.message, problem.where, reject=reject)


def content_type(value: str) -> email.message.Message | None:
    holder = email.message.Message()
    try:
        holder["Content-Type"] = value
        holder.get_params()
    except Exception:  # a header the email package cannot read: judged by the library's problems
        return None
    return holder


def etree_name(wrapper) -> str:
    tag = wrapper.root.tag if wrapper.root is not None else ""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else "?"


def endpoint_findings(inbound: Inbound) -> Iterator[Finding]:
    """Whether the message came to the endpoint of its pattern (SPINE-EBX-014), for ebXML and SOAP alike."""
    interaction = inbound.interaction
    if interaction is None or inbound.endpoint is None:
        return
    expected = ENDPOINT_OF_PATTERN[interaction.pattern]
    served = "forward" if interaction.pattern.startswith("forward") else interaction.pattern
    if inbound.endpoint == served:
        yield Finding.passed("SPINE-EBX-014", f"{interaction.id} ({interaction.pattern}) is sent to {expected}.",
                             "path")
    elif interaction.pattern == "sync" or inbound.endpoint == "sync":
        yield Finding.failed("SPINE-EBX-014", f"{interaction.id} is {interaction.pattern}: send it to {expected} "
                             f"(the address SDS gives), not this {inbound.endpoint} endpoint.", "path",
                             reject=errors.refusal(inbound.transport, "NotSupported",
                                                   f"{interaction.id} is not accepted at this endpoint", "path"))
    else:
        yield Finding.failed("SPINE-EBX-014", f"{interaction.id} is {interaction.pattern}: send it to {expected} "
                             f"(the address SDS gives for it), not the {inbound.endpoint} endpoint.", "path")
