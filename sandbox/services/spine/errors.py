"""How Spine refuses a message: an ebXML MessageError (eb:ErrorList) for the ebXML patterns and a SOAP fault
(nasp:errorList) for the synchronous pattern, both answered with HTTP 500 and text/xml, as the live Spine does
(and as the MHS adaptor requires: it reads a refusal only from a 500 with Content-Type text/xml).

What is known of Spine's own codes, from captured Spine messages:
- SOAP faults carry TMS error codes (codeContext urn:nhs:names:error:tms): 200 "System failure to process message -
  default", 201 "The message is not well formed", 206, 208 and 300. 200, 206 and 208 are retriable (the MHS
  adaptor re-sends after them); any other code is final.
- ebXML MessageErrors carry the ebMS 2.0 errorCode (codeContext urn:oasis:names:tc:ebxml-msg:service:errors) and
  a description "NNNNNN:text", e.g. "501319:Unknown eb:CPAId".
Where the Spine's number for a refusal is not published, the description has no number and the errorCode is the
ebMS 2.0 one; synchronous refusals of a supplier's message use 201 (final, never retried).

Business errors are not refused here: the business handlers answer them with an HL7 application acknowledgement
(MCCI_IN010000UK13, AE/AR) or the interaction's own negative response.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Response, has_request_context, request
from lxml import etree

from sandbox.conformance.findings import SpineError
from sandbox.messaging import NS, SPINE_PARTY_KEY
from sandbox.web import current

SOAP = NS["soap"]
EB = NS["eb"]
NASP = NS["nasp"]
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
PARTY_TYPE = "urn:nhs:names:partyType:ocs+serviceInstance"
EBXML_ERRORS = "urn:oasis:names:tc:ebxml-msg:service:errors"
TMS_ERRORS = "urn:nhs:names:error:tms"
EBXML_ERROR_CODES = ("ValueNotRecognized", "NotSupported", "Inconsistent", "OtherXml", "DeliveryFailure",
                     "TimeToLiveExpired", "SecurityFailure", "MimeProblem", "Unknown")
RETRIABLE_TMS_CODES = frozenset({"200", "206", "208"})
TMS_DESCRIPTIONS = {"200": "System failure to process message - default", "201": "The message is not well formed"}
NOT_ACCEPTED = "201"  # the TMS code of a synchronous message the Spine cannot accept as sent
SOAP_KIND = "soap-fault"
EBXML_KIND = "message-error"
CONTENT_TYPE = "text/xml; charset=UTF-8"


def message_error(error_code: str, description: str, where: str = "") -> SpineError:
    """An ebXML refusal: `error_code` one of EBXML_ERROR_CODES, `description` e.g. "501319:Unknown eb:CPAId"."""
    return SpineError(500, error_code, description, display=where, issue_code=EBXML_KIND)


def soap_fault(code: str, description: str, where: str = "") -> SpineError:
    """A synchronous refusal with a TMS error code."""
    return SpineError(500, code, description, display=where, issue_code=SOAP_KIND)


def refusal(transport: str, ebxml_code: str, description: str, where: str = "") -> SpineError:
    """The refusal of a supplier's message in its own transport: ebXML errorCode, or TMS 201 for SOAP."""
    if transport == "soap":
        return soap_fault(NOT_ACCEPTED, description, where)
    return message_error(ebxml_code, description, where)


def shape_of(error: SpineError, path: str = "") -> str:
    """Which body an error gets: its own kind, a numeric (TMS) code means a SOAP fault, an ebMS errorCode a
    MessageError; otherwise (a failure of HTTP itself: 404, 405, 413) the shape of the endpoint."""
    if error.issue_code in (SOAP_KIND, EBXML_KIND):
        return error.issue_code
    if error.code.isdigit():
        return SOAP_KIND
    if error.code in EBXML_ERROR_CODES:
        return EBXML_KIND
    return SOAP_KIND if path.rstrip("/") == "/sync-service" else EBXML_KIND


@dataclass(frozen=True)
class Reply:
    """Who a MessageError answers: the header values of the refused message, where they could be read."""

    from_party: str | None = None
    to_party: str | None = None
    cpa_id: str | None = None
    conversation_id: str | None = None
    message_id: str | None = None


def render_error(error: SpineError) -> Response:
    """The service's error body: every refusal the checks found in this message at once, not only the first."""
    ex = current.exchange()
    path = request.path if has_request_context() else ""
    errors = _all_refusals(error, ex)
    shape = shape_of(error, path)
    if shape == SOAP_KIND:
        body = soap_fault_body([e for e in errors if shape_of(e, path) == SOAP_KIND] or [error])
    else:
        body = message_error_body([e for e in errors if shape_of(e, path) == EBXML_KIND] or [error],
                                  _reply_of(ex))
    return Response(body, status=error.status, content_type=CONTENT_TYPE)


