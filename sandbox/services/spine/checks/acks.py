"""The acknowledgements and MessageErrors a supplier sends back for what the sandbox delivered."""

from __future__ import annotations

from sandbox.conformance.checks import CheckContext, RequestView
from sandbox.conformance.findings import Finding
from sandbox.services.spine.checks.common import checks, message
from sandbox.services.spine.inbound import ACKNOWLEDGMENT


@checks.register("SPINE-EBX-013", operations=[ACKNOWLEDGMENT])
def acknowledgment_shape(req: RequestView, ctx: CheckContext):
    inbound = message(ctx)
    header = inbound.header
    if header is None or not header.acknowledgment_of:
        return
    where = "/soap:Envelope/soap:Header/eb:Acknowledgment/eb:RefToMessageId"
    if header.ref_to_message_id and header.ref_to_message_id != header.acknowledgment_of:
        yield Finding.failed("SPINE-EBX-013", f"eb:MessageData/eb:RefToMessageId {header.ref_to_message_id} and "
                             f"eb:Acknowledgment/eb:RefToMessageId {header.acknowledgment_of} name different "
                             "messages.", where)
