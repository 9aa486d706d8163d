"""People, places and the patient, as live EPS translates them (request/patient.ts, practitioner.ts,
organization.ts, demographics.ts): the recordTarget, the AgentPerson of an author or responsible party, and the
organisations they represent."""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from sandbox.services.eps.context import (
    NHS_NUMBER_SYSTEM,
    ODS_SYSTEM,
    ROLE_PROFILE_SYSTEM,
    USER_ID_SYSTEM,
)
from sandbox.services.eps.translation.common import (
    CARE_PROVISION,
    ORG_TYPE,
    ROOT_NHS_NUMBER,
    ROOT_ODS,
    ROOT_PROFESSIONAL_CODE,
    ROOT_SDS_JOB_ROLE,
    ROOT_SDS_ROLE_PROFILE,
    ROOT_SDS_USER,
    SEX,
    Untranslatable,
    as_dict,
    as_list,
    code,
    coding_or_none,
    el,
    extension_or_none,
    hl7_date_from_iso,
    ident,
    identifier,
    identifier_value,
    one_of_type,
    only,
    resolve,
)

UNKNOWN_GP = "V81999"
NOT_SPECIFIED_ORG_TYPE = "999"
SECONDARY_CARE_ORG_TYPE = "001"  # live's SECONDARY_CARE_ORGANISATION_TYPE_CODES[0], for a HealthcareService
NHS_TRUST = "197"
JOB_ROLE_NAME = "https://fhir.hl7.org.uk/CodeSystem/UKCore-SDSJobRoleName"
JOB_ROLE_CODE = "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode"
RESPONSIBLE_PRACTITIONER = "https://fhir.nhs.uk/StructureDefinition/Extension-DM-ResponsiblePractitioner"
# Professional codes a prescriber is identified by (exactly one), in live's order.
PROFESSIONAL_CODES = tuple(f"https://fhir.hl7.org.uk/Id/{kind}" for kind in (
    "gmc-number", "gmp-number", "nmc-number", "gphc-number", "hcpc-number", "professional-code"))
SPURIOUS_CODE = "https://fhir.hl7.org.uk/Id/nhsbsa-spurious-code"
DIN_NUMBER = "https://fhir.hl7.org.uk/Id/din-number"

_NAME_USE = {"usual": "L", "official": "L", "temp": "A", "anonymous": "A", "nickname": "PREFERRED",
             "old": "PREVIOUS", "maiden": "PREVIOUS-MAIDEN"}
_TELECOM_USE = {"home": "HP", "work": "WP", "temp": "HV", "mobile": "MC"}
_ADDRESS_USE = {"home": "H", "work": "WP", "temp": "TMP", "billing": "PST"}
_GENDER = {"male": "1", "female": "2", "other": "9", "unknown": "0"}


def _mapped(table: dict[str, str], value: Any, what: str, path: str) -> str:
    if value not in table:
        raise Untranslatable(f"Unhandled {what} '{value}'.", path)
    return table[value]


def name(parent: etree._Element, human_name: dict, path: str) -> None:
    element = el(parent, "name", {"use": _mapped(_NAME_USE, human_name["use"], "name use", f"{path}.use")}
                 if human_name.get("use") else None)
    for prefix in as_list(human_name.get("prefix")):
        el(element, "prefix", text=str(prefix))
    for given in as_list(human_name.get("given")):
        el(element, "given", text=str(given))
    if isinstance(human_name.get("family"), str):
        el(element, "family", text=human_name["family"])
    for suffix in as_list(human_name.get("suffix")):
        el(element, "suffix", text=str(suffix))


def telecom(parent: etree._Element, contact: dict, path: str) -> None:
    attrs: dict[str, str | None] = {}
    if contact.get("use"):
        attrs["use"] = _mapped(_TELECOM_USE, contact["use"], "telecom use", f"{path}.use")
    if isinstance(contact.get("value"), str) and contact["value"]:
        value = "".join(contact["value"].split())
        attrs["value"] = value if value.startswith("tel:") else f"tel:{value}"
    el(parent, "telecom", attrs)


def address(parent: etree._Element, fhir_address: dict, path: str) -> None:
    element = el(parent, "addr", {"use": _mapped(_ADDRESS_USE, fhir_address["use"], "address use", f"{path}.use")}
                 if fhir_address.get("use") else None)
    lines = [*as_list(fhir_address.get("line")), fhir_address.get("city"), fhir_address.get("district"),
             fhir_address.get("state")]
    for line in lines:
        if line:
            el(element, "streetAddressLine", text=str(line))
    if fhir_address.get("postalCode"):
        el(element, "postalCode", text=str(fhir_address["postalCode"]))


