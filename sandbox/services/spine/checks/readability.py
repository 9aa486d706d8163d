"""The message's size, and everything the messaging library found wrong while reading it."""

from __future__ import annotations

from sandbox.conformance.checks import CheckContext, RequestView
from sandbox.conformance.findings import Finding
from sandbox.messaging import Problem
from sandbox.services.spine import errors
from sandbox.services.spine.checks.common import MAX_MESSAGE_BYTES, checks, message, problem_finding


@checks.register("SPINE-MIME-005")
def message_size(req: RequestView, ctx: CheckContext):
    size = len(req.body)
    if size > MAX_MESSAGE_BYTES:
        yield Finding.failed("SPINE-MIME-005", f"The message is {size} bytes; Spine accepts at most "
                             f"{MAX_MESSAGE_BYTES} bytes in one request: send larger content by large messaging "
                             "(fragments of COPC_IN000001UK01 for GP2GP).", "body",
                             reject=errors.refusal(message(ctx).transport, "NotSupported",
                                                   f"Message too large ({size} bytes; at most {MAX_MESSAGE_BYTES})"))
    else:
        yield Finding.passed("SPINE-MIME-005", f"The message is {size} bytes, within Spine's {MAX_MESSAGE_BYTES}.")


@checks.register("SPINE-MIME-001", "SPINE-EBX-001", "SPINE-SOAP-001", "SPINE-HL7-001")
def readable(req: RequestView, ctx: CheckContext):
    """Everything the messaging library found wrong while reading the message, each under its requirement."""
    inbound = message(ctx)
    for problem in inbound.problems:
        yield problem_finding(problem, inbound, fatal=True)
    problems: list[Problem] = []
    if inbound.ebxml is not None:
        problems += inbound.ebxml.header.problems
    if inbound.soap is not None:
        problems += inbound.soap.problems
    if not any(p.code == "ebxml.payload-not-xml" for p in problems):  # else the same problem twice
        for problem in inbound.hl7_problems:
            yield problem_finding(problem, inbound, fatal=True)
    if inbound.wrapper is not None:
        problems += inbound.wrapper.problems
    for problem in problems:
        yield problem_finding(problem, inbound)
    if not inbound.problems and inbound.transport != "hl7":
        yield Finding.passed("SPINE-EBX-001" if inbound.transport == "ebxml" else "SPINE-SOAP-001",
                             "The message is a readable SOAP 1.1 envelope." if inbound.transport == "soap"
                             else "The ebXML message is readable.")
