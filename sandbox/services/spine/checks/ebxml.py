"""The ebXML header: parties and CPA, identifiers, service and action, reliability elements, SOAP extensions
and the manifest."""

from __future__ import annotations

from sandbox.conformance.checks import CheckContext, RequestView
from sandbox.conformance.findings import Finding
from sandbox.conformance.parsing import Malformed, parse_xml
from sandbox.messaging import NS, SPINE_PARTY_KEY
from sandbox.services.spine import errors
from sandbox.services.spine.checks.common import (
    NEXT_MSH,
    OFFLINE,
    TO_PARTY_MSH,
    UUID,
    checks,
    endpoint_findings,
    message,
)
from sandbox.services.spine.inbound import EBXML_SERVICE, Inbound


def _header_root(inbound: Inbound):
    """The ebXML SOAP envelope as XML, for attribute checks the parsed header does not keep."""
    data = inbound.ebxml.parts[0].body if inbound.ebxml is not None and inbound.ebxml.parts else inbound.body
    try:
        return parse_xml(data)
    except Malformed:
        return None


@checks.register("SPINE-EBX-002", "SPINE-EBX-003", "SPINE-EBX-004")
def parties_and_cpa(req: RequestView, ctx: CheckContext):
    inbound = message(ctx)
    header = inbound.header
    if header is None:
        return
    parties = ctx.facts.get("parties")
    if parties is None:
        yield Finding.info("SPINE-EBX-002", f"eb:From, eb:To and eb:CPAId are {OFFLINE}.")
        return
    base = "/soap:Envelope/soap:Header/eb:MessageHeader"
    transport = inbound.transport
    if header.from_party:
        registration = parties.registration(header.from_party)
        if registration is None:
            yield Finding.failed(
                "SPINE-EBX-002", f"eb:From party key {header.from_party!r} is not registered in SDS for this "
                "session: register your MHS (party key, ASID, endpoint, interactions) before sending.",
                f"{base}/eb:From/eb:PartyId", reject=errors.message_error(
                    "ValueNotRecognized", f"Unknown eb:From PartyId {header.from_party}", f"{base}/eb:From/eb:PartyId"))
        else:
            yield Finding.passed("SPINE-EBX-002", f"eb:From {header.from_party} is the registered party key of "
                                 f"ASID {registration.asid}.", f"{base}/eb:From/eb:PartyId")
    if inbound.kind != "message" or inbound.interaction is None or not header.to_party:
        return
    interaction = inbound.interaction
    to_where = f"{base}/eb:To/eb:PartyId"
    if not inbound.forward and header.to_party != SPINE_PARTY_KEY:
        yield Finding.failed("SPINE-EBX-003", f"eb:To is {header.to_party!r}; {interaction.id} is answered by Spine, "
                             f"party key {SPINE_PARTY_KEY} (the party key SDS gives for it).", to_where,
                             reject=errors.refusal(transport, "ValueNotRecognized",
                                                   f"Unknown eb:To PartyId {header.to_party}", to_where))
        return
    entry = parties.entry(header.to_party, interaction)
    if entry is None:
        yield Finding.failed("SPINE-EBX-003", f"SDS has no MHS of party {header.to_party!r} for "
                             f"{interaction.service_interaction}: look the receiver up in SDS (Endpoint) and use the "
                             "party key it gives.", to_where,
                             reject=errors.refusal(transport, "ValueNotRecognized",
                                                   f"Unknown eb:To PartyId {header.to_party}", to_where))
        return
    yield Finding.passed("SPINE-EBX-003", f"eb:To {header.to_party} is the party SDS gives for "
                         f"{interaction.service_interaction}.", to_where)
    cpa_where = f"{base}/eb:CPAId"
    if header.cpa_id == entry.cpa_id:
        yield Finding.passed("SPINE-EBX-004", f"eb:CPAId {header.cpa_id} is the CPA SDS holds for party "
                             f"{header.to_party} and {interaction.id}.", cpa_where)
    elif header.cpa_id:
        yield Finding.failed("SPINE-EBX-004", f"eb:CPAId {header.cpa_id!r} is not the CPA SDS holds for party "
                             f"{header.to_party} and {interaction.id}: expected {entry.cpa_id!r} (nhsMhsCPAId of the "
                             "Endpoint).", cpa_where,
                             reject=errors.message_error("ValueNotRecognized", "501319:Unknown eb:CPAId", cpa_where))


