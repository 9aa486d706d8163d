"""What every HL7v3 translation shares: building elements in the HL7v3 namespace, the identifiers, codes and times
live EPS writes, the FHIR lookups it does (total: a missing field raises `Untranslatable` naming its FHIR path), and
the Spine message wrapper (SendMessagePayload) every interaction is sent in."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from sandbox.services.eps.resources import as_dict, entries, identifier_value

HL7 = "urn:hl7-org:v3"
H = f"{{{HL7}}}"  # the namespace as lxml writes it in a tag or path
_NSMAP = {None: HL7}
UUID = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}", re.IGNORECASE)

# Identifier roots (OIDs) live EPS writes.
ROOT_INTERACTION = "2.16.840.1.113883.2.1.3.2.4.12"
ROOT_TYPE = "2.16.840.1.113883.2.1.3.2.4.18.7"
ROOT_TEMPLATE = "2.16.840.1.113883.2.1.3.2.4.18.2"
ROOT_NHS_NUMBER = "2.16.840.1.113883.2.1.4.1"
ROOT_PROFESSIONAL_CODE = "1.2.826.0.1285.0.2.1.54"
ROOT_SDS_USER = "1.2.826.0.1285.0.2.0.65"
ROOT_SDS_ROLE_PROFILE = "1.2.826.0.1285.0.2.0.67"
ROOT_SHORT_FORM_ID = "2.16.840.1.113883.2.1.3.2.4.18.8"
ROOT_ODS = "1.2.826.0.1285.0.1.10"
ROOT_ASID = "1.2.826.0.1285.0.2.0.107"
ROOT_SDS_JOB_ROLE = "1.2.826.0.1285.0.2.1.104"
# Code systems.
SNOMED = "2.16.840.1.113883.2.1.3.2.4.15"
SEX = "2.16.840.1.113883.2.1.3.2.4.16.25"
CARE_PROVISION = "2.16.840.1.113883.2.1.3.2.4.17.37"
ORG_TYPE = "2.16.840.1.113883.2.1.3.2.4.17.94"
ANNOTATION = "2.16.840.1.113883.2.1.3.2.4.17.30"
TREATMENT_TYPE = "2.16.840.1.113883.2.1.3.2.4.16.36"
SITE_PREFERENCE = "2.16.840.1.113883.2.1.3.2.4.17.21"
ENDORSEMENT = "2.16.840.1.113883.2.1.3.2.4.16.32"
PRESCRIPTION_TYPE = "2.16.840.1.113883.2.1.3.2.4.17.25"
CANCELLATION_REASON = "2.16.840.1.113883.2.1.3.2.4.16.27"
ITEM_STATUS = "2.16.840.1.113883.2.1.3.2.4.17.23"
PRESCRIPTION_STATUS = "2.16.840.1.113883.2.1.3.2.4.16.35"

# The Spine ASIDs: live sends to Spine's (TO_ASID) from the calling system's; the sandbox has one of each.
SPINE_ASID = "567456789789"
SANDBOX_CLIENT_ASID = "200000001285"
ROLE_UNKNOWN = "UNKNOWN"

# FHIR systems the translation reads (the identifier systems are context's *_SYSTEM).
PRESCRIPTION_ID_EXTENSION = "https://fhir.nhs.uk/StructureDefinition/Extension-DM-PrescriptionId"
SNOMED_URL = "http://snomed.info/sct"


class Untranslatable(ValueError):
    """The message lacks something the translation needs; `path` is the FHIR path, as live's errors name it."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


# --- building XML -------------------------------------------------------------------------------------------------

def root(tag: str) -> etree._Element:
    return etree.Element(f"{{{HL7}}}{tag}", nsmap=_NSMAP)


def act_root(tag: str, class_code: str, mood_code: str, act_id: str) -> etree._Element:
    """A payload's root act, `<tag classCode=… moodCode=…><id root=act_id/>`."""
    act = root(tag)
    act.set("classCode", class_code)
    act.set("moodCode", mood_code)
    global_id(act, act_id)
    return act


_QNAMES: dict[str, str] = {}


def el(parent: etree._Element, tag: str, attrs: dict[str, str | None] | None = None,
       text: str | None = None) -> etree._Element:
    """A child element; attributes whose value is None are left out (as xml-js leaves out undefined)."""
    qname = _QNAMES.get(tag)
    if qname is None:
        qname = _QNAMES.setdefault(tag, f"{{{HL7}}}{tag}")
    if attrs:
        child = etree.SubElement(parent, qname, {k: str(v) for k, v in attrs.items() if v is not None})
    else:
        child = etree.SubElement(parent, qname)
    if text is not None:
        child.text = text
    return child


def ident(parent: etree._Element, root_oid: str, extension: str | None = None, tag: str = "id") -> etree._Element:
    return el(parent, tag, {"extension": extension, "root": root_oid})


