"""A PDS FHIR record in the HL7v3 shapes PDS answers over Spine core messaging, and the codes both sides share.

One record, two views: the FHIR resource PatientRecords holds is the truth, and these functions draw the HL7v3
patient from it, so a patient updated over either API reads the same over the other. The vocabularies are the MIM's
(omvt dt/NHSVocab and datatypes): Sex 2.16.840.1.113883.2.1.3.2.4.16.25, InformationSensitivity ...16.1,
PatientCareProvisionType ...17.37, DemographicObservationType ...17.35, DeathNotification ...16.5.
"""

from __future__ import annotations

from datetime import date, datetime

from lxml import etree

from sandbox.conformance.parsing import is_ascii_digits

HL7 = "urn:hl7-org:v3"
NHS_NUMBER_ROOT = "2.16.840.1.113883.2.1.4.1"
ODS_ROOT = "2.16.840.1.113883.2.1.4.3"
OBJECT_ID_ROOT = "2.16.840.1.113883.2.1.3.2.4.18.1"  # PDS's own ids for names, addresses and care provisions
CARE_PROVISION_SYSTEM = "2.16.840.1.113883.2.1.3.2.4.17.37"  # 1 primary care, P1 nominated pharmacy, P2, P3
OBSERVATION_SYSTEM = "2.16.840.1.113883.2.1.3.2.4.17.35"  # 2 serial change number, 3 death notification, 17 ...
SENSITIVITY_SYSTEM = "2.16.840.1.113883.2.1.3.2.4.16.1"  # S sensitive (FHIR meta.security R), Y, B
DEATH_NOTIFICATION_SYSTEM = "2.16.840.1.113883.2.1.3.2.4.16.5"
PREVIOUS_CONTACT_SYSTEM = "2.16.840.1.113883.2.1.3.2.4.17.38"

GENDER_TO_HL7 = {"unknown": "0", "male": "1", "female": "2", "other": "9"}
GENDER_FROM_HL7 = {v: k for k, v in GENDER_TO_HL7.items()}
NAME_USE_TO_HL7 = {"usual": "L", "nickname": "PREFERRED", "temp": "A", "old": "PREVIOUS",
                   "maiden": "PREVIOUS-MAIDEN"}
NAME_USE_FROM_HL7 = {**{v: k for k, v in NAME_USE_TO_HL7.items()}, "PREVIOUS-BIRTH": "maiden",
                     "PREVIOUS-BACHELOR": "old"}
ADDRESS_USE_TO_HL7 = {"home": "H", "temp": "TMP", "billing": "PST", "work": "WP"}
ADDRESS_USE_FROM_HL7 = {v: k for k, v in ADDRESS_USE_TO_HL7.items()}
TELECOM_USE_TO_HL7 = {"home": "H", "work": "WP", "mobile": "MC", "temp": "HV"}
TELECOM_USE_FROM_HL7 = {"H": "home", "HP": "home", "HV": "temp", "WP": "work", "MC": "mobile", "PG": "mobile",
                        "EC": "home", "AS": "work"}
TELECOM_SCHEMES = {"phone": "tel:", "email": "mailto:", "fax": "fax:", "other": "tel:"}
PHARMACY_EXTENSION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NominatedPharmacy"
DEATH_EXTENSION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus"


def el(parent: etree._Element | None, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    """An HL7 element (attributes in the order given), appended to `parent` when there is one."""
    node = etree.Element(f"{{{HL7}}}{tag}", nsmap={None: HL7}) if parent is None else \
        etree.SubElement(parent, f"{{{HL7}}}{tag}")
    for key, value in attrs.items():
        node.set(key.rstrip("_"), value)
    if text is not None:
        node.text = text
    return node


def hl7_date(value: str | None) -> str | None:
    """FHIR date or dateTime -> HL7 ts (YYYYMMDD, or YYYYMMDDHHMMSS when there is a time); None when unreadable."""
    if not value:
        return None
    try:
        if "T" in value:
            return datetime.fromisoformat(value).strftime("%Y%m%d%H%M%S")
        return date.fromisoformat(value).strftime("%Y%m%d")
    except ValueError:
        return None


def fhir_date(value: str) -> str | None:
    """HL7 ts -> FHIR date (8 digits) or dateTime (14 digits, UTC offset kept when given); None when invalid."""
    digits, _, zone = value.partition("+") if "+" in value else value.partition("-")
    try:
        if len(digits) == 8 and is_ascii_digits(digits):
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:])).isoformat()
        if len(digits) == 14 and is_ascii_digits(digits):
            moment = datetime.strptime(digits, "%Y%m%d%H%M%S").isoformat()
            offset = f"{'+' if '+' in value else '-'}{zone[:2]}:{zone[2:]}" if zone else "+00:00"
            return moment + offset
    except ValueError:
        return None
    return None


