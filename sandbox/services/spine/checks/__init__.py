"""The request checks of Spine core messaging: MIME, ebXML, SOAP / WS-Addressing, the HL7 transmission wrapper and
the payload schema, each tied to requirement ids. Every check runs on every message, so every problem is reported
at once (with its MIME part, header or XPath); where the live Spine refuses the message, the finding carries the
refusal, and the answer lists every refusal found (errors.render_error).

The checks read what the messaging library parsed (facts "message", an inbound.Inbound), what SDS says for the
session (facts "parties", a parties.Parties; absent offline) and the schema folder (facts "hl7v3_schemas"). The
same functions run offline (`spine-sandbox validate`), where SDS-dependent checks record an info finding.

The modules register their checks on `checks` when imported, in this order (the order findings are reported in).
"""

import importlib

from sandbox.services.spine.checks.common import MAX_MESSAGE_BYTES, checks

for _module in ("readability", "mime", "ebxml", "soap", "hl7", "acks"):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["MAX_MESSAGE_BYTES", "checks"]