def record_target(parent: etree._Element, bundle: Any) -> etree._Element:
    """recordTarget/Patient from the Bundle's one Patient."""
    patient = one_of_type(bundle, "Patient")
    target = el(parent, "recordTarget", {"typeCode": "RCT"})
    hl7_patient = el(target, "Patient", {"classCode": "PAT"})
    ident(hl7_patient, ROOT_NHS_NUMBER, identifier(patient.get("identifier"), NHS_NUMBER_SYSTEM, "Patient.identifier"))
    for item in as_list(patient.get("address")):
        address(hl7_patient, as_dict(item), "Patient.address")
    for item in as_list(patient.get("telecom")):
        telecom(hl7_patient, as_dict(item), "Patient.telecom")
    person = el(hl7_patient, "patientPerson", {"classCode": "PSN", "determinerCode": "INSTANCE"})
    for item in as_list(patient.get("name")):
        name(person, as_dict(item), "Patient.name")
    code(person, SEX, _mapped(_GENDER, patient.get("gender"), "gender", "Patient.gender"),
         tag="administrativeGenderCode")
    el(person, "birthTime", {"value": hl7_date_from_iso(patient.get("birthDate"), "Patient.birthDate")})
    provider_patient = el(person, "playedProviderPatient", {"classCode": "PAT"})
    provision = el(el(provider_patient, "subjectOf", {"typeCode": "SBJ"}), "patientCareProvision",
                   {"classCode": "PCPR", "moodCode": "EVN"})
    code(provision, CARE_PROVISION, "1")
    provider = el(el(provision, "responsibleParty", {"typeCode": "RESP"}), "healthCareProvider",
                  {"classCode": "PROV"})
    gp = only(patient.get("generalPractitioner"), "Patient.generalPractitioner")
    gp_code = as_dict(gp.get("identifier")).get("value")
    if gp_code == UNKNOWN_GP:
        el(provider, "id", {"nullFlavor": "UNK"})
    else:
        ident(provider, ROOT_ODS, str(gp_code))
    return target


def practitioner_role_of(bundle: Any, medication_request: dict, *, responsible: bool) -> dict:
    reference = medication_request.get("requester")
    if responsible:
        found = extension_or_none(medication_request.get("extension"), RESPONSIBLE_PRACTITIONER)
        if found is not None:
            reference = found.get("valueReference")
    return resolve(bundle, reference, "MedicationRequest.requester")


def agent_person(parent: etree._Element, bundle: Any, role: dict, *, person_id: str, with_licence: bool
                 ) -> etree._Element:
    """AgentPerson for a PractitionerRole. `person_id` says how the person is identified: "author" (their one
    professional code), "responsible" (NHSBSA spurious code, DIN, else as author) or "sds" (SDS user id)."""
    organization = resolve(bundle, role.get("organization"), "PractitionerRole.organization")
    if person_id != "author" and identifier_value(role.get("identifier"), ROLE_PROFILE_SYSTEM) is None:
        if person_id == "sds":  # a cancellation names only the organisation
            agent = el(parent, "AgentPerson", {"classCode": "AGNT"})
            represented_organization(agent, bundle, organization, None, with_licence=False)
            return agent
        return _organisation_as_agent(parent, bundle, role, _practitioner(bundle, role.get("practitioner")),
                                      organization, with_licence)
    practitioner = _practitioner(bundle, role.get("practitioner"))
    agent = el(parent, "AgentPerson", {"classCode": "AGNT"})
    ident(agent, ROOT_SDS_ROLE_PROFILE,
          identifier(role.get("identifier"), ROLE_PROFILE_SYSTEM, "PractitionerRole.identifier"))
    code(agent, ROOT_SDS_JOB_ROLE, job_role_code(role))
    contacts = role.get("telecom") if "telecom" in role else practitioner.get("telecom")
    where = "PractitionerRole.telecom" if "telecom" in role else "Practitioner.telecom"
    for item in as_list(contacts):
        telecom(agent, as_dict(item), where)
    person = el(agent, "agentPerson", {"classCode": "PSN", "determinerCode": "INSTANCE"})
    root_oid, value = _person_id(practitioner, role, person_id)
    ident(person, root_oid, value)
    if "name" in practitioner:
        name(person, only(practitioner.get("name"), "Practitioner.name"), "Practitioner.name")
    service = None
    if role.get("healthcareService"):
        service = resolve(bundle, only(role.get("healthcareService"), "PractitionerRole.healthcareService"),
                          "PractitionerRole.healthcareService")
    represented_organization(agent, bundle, organization, service, with_licence=with_licence)
    return agent


def job_role_code(role: dict) -> str:
    """The SDS job role code of a PractitionerRole (UKCore job role name, else the NHS Digital job role code)."""
    job_role = coding_or_none(role.get("code"), JOB_ROLE_NAME) or coding_or_none(role.get("code"), JOB_ROLE_CODE)
    if job_role is None:
        raise Untranslatable(f"Expected exactly one coding with system '{JOB_ROLE_NAME}'.", "PractitionerRole.code")
    return str(job_role.get("code"))


def _practitioner(bundle: Any, reference: Any) -> dict:
    """The Practitioner a PractitionerRole names: by reference, or only by identifier (live's resolvePractitioner)."""
    if isinstance(reference, dict) and not reference.get("reference") and isinstance(reference.get("identifier"), dict):
        return {"resourceType": "Practitioner", "identifier": [reference["identifier"]],
                "name": [{"text": reference.get("display")}]}
    return resolve(bundle, reference, "PractitionerRole.practitioner")


