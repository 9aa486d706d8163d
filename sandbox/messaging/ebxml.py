"""ebXML messaging (ebMS 2.0 as NHS Spine profiles it): SOAP-with-attachments in MIME multipart/related, the
eb:MessageHeader, eb:Manifest, eb:Acknowledgment and eb:ErrorList. Parse totally, build in Spine's live shape."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from sandbox.messaging import NS, MessagingError, Problem, mime, total, xmlsafe
from sandbox.messaging.mime import Part

EB = NS["eb"]
SOAP = NS["soap"]
PARTY_TYPE = "urn:nhs:names:partyType:ocs+serviceInstance"
EBXML_SERVICE = "urn:oasis:names:tc:ebxml-msg:service"  # the Service of an Acknowledgment and a MessageError
ERROR_CODE_CONTEXT = "urn:oasis:names:tc:ebxml-msg:service:errors"
TO_PARTY_MSH = "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"
NEXT_MSH = "urn:oasis:names:tc:ebxml-msg:actor:nextMSH"
SOAP_NEXT_ACTOR = "http://schemas.xmlsoap.org/soap/actor/next"
HEADER_CONTENT_ID = "ebXMLHeader@spine.nhs.uk"
HL7_SCHEMA_LOCATION = "http://www.nhsia.nhs.uk/schemas/HL7-Message.xsd"
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
_XML_TYPES = ("text/xml", "application/xml")


@dataclass(frozen=True)
class ManifestReference:
    href: str
    description: str | None
    is_hl7_payload: bool
    id: str | None = None  # eb:id, when given (document id of an attachment)


@dataclass(frozen=True)
class EbxmlError:
    code: str  # eb:errorCode, e.g. "ValueNotRecognized"
    severity: str  # "Error" | "Warning"
    description: str  # Spine's: "<spine code>:<text>", e.g. "501319:Unknown eb:CPAId"
    code_context: str | None = None


@dataclass(frozen=True)
class EbxmlHeader:
    from_party: str | None
    to_party: str | None
    cpa_id: str | None
    conversation_id: str | None
    service: str | None
    action: str | None
    message_id: str | None
    timestamp: str | None
    ref_to_message_id: str | None
    duplicate_elimination: bool
    ack_requested: bool
    ack_actor: str | None
    sync_reply: bool
    manifest: tuple[ManifestReference, ...]
    acknowledgment_of: str | None  # RefToMessageId of an eb:Acknowledgment element, when this is an ack
    errors: tuple[EbxmlError, ...]  # eb:ErrorList, when this is a NACK / MessageError
    problems: tuple[Problem, ...]  # everything found wrong while parsing the message (MIME, header, manifest...)
    has_error_list: bool = False  # an eb:ErrorList element is present (even an empty one)

    @property
    def interaction(self) -> str | None:
        """The Action, which is the interaction id."""
        return self.action

    @property
    def is_acknowledgment(self) -> bool:
        return self.acknowledgment_of is not None or (self.service == EBXML_SERVICE and self.action == "Acknowledgment")

    @property
    def is_message_error(self) -> bool:
        return self.has_error_list or (self.service == EBXML_SERVICE and self.action == "MessageError")


@dataclass(frozen=True)
class EbxmlMessage:
    header: EbxmlHeader
    hl7: bytes | None
    attachments: tuple[Part, ...]
    parts: tuple[Part, ...]
    hl7_index: int | None = None  # which of `parts` carries the HL7 payload

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.header.problems

    @property
    def hl7_part(self) -> Part | None:
        return self.parts[self.hl7_index] if self.hl7_index is not None else None


# ---------------------------------------------------------------------------------------------------- parsing

@total
def parse(content_type_header: str | None, body: bytes) -> EbxmlMessage:
    """A multipart/related ebXML message, or a bare SOAP envelope (an Acknowledgment or MessageError sent as
    text/xml). Raises MessagingError only when no ebXML header can be read at all."""
    if not isinstance(body, (bytes, bytearray)):
        raise MessagingError(Problem("mime.body", f"expected bytes, got {type(body).__name__}"))
    body = bytes(body)
    content_type_header = mime.header_text(content_type_header)
    content_type = mime.parse_content_type(content_type_header)
    looks_bare = content_type.media_type in _XML_TYPES or (
        not content_type.media_type.startswith("multipart/") and body.lstrip()[:1] == b"<")
    if looks_bare:
        root = xmlsafe.parse(body, where="SOAP envelope", code="ebxml.header-not-xml")
        problems: list[Problem] = []
        header = _read_envelope(root, problems, expect_manifest=False)
        return EbxmlMessage(_with_problems(header, problems), None, (), ())

    multipart = mime.read_multipart(content_type_header, body)
    problems = list(multipart.problems)
    parts = multipart.parts
    header_index = 0
    if multipart.start is not None:
        found = multipart.index_of(multipart.start)
        if found is None:
            problems.append(Problem("ebxml.start-missing", f"the start parameter names <{multipart.start}> but no "
                                    "part has that Content-Id; reading the first part as the ebXML header",
                                    "header:Content-Type"))
        else:
            header_index = found
    else:
        problems.append(Problem("mime.no-start", "the Content-Type has no start parameter naming the ebXML "
                                "header part", "header:Content-Type"))
    if header_index != 0:
        problems.append(Problem("ebxml.header-not-first", f"the ebXML header is MIME part {header_index + 1}; "
                                "it must be the first part", f"MIME part {header_index + 1}"))
    header_part = parts[header_index]
    where = f"MIME part {header_index + 1}"
    if header_part.content_type not in _XML_TYPES:
        problems.append(Problem("ebxml.header-content-type", f"the ebXML header part is "
                                f"{header_part.content_type!r}; expected text/xml", f"{where} header:Content-Type"))
    try:
        root = xmlsafe.parse(_as_utf8_xml(header_part, where, problems), where=f"{where} (ebXML header)",
                             code="ebxml.header-not-xml")
    except MessagingError as exc:
        raise MessagingError(problems + [Problem("ebxml.header-not-xml", p.message, p.where)
                                         for p in exc.problems]) from None
    header = _read_envelope(root, problems, expect_manifest=True)

    # The manifest names the payload and attachments; every cid: reference must name a part.
    by_id = {p.content_id: (i, p) for i, p in enumerate(parts) if p.content_id}
    referenced: set[int] = {header_index}
    hl7_index: int | None = None
    for position, ref in enumerate(header.manifest, start=1):
        ref_where = f"/soap:Envelope/soap:Body/eb:Manifest/eb:Reference[{position}]/@xlink:href"
        if ref.href.startswith("cid:"):
            target = by_id.get(ref.href[4:])
            if target is None:
                problems.append(Problem("ebxml.manifest-unresolved", f"manifest reference {ref.href!r} names no "
                                        "MIME part of the message", ref_where))
                continue
            referenced.add(target[0])
            if ref.is_hl7_payload and hl7_index is None:
                hl7_index = target[0]
        elif ref.href.startswith("mid:"):
            continue  # an external attachment: another message, not a part of this one
        else:
            problems.append(Problem("ebxml.manifest-href", f"manifest reference {ref.href!r} is neither cid: nor "
                                    "mid:", ref_where))
    if hl7_index is None and not header.is_acknowledgment and not header.is_message_error:
        if not any(r.is_hl7_payload for r in header.manifest) and len(parts) > 1:
            hl7_index = 1 if header_index == 0 else 0
            referenced.add(hl7_index)
            problems.append(Problem("ebxml.manifest-payload", "no manifest reference carries hl7ebxml:Payload; "
                                    f"reading MIME part {hl7_index + 1} as the HL7 payload",
                                    "/soap:Envelope/soap:Body/eb:Manifest"))
        else:
            problems.append(Problem("ebxml.no-payload", "the message has no HL7 payload part",
                                    "/soap:Envelope/soap:Body/eb:Manifest"))
    for index, part in enumerate(parts):
        if index not in referenced:
            problems.append(Problem("ebxml.unreferenced-part", f"MIME part {index + 1} (<{part.content_id}>) is "
                                    "not named in the manifest", f"MIME part {index + 1}"))
    hl7: bytes | None = None
    if hl7_index is not None:
        payload = parts[hl7_index]
        pwhere = f"MIME part {hl7_index + 1}"
        hl7 = _as_utf8_xml(payload, pwhere, problems)
        if payload.content_type not in _XML_TYPES:
            problems.append(Problem("ebxml.payload-content-type", f"the HL7 payload part is "
                                    f"{payload.content_type!r}; expected text/xml or application/xml",
                                    f"{pwhere} header:Content-Type"))
        if not hl7.strip():
            problems.append(Problem("ebxml.payload-empty", "the HL7 payload part is empty", pwhere))
        else:
            try:
                xmlsafe.parse(hl7, where=f"{pwhere} (HL7 payload)", code="ebxml.payload-not-xml")
            except MessagingError as exc:  # one stable code; the parser's detail stays in the message
                problems.extend(Problem("ebxml.payload-not-xml", p.message, p.where) for p in exc.problems)
    attachments = tuple(p for i, p in enumerate(parts) if i not in (header_index, hl7_index))
    return EbxmlMessage(_with_problems(header, problems), hl7, attachments, tuple(parts), hl7_index)


_UTF8_LIKE = {"utf-8", "utf8"}
_XML_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _as_utf8_xml(part: Part, where: str, problems: list[Problem]) -> bytes:
    """The part's XML as the parser should see it: a MIME charset other than UTF-8 is honoured when the XML
    declares no encoding of its own (the bytes are re-encoded as UTF-8); a declaration that contradicts the
    MIME charset is a problem, and the declaration wins."""
    charset = part.charset
    if not charset or charset in _UTF8_LIKE:
        return part.body
    mime_codec = mime.known_charset(charset)
    if mime_codec is None:
        return part.body  # already reported as mime.unknown-charset
    declared = _XML_DECLARED_ENCODING.match(part.body)
    if declared:
        if mime.known_charset(declared.group(1).decode("ascii")) != mime_codec:
            problems.append(Problem("mime.charset-mismatch", f"the part's charset is {charset} but its XML declares "
                                    f"encoding {declared.group(1).decode('ascii', 'replace')!r}",
                                    f"{where} header:Content-Type"))
        return part.body
    try:
        return part.body.decode(charset).encode("utf-8")
    except (UnicodeError, LookupError, ValueError):
        problems.append(Problem("mime.charset-mismatch", f"the part's bytes are not {charset}, the charset its "
                                "Content-Type declares", f"{where} header:Content-Type"))
        return part.body


@total
def parse_header(xml: bytes) -> EbxmlHeader:
    """Just the SOAP envelope of an ebXML message (e.g. a captured header part)."""
    problems: list[Problem] = []
    header = _read_envelope(xmlsafe.parse(xml, where="ebXML header", code="ebxml.header-not-xml"), problems,
                            expect_manifest=True)
    return _with_problems(header, problems)


def _with_problems(header: EbxmlHeader, problems: list[Problem]) -> EbxmlHeader:
    from dataclasses import replace
    return replace(header, problems=tuple(problems))


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _read_envelope(root: etree._Element, problems: list[Problem], *, expect_manifest: bool) -> EbxmlHeader:
    if root.tag != _q(SOAP, "Envelope"):
        raise MessagingError(problems + [Problem("ebxml.not-soap", f"the ebXML header is "
                                                 f"{etree.QName(root).localname!r}, not a SOAP 1.1 Envelope",
                                                 "/" + etree.QName(root).localname)])
    soap_header = root.find(_q(SOAP, "Header"))
    message_header = soap_header.find(_q(EB, "MessageHeader")) if soap_header is not None else None
    base = "/soap:Envelope/soap:Header/eb:MessageHeader"
    if soap_header is None:
        problems.append(Problem("ebxml.missing", "the SOAP Header is missing", "/soap:Envelope/soap:Header"))
    elif message_header is None:
        problems.append(Problem("ebxml.missing", "eb:MessageHeader is missing", base))

    def value(path: str, required: bool = True) -> str | None:
        if message_header is None:
            return None
        element = message_header.find(path, NS)
        found = xmlsafe.text(element)
        if found is None and required:
            problems.append(Problem("ebxml.missing", f"{path} is missing or empty", f"{base}/{path}"))
        return found

    def party(direction: str) -> str | None:
        found = value(f"eb:{direction}/eb:PartyId")
        element = message_header.find(f"eb:{direction}/eb:PartyId", NS) if message_header is not None else None
        if element is not None and element.get(_q(EB, "type")) != PARTY_TYPE:
            problems.append(Problem("ebxml.party-type", f"eb:{direction}/eb:PartyId eb:type is "
                                    f"{element.get(_q(EB, 'type'))!r}; Spine expects {PARTY_TYPE}",
                                    f"{base}/eb:{direction}/eb:PartyId/@eb:type"))
        return found

    from_party, to_party = party("From"), party("To")
    cpa_id, conversation_id = value("eb:CPAId"), value("eb:ConversationId")
    service, action = value("eb:Service"), value("eb:Action")
    message_id, timestamp = value("eb:MessageData/eb:MessageId"), value("eb:MessageData/eb:Timestamp")
    ref_to = value("eb:MessageData/eb:RefToMessageId", required=False)
    if message_id and not _UUID.match(message_id):
        problems.append(Problem("ebxml.message-id", f"eb:MessageId {message_id!r} is not a UUID",
                                f"{base}/eb:MessageData/eb:MessageId"))
    if timestamp and not _DATETIME.match(timestamp):
        problems.append(Problem("ebxml.timestamp", f"eb:Timestamp {timestamp!r} is not an xs:dateTime",
                                f"{base}/eb:MessageData/eb:Timestamp"))
    if message_header is not None:
        _check_soap_extension(message_header, base, problems)
    duplicate_elimination = (message_header is not None
                             and message_header.find(_q(EB, "DuplicateElimination")) is not None)

    def header_element(name: str) -> etree._Element | None:
        return soap_header.find(_q(EB, name)) if soap_header is not None else None

    ack_requested_element = header_element("AckRequested")
    ack_actor = ack_requested_element.get(_q(SOAP, "actor")) if ack_requested_element is not None else None
    if ack_requested_element is not None:
        _check_soap_extension(ack_requested_element, "/soap:Envelope/soap:Header/eb:AckRequested", problems)
    sync_reply_element = header_element("SyncReply")
    acknowledgment = header_element("Acknowledgment")
    acknowledgment_of = None
    if acknowledgment is not None:
        acknowledgment_of = xmlsafe.text(acknowledgment.find(_q(EB, "RefToMessageId")))
        if acknowledgment_of is None:
            problems.append(Problem("ebxml.missing", "eb:Acknowledgment has no eb:RefToMessageId",
                                    "/soap:Envelope/soap:Header/eb:Acknowledgment/eb:RefToMessageId"))
    error_list = header_element("ErrorList")
    errors: list[EbxmlError] = []
    if error_list is not None:
        for element in error_list.findall(_q(EB, "Error")):
            errors.append(EbxmlError(
                code=element.get(_q(EB, "errorCode")) or "", severity=element.get(_q(EB, "severity")) or "Error",
                description=xmlsafe.text(element.find(_q(EB, "Description"))) or "",
                code_context=element.get(_q(EB, "codeContext"))))
        if not errors:
            problems.append(Problem("ebxml.empty-error-list", "eb:ErrorList holds no eb:Error",
                                    "/soap:Envelope/soap:Header/eb:ErrorList"))
    manifest: list[ManifestReference] = []
    body = root.find(_q(SOAP, "Body"))
    manifest_element = body.find(_q(EB, "Manifest")) if body is not None else None
    if manifest_element is not None:
        for position, reference in enumerate(manifest_element.findall(_q(EB, "Reference")), start=1):
            manifest.append(ManifestReference(
                href=(reference.get(_q(NS["xlink"], "href")) or "").strip(),
                description=xmlsafe.text(reference.find(_q(EB, "Description"))),
                is_hl7_payload=_is_hl7_payload(reference, position, problems),
                id=reference.get(_q(EB, "id"))))
    elif expect_manifest and acknowledgment is None and error_list is None:
        problems.append(Problem("ebxml.no-manifest", "the SOAP Body has no eb:Manifest",
                                "/soap:Envelope/soap:Body/eb:Manifest"))
    return EbxmlHeader(
        from_party=from_party, to_party=to_party, cpa_id=cpa_id, conversation_id=conversation_id, service=service,
        action=action, message_id=message_id, timestamp=timestamp, ref_to_message_id=ref_to,
        duplicate_elimination=duplicate_elimination, ack_requested=ack_requested_element is not None,
        ack_actor=ack_actor, sync_reply=sync_reply_element is not None, manifest=tuple(manifest),
        acknowledgment_of=acknowledgment_of, errors=tuple(errors), problems=(),
        has_error_list=error_list is not None)


_HL7EBXML_MISSPELT = "urn:hl7-org:transport/ebxml/DSTUv1.0"  # seen live (GP2GP from one supplier)


def _is_hl7_payload(reference: etree._Element, position: int, problems: list[Problem]) -> bool:
    if reference.find(_q(NS["hl7ebxml"], "Payload")) is not None:
        return True
    if reference.find(_q(_HL7EBXML_MISSPELT, "Payload")) is not None:
        problems.append(Problem("ebxml.hl7ebxml-namespace", f"hl7ebxml:Payload is in namespace {_HL7EBXML_MISSPELT};"
                                f" the namespace is {NS['hl7ebxml']} (case matters)",
                                f"/soap:Envelope/soap:Body/eb:Manifest/eb:Reference[{position}]/hl7ebxml:Payload"))
        return True
    return False


def _check_soap_extension(element: etree._Element, where: str, problems: list[Problem]) -> None:
    name = etree.QName(element).localname
    if element.get(_q(EB, "version")) != "2.0":
        problems.append(Problem("ebxml.version", f"eb:{name} eb:version is {element.get(_q(EB, 'version'))!r}; "
                                "expected 2.0", f"{where}/@eb:version"))
    if element.get(_q(SOAP, "mustUnderstand")) not in ("1", "true"):
        problems.append(Problem("ebxml.must-understand", f"eb:{name} has no SOAP:mustUnderstand=\"1\"",
                                f"{where}/@soap:mustUnderstand"))


# ---------------------------------------------------------------------------------------------------- building

def timestamp_now(moment: datetime | None = None) -> str:
    """An eb:Timestamp as Spine writes it: 2019-05-04T20:55:16Z."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _x(value: str | None) -> str:
    return escape(value or "")


