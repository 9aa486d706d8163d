"""What a supplier's MHS sent, parsed once: ebXML (MIME multipart/related, or a bare SOAP acknowledgement or
MessageError) or synchronous SOAP, the HL7v3 message inside it, and the catalogue entry of its interaction.

Parsing is total: whatever arrives becomes an Inbound, with the reasons it could not be read in `problems`."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cached_property

from sandbox.messaging import MessagingError, Problem
from sandbox.messaging import ebxml as ebxml_lib
from sandbox.messaging import hl7 as hl7_lib
from sandbox.messaging import interactions as catalogue
from sandbox.messaging import soap as soap_lib

log = logging.getLogger(__name__)

# Each messaging pattern at its live address (the host is the sandbox).
ENDPOINTS = {
    "/sync-service": "sync",
    "/reliablemessaging/queryrequest": "async-express",
    "/reliablemessaging/reliablerequest": "async-reliable",
    "/reliablemessaging/intermediary": "forward",
}
ENDPOINT_OF_PATTERN = {"sync": "/sync-service", "async-express": "/reliablemessaging/queryrequest",
                       "async-reliable": "/reliablemessaging/reliablerequest",
                       "forward-reliable": "/reliablemessaging/intermediary",
                       "forward-express": "/reliablemessaging/intermediary"}
# Operations besides one per interaction id: what suppliers send back for what the sandbox delivered, and a
# message whose interaction cannot be told at all.
ACKNOWLEDGMENT = "acknowledgment"
MESSAGE_ERROR = "message-error"
UNRECOGNISED = "unrecognised-message"
EBXML_SERVICE = "urn:oasis:names:tc:ebxml-msg:service"
NHS_NUMBER_ROOT = "2.16.840.1.113883.2.1.4.1"
_EB_HEADER = re.compile(rb"MessageHeader[\s>/]")


def endpoint_of(path: str) -> str | None:
    return ENDPOINTS.get(path.rstrip("/") or path)


@dataclass
class Inbound:
    """One message as the checks and the patterns see it."""

    endpoint: str | None  # the pattern the path serves: sync, async-express, async-reliable, forward
    transport: str  # "ebxml", "soap" or "hl7" (a bare HL7 message, offline): what it is or was meant to be
    content_type: str  # the Content-Type header as sent
    soap_action: str | None
    body: bytes
    ebxml: ebxml_lib.EbxmlMessage | None = None
    soap: soap_lib.SoapRequest | None = None
    wrapper: hl7_lib.Hl7Wrapper | None = None
    problems: tuple[Problem, ...] = ()  # why the message (or its HL7 payload) could not be read
    hl7_problems: tuple[Problem, ...] = ()  # why the HL7 payload could not be read
    notes: list[str] = field(default_factory=list)  # e.g. "Content-Type sniffed" (offline validation)

    @property
    def readable(self) -> bool:
        if self.transport == "hl7":
            return self.wrapper is not None
        return (self.ebxml is not None) if self.transport == "ebxml" else (self.soap is not None)

    @property
    def header(self) -> ebxml_lib.EbxmlHeader | None:
        return self.ebxml.header if self.ebxml is not None else None

    @property
    def hl7(self) -> bytes | None:
        if self.transport == "hl7":
            return self.body
        if self.ebxml is not None:
            return self.ebxml.hl7
        return self.soap.hl7 if self.soap is not None else None

    @property
    def kind(self) -> str:
        """message, acknowledgment or message-error."""
        header = self.header
        if header is None:
            return "message"
        if header.acknowledgment_of or header.action == "Acknowledgment":
            return ACKNOWLEDGMENT
        if header.errors or header.action == "MessageError":
            return MESSAGE_ERROR
        return "message"

    @property
    def interaction_id(self) -> str | None:
        if self.header is not None:
            return (self.header.action or "").strip() or None
        if self.soap is not None:
            return (self.soap.interaction or "").strip() or None
        if self.transport == "hl7" and self.wrapper is not None:
            return self.wrapper.interaction
        return None

    @cached_property
    def interaction(self) -> catalogue.Interaction | None:
        """The catalogue entry as the message's eb:Service carries it (an interaction valid under several services,
        such as MCCI_IN010000UK13, takes that service and its pattern there); else by the interaction id alone."""
        found = self.interaction_id
        if not found:
            return None
        service = (self.header.service or "").strip() if self.header is not None else ""
        carried = catalogue.find(f"{service}:{found}") if service else None
        return carried or catalogue.find(found)

    @property
    def operation(self) -> str:
        if self.kind != "message":
            return self.kind
        return self.interaction.id if self.interaction is not None else UNRECOGNISED

    @property
    def message_id(self) -> str | None:
        if self.header is not None:
            return self.header.message_id
        if self.soap is not None and self.soap.message_id:
            value = self.soap.message_id.strip()
            return value[5:] if value.lower().startswith("uuid:") else value
        return None

    @property
    def conversation_id(self) -> str | None:
        return self.header.conversation_id if self.header is not None else None

    @property
    def from_party(self) -> str | None:
        return self.header.from_party if self.header is not None else None

    @property
    def to_party(self) -> str | None:
        return self.header.to_party if self.header is not None else None

    @property
    def sender_asid(self) -> str | None:
        if self.wrapper is not None and self.wrapper.sender_asid:
            return self.wrapper.sender_asid
        return self.soap.sender_asid if self.soap is not None else None

    @property
    def pattern(self) -> str | None:
        """The interaction's pattern, or the endpoint's when the interaction is unknown."""
        if self.interaction is not None:
            return self.interaction.pattern
        return self.endpoint

    @property
    def forward(self) -> bool:
        return (self.pattern or "").startswith("forward")

    def nhs_number(self) -> str | None:
        """The first NHS number the HL7 message names (what scenarios trigger on)."""
        if self.wrapper is None or self.wrapper.root is None:
            return None
        for element in self.wrapper.root.iter():
            if element.get("root") == NHS_NUMBER_ROOT and element.get("extension"):
                return element.get("extension")
        return None


def parse(path: str, headers, body: bytes, *, content_type: str | None = None) -> Inbound:
    """`headers`: (name, value) pairs or a RequestView; `content_type` overrides the header (offline files)."""
    if content_type is None:
        content_type = _header(headers, "Content-Type") or ""
    soap_action = _header(headers, "SOAPAction")
    endpoint = endpoint_of(path)
    media = content_type.split(";")[0].strip().lower()
    # The ebXML endpoints read everything as ebXML (a bare SOAP envelope with an eb:MessageHeader is an
    # acknowledgement or MessageError); the synchronous one (and files offline) by what the message looks like.
    looks_ebxml = media.startswith("multipart/") or bool(_EB_HEADER.search(body[:20000]))
    if (endpoint is not None and endpoint != "sync") or looks_ebxml:
        inbound = Inbound(endpoint, "ebxml", content_type, soap_action, body)
        _parse_ebxml(inbound)
    else:
        inbound = Inbound(endpoint, "soap", content_type, soap_action, body)
        _parse_soap(inbound)
    _parse_hl7(inbound)
    return inbound


def parse_hl7(body: bytes) -> Inbound:
    """A bare HL7 message (offline validation): only the HL7 and schema checks apply."""
    inbound = Inbound(None, "hl7", "text/xml", None, body)
    _parse_hl7(inbound)
    return inbound


def _header(headers, name: str) -> str | None:
    if hasattr(headers, "header"):
        return headers.header(name)
    lower = name.lower()
    return next((v for k, v in headers if k.lower() == lower), None)


def _parse_ebxml(inbound: Inbound) -> None:
    try:
        inbound.ebxml = ebxml_lib.parse(inbound.content_type, inbound.body)
    except MessagingError as exc:
        inbound.problems = tuple(exc.problems)
    except Exception:  # a defect in the library must cost the supplier a clear answer, never a 500
        log.exception("the ebXML parser failed")
        inbound.problems = (Problem("messaging.defect", "The sandbox could not read this ebXML message."),)


def _parse_soap(inbound: Inbound) -> None:
    try:
        inbound.soap = soap_lib.parse_request(inbound.body)
    except MessagingError as exc:
        inbound.problems = tuple(exc.problems)
    except Exception:
        log.exception("the SOAP parser failed")
        inbound.problems = (Problem("messaging.defect", "The sandbox could not read this SOAP message."),)


def _parse_hl7(inbound: Inbound) -> None:
    payload = inbound.hl7
    if not payload or inbound.kind != "message":
        return
    try:
        inbound.wrapper = hl7_lib.parse_wrapper(payload)
    except MessagingError as exc:
        inbound.hl7_problems = tuple(exc.problems)
    except Exception:
        log.exception("the HL7 parser failed")
        inbound.hl7_problems = (Problem("messaging.defect", "The sandbox could not read the HL7 payload."),)