@checks.register("SPINE-EBX-005", "SPINE-EBX-006", "SPINE-EBX-008")
def identifiers(req: RequestView, ctx: CheckContext):
    inbound = message(ctx)
    header = inbound.header
    if header is None:
        return
    base = "/soap:Envelope/soap:Header/eb:MessageHeader"
    if header.conversation_id:
        where = f"{base}/eb:ConversationId"
        if UUID.match(header.conversation_id):
            yield Finding.passed("SPINE-EBX-005", f"eb:ConversationId {header.conversation_id} is a UUID.", where)
        else:
            yield Finding.warning("SPINE-EBX-005", f"eb:ConversationId {header.conversation_id!r} is not a UUID; "
                                  "Spine's conversation ids are upper-case UUIDs (the first message's MessageId).",
                                  where)
    if header.message_id and UUID.match(header.message_id):
        where = f"{base}/eb:MessageData/eb:MessageId"
        if header.message_id == header.message_id.upper():
            yield Finding.passed("SPINE-EBX-006", f"eb:MessageId {header.message_id} is an upper-case UUID.", where)
        else:
            yield Finding.warning("SPINE-EBX-006", f"eb:MessageId {header.message_id} is lower-case; Spine writes "
                                  f"message ids in upper case ({header.message_id.upper()}).", where)
    if header.timestamp:
        where = f"{base}/eb:MessageData/eb:Timestamp"
        if header.timestamp.endswith("Z"):
            yield Finding.passed("SPINE-EBX-008", f"eb:Timestamp {header.timestamp} is a UTC xs:dateTime.", where)
        else:
            yield Finding.warning("SPINE-EBX-008", f"eb:Timestamp {header.timestamp!r} has no 'Z': Spine writes UTC "
                                  "times such as 2019-05-04T20:55:16Z.", where)


@checks.register("SPINE-EBX-009", "SPINE-EBX-014")
def service_and_action(req: RequestView, ctx: CheckContext):
    inbound = message(ctx)
    header = inbound.header
    if header is None or not header.action:
        return
    base = "/soap:Envelope/soap:Header/eb:MessageHeader"
    soap_action = (inbound.soap_action or "").strip().strip('"')
    if inbound.kind != "message":
        if header.service == EBXML_SERVICE:
            yield Finding.passed("SPINE-EBX-009", f"An eb:{header.action} has eb:Service {EBXML_SERVICE}.",
                                 f"{base}/eb:Service")
        else:
            yield Finding.failed("SPINE-EBX-009", f"An eb:{header.action} has eb:Service {EBXML_SERVICE}; it has "
                                 f"{header.service!r}.", f"{base}/eb:Service")
        return
    interaction = inbound.interaction
    if interaction is None:
        yield Finding.failed("SPINE-EBX-009", f"eb:Action {header.action!r} is not an interaction Spine knows (see "
                             "/_sandbox/services for the catalogue).", f"{base}/eb:Action",
                             reject=errors.message_error("ValueNotRecognized", f"Unknown eb:Action {header.action}",
                                                         f"{base}/eb:Action"))
        return
    if not interaction.carried_by(header.service):  # the catalogue says which services carry it
        yield Finding.failed("SPINE-EBX-009", f"eb:Service {header.service!r} is not the service of "
                             f"{interaction.id}: expected {interaction.service}.", f"{base}/eb:Service",
                             reject=errors.message_error("Inconsistent", f"eb:Service {header.service} does not "
                                                         f"carry {interaction.id}", f"{base}/eb:Service"))
    else:
        yield Finding.passed("SPINE-EBX-009", f"eb:Service {header.service} and eb:Action {header.action} name "
                             f"{interaction.title}.", f"{base}/eb:Action")
    if not soap_action:
        yield Finding.failed("SPINE-EBX-009", f"The SOAPAction header is missing: send SOAPAction: "
                             f"{interaction.soap_action}.", "header:SOAPAction")
    elif soap_action != interaction.soap_action:
        yield Finding.failed("SPINE-EBX-009", f"SOAPAction {soap_action!r} does not match eb:Service/eb:Action: "
                             f"expected {interaction.soap_action}.", "header:SOAPAction")
    else:
        yield Finding.passed("SPINE-EBX-009", f"SOAPAction {soap_action} matches eb:Service/eb:Action.",
                             "header:SOAPAction")
    yield from endpoint_findings(inbound)