def _period(parent: etree._Element, tag: str, period: dict | None) -> None:
    start, end = hl7_date((period or {}).get("start")), hl7_date((period or {}).get("end"))
    if start or end:
        node = el(parent, tag)
        if start:
            el(node, "low", value=start)
        if end:
            el(node, "high", value=end)


def _object_id(parent: etree._Element, item: dict) -> None:
    if item.get("id"):
        el(parent, "id", root=OBJECT_ID_ROOT, extension=str(item["id"]))


def address(parent: etree._Element, item: dict) -> etree._Element:
    node = el(parent, "addr", use=ADDRESS_USE_TO_HL7.get(item.get("use", "home"), "H"))
    for line in item.get("line", []):
        el(node, "streetAddressLine", str(line))
    if item.get("postalCode"):
        el(node, "postalCode", str(item["postalCode"]))
    _period(node, "useablePeriod", item.get("period"))
    _object_id(node, item)
    return node


def telecom(parent: etree._Element, item: dict) -> etree._Element | None:
    value = item.get("value")
    if not value:
        return None
    scheme = TELECOM_SCHEMES.get(item.get("system", "phone"), "tel:")
    node = el(parent, "telecom", value=scheme + str(value).replace(" ", ""),
              use=TELECOM_USE_TO_HL7.get(item.get("use", "home"), "H"))
    _period(node, "useablePeriod", item.get("period"))
    return node


def name(parent: etree._Element, item: dict) -> etree._Element:
    node = el(parent, "name", use=NAME_USE_TO_HL7.get(item.get("use", "usual"), "L"))
    for prefix in item.get("prefix", []):
        el(node, "prefix", str(prefix))
    for given in item.get("given", []):
        el(node, "given", str(given))
    if item.get("family"):
        el(node, "family", str(item["family"]))
    for suffix in item.get("suffix", []):
        el(node, "suffix", str(suffix))
    _period(node, "validTime", item.get("period"))
    _object_id(node, item)
    return node


def care_providers(resource: dict) -> list[tuple[str, str, dict]]:
    """(PatientCareProvisionType code, ODS code, the FHIR item) for the GP and the nominated pharmacy."""
    found = []
    for gp in resource.get("generalPractitioner", [])[:1]:
        code = (gp.get("identifier") or {}).get("value")
        if code:
            found.append(("1", str(code), gp))
    for extension in resource.get("extension", []):
        if extension.get("url") == PHARMACY_EXTENSION:
            code = ((extension.get("valueReference") or {}).get("identifier") or {}).get("value")
            if code:
                found.append(("P1", str(code), extension))
    return found


def death_status(resource: dict) -> str | None:
    """The death notification status code (1 informal, 2 formal) when the record carries one."""
    for extension in resource.get("extension", []):
        if extension.get("url") == DEATH_EXTENSION:
            for part in extension.get("extension", []):
                for coding in ((part.get("valueCodeableConcept") or {}).get("coding") or []):
                    if coding.get("code") in ("1", "2"):
                        return coding["code"]
    return None


def is_restricted(resource: dict) -> bool:
    return any(s.get("code") == "R" for s in resource.get("meta", {}).get("security", []))


def serial_change_number(resource: dict) -> str:
    """PDS's serial change number is the record's version: the FHIR versionId (ETag W/"n")."""
    return str(resource.get("meta", {}).get("versionId", "1"))


# --- PRPA_MT040101UK31: PdsSuccessfulRetrieval (the answer to QUPA_IN040000UK32) ---------------------------------
def successful_retrieval(parent: etree._Element, resource: dict, *, superseded: str | None = None) -> etree._Element:
    """PdsSuccessfulRetrieval for the record as a retrieval returns it (a restricted patient's location-sensitive
    fields already removed by the caller); `superseded` is the NHS number asked for when it was merged into this
    record (reported as replacementOf)."""
    retrieval = el(parent, "PdsSuccessfulRetrieval", classCode="OBS", moodCode="EVN")
    role = el(el(retrieval, "subject", typeCode="SBJ"), "patientRole", classCode="PAT")
    el(role, "id", root=NHS_NUMBER_ROOT, extension=resource["id"])
    for item in resource.get("address", []):
        address(role, item)
    for item in resource.get("telecom", []):
        telecom(role, item)
    if is_restricted(resource):
        el(role, "confidentialityCode", code="S", codeSystem=SENSITIVITY_SYSTEM)
    _person_040101(role, resource)
    status = death_status(resource)
    if status:
        notice = el(el(role, "subjectOf2", typeCode="SBJ"), "deathNotification", classCode="OBS", moodCode="EVN")
        el(notice, "code", code="3", codeSystem=OBSERVATION_SYSTEM)
        el(notice, "value", code=status, codeSystem=DEATH_NOTIFICATION_SYSTEM)
    if superseded:
        old = el(el(role, "replacementOf", typeCode="REPL"), "oldVersion", classCode="PAT")
        el(old, "id", root=NHS_NUMBER_ROOT, extension=superseded)
    pertinent = el(retrieval, "pertinentInformation", typeCode="PERT")
    scn = el(pertinent, "pertinentSerialChangeNumber", classCode="OBS", moodCode="EVN")
    el(scn, "code", code="2", codeSystem=OBSERVATION_SYSTEM)
    el(scn, "value", value=serial_change_number(resource))
    return retrieval


