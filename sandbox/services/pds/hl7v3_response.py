"""The 6301-release PDS answers, whose patients carry names, addresses and telecoms as COCT "part of whole" parts:
PDSResponse (PRPA_MT000201UK03, in QUPA_IN000009UK03) and the advanced trace's PdsTraceMatch (PRPA_MT000207UK02,
in QUPA_IN000011UK02). Their MIM schemas order every element alphabetically; so do these builders."""

from __future__ import annotations

from lxml import etree

from sandbox.services.pds.hl7v3_patient import (
    CARE_PROVISION_SYSTEM,
    DEATH_NOTIFICATION_SYSTEM,
    NHS_NUMBER_ROOT,
    OBJECT_ID_ROOT,
    OBSERVATION_SYSTEM,
    ODS_ROOT,
    SENSITIVITY_SYSTEM,
    _period,
    address,
    care_providers,
    death_status,
    el,
    gender_and_dates,
    is_restricted,
    name,
    serial_change_number,
    telecom,
)


def _person(role: etree._Element, resource: dict, provision_tag: str, performer_tag: str,
            with_ids: bool) -> None:
    person = el(role, "patientPerson", classCode="PSN", determinerCode="INSTANCE")
    gender_and_dates(person, resource)
    if isinstance(resource.get("multipleBirthInteger"), int):
        el(person, "multipleBirthOrderNumber", value=str(resource["multipleBirthInteger"]))
    for code, ods, item in care_providers(resource):
        provision = el(el(el(person, "playedOtherProviderPatient", classCode="PAT"), "subjectOf", typeCode="SBJ"),
                       provision_tag, classCode="PCPR", moodCode="EVN")
        el(provision, "code", code=code, codeSystem=CARE_PROVISION_SYSTEM)
        _period(provision, "effectiveTime", (item.get("identifier") or {}).get("period"))
        if with_ids:
            el(provision, "id", root=OBJECT_ID_ROOT, extension=str(item.get("id") or f"{code}{ods}"))
        el(el(el(provision, "performer", typeCode="PRF"), performer_tag, classCode="ASSIGNED"), "id", root=ODS_ROOT,
           extension=ods)
    for item in resource.get("address", []):
        address(el(person, "COCT_MT000201UK02.PartOfWhole", classCode="PART"), item)
    for item in resource.get("telecom", []):
        if item.get("value"):
            telecom(el(person, "COCT_MT000202UK02.PartOfWhole", classCode="PART"), item)
    for item in resource.get("name", []):
        part = el(person, "COCT_MT000203UK02.PartOfWhole", classCode="PART")
        name(el(part, "partPerson", classCode="PSN", determinerCode="INSTANCE"), item)


def _death(role: etree._Element, tag: str, resource: dict) -> None:
    status = death_status(resource)
    if status:
        notice = el(el(role, tag, typeCode="SBJ"), "deathNotification", classCode="OBS", moodCode="EVN")
        el(notice, "code", code="3", codeSystem=OBSERVATION_SYSTEM)
        el(notice, "value", code=status, codeSystem=DEATH_NOTIFICATION_SYSTEM)


def pds_response(parent: etree._Element, resource: dict) -> etree._Element:
    """PDSResponse: the serial change number, then the patient."""
    response = el(parent, "PDSResponse", classCode="OBS", moodCode="EVN")
    scn = el(el(response, "pertinentInformation", typeCode="PERT"), "pertinentSerialChangeNumber", classCode="OBS",
             moodCode="EVN")
    el(scn, "code", code="2", codeSystem=OBSERVATION_SYSTEM)
    el(scn, "value", value=serial_change_number(resource))
    role = el(el(response, "subject", typeCode="SBJ"), "patientRole", classCode="PAT")
    if is_restricted(resource):
        el(role, "confidentialityCode", code="S", codeSystem=SENSITIVITY_SYSTEM)
    el(role, "id", root=NHS_NUMBER_ROOT, extension=resource["id"])
    _person(role, resource, "patientCareProvisionEvent", "assignedEntity", with_ids=True)
    _death(role, "subjectOf2", resource)
    return response


def advanced_trace_match(parent: etree._Element, resources: list[dict], scores: list[float]) -> etree._Element:
    """PdsTraceMatch with one subject per matching patient, each with its matching level (percent)."""
    match = el(parent, "PdsTraceMatch", classCode="OBS", moodCode="EVN")
    for resource, score in zip(resources, scores, strict=True):
        role = el(el(match, "subject", typeCode="SBJ"), "patientRole", classCode="PAT")
        if is_restricted(resource):
            el(role, "confidentialityCode", code="S", codeSystem=SENSITIVITY_SYSTEM)
        el(role, "id", root=NHS_NUMBER_ROOT, extension=resource["id"])
        _person(role, resource, "patientCareProvision", "assignedEntity", with_ids=False)
        level = el(el(role, "subjectOf1", typeCode="SBJ"), "matchingLevel", classCode="OBS", moodCode="EVN")
        el(level, "code", code="12", codeSystem=OBSERVATION_SYSTEM)
        el(level, "value", value=str(round(score * 100)), unit="%")
        _death(role, "subjectOf3", resource)
    return match