def _party(value: str | None) -> str:
    return f'<eb:PartyId eb:type="{PARTY_TYPE}">{_x(value)}</eb:PartyId>'


def attachment_description(part: Part, *, filename: str | None = None, compressed: bool = False,
                           original_base64: bool = False) -> str:
    """The Description Spine's MHSs put on an attachment reference (GP2GP reads it)."""
    name = filename or (part.content_id or "attachment").split("@", 1)[0]
    return (f'Filename="{name}" ContentType={part.content_type} Compressed={"Yes" if compressed else "No"} '
            f'LargeAttachment=No OriginalBase64={"Yes" if original_base64 else "No"}')


STYLES = ("spine", "mhs")


def build_message(*, from_party: str, to_party: str, cpa_id: str, conversation_id: str, service: str,
                  action: str, message_id: str, hl7: bytes, attachments: tuple[Part, ...] | list[Part] = (),
                  ref_to_message_id: str | None = None, duplicate_elimination: bool = False,
                  ack_requested: bool = False, sync_reply: bool = False, timestamp: str | None = None,
                  ack_actor: str = TO_PARTY_MSH, style: str = "spine") -> tuple[str, bytes]:
    """(Content-Type, body) of an ebXML message: the header part, then the HL7 payload (Content-Id
    <message_id@spine.nhs.uk>), then each attachment (its manifest description is its Content-Description header
    when it has one, else Spine's Filename=... form).

    style "spine" is what Spine itself sends (the captured VPN traffic): header part text/xml, payload
    application/xml, eb:Schema urn:hl7-org:v3_<interaction>.xsd, charset="UTF-8" on the multipart. style "mhs" is
    what a supplier's MHS sends (the MHS adaptor's template): text/xml; charset=UTF-8 parts, SOAP:mustUnderstand
    on the Manifest, eb:Schema HL7-Message.xsd."""
    if style not in STYLES:
        raise ValueError(f"style {style!r} is not one of {', '.join(STYLES)}")
    spine = style == "spine"
    payload_id = f"{message_id}@spine.nhs.uk"
    env = "soap" if spine else "SOAP"
    lines = [
        "<?xml version='1.0' encoding='UTF-8'?>" if spine else '<?xml version="1.0" encoding="UTF-8"?>',
        f'<{env}:Envelope xmlns:xsi="http://www.w3c.org/2001/XML-Schema-Instance" xmlns:{env}="{SOAP}" '
        f'xmlns:eb="{EB}"' + ("" if spine else f' xmlns:hl7ebxml="{NS["hl7ebxml"]}"')
        + f' xmlns:xlink="{NS["xlink"]}">',
        f"<{env}:Header>",
        f'\t<eb:MessageHeader {env}:mustUnderstand="1" eb:version="2.0">',
        f"\t\t<eb:From>\n\t\t\t{_party(from_party)}\n\t\t</eb:From>",
        f"\t\t<eb:To>\n\t\t\t{_party(to_party)}\n\t\t</eb:To>",
        f"\t\t<eb:CPAId>{_x(cpa_id)}</eb:CPAId>",
        f"\t\t<eb:ConversationId>{_x(conversation_id)}</eb:ConversationId>",
        f"\t\t<eb:Service>{_x(service)}</eb:Service>",
        f"\t\t<eb:Action>{_x(action)}</eb:Action>",
        "\t\t<eb:MessageData>",
        f"\t\t\t<eb:MessageId>{_x(message_id)}</eb:MessageId>",
        f"\t\t\t<eb:Timestamp>{_x(timestamp or timestamp_now())}</eb:Timestamp>",
    ]
    if ref_to_message_id:
        lines.append(f"\t\t\t<eb:RefToMessageId>{_x(ref_to_message_id)}</eb:RefToMessageId>")
    lines.append("\t\t</eb:MessageData>")
    if duplicate_elimination:
        lines.append("\t\t<eb:DuplicateElimination/>")
    lines.append("\t</eb:MessageHeader>")
    if ack_requested:
        lines.append(f'\t<eb:AckRequested {env}:mustUnderstand="1" eb:version="2.0" eb:signed="false" '
                     f'{env}:actor={quoteattr(ack_actor)}/>')
    if sync_reply:
        lines.append(f'\t<eb:SyncReply {env}:mustUnderstand="1" eb:version="2.0" {env}:actor="{SOAP_NEXT_ACTOR}"/>')
    manifest = (f'\t<eb:Manifest xmlns:hl7ebxml="{NS["hl7ebxml"]}" eb:version="2.0">' if spine
                else f'\t<eb:Manifest {env}:mustUnderstand="1" eb:version="2.0">')
    schema = (f'\t\t\t<eb:Schema eb:location="urn:hl7-org:v3_{_x(action)}.xsd" eb:version="{_x(action[-2:])}"/>'
              if spine else f'\t\t\t<eb:Schema eb:location="{HL7_SCHEMA_LOCATION}" eb:version="1.0"/>')
    lines += [
        f"</{env}:Header>", f"<{env}:Body>", manifest,
        f'\t\t<eb:Reference xlink:href="cid:{_x(payload_id)}">', schema,
        f'\t\t\t<eb:Description xml:lang="en">{"The HL7 payload" if spine else "HL7 payload"}</eb:Description>',
        '\t\t\t<hl7ebxml:Payload style="HL7" encoding="XML" version="3.0"/>',
        "\t\t</eb:Reference>",
    ]
    attachments = list(attachments)
    for attachment in attachments:
        description = attachment.header("Content-Description") or attachment_description(attachment)
        lines += [f'\t\t<eb:Reference xlink:href="cid:{_x(attachment.content_id)}">',
                  f'\t\t\t<eb:Description xml:lang="en">{_x(description)}</eb:Description>',
                  "\t\t</eb:Reference>"]
    lines += ["\t</eb:Manifest>", f"</{env}:Body>", f"</{env}:Envelope>", ""]
    charset = None if spine else "utf-8"
    header_part = Part("text/xml", HEADER_CONTENT_ID, "\r\n".join(lines).encode("utf-8"), charset=charset,
                       transfer_encoding="8bit")
    payload_part = Part("application/xml" if spine else "text/xml", payload_id, hl7, charset=charset,
                        transfer_encoding="8bit")
    extra = [Part(a.content_type, a.content_id, a.body, tuple((k, v) for k, v in a.headers
                                                              if k.lower() != "content-description"),
                  a.charset, a.transfer_encoding) for a in attachments]
    return mime.build_multipart([header_part, payload_part, *extra], start=HEADER_CONTENT_ID,
                                charset="UTF-8" if spine else None)