def gender_and_dates(person: etree._Element, resource: dict) -> None:
    """administrativeGenderCode, birthTime and deceasedTime, in that order, where the record has them."""
    if resource.get("gender") in GENDER_TO_HL7:
        el(person, "administrativeGenderCode", code=GENDER_TO_HL7[resource["gender"]])
    for tag, value in (("birthTime", resource.get("birthDate")), ("deceasedTime", resource.get("deceasedDateTime"))):
        if hl7_date(value):
            el(person, tag, value=hl7_date(value))


def _person_040101(role: etree._Element, resource: dict) -> None:
    person = el(role, "patientPerson", classCode="PSN", determinerCode="INSTANCE")
    for item in resource.get("name", []):
        name(person, item)
    gender_and_dates(person, resource)
    if isinstance(resource.get("multipleBirthInteger"), int):
        el(person, "multipleBirthOrderNumber", value=str(resource["multipleBirthInteger"]))
    for code, ods, item in care_providers(resource):
        provision = el(el(el(person, "playedOtherProviderPatient", classCode="PAT"), "subjectOf", typeCode="SBJ"),
                       "patientCareProvision", classCode="PCPR", moodCode="EVN")
        el(provision, "id", root=OBJECT_ID_ROOT, extension=str(item.get("id") or f"{code}{ods}"))
        el(provision, "code", code=code, codeSystem=CARE_PROVISION_SYSTEM)
        _period(provision, "effectiveTime", (item.get("identifier") or {}).get("period"))
        party = el(provision, "responsibleParty", typeCode="RESP")
        el(el(party, "healthCareProvider", classCode="PROV"), "id", root=ODS_ROOT, extension=ods)


# --- PRPA_MT000200UK01: PdsTraceMatch (the answer to the simple trace QUPA_IN000005UK01) -------------------------
def trace_match(parent: etree._Element, resource: dict) -> etree._Element:
    """The simple trace's PdsTraceMatch: elements in the MIM's (alphabetical) order."""
    match = el(parent, "PdsTraceMatch", classCode="OBS", moodCode="EVN")
    role = el(el(match, "subject", typeCode="SBJ"), "patientRole", classCode="PAT")
    for item in resource.get("address", []):
        if item.get("use", "home") == "home" and not (item.get("period") or {}).get("end"):
            address(role, item)
    if is_restricted(resource):
        el(role, "confidentialityCode", code="S", codeSystem=SENSITIVITY_SYSTEM)
    el(role, "id", root=NHS_NUMBER_ROOT, extension=resource["id"])
    for item in resource.get("telecom", []):
        telecom(role, item)
    person = el(role, "patientPerson", classCode="PSN", determinerCode="INSTANCE")
    gender_and_dates(person, resource)
    for item in resource.get("name", []):
        if item.get("use", "usual") == "usual":
            name(person, item)
    gp = next((p for p in care_providers(resource) if p[0] == "1"), None)
    if gp:
        provision = el(el(el(person, "playedOtherProviderPatient", classCode="PAT"), "subjectOf", typeCode="SBJ"),
                       "patientCareProvision", classCode="PCPR", moodCode="EVN")
        el(provision, "code", code="1", codeSystem=CARE_PROVISION_SYSTEM)
        _period(provision, "effectiveTime", (gp[2].get("identifier") or {}).get("period"))
        org = el(el(provision, "performer", typeCode="PRF"), "assignedOrganization", classCode="ASSIGNED")
        el(org, "id", root=ODS_ROOT, extension=gp[1])
    status = death_status(resource)
    if status:
        notice = el(el(role, "subjectOf3", typeCode="SBJ"), "deathNotification", classCode="OBS", moodCode="EVN")
        el(notice, "code", code="3", codeSystem=OBSERVATION_SYSTEM)
        el(notice, "value", code=status, codeSystem=DEATH_NOTIFICATION_SYSTEM)
    return match
