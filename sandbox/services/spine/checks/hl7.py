"""The HL7 transmission wrapper and ControlActEvent, and the payload against its official MIM schema."""

from __future__ import annotations

from collections.abc import Iterator

from sandbox.conformance.checks import CheckContext, RequestView
from sandbox.conformance.findings import Finding
from sandbox.messaging import schemas
from sandbox.services.spine import errors
from sandbox.services.spine.checks.common import UUID, VERSION_CODE, checks, etree_name, message
from sandbox.services.spine.inbound import Inbound


@checks.register("SPINE-HL7-001", "SPINE-HL7-002", "SPINE-HL7-003", "SPINE-HL7-004", "SPINE-HL7-005",
                 "SPINE-HL7-006", "SPINE-HL7-007", "SPINE-HL7-009")
def hl7_wrapper(req: RequestView, ctx: CheckContext):
    inbound = message(ctx)
    if inbound.kind != "message" or inbound.interaction is None:
        return
    wrapper = inbound.wrapper
    if wrapper is None:
        if inbound.readable and not inbound.hl7 and inbound.transport == "soap":
            return  # soap.no-body already refuses it
        return
    name = etree_name(wrapper)
    root = f"/hl7:{name}"
    interaction = inbound.interaction
    if name != interaction.id:
        yield Finding.failed("SPINE-HL7-001", f"The HL7 payload is {name}; the message's interaction is "
                             f"{interaction.id}.", root, reject=errors.refusal(
                                 inbound.transport, "Inconsistent",
                                 f"HL7 payload {name} does not match the interaction {interaction.id}", root))
    else:
        yield Finding.passed("SPINE-HL7-001", f"The HL7 payload is a {interaction.id} message.", root)
    if wrapper.interaction and wrapper.interaction == interaction.id:
        yield Finding.passed("SPINE-HL7-004", f"interactionId {wrapper.interaction} matches the "
                             f"{'eb:Action' if inbound.transport == 'ebxml' else 'wsa:Action'}.",
                             f"{root}/hl7:interactionId/@extension")
    if wrapper.message_id and UUID.match(wrapper.message_id):
        if wrapper.message_id == wrapper.message_id.upper():
            yield Finding.passed("SPINE-HL7-002", f"The HL7 message id {wrapper.message_id} is an upper-case UUID.",
                                 f"{root}/hl7:id/@root")
        else:
            yield Finding.warning("SPINE-HL7-002", f"The HL7 message id {wrapper.message_id} is lower-case; Spine "
                                  "writes message ids in upper case.", f"{root}/hl7:id/@root")
    if wrapper.creation_time and not any(p.code == "hl7.creation-time" for p in wrapper.problems):
        yield Finding.passed("SPINE-HL7-003", f"creationTime {wrapper.creation_time} is an HL7 timestamp.",
                             f"{root}/hl7:creationTime/@value")
    if wrapper.version_code:
        where = f"{root}/hl7:versionCode/@code"
        if VERSION_CODE.match(wrapper.version_code):
            yield Finding.passed("SPINE-HL7-005", f"versionCode {wrapper.version_code} is an NPfIT version.", where)
        else:
            yield Finding.failed("SPINE-HL7-005", f"versionCode {wrapper.version_code!r} is not an NPfIT version "
                                 "such as V3NPfIT3.0 (use the version of the interaction's MIM).", where)
    for value, expected, element in ((wrapper.processing_code, "P", "processingCode"),
                                     (wrapper.processing_mode, "T", "processingModeCode")):
        if value is None:
            continue
        where = f"{root}/hl7:{element}/@code"
        if value == expected:
            yield Finding.passed("SPINE-HL7-006", f"{element} is {expected}.", where)
        else:
            yield Finding.failed("SPINE-HL7-006", f"{element} must be {expected}; it is {value!r}.", where)
    if wrapper.accept_ack is not None:
        where = f"{root}/hl7:acceptAckCode/@code"
        if wrapper.accept_ack in ("AL", "ER", "NE"):
            yield Finding.passed("SPINE-HL7-007", f"acceptAckCode is {wrapper.accept_ack}.", where)
        else:
            yield Finding.failed("SPINE-HL7-007", f"acceptAckCode must be AL, ER or NE; it is "
                                 f"{wrapper.accept_ack!r}.", where)
    yield from _control_act(inbound, root)


def _control_act(inbound: Inbound, root: str) -> Iterator[Finding]:
    wrapper = inbound.wrapper
    where = f"{root}/hl7:ControlActEvent"
    if wrapper.control_act is None:
        yield Finding.failed("SPINE-HL7-009", "The message has no ControlActEvent: it carries the author (author "
                             "for the user, author1 for the system) of every Spine interaction.", where)
        return
    if not wrapper.author_ids:
        yield Finding.failed("SPINE-HL7-009", "ControlActEvent has no author or author1 identifying who sent it "
                             "(author1/AgentSystemSDS/agentSystemSDS/id is the sending system's ASID).", where)
    elif wrapper.sender_asid and wrapper.sender_asid not in wrapper.author_ids:
        yield Finding.warning("SPINE-HL7-009", f"ControlActEvent's authors ({', '.join(wrapper.author_ids)}) do not "
                              f"include the sending system's ASID {wrapper.sender_asid} (author1/AgentSystemSDS).",
                              where)
    else:
        yield Finding.passed("SPINE-HL7-009", f"ControlActEvent names its author(s): {', '.join(wrapper.author_ids)}.",
                             where)


@checks.register("SPINE-SCH-001")
def payload_schema(req: RequestView, ctx: CheckContext):
    inbound = message(ctx)
    wrapper = inbound.wrapper
    if inbound.kind != "message" or wrapper is None or wrapper.root is None:
        return
    name = etree_name(wrapper)
    folder = ctx.facts.get("hl7v3_schemas")
    if not folder:
        yield Finding.info("SPINE-SCH-001", f"The {name} payload was not validated against the official HL7v3 "
                           "schema: set SANDBOX_HL7V3_SCHEMAS (or serve --hl7v3-schemas DIR, validate "
                           "--hl7v3-schemas DIR) to the MIM folder holding Schemas/, dt/ and voc/.", f"/hl7:{name}")
        return
    schema_set = schemas.schema_set(folder)
    if not schema_set.available(name):
        yield Finding.info("SPINE-SCH-001", f"The schema folder {folder} has no schema for {name}; the payload was "
                           "not validated.", f"/hl7:{name}")
        return
    problems = schema_set.validate(name, wrapper.root)
    for problem in problems:
        yield Finding.failed("SPINE-SCH-001", f"{name} does not validate against its MIM schema: {problem.message}",
                             problem.where or f"/hl7:{name}")
    if not problems:
        yield Finding.passed("SPINE-SCH-001", f"The {name} payload validates against its official MIM schema.",
                             f"/hl7:{name}")
