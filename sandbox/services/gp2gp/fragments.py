"""COPC_IN000001UK01, GP2GP common content: each attachment of a large record travels in a message of its own
(a "fragment"), its payload information naming the attachment the extract references and the document itself as a
MIME attachment part."""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from sandbox.messaging import hl7
from sandbox.messaging.mime import Part
from sandbox.services.gp2gp.practice import PRACTICE_ASID
from sandbox.services.gp2gp.records import Document

INTERACTION = "COPC_IN000001UK01"
GP2GP_CODES = "2.16.840.1.113883.2.1.3.2.4.17.202"  # GP2GP large messaging codes
FRAGMENT_NS = "urn:nhs:names:services:gp2gp"
LOCALISATION = "NPFIT:HL7:Localisation"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"


def build_fragment(*, document: Document, message_id: str, requester_asid: str, requester_party: str | None,
                   now: datetime | None = None) -> etree._Element:
    """The fragment carrying one document; its attachment part is attachment_part(document, message_id)."""
    message = hl7.new_message(INTERACTION, message_id=message_id, sender_asid=PRACTICE_ASID,
                              receiver_asid=requester_asid, created=now)
    event = hl7.control_act(message, author_asid=PRACTICE_ASID)
    info = _sub(_sub(event, "subject", typeCode="SUBJ", contextConductionInd="false"), "PayloadInformation",
                classCode="OBS", moodCode="EVN")
    _sub(info, "code", code="GP2GPLMATTACHMENTINFO", codeSystem=GP2GP_CODES,
         displayName="GP2GP Large Message Attachment Information")
    _sub(info, "id", root=message_id)
    etree.SubElement(info, f"{{{LOCALISATION}}}messageType", root="2.16.840.1.113883.2.1.3.2.4.18.17",
                     extension="RCMR_MT000001GB01")
    header = etree.SubElement(_sub(info, "value"), f"{{{FRAGMENT_NS}}}Gp2gpfragment",
                              nsmap={None: FRAGMENT_NS, "xsi": XSI, "xsd": XSD})
    version = etree.SubElement(header, f"{{{FRAGMENT_NS}}}Version")
    version.set(f"{{{XSI}}}type", "xsd:string")
    version.text = "01"
    etree.SubElement(etree.SubElement(header, f"{{{FRAGMENT_NS}}}Recipients"),
                     f"{{{FRAGMENT_NS}}}Recipient").text = requester_party or requester_asid
    etree.SubElement(header, f"{{{FRAGMENT_NS}}}From").text = PRACTICE_ASID
    etree.SubElement(header, f"{{{FRAGMENT_NS}}}subject").text = f"Attachment: {document.filename}"
    etree.SubElement(header, f"{{{FRAGMENT_NS}}}message-id").text = message_id
    pertinent = _sub(info, "pertinentInformation", typeCode="PERT")
    _sub(pertinent, "sequenceNumber", value="1")
    body = _sub(pertinent, "pertinentPayloadBody", classCode="OBS", moodCode="EVN")
    _sub(body, "code", code="GP2GPLMATTACHMENT", codeSystem=GP2GP_CODES, displayName="GP2GP Large Message Attachment")
    _sub(body, "id", root=document.id)
    _sub(_sub(body, "value"), "reference", value=document.reference)
    return message


def attachment_part(document: Document) -> Part:
    """The document as the fragment's MIME attachment, described in the manifest as GP2GP describes
    attachments."""
    description = (f'Filename="{document.filename}" ContentType={document.content_type} Compressed=No '
                   f'LargeAttachment=No OriginalBase64=No Length={len(document.body)}')
    return Part(content_type=document.content_type, content_id=f"{document.id}@spine.nhs.uk", body=document.body,
                headers=(("Content-Description", description),), charset="us-ascii")


def _sub(parent: etree._Element, name: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{hl7.HL7}}}{name}", attrs)
