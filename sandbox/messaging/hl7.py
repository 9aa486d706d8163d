"""HL7v3 messages: the transmission wrapper every interaction shares (id, creationTime, versionCode, interactionId,
processing codes, acknowledgement, sender and receiver ASIDs) and the ControlActEvent; built and parsed here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from sandbox.messaging import NS, Problem, total, xmlsafe

HL7 = NS["hl7"]
INTERACTION_ROOT = "2.16.840.1.113883.2.1.3.2.4.12"  # interactionId/@root
ASID_ROOT = "1.2.826.0.1285.0.2.0.107"  # device ids: the Accredited System ID
SDS_USER_ROOT = "1.2.826.0.1285.0.2.0.65"  # author/AgentPersonSDS/id: the SDS user id
SDS_ROLE_PROFILE_ROOT = "1.2.826.0.1285.0.2.0.67"  # author/AgentPersonSDS/part/partSDSRole... the role profile
# The code system of the error codes in a Spine application acknowledgement (acknowledgementDetail/code and
# justifyingDetectedIssueEvent/code). Spine's own value as we know it from practice: none of the shared examples
# carries a coded error, so no test can confirm it; callers may pass their own code_system.
SPINE_ERROR_CODE_SYSTEM = "2.16.840.1.113883.2.1.3.2.4.17.42"
DEFAULT_VERSION_CODE = "V3NPfIT3.0"
# versionCode each interaction carries in the captured live messages and templates; others get the default.
VERSION_CODES = {
    "MCCI_IN010000UK13": "V3NPfIT4.2.00",
    "QUPA_IN050000UK32": "V3NPfIT4.2.00",
    "QUPA_IN040000UK32": "V3NPfIT3.0",
    "QUPC_IN160102UK05": "3NPfIT7.2.02",
    "QUPC_IN160101UK05": "3NPfIT7.2.02",
    "REPC_IN150016UK05": "3NPfIT7.2.02",
    "PRSC_IN080000UK07": "V3NPfIT3.1.09",
}
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_TS = re.compile(r"^\d{8}(\d{2}(\d{2}(\d{2}(\.\d+)?)?)?)?([+-]\d{4})?$")
_ASID = re.compile(r"^\d{1,20}$")
_ACK_TYPES = ("AA", "AE", "AR", "CA", "CE", "CR")


def _q(name: str) -> str:
    return f"{{{HL7}}}{name}"


def _sub(parent: etree._Element, name: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, _q(name), {k: v for k, v in attrs.items() if v is not None})


@dataclass(frozen=True)
class Hl7Wrapper:
    """The transmission wrapper of any interaction, as parsed; `problems` says what is missing or malformed."""

    root: etree._Element
    interaction: str | None
    message_id: str | None
    creation_time: str | None
    version_code: str | None
    processing_code: str | None
    processing_mode: str | None
    accept_ack: str | None
    receiver_asids: tuple[str, ...]
    sender_asid: str | None
    control_act: etree._Element | None
    author_ids: tuple[str, ...]  # ControlActEvent author/author1 ids (SDS user id, role profile, ASID)
    problems: tuple[Problem, ...]
    ack_type: str | None = None  # acknowledgement/@typeCode, when the message acknowledges another
    ack_ref: str | None = None  # acknowledgement/messageRef/id/@root


def new_message(interaction: str, *, message_id: str, sender_asid: str, receiver_asid: str,
                ack_type: str | None = None, ack_ref: str | None = None, created: datetime | None = None,
                accept_ack: str = "NE", ack_details: Iterable[tuple[str, str]] = (),
                version_code: str | None = None, code_system: str = SPINE_ERROR_CODE_SYSTEM) -> etree._Element:
    """The interaction root with its transmission wrapper filled in; append the ControlActEvent (control_act)."""
    root = etree.Element(_q(interaction), nsmap={None: HL7})
    _sub(root, "id", root=message_id)
    _sub(root, "creationTime", value=format_ts(created))
    _sub(root, "versionCode", code=version_code or VERSION_CODES.get(interaction, DEFAULT_VERSION_CODE))
    _sub(root, "interactionId", root=INTERACTION_ROOT, extension=interaction)
    _sub(root, "processingCode", code="P")
    _sub(root, "processingModeCode", code="T")
    _sub(root, "acceptAckCode", code=accept_ack)
    if ack_type:
        ack = _sub(root, "acknowledgement", typeCode=ack_type)
        for code, text in ack_details:
            detail = _sub(ack, "acknowledgementDetail", typeCode="ER" if ack_type in ("AE", "AR") else "IF")
            _sub(detail, "code", code=str(code), codeSystem=code_system, displayName=str(text))
        _sub(_sub(ack, "messageRef"), "id", root=ack_ref or "")
    for function, asid, type_code in (("communicationFunctionRcv", receiver_asid, "RCV"),
                                      ("communicationFunctionSnd", sender_asid, "SND")):
        device = _sub(_sub(root, function, typeCode=type_code), "device", classCode="DEV", determinerCode="INSTANCE")
        _sub(device, "id", root=ASID_ROOT, extension=asid)
    return root


def control_act(parent: etree._Element, *, author_asid: str) -> etree._Element:
    """Append a ControlActEvent authored by a system (author1/AgentSystemSDS, the ASID) and return it; the
    caller adds the subject / query / reason the interaction wants after it."""
    event = _sub(parent, "ControlActEvent", classCode="CACT", moodCode="EVN")
    agent = _sub(_sub(event, "author1", typeCode="AUT"), "AgentSystemSDS", classCode="AGNT")
    system = _sub(agent, "agentSystemSDS", classCode="DEV", determinerCode="INSTANCE")
    _sub(system, "id", root=ASID_ROOT, extension=author_asid)
    return event


def application_ack(received: Hl7Wrapper, *, type_code: str, errors: Iterable[tuple[str, str]] = (),
                    sender_asid: str, message_id: str, created: datetime | None = None,
                    code_system: str = SPINE_ERROR_CODE_SYSTEM) -> etree._Element:
    """An MCCI_IN010000UK13 application acknowledgement of `received`: AA (accepted), AE (application error) or
    AR (rejected), each error (code, text) both as an acknowledgementDetail and as a ControlActEvent reason."""
    if type_code not in _ACK_TYPES:
        raise ValueError(f"acknowledgement type {type_code!r} is not one of {', '.join(_ACK_TYPES)}")
    errors = list(errors)
    root = new_message("MCCI_IN010000UK13", message_id=message_id, sender_asid=sender_asid,
                       receiver_asid=received.sender_asid or "", ack_type=type_code,
                       ack_ref=received.message_id or "", created=created, ack_details=errors,
                       code_system=code_system)
    event = control_act(root, author_asid=sender_asid)
    for code, text in errors:
        issue = _sub(_sub(event, "reason", typeCode="RSON"), "justifyingDetectedIssueEvent",
                     classCode="ALRT", moodCode="EVN")
        _sub(issue, "code", code=str(code), codeSystem=code_system, displayName=str(text))
    return root


def to_bytes(element: etree._Element) -> bytes:
    """UTF-8 with an XML declaration."""
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


def format_ts(moment: datetime | None = None) -> str:
    """An HL7 TS as Spine writes it: YYYYMMDDHHMMSS in UTC."""
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y%m%d%H%M%S")


@total
def parse_wrapper(xml: bytes | etree._Element) -> Hl7Wrapper:
    """Read the transmission wrapper. Raises MessagingError only when the bytes are not XML; everything else
    wrong (missing ids, wrong namespace, malformed ASIDs...) is a Problem on the result."""
    root = xml if isinstance(xml, etree._Element) else xmlsafe.parse(xml, where="HL7 payload", code="hl7.malformed")
    problems: list[Problem] = []
    qname = etree.QName(root)
    where_root = f"/hl7:{qname.localname}"
    if qname.namespace != HL7:
        problems.append(Problem("hl7.namespace", f"the HL7 message element {qname.localname} is in namespace "
                                f"{qname.namespace or '(none)'}; expected {HL7}", where_root))

    def child(parent: etree._Element | None, name: str) -> etree._Element | None:
        if parent is None:
            return None
        found = parent.find(_q(name))
        if found is None and qname.namespace != HL7:  # still read an un-namespaced message, once reported
            found = parent.find(name)
        return found

    def children(parent: etree._Element | None, name: str) -> list[etree._Element]:
        if parent is None:
            return []
        return parent.findall(_q(name)) + (parent.findall(name) if qname.namespace != HL7 else [])

    def attr(element: etree._Element | None, name: str) -> str | None:
        value = element.get(name) if element is not None else None
        return value.strip() if value and value.strip() else None

    def required(name: str, attribute: str, code: str, what: str) -> str | None:
        element = child(root, name)
        value = attr(element, attribute)
        if value is None:
            problems.append(Problem(code, f"{what} is missing: expected {name}/@{attribute}",
                                    f"{where_root}/hl7:{name}"))
        return value

    message_id = required("id", "root", "hl7.id", "the message id")
    if message_id and not _UUID.match(message_id):
        problems.append(Problem("hl7.id", f"the message id {message_id!r} is not a UUID", f"{where_root}/hl7:id/@root"))
    creation_time = required("creationTime", "value", "hl7.creation-time", "the creation time")
    if creation_time and not _TS.match(creation_time):
        problems.append(Problem("hl7.creation-time", f"creationTime {creation_time!r} is not an HL7 timestamp "
                                "(YYYYMMDDHHMMSS)", f"{where_root}/hl7:creationTime/@value"))
    version_code = required("versionCode", "code", "hl7.version-code", "the version code")
    interaction_element = child(root, "interactionId")
    interaction = attr(interaction_element, "extension")
    if interaction is None:
        problems.append(Problem("hl7.interaction-id", "the interaction id is missing: expected "
                                "interactionId/@extension", f"{where_root}/hl7:interactionId"))
    else:
        if interaction != qname.localname:
            problems.append(Problem("hl7.interaction-id", f"interactionId {interaction!r} does not match the "
                                    f"message element {qname.localname!r}", f"{where_root}/hl7:interactionId"))
        if attr(interaction_element, "root") != INTERACTION_ROOT:
            problems.append(Problem("hl7.interaction-id", f"interactionId/@root is "
                                    f"{attr(interaction_element, 'root')!r}; expected {INTERACTION_ROOT}",
                                    f"{where_root}/hl7:interactionId/@root"))
    processing_code = required("processingCode", "code", "hl7.processing-code", "the processing code")
    processing_mode = required("processingModeCode", "code", "hl7.processing-mode", "the processing mode code")
    accept_ack = required("acceptAckCode", "code", "hl7.accept-ack", "the accept acknowledgement code")

    def asids(function: str) -> list[str]:
        found = []
        for index, comm in enumerate(children(root, function), start=1):
            for device_id in children(child(comm, "device"), "id"):
                value = attr(device_id, "extension")
                where = f"{where_root}/hl7:{function}[{index}]/hl7:device/hl7:id"
                if value is None:
                    problems.append(Problem("hl7.asid", f"{function} device id has no extension (ASID)", where))
                    continue
                if not _ASID.match(value):
                    problems.append(Problem("hl7.asid", f"{function} ASID {value!r} is not numeric", where))
                if attr(device_id, "root") != ASID_ROOT:
                    problems.append(Problem("hl7.asid", f"{function} device id root is {attr(device_id, 'root')!r};"
                                            f" an ASID has root {ASID_ROOT}", where + "/@root"))
                found.append(value)
        if not found:
            problems.append(Problem("hl7.asid", f"no {function} ASID: expected {function}/device/id/@extension",
                                    f"{where_root}/hl7:{function}"))
        return found

    receiver_asids = tuple(asids("communicationFunctionRcv"))
    senders = asids("communicationFunctionSnd")
    if len(senders) > 1:
        problems.append(Problem("hl7.asid", f"{len(senders)} sender ASIDs; expected one",
                                f"{where_root}/hl7:communicationFunctionSnd"))
    event = child(root, "ControlActEvent")
    author_ids: list[str] = []
    if event is not None:
        for name in ("author", "author1"):
            for author in children(event, name):
                for element in author.iter(_q("id"), "id"):
                    value = attr(element, "extension") or attr(element, "root")
                    if value:
                        author_ids.append(value)
    ack = child(root, "acknowledgement")
    ack_ref = attr(child(child(ack, "messageRef"), "id"), "root")
    return Hl7Wrapper(root=root, interaction=interaction or qname.localname, message_id=message_id,
                      creation_time=creation_time, version_code=version_code, processing_code=processing_code,
                      processing_mode=processing_mode, accept_ack=accept_ack, receiver_asids=receiver_asids,
                      sender_asid=senders[0] if senders else None, control_act=event,
                      author_ids=tuple(author_ids), problems=tuple(problems),
                      ack_type=attr(ack, "typeCode"), ack_ref=ack_ref)