def global_id(parent: etree._Element, value: str, tag: str = "id") -> etree._Element:
    """A GlobalIdentifier: a UUID is written upper case."""
    return el(parent, tag, {"root": value.upper() if UUID.search(value) else value})


def code(parent: etree._Element, system: str | None, value: str, display: str | None = None,
         tag: str = "code") -> etree._Element:
    return el(parent, tag, {"code": value, "codeSystem": system, "displayName": display})


def annotation(parent: etree._Element, tag: str, class_code: str, annotation_code: str) -> etree._Element:
    """`<tag classCode=… moodCode="EVN"><code code=… codeSystem=ANNOTATION/>`: the annotation acts live writes."""
    act = el(parent, tag, {"classCode": class_code, "moodCode": "EVN"})
    code(act, ANNOTATION, annotation_code)
    return act


def pertinent(parent: etree._Element, tag: str, separatable: bool, **attrs: str) -> etree._Element:
    element = el(parent, tag, {**attrs, "typeCode": "PERT"})
    el(element, "seperatableInd", {"value": "true" if separatable else "false"})
    return element


def prescription_id_act(parent: etree._Element, tag: str, act_tag: str, act_code: str, short_form: str,
                        context: str = "true") -> None:
    """The act naming the short-form prescription id a message is about (PID, or WID for a withdrawal)."""
    act = annotation(pertinent(parent, tag, False, contextConductionInd=context), act_tag, "OBS", act_code)
    ident(act, ROOT_SHORT_FORM_ID, short_form, tag="value")


# --- times ----------------------------------------------------------------------------------------------------------

_ISO = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)?)?$")


def parse_iso(value: Any, path: str) -> datetime:
    """An ISO 8601 date or date-time as a UTC datetime (a date is midnight UTC, as moment.utc reads it)."""
    match = _ISO.match(value) if isinstance(value, str) else None
    if not match:
        raise Untranslatable(f"Invalid date or date-time '{value}'.", path)
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        moment = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                          int(second or 0), tzinfo=UTC)
        if zone and zone != "Z":
            offset = datetime.strptime(zone.replace(":", ""), "%z").utcoffset()
            moment = moment - offset if offset else moment
    except ValueError as exc:
        raise Untranslatable(f"Invalid date or date-time '{value}'.", path) from exc
    return moment


def hl7_datetime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def hl7_from_iso(value: Any, path: str) -> str:
    return hl7_datetime(parse_iso(value, path))


def hl7_date_from_iso(value: Any, path: str) -> str:
    return parse_iso(value, path).strftime("%Y%m%d")