def _reply_header(received: EbxmlHeader, *, from_party: str, message_id: str, action: str,
                  timestamp: str) -> list[str]:
    return [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<SOAP:Envelope xmlns:xsi="http://www.w3c.org/2001/XML-Schema-Instance" xmlns:SOAP="{SOAP}" '
        f'xmlns:eb="{EB}" xmlns:hl7ebxml="{NS["hl7ebxml"]}" xmlns:xlink="{NS["xlink"]}">',
        "<SOAP:Header>",
        '\t<eb:MessageHeader SOAP:mustUnderstand="1" eb:version="2.0">',
        f"\t\t<eb:From>\n\t\t\t{_party(from_party)}\n\t\t</eb:From>",
        f"\t\t<eb:To>\n\t\t\t{_party(received.from_party)}\n\t\t</eb:To>",
        f"\t\t<eb:CPAId>{_x(received.cpa_id)}</eb:CPAId>",
        f"\t\t<eb:ConversationId>{_x(received.conversation_id)}</eb:ConversationId>",
        f"\t\t<eb:Service>{EBXML_SERVICE}</eb:Service>",
        f"\t\t<eb:Action>{action}</eb:Action>",
        "\t\t<eb:MessageData>",
        f"\t\t\t<eb:MessageId>{_x(message_id)}</eb:MessageId>",
        f"\t\t\t<eb:Timestamp>{timestamp}</eb:Timestamp>",
        f"\t\t\t<eb:RefToMessageId>{_x(received.message_id)}</eb:RefToMessageId>",
        "\t\t</eb:MessageData>",
        "\t</eb:MessageHeader>",
    ]


