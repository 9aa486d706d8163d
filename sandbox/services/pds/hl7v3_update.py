"""PRPA_IN000203UK03, the PDS Update Request: apply an HL7v3 update to the session's record, so FHIR sees it.

The update names the record version it was made from (pertinentSerialChangeNumber, PDS's serial change number:
the FHIR versionId), and each changed item carries updateMode (added, altered, removed) and, to alter or remove,
the item's own id (the object id PDS returns: the FHIR item id). The result passes the same business rules and
schema as a FHIR PATCH, and is stored the same way (a new version, compare-and-set). The answer is the
MCCI_IN010000UK13 application acknowledgement: AA, or AE with the PDS codes and every problem found.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import date

from lxml import etree

from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import is_ascii_digits
from sandbox.messaging import SPINE_ASID, new_id
from sandbox.messaging.business import InteractionReply, InteractionRequest
from sandbox.messaging.hl7 import application_ack
from sandbox.services.pds import hl7v3_patient as hp
from sandbox.services.pds.hl7v3_query import NS, Judgement
from sandbox.services.pds.patch import without_empty_lists
from sandbox.services.pds.patch_rules import change_problems
from sandbox.services.pds.problems import schema_problems
from sandbox.services.pds.records import PatientRecords, Record
from sandbox.synthetic.identifiers import ODS_SYSTEM, is_valid_nhs_number

REQ_REQUEST = "PDS-HL7-020"  # PdsUpdateRequest, its update type and the patient's NHS number
REQ_VERSION = "PDS-HL7-021"  # the serial change number is the record's current one
REQ_CHANGES = "PDS-HL7-022"  # each change well formed: updateMode, ids of altered/removed items, dates, codes
REQ_RULES = "PDS-HL7-023"  # the updated record keeps PDS's business rules (the same as FHIR's)
REQ_RESTRICTED = "PDS-HL7-024"  # a restricted record is not updated
UPDATE_TYPE_SYSTEM = "2.16.840.1.113883.2.1.3.2.4.17.40"
UPDATE_FAILED = "15"  # PDS detected-issue code "Update Failed"
NO_MATCH = "1"
MODES = ("added", "altered", "removed")
STANDARD_TITLES = {t.upper(): t for t in ("Mr", "Mrs", "Ms", "Miss", "Dr", "Rev", "Sir", "Lady", "Lord")}
BASE = "/hl7:PRPA_IN000203UK03/hl7:ControlActEvent/hl7:subject/hl7:PdsUpdateRequest"


def handle(request: InteractionRequest) -> list[InteractionReply]:
    errors = _update(request)
    ack = application_ack(request.wrapper, type_code="AE" if errors else "AA", errors=errors,
                          sender_asid=SPINE_ASID, message_id=new_id())
    return [InteractionReply(ack, to_party=request.from_party)]


def _update(request: InteractionRequest) -> list[tuple[str, str]]:
    """The (code, text) errors of the acknowledgement: none when the update was applied."""
    j = Judgement()
    found = _request(request.wrapper.root, j)
    if found is None:
        request.exchange.add(*j.findings)
        return [(UPDATE_FAILED, "Update Failed - " + _first_failure(j))]
    update_request, number, scn = found
    records = PatientRecords(request.sandbox, request.session)
    try:
        record = records.find(number)
    except SpineError:
        j.fail(REQ_REQUEST, f"There is no live record for NHS number {number} (unknown, invalidated or merged).",
               f"{BASE}/hl7:subject/hl7:patientRole/hl7:id")
        request.exchange.add(*j.findings)
        return [(NO_MATCH, "No match to a Service User record")]
    if record.superseded:
        j.fail(REQ_REQUEST, f"NHS number {number} is superseded by {record.nhs_number}: update the superseding "
                            "record.", f"{BASE}/hl7:subject/hl7:patientRole/hl7:id/@extension")
    if scn is not None and scn != str(record.version):
        j.fail(REQ_VERSION, f"The serial change number is {scn}, but the record is at {record.version}: read the "
                            "record again and send the update against its current serial change number.",
               f"{BASE}/hl7:pertinentInformation/hl7:pertinentSerialChangeNumber/hl7:value/@value")
    elif scn is not None:
        j.passed(REQ_VERSION, f"The update is made against the current serial change number {scn}.",
                 f"{BASE}/hl7:pertinentInformation/hl7:pertinentSerialChangeNumber/hl7:value/@value")
    if record.restricted and record.source != "example":
        j.fail(REQ_RESTRICTED, f"Patient {number} is restricted (sensitive): PDS refuses updates from ordinary "
                               "systems.", f"{BASE}/hl7:subject/hl7:patientRole")
    after = copy.deepcopy(record.resource)
    apply_changes(update_request.find("hl7:subject/hl7:patientRole", NS), after, j)
    after = without_empty_lists(after)
    if j.ok:
        _rules(record, after, j)
    request.exchange.add(*j.findings)
    if not j.ok:
        return [(UPDATE_FAILED, "Update Failed - " + _first_failure(j))]
    if record.source != "example":  # the published examples are read-only: the update succeeds, nothing is kept
        after["meta"] = {**after.get("meta", {}), "versionId": str(record.version + 1)}
        request.exchange.write_with_record(_save(records, record, after))
    return []


def _save(records: PatientRecords, record: Record, resource: dict) -> Callable[[], None]:
    """Compare-and-set at commit: if another request changed the patient first, VersionConflict fails the exchange
    and nothing is stored."""
    return lambda: records.save(record, resource)


def _first_failure(j: Judgement) -> str:
    failure = next(f for f in j.findings if str(f.outcome) == "fail")
    more = sum(1 for f in j.findings if str(f.outcome) == "fail") - 1
    return failure.message + (f" (and {more} more problem(s): see the exchange's findings)" if more else "")


def _request(root: etree._Element, j: Judgement) -> tuple[etree._Element, str, str | None] | None:
    """(PdsUpdateRequest, the NHS number, the serial change number), or None when there is no update to apply."""
    update_request = root.find("hl7:ControlActEvent/hl7:subject/hl7:PdsUpdateRequest", NS)
    if update_request is None:
        j.fail(REQ_REQUEST, "The message has no ControlActEvent/subject/PdsUpdateRequest.", BASE)
        return None
    code = update_request.find("hl7:code", NS)
    if code is None or code.get("code") not in ("1", "2") or code.get("codeSystem") != UPDATE_TYPE_SYSTEM:
        seen = "missing" if code is None else f"code {code.get('code')!r} in {code.get('codeSystem')!r}"
        j.fail(REQ_REQUEST, f"The update type is {seen}: expected code 1 (change) or 2 (correction) in "
                            f"{UPDATE_TYPE_SYSTEM}.", f"{BASE}/hl7:code")
    scn_value = update_request.find("hl7:pertinentInformation/hl7:pertinentSerialChangeNumber/hl7:value", NS)
    scn = (scn_value.get("value") or "").strip() if scn_value is not None else ""
    if not is_ascii_digits(scn):
        j.fail(REQ_VERSION, f"The serial change number is {scn or 'missing'}: an update names the version of the "
                            "record it was made from (pertinentSerialChangeNumber/value/@value, from the retrieval).",
               f"{BASE}/hl7:pertinentInformation/hl7:pertinentSerialChangeNumber/hl7:value")
    role_id = update_request.find("hl7:subject/hl7:patientRole/hl7:id", NS)
    number = (role_id.get("extension") or "").strip() if role_id is not None else ""
    if role_id is None or role_id.get("root") != hp.NHS_NUMBER_ROOT or not is_valid_nhs_number(number):
        j.fail(REQ_REQUEST, f"patientRole/id is {number or 'missing'}: expected root {hp.NHS_NUMBER_ROOT} and an "
                            "NHS number of ten digits with a valid Modulus 11 check digit.",
               f"{BASE}/hl7:subject/hl7:patientRole/hl7:id")
        return None
    if j.ok:
        j.passed(REQ_REQUEST, f"The update request names patient {number} and its update type.", BASE)
    return update_request, number, scn if is_ascii_digits(scn) else None


# --- the changes --------------------------------------------------------------------------------------------------
def apply_changes(role: etree._Element | None, resource: dict, j: Judgement) -> None:
    """Apply every change in patientRole to the FHIR resource in place, with a finding for each bad one."""
    if role is None:
        return
    where = f"{BASE}/hl7:subject/hl7:patientRole"
    for index, node in enumerate(role.findall("hl7:addr", NS), start=1):
        _list_change(resource, "address", node, f"{where}/hl7:addr[{index}]", _address, j)
    for index, node in enumerate(role.findall("hl7:telecom", NS), start=1):
        _telecom_change(resource, node, f"{where}/hl7:telecom[{index}]", j)
    person = role.find("hl7:patientPerson", NS)
    if person is None:
        return
    where += "/hl7:patientPerson"
    for index, node in enumerate(person.findall("hl7:name", NS), start=1):
        _list_change(resource, "name", node, f"{where}/hl7:name[{index}]", _name, j)
    _gender(resource, person.find("hl7:administrativeGenderCode", NS), f"{where}/hl7:administrativeGenderCode", j)
    _date_value(resource, "birthDate", person.find("hl7:birthTime", NS), f"{where}/hl7:birthTime", j, day=True)
    _date_value(resource, "deceasedDateTime", person.find("hl7:deceasedTime", NS), f"{where}/hl7:deceasedTime", j,
                day=False)
    for index, node in enumerate(person.findall(
            "hl7:playedOtherProviderPatient/hl7:subjectOf/hl7:patientCareProvision", NS), start=1):
        _care_provider(resource, node, f"{where}/hl7:playedOtherProviderPatient[{index}]/hl7:subjectOf/"
                                       "hl7:patientCareProvision", j)


def _mode(node: etree._Element, where: str, j: Judgement, required: bool = True) -> str | None:
    mode = node.get("updateMode")
    if mode is None and not required:
        return "altered"
    if mode not in MODES:
        j.fail(REQ_CHANGES, f"updateMode is {mode!r}: each changed item says added, altered or removed.",
               f"{where}/@updateMode")
        return None
    return mode


def _object_id(node: etree._Element) -> str | None:
    found = node.find("hl7:id", NS)
    return (found.get("extension") or "").strip() or None if found is not None else None


def _list_change(resource: dict, field: str, node: etree._Element, where: str,
                 convert: Callable[[etree._Element, str, Judgement], dict | None], j: Judgement) -> None:
    mode = _mode(node, where, j)
    if mode is None:
        return
    items = resource.setdefault(field, [])
    item_id = _object_id(node)
    index = next((i for i, item in enumerate(items) if item_id and item.get("id") == item_id), None)
    if mode in ("altered", "removed") and index is None:
        known = ", ".join(str(i.get("id")) for i in items if i.get("id")) or "none"
        j.fail(REQ_CHANGES, f"To {mode[:-1]} a {field} the item names its id (id/@extension) as the retrieval "
                            f"gave it; {item_id or 'no id'} is not one of this record's ({known}).", f"{where}/hl7:id")
        return
    if mode == "removed":
        del items[index]
        return
    converted = convert(node, where, j)
    if converted is None:
        return
    if mode == "added":
        converted["id"] = uuid.uuid4().hex[:8].upper()  # PDS allocates the ids of new items
        converted.setdefault("period", {"start": date.today().isoformat()})
        items.append(converted)
    else:
        converted["id"] = item_id
        converted.setdefault("period", items[index].get("period") or {"start": date.today().isoformat()})
        items[index] = converted


def _period(node: etree._Element, tag: str, where: str, j: Judgement) -> dict | None:
    found = node.find(f"hl7:{tag}", NS)
    if found is None:
        return None
    period = {}
    for part, key in (("low", "start"), ("high", "end")):
        value = found.find(f"hl7:{part}", NS)
        if value is not None:
            day = hp.fhir_date((value.get("value") or "")[:8])
            if day is None:
                j.fail(REQ_CHANGES, f"{tag}/{part} {value.get('value')!r} is not an HL7 date (YYYYMMDD).",
                       f"{where}/hl7:{tag}/hl7:{part}/@value")
                return None
            period[key] = day
    return period or None


def _address(node: etree._Element, where: str, j: Judgement) -> dict | None:
    use = hp.ADDRESS_USE_FROM_HL7.get(node.get("use", "H"))
    if use is None:
        j.fail(REQ_CHANGES, f"addr/@use {node.get('use')!r} is not H, TMP, PST or WP.", f"{where}/@use")
        return None
    lines = [(line.text or "").strip() for line in node.findall("hl7:streetAddressLine", NS)]
    item: dict = {"use": use, "line": [line for line in lines if line]}
    postcode = (node.findtext("hl7:postalCode", "", NS) or "").strip()
    if postcode:
        item["postalCode"] = postcode
    if not item["line"] and not postcode:
        j.fail(REQ_CHANGES, "The address has no streetAddressLine and no postalCode.", where)
        return None
    period = _period(node, "useablePeriod", where, j)
    if period:
        item["period"] = period
    return item


def _name(node: etree._Element, where: str, j: Judgement) -> dict | None:
    use = hp.NAME_USE_FROM_HL7.get(node.get("use", "L"))
    if use is None:
        j.fail(REQ_CHANGES, f"name/@use {node.get('use')!r} is not a PDS name use (L, A, PREFERRED, PREVIOUS…).",
               f"{where}/@use")
        return None
    family = (node.findtext("hl7:family", "", NS) or "").strip()
    if not family:
        j.fail(REQ_CHANGES, "The name has no family name.", f"{where}/hl7:family")
        return None
    item: dict = {"use": use}
    for part, key in (("prefix", "prefix"), ("given", "given"), ("suffix", "suffix")):
        values = [(p.text or "").strip() for p in node.findall(f"hl7:{part}", NS) if (p.text or "").strip()]
        if key == "prefix":  # HL7 clients write titles in capitals (MR); PDS keeps the standard form (Mr)
            values = [STANDARD_TITLES.get(v.rstrip(".").upper(), v) for v in values]
        if values:
            item[key] = values
    item["family"] = family
    period = _period(node, "validTime", where, j)
    if period:
        item["period"] = period
    return item


def _telecom_change(resource: dict, node: etree._Element, where: str, j: Judgement) -> None:
    """Telecoms are matched by their value (PDS returns no ids for them)."""
    mode = _mode(node, where, j)
    raw = (node.get("value") or "").strip()
    scheme, _, value = raw.partition(":")
    system = {"tel": "phone", "mailto": "email", "fax": "fax"}.get(scheme.lower())
    if mode is None:
        return
    if system is None or not value:
        j.fail(REQ_CHANGES, f"telecom/@value {raw!r} is not tel:, mailto: or fax: followed by the number or "
                            "address.", f"{where}/@value")
        return
    items = resource.setdefault("telecom", [])
    same = [i for i, item in enumerate(items) if str(item.get("value", "")).replace(" ", "") == value]
    if mode == "removed":
        if not same:
            j.fail(REQ_CHANGES, f"telecom {raw!r} is not on the record, so it cannot be removed.", where)
            return
        del items[same[0]]
        return
    item = {"system": system, "value": value, "use": hp.TELECOM_USE_FROM_HL7.get(node.get("use", "H"), "home"),
            "period": _period(node, "useablePeriod", where, j) or {"start": date.today().isoformat()}}
    if same:
        item["id"] = items[same[0]].get("id") or uuid.uuid4().hex[:8].upper()
        items[same[0]] = item
    else:
        item["id"] = uuid.uuid4().hex[:8].upper()
        items.append(item)


def _gender(resource: dict, node: etree._Element | None, where: str, j: Judgement) -> None:
    if node is None:
        return
    if node.get("updateMode") == "removed":
        resource.pop("gender", None)
        return
    code = node.get("code")
    if code not in hp.GENDER_FROM_HL7:
        j.fail(REQ_CHANGES, f"administrativeGenderCode {code!r} is not a Sex code (0, 1, 2 or 9).", f"{where}/@code")
        return
    resource["gender"] = hp.GENDER_FROM_HL7[code]


def _date_value(resource: dict, field: str, node: etree._Element | None, where: str, j: Judgement,
                day: bool) -> None:
    if node is None:
        return
    if node.get("updateMode") == "removed":
        resource.pop(field, None)
        return
    text = (node.get("value") or "").strip()
    value = hp.fhir_date(text[:8] if day else text)
    if value is None:
        j.fail(REQ_CHANGES, f"{etree.QName(node).localname} {text!r} is not an HL7 date "
                            f"({'YYYYMMDD' if day else 'YYYYMMDD or YYYYMMDDHHMMSS'}, a day that exists).",
               f"{where}/@value")
        return
    if not day and "T" not in value:
        value += "T00:00:00+00:00"
    resource[field] = value


def _care_provider(resource: dict, node: etree._Element, where: str, j: Judgement) -> None:
    """The GP (code 1) or the nominated pharmacy (code P1)."""
    code = (node.find("hl7:code", NS).get("code") if node.find("hl7:code", NS) is not None else None)
    ods_node = node.find("hl7:performer/hl7:assignedOrganization/hl7:id", NS)
    ods = (ods_node.get("extension") or "").strip() if ods_node is not None else ""
    mode = node.get("updateMode") or ("removed" if not ods else "altered")
    if code not in ("1", "P1"):
        j.fail(REQ_CHANGES, f"patientCareProvision code {code!r}: the sandbox updates the GP (1) and the nominated "
                            "pharmacy (P1).", f"{where}/hl7:code")
        return
    if mode != "removed" and not ods:
        j.fail(REQ_CHANGES, "The care provider has no ODS code (performer/assignedOrganization/id/@extension).",
               f"{where}/hl7:performer")
        return
    if code == "1":
        if mode == "removed":
            resource.pop("generalPractitioner", None)
        else:
            period = _period(node, "effectiveTime", where, j) or {"start": date.today().isoformat()}
            resource["generalPractitioner"] = [{"id": uuid.uuid4().hex[:8].upper(), "type": "Organization",
                                                "identifier": {"system": ODS_SYSTEM, "value": ods,
                                                               "period": period}}]
        return
    extensions = [e for e in resource.get("extension", []) if e.get("url") != hp.PHARMACY_EXTENSION]
    if mode != "removed":
        extensions.insert(0, {"url": hp.PHARMACY_EXTENSION,
                              "valueReference": {"identifier": {"system": ODS_SYSTEM, "value": ods}}})
    resource["extension"] = extensions


def _rules(record: Record, after: dict, j: Judgement) -> None:
    """The same business rules and schema a FHIR PATCH meets, so both APIs keep the record equally valid."""
    problems = change_problems(record.resource, after, date.today()) + schema_problems(
        "patient", after, REQ_RULES, "The updated patient breaks the PDS schema")
    for problem in problems:
        j.fail(REQ_RULES, f"After this update the record breaks a PDS rule ({problem.requirement}): "
                          f"{problem.message} (FHIR view: {problem.location}).", BASE)
    if not problems:
        j.findings.append(Finding.passed(REQ_RULES, "The updated record meets PDS's business rules and schema.",
                                         BASE))
