"""The synchronous pattern's SOAP envelope and WS-Addressing headers, and the sender and receiver ASIDs."""

from __future__ import annotations

from collections.abc import Iterator

from sandbox.conformance.checks import CheckContext, RequestView
from sandbox.conformance.findings import Finding
from sandbox.messaging import SPINE_ASID
from sandbox.services.spine import errors
from sandbox.services.spine.checks.common import (
    OFFLINE,
    UUID,
    checks,
    content_type,
    endpoint_findings,
    etree_name,
    message,
)
from sandbox.services.spine.inbound import Inbound


@checks.register("SPINE-SOAP-001", "SPINE-SOAP-002", "SPINE-SOAP-003", "SPINE-SOAP-004", "SPINE-EBX-014")
def soap_envelope(req: RequestView, ctx: CheckContext):
    inbound = message(ctx)
    if inbound.transport != "soap":
        return
    media = inbound.content_type.split(";")[0].strip().lower()
    holder = content_type(inbound.content_type)
    charset = str(holder.get_param("charset") or "") if holder is not None else ""
    if media == "text/xml":
        yield Finding.passed("SPINE-SOAP-001", "The request is text/xml (SOAP 1.1).", "header:Content-Type")
        if charset and charset.lower() not in ("utf-8", "utf8"):
            yield Finding.failed("SPINE-SOAP-001", f"The request is {charset}; Spine messages are UTF-8.",
                                 "header:Content-Type")
    else:
        yield Finding.failed("SPINE-SOAP-001", f"A synchronous request is SOAP 1.1, Content-Type text/xml; "
                             f"charset=UTF-8; it is {media or '(none)'!r}.", "header:Content-Type")
    soap = inbound.soap
    if soap is None:
        return
    base = "/soap:Envelope/soap:Header"
    if soap.message_id and UUID.match(soap.message_id):
        if soap.message_id == soap.message_id.upper():
            yield Finding.passed("SPINE-SOAP-002", f"wsa:MessageID uuid:{soap.message_id} is an upper-case UUID.",
                                 f"{base}/wsa:MessageID")
        else:
            yield Finding.warning("SPINE-SOAP-002", f"wsa:MessageID {soap.message_id} is lower-case; Spine writes "
                                  "message ids in upper case.", f"{base}/wsa:MessageID")
    if soap.to:
        yield Finding.passed("SPINE-SOAP-004", f"wsa:To is {soap.to}.", f"{base}/wsa:To")
    else:
        yield Finding.failed("SPINE-SOAP-004", "wsa:To is missing or empty: address the request to the endpoint SDS "
                             "gives for the interaction.", f"{base}/wsa:To")
    if not soap.action:
        return
    interaction = inbound.interaction
    where = f"{base}/wsa:Action"
    if interaction is None:
        yield Finding.failed("SPINE-SOAP-003", f"wsa:Action {soap.action!r} names no interaction Spine knows; "
                             "expected <service>/<interaction id>, e.g. "
                             "urn:nhs:names:services:pdsquery/QUPA_IN040000UK32.", where,
                             reject=errors.soap_fault(errors.NOT_ACCEPTED, f"Unknown interaction {soap.action}",
                                                      where))
        return
    if soap.action.strip() != interaction.soap_action:
        yield Finding.failed("SPINE-SOAP-003", f"wsa:Action {soap.action!r} must be {interaction.soap_action} "
                             "(service, a slash, the interaction id).", where)
    else:
        yield Finding.passed("SPINE-SOAP-003", f"wsa:Action {soap.action} names {interaction.title}.", where)
    soap_action = (inbound.soap_action or "").strip().strip('"')
    if soap_action != interaction.soap_action:
        yield Finding.failed("SPINE-SOAP-003", f"The SOAPAction header must equal wsa:Action "
                             f"{interaction.soap_action}; it is {soap_action or '(missing)'!r}.", "header:SOAPAction")
    yield from endpoint_findings(inbound)