def iso_from_hl7(value: str) -> str:
    """'20241209115004' -> '2024-12-09T11:50:04+00:00' ($prepare's timestamp)."""
    moment = datetime.strptime(value[:14].ljust(14, "0"), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return moment.isoformat()


# --- FHIR lookups (live's getIdentifierValueForSystem, resolveReference, getExtensionForUrl …) ------------------------

def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def text_of(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Untranslatable(f"Expected a value at {path}.", path)
    return str(value)


def numeric(value: Any, path: str) -> str:
    """A FHIR decimal as live writes it: integers without a fraction."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Untranslatable(f"Expected a number at {path}.", path)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _required(found: Any, what: str, path: str) -> Any:
    if found is None:
        raise Untranslatable(f"Expected exactly one {what}.", path)
    return found


def identifier(identifiers: Any, system: str, path: str) -> str:
    return _required(identifier_value(identifiers, system), f"identifier with system '{system}'", path)


def extension(extensions: Any, url: str, path: str) -> dict:
    return _required(extension_or_none(extensions, url), f"extension with url '{url}'", path)


def extension_or_none(extensions: Any, url: str) -> dict | None:
    for item in as_list(extensions):
        if isinstance(item, dict) and item.get("url") == url:
            return item
    return None


def coding(concept: Any, system: str, path: str) -> dict:
    """The coding of a CodeableConcept (or list of them, or a list of codings) with this system."""
    return _required(coding_or_none(concept, system), f"coding with system '{system}'", path)


def coding_or_none(concept: Any, system: str) -> dict | None:
    for item in _codings(concept):
        if item.get("system") == system:
            return item
    return None


def _codings(concept: Any) -> list[dict]:
    found: list[dict] = []
    for item in concept if isinstance(concept, list) else [concept]:
        if not isinstance(item, dict):
            continue
        if "coding" in item:
            found.extend(c for c in as_list(item["coding"]) if isinstance(c, dict))
        elif "system" in item:
            found.append(item)
    return found


def only(items: Any, path: str) -> dict:
    values = as_list(items)
    if len(values) != 1 or not isinstance(values[0], dict):
        raise Untranslatable(f"Expected exactly one {path}.", path)
    return values[0]


def resolve(bundle: Any, reference: Any, path: str) -> dict:
    """The resource a reference ({"reference": "urn:uuid:…"}) points at in the Bundle (by fullUrl, or Type/id)."""
    target = reference.get("reference") if isinstance(reference, dict) else None
    if isinstance(target, str):
        for entry in as_list(as_dict(bundle).get("entry")):
            if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
                continue
            resource = entry["resource"]
            if entry.get("fullUrl") == target or f"{resource.get('resourceType')}/{resource.get('id')}" == target:
                return resource
    raise Untranslatable(f"Reference '{target}' does not resolve to a resource in the Bundle.", path)


def one_of_type(bundle: Any, resource_type: str) -> dict:
    found = entries(bundle, resource_type)
    if len(found) != 1:
        raise Untranslatable(f"Expected exactly one {resource_type}.", f"Bundle.entry.resource.ofType({resource_type})")
    return found[0]


def message_id(resource: Any, path: str) -> str:
    """The id live gives the HL7v3 message: the Bundle's (Task's, Claim's) identifier value."""
    found = resource.get("identifier") if isinstance(resource, dict) else None
    values = found if isinstance(found, list) else [found]
    for item in values:
        if isinstance(item, dict) and isinstance(item.get("value"), str):
            return item["value"]
    raise Untranslatable("Expected an identifier.", path)


# --- the wrapper ----------------------------------------------------------------------------------------------------

def send_message_payload(interaction: str, message_uuid: str, created: datetime, *, asid: str = SANDBOX_CLIENT_ASID,
                         user_id: str | None = None, role_id: str | None = None) -> tuple[etree._Element,
                                                                                      etree._Element]:
    """The interaction's root element with live's transmission wrapper and ControlActEvent (author: the user of
    the request's CIS2 token when there is one; author1: the sending system), and the `subject` to fill."""
    message = root(interaction)
    global_id(message, message_uuid)
    el(message, "creationTime", {"value": hl7_datetime(created)})
    el(message, "versionCode", {"code": "V3NPfIT4.2.00"})
    ident(message, ROOT_INTERACTION, interaction, tag="interactionId")
    el(message, "processingCode", {"code": "P"})
    el(message, "processingModeCode", {"code": "T"})
    el(message, "acceptAckCode", {"code": "NE"})
    for tag, value in (("communicationFunctionRcv", SPINE_ASID), ("communicationFunctionSnd", asid)):
        device = el(el(message, tag), "device", {"classCode": "DEV", "determinerCode": "INSTANCE"})
        ident(device, ROOT_ASID, value)
    control = el(message, "ControlActEvent", {"classCode": "CACT", "moodCode": "EVN"})
    if user_id and role_id:
        agent = el(el(control, "author", {"typeCode": "AUT"}), "AgentPersonSDS", {"classCode": "AGNT"})
        ident(agent, ROOT_SDS_ROLE_PROFILE, role_id)
        ident(el(agent, "agentPersonSDS", {"classCode": "PSN", "determinerCode": "INSTANCE"}), ROOT_SDS_USER, user_id)
        part = el(el(agent, "part", {"typeCode": "PART"}), "partSDSRole", {"classCode": "ROL"})
        ident(part, ROOT_SDS_JOB_ROLE, ROLE_UNKNOWN)
    system = el(el(control, "author1", {"typeCode": "AUT"}), "AgentSystemSDS", {"classCode": "AGNT"})
    ident(el(system, "agentSystemSDS", {"classCode": "DEV", "determinerCode": "INSTANCE"}), ROOT_ASID, asid)
    return message, el(control, "subject")


# --- xml-js's canonicalised writer (what live hashes) -----------------------------------------------------------------

def xmljs_canonical(element: etree._Element, *, namespaced: bool = False) -> str:
    """An element written as live's writeXmlStringCanonicalized writes it (xml-js compact, no indentation, full
    end tags for empty elements, attributes sorted with xmlns first, attribute values escaping only '"', text
    escaping & < >). `namespaced`: the element carries xmlns="urn:hl7-org:v3" (live's namespacedCopyOf)."""
    parts: list[str] = []
    _write(element, parts, namespaced)
    return "".join(parts)


def _write(element: etree._Element, parts: list[str], namespaced: bool) -> None:
    name = etree.QName(element).localname
    attrs = dict(element.attrib)
    parts.append(f"<{name}")
    if namespaced:
        parts.append(f' xmlns="{HL7}"')
    for key in sorted(attrs):
        value = re.sub(r"\r?\n", " ", re.sub(r"[\t\f]+", " ", attrs[key].replace('"', "&quot;")))
        parts.append(f' {key}="{value}"')
    parts.append(">")
    if element.text:
        parts.append(_text(element.text))
    for child in element:
        if isinstance(child.tag, str):
            _write(child, parts, False)
    parts.append(f"</{name}>")


def _text(value: str) -> str:
    return value.replace("&amp;", "&").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