def build_acknowledgment(received: EbxmlHeader, *, from_party: str, message_id: str,
                         timestamp: str | None = None) -> bytes:
    """The eb:Acknowledgment of a reliable message (text/xml), as Spine sends it."""
    now = timestamp or timestamp_now()
    lines = _reply_header(received, from_party=from_party, message_id=message_id, action="Acknowledgment",
                          timestamp=now)
    lines += [
        f'\t<eb:Acknowledgment SOAP:mustUnderstand="1" eb:version="2.0" SOAP:actor="{TO_PARTY_MSH}">',
        f"\t\t<eb:Timestamp>{_x(received.timestamp or now)}</eb:Timestamp>",
        f"\t\t<eb:RefToMessageId>{_x(received.message_id)}</eb:RefToMessageId>",
        f"\t\t<eb:From>\n\t\t\t{_party(from_party)}\n\t\t</eb:From>",
        "\t</eb:Acknowledgment>",
        "</SOAP:Header>", "<SOAP:Body/>", "</SOAP:Envelope>", "",
    ]
    return "\r\n".join(lines).encode("utf-8")


def build_message_error(received: EbxmlHeader, errors: list[EbxmlError], *, from_party: str, message_id: str,
                        timestamp: str | None = None) -> bytes:
    """A MessageError with eb:ErrorList in Spine's style (text/xml), e.g. errorCode ValueNotRecognized,
    description "501319:Unknown eb:CPAId", codeContext urn:oasis:names:tc:ebxml-msg:service:errors."""
    now = timestamp or timestamp_now()
    lines = _reply_header(received, from_party=from_party, message_id=message_id, action="MessageError",
                          timestamp=now)
    highest = "Error" if any(e.severity == "Error" for e in errors) or not errors else "Warning"
    lines.append(f'\t<eb:ErrorList SOAP:mustUnderstand="1" eb:highestSeverity="{highest}" eb:version="2.0">')
    for error in errors:
        lines += [f'\t\t<eb:Error eb:codeContext={quoteattr(error.code_context or ERROR_CODE_CONTEXT)} '
                  f'eb:errorCode={quoteattr(error.code)} eb:severity={quoteattr(error.severity)}>',
                  f'\t\t\t<eb:Description xml:lang="en-GB">{_x(error.description)}</eb:Description>',
                  "\t\t</eb:Error>"]
    lines += ["\t</eb:ErrorList>", "</SOAP:Header>", "<SOAP:Body/>", "</SOAP:Envelope>", ""]
    return "\r\n".join(lines).encode("utf-8")