def _organisation_as_agent(parent: etree._Element, bundle: Any, role: dict, practitioner: dict, organization: dict,
                           with_licence: bool) -> etree._Element:
    """A responsible party that is an organisation (a PractitionerRole with no SDS role profile, as the
    specification's responsible-party-org examples send): no role id or job role; the role's telecom, else the
    organisation's; the person is the practitioner's professional code (GMC's 'C' prefix dropped) named as the
    organisation, as live's $convert of those examples shows."""
    agent = el(parent, "AgentPerson", {"classCode": "AGNT"})
    contacts = role.get("telecom") if "telecom" in role else organization.get("telecom")
    for item in as_list(contacts):
        telecom(agent, as_dict(item), "PractitionerRole.telecom")
    person = el(agent, "agentPerson", {"classCode": "PSN", "determinerCode": "INSTANCE"})
    _, value = _person_id(practitioner, role, "author")
    ident(person, ROOT_PROFESSIONAL_CODE, value[1:] if re.fullmatch(r"C\d+", value) else value)
    el(person, "name", text=str(organization.get("name") or ""))
    represented_organization(agent, bundle, organization, None, with_licence=with_licence)
    return agent


def _person_id(practitioner: dict, role: dict, how: str) -> tuple[str, str]:
    identifiers = practitioner.get("identifier")
    if how == "sds":
        return ROOT_SDS_USER, identifier(identifiers, USER_ID_SYSTEM, "Practitioner.identifier")
    if how == "responsible":
        for value in (identifier_value(role.get("identifier"), SPURIOUS_CODE),
                      identifier_value(identifiers, DIN_NUMBER)):
            if value:
                return ROOT_PROFESSIONAL_CODE, value
    codes = [value for system in PROFESSIONAL_CODES if (value := identifier_value(identifiers, system))]
    if len(codes) != 1:
        seen = f" But got: {', '.join(codes)}" if codes else ""
        raise Untranslatable("Expected exactly one professional code. One of GMC|GMP|NMC|GPhC|HCPC|unknown."
                             + seen, "Practitioner.identifier")
    return ROOT_PROFESSIONAL_CODE, codes[0]


def represented_organization(parent: etree._Element, bundle: Any, organization: dict, service: dict | None, *,
                             with_licence: bool) -> etree._Element:
    """The cost centre the agent represents (the HealthcareService when the Organization is an NHS trust), with
    its parent organisation as healthCareProviderLicense (left out of cancellations, as live does)."""
    trust = (coding_or_none(organization.get("type"), "https://fhir.nhs.uk/CodeSystem/organisation-role") or {}
             ).get("code") == NHS_TRUST
    if trust and service is None:
        raise Untranslatable(f"A HealthcareService must be provided if the Organization role is '{NHS_TRUST}'.",
                             "PractitionerRole.healthcareService")
    centre = service if trust and service is not None else organization
    kind = "HealthcareService" if centre is service else "Organization"
    element = _organization(parent, "representedOrganization", centre, kind,
                            SECONDARY_CARE_ORG_TYPE if service is not None else NOT_SPECIFIED_ORG_TYPE)
    telecom(element, only(centre.get("telecom"), f"{kind}.telecom"), f"{kind}.telecom")
    if kind == "HealthcareService":
        location = resolve(bundle, only(centre.get("location"), "HealthcareService.location"),
                           "HealthcareService.location")
        if not isinstance(location.get("address"), dict):
            raise Untranslatable("Address must be provided.", "Location.address")
        address(element, location["address"], "Location.address")
    else:
        address(element, only(centre.get("address"), "Organization.address"), "Organization.address")
    if with_licence:
        licence = el(element, "healthCareProviderLicense", {"classCode": "PROV"})
        _organization(licence, "Organization", _parent_organization(bundle, organization), "Organization",
                      NOT_SPECIFIED_ORG_TYPE)
    return element


def _parent_organization(bundle: Any, organization: dict) -> dict:
    part_of = organization.get("partOf")
    if not isinstance(part_of, dict):
        return organization
    if part_of.get("reference"):
        return resolve(bundle, part_of, "Organization.partOf")
    return {"resourceType": "Organization", "identifier": [part_of.get("identifier")], "name": part_of.get("display")}


def _organization(parent: etree._Element, tag: str, resource: dict, kind: str, type_code: str) -> etree._Element:
    element = el(parent, tag, {"classCode": "ORG", "determinerCode": "INSTANCE"})
    ident(element, ROOT_ODS, identifier(resource.get("identifier"), ODS_SYSTEM, f"{kind}.identifier"))
    code(element, ORG_TYPE, type_code)
    if not resource.get("name"):
        raise Untranslatable("Name must be provided.", f"{kind}.name")
    el(element, "name", text=str(resource["name"]))
    return element