def _all_refusals(error: SpineError, ex) -> list[SpineError]:
    found = [f.reject for f in ex.findings if f.reject is not None] if ex is not None else []
    unique: list[SpineError] = []
    for e in [error, *found]:
        if not any(e.code == u.code and e.diagnostics == u.diagnostics and e.display == u.display for u in unique):
            unique.append(e)
    return unique


def _reply_of(ex) -> Reply:
    inbound = ex.facts.get("message") if ex is not None else None
    if inbound is None and ex is not None:
        inbound = ex.cache.get("spine.inbound")
    header = getattr(inbound, "header", None)
    if header is None:
        return Reply()
    return Reply(header.from_party, header.to_party, header.cpa_id, header.conversation_id, header.message_id)


def new_message_id() -> str:
    return str(uuid.uuid4()).upper()


def ebxml_timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_error_body(errors: list[SpineError], reply: Reply, *, from_party: str = SPINE_PARTY_KEY) -> bytes:
    """eb:MessageHeader (Service urn:oasis:names:tc:ebxml-msg:service, Action MessageError, RefToMessageId the
    refused message) and eb:ErrorList, with an empty SOAP Body: the shape of Spine's MessageError."""
    nsmap = {"SOAP": SOAP, "eb": EB}
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap=nsmap)
    header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
    message_header = etree.SubElement(header, f"{{{EB}}}MessageHeader",
                                      {f"{{{SOAP}}}mustUnderstand": "1", f"{{{EB}}}version": "2.0"})
    _party(message_header, "From", from_party)
    _party(message_header, "To", reply.from_party or "")
    own_id = new_message_id()
    _text(message_header, "CPAId", reply.cpa_id or "")
    _text(message_header, "ConversationId", reply.conversation_id or reply.message_id or own_id)
    _text(message_header, "Service", "urn:oasis:names:tc:ebxml-msg:service")
    _text(message_header, "Action", "MessageError")
    data = etree.SubElement(message_header, f"{{{EB}}}MessageData")
    _text(data, "MessageId", own_id)
    _text(data, "Timestamp", ebxml_timestamp())
    if reply.message_id:
        _text(data, "RefToMessageId", reply.message_id)
    error_list = etree.SubElement(header, f"{{{EB}}}ErrorList", {
        f"{{{SOAP}}}mustUnderstand": "1", f"{{{EB}}}highestSeverity": "Error", f"{{{EB}}}version": "2.0"})
    for error in errors:
        attributes = {f"{{{EB}}}codeContext": EBXML_ERRORS,
                      f"{{{EB}}}errorCode": error.code if error.code in EBXML_ERROR_CODES else "Unknown",
                      f"{{{EB}}}severity": "Error"}
        if error.display:
            attributes[f"{{{EB}}}location"] = error.display
        item = etree.SubElement(error_list, f"{{{EB}}}Error", attributes)
        description = etree.SubElement(item, f"{{{EB}}}Description", {XML_LANG: "en-GB"})
        description.text = error.diagnostics
    etree.SubElement(envelope, f"{{{SOAP}}}Body")
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def soap_fault_body(errors: list[SpineError]) -> bytes:
    """SOAP:Fault (faultcode SOAP:Server, faultstring Application Exception) with a nasp:errorList, one nasp:error
    per refusal: the shape of Spine's SOAP faults."""
    nsmap = {"SOAP": SOAP, "crs": "http://national.carerecords.nhs.uk/schema/crs/", "wsa": NS["wsa"]}
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap=nsmap)
    body = etree.SubElement(envelope, f"{{{SOAP}}}Body")
    fault = etree.SubElement(body, f"{{{SOAP}}}Fault")
    etree.SubElement(fault, "faultcode").text = "SOAP:Server"
    etree.SubElement(fault, "faultstring").text = "Application Exception"
    detail = etree.SubElement(fault, "detail")
    error_list = etree.SubElement(detail, f"{{{NASP}}}errorList", nsmap={"nasp": NASP})
    for error in errors:
        item = etree.SubElement(error_list, f"{{{NASP}}}error")
        etree.SubElement(item, f"{{{NASP}}}codeContext").text = TMS_ERRORS
        etree.SubElement(item, f"{{{NASP}}}errorCode").text = error.code if error.code.isdigit() else NOT_ACCEPTED
        etree.SubElement(item, f"{{{NASP}}}severity").text = "Error"
        etree.SubElement(item, f"{{{NASP}}}location").text = "Not Supported"
        text = error.diagnostics or TMS_DESCRIPTIONS.get(error.code, "")
        etree.SubElement(item, f"{{{NASP}}}description").text = (f"{text} ({error.display})" if error.display
                                                                 else text)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _party(parent, name: str, party_key: str) -> None:
    element = etree.SubElement(parent, f"{{{EB}}}{name}")
    etree.SubElement(element, f"{{{EB}}}PartyId", {f"{{{EB}}}type": PARTY_TYPE}).text = party_key


def _text(parent, name: str, value: str) -> None:
    etree.SubElement(parent, f"{{{EB}}}{name}").text = value
