"""The synchronous pattern: SOAP 1.1 + WS-Addressing over HTTP, the HL7 message in the SOAP Body, the sender and
receiver ASIDs as hl7:communicationFunctionSnd/Rcv in the SOAP Header. Parse totally; build in Spine's shape."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree

from sandbox.messaging import NS, MessagingError, Problem, total, xmlsafe

SOAP = NS["soap"]
WSA = NS["wsa"]
HL7 = NS["hl7"]
NASP = NS["nasp"]
CRS = "http://national.carerecords.nhs.uk/schema/crs/"
ASID_ROOT = "1.2.826.0.1285.0.2.0.107"
TMS_CODE_CONTEXT = "urn:nhs:names:error:tms"
_HEADER = "/soap:Envelope/soap:Header"


@dataclass(frozen=True)
class SpineErrorDetail:
    """One nasp:error of a Spine SOAP fault."""

    code: str  # nasp:errorCode, e.g. "200"
    description: str  # e.g. "System failure to process message - default"
    code_context: str = TMS_CODE_CONTEXT
    severity: str = "Error"
    location: str = "Not Supported"


@dataclass(frozen=True)
class SoapRequest:
    message_id: str | None  # wsa:MessageID without its "uuid:" prefix
    action: str | None  # wsa:Action, e.g. "urn:nhs:names:services:pdsquery/QUPA_IN040000UK32"
    to: str | None
    from_address: str | None
    reply_to: str | None
    sender_asid: str | None
    receiver_asid: str | None
    hl7: bytes | None  # the first element of the SOAP Body, serialised with its namespaces
    problems: tuple[Problem, ...]
    body_element: str | None = None  # local name of that element

    @property
    def interaction(self) -> str | None:
        """The last path segment of wsa:Action."""
        if not self.action:
            return None
        return self.action.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1] or None

    @property
    def service(self) -> str | None:
        if not self.action or "/" not in self.action:
            return None
        return self.action.rsplit("/", 1)[0]


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def strip_uuid_prefix(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[5:] if value.lower().startswith("uuid:") else value


@total
def parse_request(body: bytes) -> SoapRequest:
    """A synchronous request. Raises MessagingError only when the body is not a SOAP 1.1 envelope at all."""
    root = xmlsafe.parse(body, where="SOAP envelope", code="soap.malformed")
    if root.tag != _q(SOAP, "Envelope"):
        namespace = etree.QName(root).namespace
        hint = " (SOAP 1.2 is not accepted; Spine speaks SOAP 1.1)" if namespace == \
            "http://www.w3.org/2003/05/soap-envelope" else ""
        raise MessagingError(Problem("soap.not-envelope", f"the body is {etree.QName(root).localname!r}, not a SOAP "
                                     f"1.1 Envelope{hint}", "/" + etree.QName(root).localname))
    problems: list[Problem] = []
    header = root.find(_q(SOAP, "Header"))
    if header is None:
        problems.append(Problem("soap.missing", "the SOAP Header is missing", _HEADER))

    def wsa(name: str, required: bool = True) -> str | None:
        element = header.find(_q(WSA, name)) if header is not None else None
        value = xmlsafe.text(element)
        if value is None and required:
            problems.append(Problem("soap.missing", f"wsa:{name} is missing or empty", f"{_HEADER}/wsa:{name}"))
        return value

    def address(name: str) -> str | None:
        element = header.find(f"wsa:{name}/wsa:Address", NS) if header is not None else None
        return xmlsafe.text(element)

    def asid(function: str) -> str | None:
        where = f"{_HEADER}/hl7:{function}/hl7:device/hl7:id"
        element = header.find(f"hl7:{function}/hl7:device/hl7:id", NS) if header is not None else None
        value = (element.get("extension") or "").strip() if element is not None else ""
        if not value:
            problems.append(Problem("soap.asid", f"hl7:{function} has no device id ASID", where + "/@extension"))
            return None
        if not value.isdigit():
            problems.append(Problem("soap.asid", f"hl7:{function} ASID {value!r} is not numeric", where))
        if element.get("root") != ASID_ROOT:
            problems.append(Problem("soap.asid", f"hl7:{function} device id root is {element.get('root')!r}; an "
                                    f"ASID has root {ASID_ROOT}", where + "/@root"))
        return value

    raw_message_id = wsa("MessageID")
    message_id = strip_uuid_prefix(raw_message_id)
    action = wsa("Action")
    to = wsa("To", required=False)
    from_address = address("From")
    reply_to = address("ReplyTo")
    receiver_asid = asid("communicationFunctionRcv")
    sender_asid = asid("communicationFunctionSnd")
    if message_id is not None and not _is_uuid(message_id):
        problems.append(Problem("soap.message-id", f"wsa:MessageID {raw_message_id!r} is not a UUID (Spine "
                                "expects uuid:<UUID>)", f"{_HEADER}/wsa:MessageID"))
    body_element = root.find(_q(SOAP, "Body"))
    hl7: bytes | None = None
    local_name: str | None = None
    if body_element is None:
        problems.append(Problem("soap.no-body", "the SOAP Body is missing", "/soap:Envelope/soap:Body"))
    else:
        payload = next((child for child in body_element if isinstance(child.tag, str)), None)
        if payload is None:
            problems.append(Problem("soap.no-body", "the SOAP Body holds no HL7 message", "/soap:Envelope/soap:Body"))
        else:
            local_name = etree.QName(payload).localname
            hl7 = etree.tostring(payload, encoding="UTF-8", xml_declaration=True)
            if etree.QName(payload).namespace != HL7:
                problems.append(Problem("soap.body-namespace", f"the SOAP Body element {local_name!r} is not in "
                                        f"the HL7 namespace {HL7}", f"/soap:Envelope/soap:Body/{local_name}"))
    request = SoapRequest(message_id, action, to, from_address, reply_to, sender_asid, receiver_asid, hl7,
                          (), local_name)
    if request.interaction and local_name and request.interaction != local_name:
        problems.append(Problem("soap.action-mismatch", f"wsa:Action names {request.interaction!r} but the SOAP "
                                f"Body holds {local_name!r}", f"{_HEADER}/wsa:Action"))
    from dataclasses import replace
    return replace(request, problems=tuple(problems))


def _is_uuid(value: str) -> bool:
    import uuid
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _uuid_ref(value: str) -> str:
    return value if value.lower().startswith("uuid:") else f"uuid:{value}"


def build_response(*, action: str, message_id: str, relates_to: str, from_service: str, sender_asid: str,
                   receiver_asid: str, wrapper: str | None, hl7: bytes) -> bytes:
    """A synchronous response in Spine's shape: WS-Addressing header (MessageID, Action, To, From, RelatesTo),
    hl7:communicationFunctionRcv/Snd, and SOAP-ENV:Body/hl7:<wrapper>/<the HL7 message>."""
    envelope = etree.Element(_q(SOAP, "Envelope"), nsmap={"crs": CRS, "SOAP-ENV": SOAP, "wsa": WSA, None: HL7,
                                                          "hl7": HL7})
    header = etree.SubElement(envelope, _q(SOAP, "Header"))
    etree.SubElement(header, _q(WSA, "MessageID")).text = _uuid_ref(message_id)
    etree.SubElement(header, _q(WSA, "Action")).text = action
    etree.SubElement(header, _q(WSA, "To"))
    etree.SubElement(etree.SubElement(header, _q(WSA, "From")), _q(WSA, "Address")).text = from_service
    for function, asid, type_code in (("communicationFunctionRcv", receiver_asid, "RCV"),
                                      ("communicationFunctionSnd", sender_asid, "SND")):
        comm = etree.SubElement(header, _q(HL7, function), typeCode=type_code)
        device = etree.SubElement(comm, _q(HL7, "device"), classCode="DEV", determinerCode="INSTANCE")
        etree.SubElement(device, _q(HL7, "id"), root=ASID_ROOT, extension=asid)
    etree.SubElement(header, _q(WSA, "RelatesTo")).text = _uuid_ref(relates_to)
    body = etree.SubElement(envelope, _q(SOAP, "Body"))
    holder = etree.SubElement(body, _q(HL7, wrapper)) if wrapper else body
    holder.append(xmlsafe.parse(hl7, where="HL7 message", code="hl7.malformed"))
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def build_fault(errors: list[SpineErrorDetail], *, faultstring: str = "Application Exception") -> bytes:
    """A SOAP fault as Spine sends it: faultcode SOAP:Server, detail/nasp:errorList of nasp:error."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<SOAP:Envelope xmlns:SOAP="{SOAP}" xmlns:SOAP-ENV="{SOAP}" xmlns:crs="{CRS}" xmlns:wsa="{WSA}">',
        "  <SOAP:Body>", "    <SOAP:Fault>", "      <faultcode>SOAP:Server</faultcode>",
        f"      <faultstring>{escape(faultstring)}</faultstring>",
    ]
    if errors:
        lines += ["      <detail>", f'        <nasp:errorList xmlns:nasp="{NASP}">']
        for error in errors:
            lines += ["          <nasp:error>",
                      f"            <nasp:codeContext>{escape(error.code_context)}</nasp:codeContext>",
                      f"            <nasp:errorCode>{escape(error.code)}</nasp:errorCode>",
                      f"            <nasp:severity>{escape(error.severity)}</nasp:severity>",
                      f"            <nasp:location>{escape(error.location)}</nasp:location>",
                      f"            <nasp:description>{escape(error.description)}</nasp:description>",
                      "          </nasp:error>"]
        lines += ["        </nasp:errorList>", "      </detail>"]
    else:
        lines.append("      <detail/>")
    lines += ["    </SOAP:Fault>", "  </SOAP:Body>", "</SOAP:Envelope>", ""]
    return "\n".join(lines).encode("utf-8")