@checks.register("SPINE-EBX-011")
def reliability_elements(req: RequestView, ctx: CheckContext):
    inbound = message(ctx)
    header = inbound.header
    if header is None or inbound.kind != "message" or inbound.interaction is None:
        return
    pattern = inbound.interaction.pattern
    parties = ctx.facts.get("parties")
    entry = parties.entry(header.to_party, inbound.interaction) if parties is not None else None
    reliable = pattern in ("async-reliable", "forward-reliable")
    if pattern.startswith("forward"):
        entry = None  # Spine's intermediary records say "never"; the receiving MHS's (always) and the pattern rule
    want_de = _sds_flag(getattr(entry, "duplicate_elimination", None), reliable)
    want_ack = _sds_flag(getattr(entry, "ack_requested", None), reliable)
    source = "SDS (nhsMHSDuplicateElimination / nhsMHSAckRequested)" if entry is not None else f"the {pattern} pattern"
    base = "/soap:Envelope/soap:Header"
    for name, wanted, present, where in (
            ("eb:DuplicateElimination", want_de, header.duplicate_elimination, f"{base}/eb:MessageHeader"),
            ("eb:AckRequested", want_ack, header.ack_requested, base)):
        if wanted == present:
            yield Finding.passed("SPINE-EBX-011", f"{name} is {'present' if present else 'absent'}, as {source} "
                                 f"requires for {inbound.interaction.id}.", where)
        else:
            yield Finding.failed("SPINE-EBX-011", f"{name} must be {'present' if wanted else 'absent'} for "
                                 f"{inbound.interaction.id} (as {source} says); it is "
                                 f"{'present' if present else 'absent'}.", where)
    if header.ack_requested:
        actor = NEXT_MSH if pattern.startswith("forward") else TO_PARTY_MSH
        if header.ack_actor == actor:
            yield Finding.passed("SPINE-EBX-011", f"eb:AckRequested SOAP:actor is {actor}.", f"{base}/eb:AckRequested")
        else:
            yield Finding.failed("SPINE-EBX-011", f"eb:AckRequested SOAP:actor must be {actor} for a {pattern} "
                                 f"message; it is {header.ack_actor!r}.", f"{base}/eb:AckRequested/@SOAP:actor")
    if pattern == "async-reliable" and not header.sync_reply:
        yield Finding.warning("SPINE-EBX-011", "eb:SyncReply is absent: Spine then sends its eb:Acknowledgment to "
                              "your endpoint instead of in the HTTP answer; send eb:SyncReply to have it at once.",
                              base)
    if pattern.startswith("forward") and header.sync_reply:
        yield Finding.warning("SPINE-EBX-011", "eb:SyncReply is present on a forwarded message: the receiving MHS "
                              "acknowledges it later, so Spine cannot answer it synchronously.", f"{base}/eb:SyncReply")


def _sds_flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("always", "true", "yes", "1")


@checks.register("SPINE-EBX-012")
def soap_extensions(req: RequestView, ctx: CheckContext):
    """The header elements all carry SOAP:mustUnderstand="1" and eb:version="2.0" (problems come from the
    library); a pass records that they were looked at."""
    inbound = message(ctx)
    if inbound.header is None:
        return
    if not any(p.code in ("ebxml.version", "ebxml.must-understand") for p in inbound.header.problems):
        yield Finding.passed("SPINE-EBX-012", 'The ebXML header elements carry SOAP:mustUnderstand="1" and '
                             'eb:version="2.0".', "/soap:Envelope/soap:Header")
    root = _header_root(inbound)
    manifest = root.find("soap:Body/eb:Manifest", NS) if root is not None else None
    if manifest is not None and manifest.get(f"{{{NS['eb']}}}version") != "2.0":
        yield Finding.failed("SPINE-EBX-012", 'eb:Manifest must carry eb:version="2.0".',
                             "/soap:Envelope/soap:Body/eb:Manifest/@eb:version")
    for name in ("SyncReply", "Acknowledgment", "ErrorList"):
        element = root.find(f"soap:Header/eb:{name}", NS) if root is not None else None
        if element is None:
            continue
        if element.get(f"{{{NS['soap']}}}mustUnderstand") not in ("1", "true"):
            yield Finding.failed("SPINE-EBX-012", f'eb:{name} must carry SOAP:mustUnderstand="1".',
                                 f"/soap:Envelope/soap:Header/eb:{name}/@SOAP:mustUnderstand")
        if element.get(f"{{{NS['eb']}}}version") != "2.0":
            yield Finding.failed("SPINE-EBX-012", f'eb:{name} must carry eb:version="2.0".',
                                 f"/soap:Envelope/soap:Header/eb:{name}/@eb:version")


@checks.register("SPINE-EBX-010")
def manifest(req: RequestView, ctx: CheckContext):
    inbound = message(ctx)
    header = inbound.header
    if header is None or inbound.kind != "message":
        return
    codes = {p.code for p in header.problems}
    if header.manifest and not codes & {"ebxml.manifest-unresolved", "ebxml.manifest-href", "ebxml.no-payload",
                                        "ebxml.manifest-payload", "ebxml.unreferenced-part"}:
        yield Finding.passed("SPINE-EBX-010", f"The manifest's {len(header.manifest)} reference(s) resolve to the "
                             "MIME parts, and the HL7 payload is marked hl7ebxml:Payload.",
                             "/soap:Envelope/soap:Body/eb:Manifest")