@checks.register("SPINE-SOAP-005", "SPINE-HL7-008")
def asids(req: RequestView, ctx: CheckContext):
    """The sender's ASID is its registration in SDS and the receiver is Spine (or, forwarded, the receiving
    system); over SOAP the header's ASIDs equal the HL7 wrapper's."""
    inbound = message(ctx)
    if inbound.kind != "message":
        return
    parties = ctx.facts.get("parties")
    wrapper = inbound.wrapper
    soap = inbound.soap
    if soap is not None:
        yield from _soap_asids(inbound, parties)
    if wrapper is None or inbound.interaction is None:
        return
    root = f"/hl7:{etree_name(wrapper)}"
    expected_receiver = SPINE_ASID
    if inbound.forward:
        registration = parties.registration(inbound.to_party) if parties is not None else None
        expected_receiver = registration.asid if registration is not None else None
    if expected_receiver is not None:
        where = f"{root}/hl7:communicationFunctionRcv/hl7:device/hl7:id/@extension"
        if expected_receiver in wrapper.receiver_asids:
            yield Finding.passed("SPINE-HL7-008", f"The receiver ASID is {expected_receiver}.", where)
        elif wrapper.receiver_asids:
            who = "Spine's ASID" if expected_receiver == SPINE_ASID else f"the ASID of party {inbound.to_party}"
            yield Finding.failed("SPINE-HL7-008", f"The receiver ASID is {', '.join(wrapper.receiver_asids)}; "
                                 f"expected {who}, {expected_receiver}.", where)
    if parties is None:
        yield Finding.info("SPINE-HL7-008", f"The sender ASID is {OFFLINE}.")
        return
    sender = parties.registration(inbound.from_party) if inbound.from_party else \
        parties.registration_for_asid(wrapper.sender_asid)
    where = f"{root}/hl7:communicationFunctionSnd/hl7:device/hl7:id/@extension"
    if sender is None or not wrapper.sender_asid:
        return  # an unknown sender is refused by the From / SOAP ASID checks
    if wrapper.sender_asid == sender.asid:
        yield Finding.passed("SPINE-HL7-008", f"The sender ASID {sender.asid} is the one registered for party "
                             f"{sender.party_key}.", where)
    else:
        yield Finding.failed("SPINE-HL7-008", f"The sender ASID is {wrapper.sender_asid}; party {sender.party_key} is "
                             f"registered with ASID {sender.asid}.", where)


def _soap_asids(inbound: Inbound, parties) -> Iterator[Finding]:
    soap = inbound.soap
    base = "/soap:Envelope/soap:Header"
    if soap.receiver_asid:
        where = f"{base}/hl7:communicationFunctionRcv/hl7:device/hl7:id/@extension"
        if soap.receiver_asid == SPINE_ASID:
            yield Finding.passed("SPINE-SOAP-005", f"The SOAP header's receiver ASID is Spine's, {SPINE_ASID}.", where)
        else:
            yield Finding.failed("SPINE-SOAP-005", f"The SOAP header's receiver ASID is {soap.receiver_asid}; a "
                                 f"synchronous request goes to Spine, ASID {SPINE_ASID} (the ASID SDS's Device "
                                 "lookup gives).", where)
    wrapper = inbound.wrapper
    if wrapper is not None:
        for function, ours, theirs in (("communicationFunctionSnd", soap.sender_asid, wrapper.sender_asid),
                                       ("communicationFunctionRcv", soap.receiver_asid,
                                        wrapper.receiver_asids[0] if wrapper.receiver_asids else None)):
            if ours and theirs and ours != theirs:
                yield Finding.failed("SPINE-SOAP-005", f"The SOAP header's {function} ASID {ours} differs from the "
                                     f"HL7 message's {theirs}.", f"{base}/hl7:{function}")
    if not soap.sender_asid:
        return
    where = f"{base}/hl7:communicationFunctionSnd/hl7:device/hl7:id/@extension"
    if parties is None:
        yield Finding.info("SPINE-SOAP-005", f"The sender ASID {soap.sender_asid} is {OFFLINE}.", where)
        return
    registration = parties.registration_for_asid(soap.sender_asid)
    if registration is None:
        yield Finding.failed("SPINE-SOAP-005", f"Sender ASID {soap.sender_asid} is not registered in SDS for this "
                             "session: register your system (ASID, party key, interactions) before sending.", where,
                             reject=errors.soap_fault(errors.NOT_ACCEPTED,
                                                      f"Unknown sender ASID {soap.sender_asid}", where))
    else:
        yield Finding.passed("SPINE-SOAP-005", f"Sender ASID {soap.sender_asid} is registered (party "
                             f"{registration.party_key}).", where)