@dataclass(frozen=True)
class SoapFault:
    faultcode: str | None
    faultstring: str | None
    errors: tuple[SpineErrorDetail, ...]
    problems: tuple[Problem, ...]


@total
def parse_fault(body: bytes) -> SoapFault | None:
    """A Spine SOAP fault's errors; None when the envelope holds no SOAP:Fault. Raises MessagingError only
    when the body is not a SOAP envelope."""
    root = xmlsafe.parse(body, where="SOAP envelope", code="soap.malformed")
    if root.tag != _q(SOAP, "Envelope"):
        raise MessagingError(Problem("soap.not-envelope", "the body is not a SOAP 1.1 Envelope",
                                     "/" + etree.QName(root).localname))
    fault = root.find(f"{_q(SOAP, 'Body')}/{_q(SOAP, 'Fault')}")
    if fault is None:
        return None
    problems: list[Problem] = []
    errors: list[SpineErrorDetail] = []
    for element in fault.iterfind("detail/nasp:errorList/nasp:error", NS):
        errors.append(SpineErrorDetail(code=_field(element, "errorCode"), description=_field(element, "description"),
                                       code_context=_field(element, "codeContext", TMS_CODE_CONTEXT),
                                       severity=_field(element, "severity", "Error"),
                                       location=_field(element, "location")))
    if not errors:
        problems.append(Problem("soap.empty-error-list", "the SOAP fault carries no nasp:errorList/nasp:error",
                                "/soap:Envelope/soap:Body/soap:Fault/detail"))
    return SoapFault(xmlsafe.text(fault.find("faultcode")), xmlsafe.text(fault.find("faultstring")),
                     tuple(errors), tuple(problems))


def _field(error: etree._Element, name: str, default: str = "") -> str:
    return xmlsafe.text(error.find(f"nasp:{name}", NS)) or default
