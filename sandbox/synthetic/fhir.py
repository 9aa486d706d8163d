"""A synthetic person as a FHIR R4 UK Core Patient, the shape Spine's FHIR services share."""

from __future__ import annotations

from datetime import date, datetime

from sandbox.synthetic.identifiers import NHS_NUMBER_SYSTEM, ODS_SYSTEM
from sandbox.synthetic.population import Address, Name, Person

UKCORE = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
SECURITY = {
    "U": {"system": CONFIDENTIALITY, "code": "U", "display": "unrestricted"},
    "R": {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"},
}


def nhs_identifier(number: str, verification: tuple[str, str] = ("01", "Number present and verified")) -> dict:
    return {
        "system": NHS_NUMBER_SYSTEM,
        "value": number,
        "extension": [{
            "url": UKCORE + "NHSNumberVerificationStatus",
            "valueCodeableConcept": {"coding": [{
                "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus",
                "version": "1.0.0", "code": verification[0], "display": verification[1]}]},
        }],
    }


def ods_reference(code: str, start: date | None = None, ref_id: str | None = None) -> dict:
    ref: dict = {}
    if ref_id:
        ref["id"] = ref_id
    ref["type"] = "Organization"
    ref["identifier"] = {"system": ODS_SYSTEM, "value": code}
    if start:
        ref["identifier"]["period"] = {"start": start.isoformat()}
    return ref


def period(start: date | None, end: date | None = None) -> dict:
    out = {}
    if start:
        out["start"] = start.isoformat()
    if end:
        out["end"] = end.isoformat()
    return out


def human_name(name: Name) -> dict:
    out: dict = {"id": name.id, "use": name.use}
    if name.start:
        out["period"] = period(name.start, name.end)
    if name.given:
        out["given"] = list(name.given)
    out["family"] = name.family
    if name.prefix:
        out["prefix"] = list(name.prefix)
    return out


def address(addr: Address) -> dict:
    out: dict = {"id": addr.id, "period": period(addr.start, addr.end), "use": addr.use}
    if addr.text:
        out["text"] = addr.text
    out["line"] = list(addr.lines)
    out["postalCode"] = addr.postcode
    return out


def fhir_datetime(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def patient_resource(person: Person, version: int | None = None) -> dict:
    """The whole record as a retrieval returns it (before any access-mode or restriction filtering)."""
    security = "R" if person.kind == "restricted" else "U"
    resource: dict = {
        "resourceType": "Patient",
        "id": person.nhs_number,
        "identifier": [nhs_identifier(person.nhs_number)],
        "meta": {"versionId": str(version or person.version), "security": [dict(SECURITY[security])]},
        "name": [human_name(n) for n in person.names],
    }
    if person.kind == "minimal":
        resource["name"] = [{"id": person.usual_name.id, "use": "usual", "family": person.family}]
        resource["birthDate"] = person.birth_date.isoformat()
        return resource
    resource["gender"] = person.gender
    resource["birthDate"] = person.birth_date.isoformat()
    if person.death:
        resource["deceasedDateTime"] = fhir_datetime(person.death)
        resource["extension"] = [death_notification(person.death)]
    if person.addresses:
        resource["address"] = [address(a) for a in person.addresses]
    telecom = []
    phone_id, mobile_id, email_id = person.telecom_ids
    if person.phone:
        telecom.append({"id": phone_id, "period": period(person.usual_name.start), "system": "phone",
                        "value": person.phone.replace(" ", ""), "use": "home"})
    if person.mobile:
        telecom.append({"id": mobile_id, "period": period(person.usual_name.start), "system": "phone",
                        "value": person.mobile.replace(" ", ""), "use": "mobile"})
    if person.email:
        telecom.append({"id": email_id, "period": period(person.usual_name.start), "system": "email",
                        "value": person.email, "use": "home"})
    if telecom:
        resource["telecom"] = telecom
    if person.gp:
        resource["generalPractitioner"] = [ods_reference(person.gp, person.gp_since, ref_id=phone_id[::-1])]
    if person.pharmacy:
        resource.setdefault("extension", []).insert(0, {
            "url": UKCORE + "NominatedPharmacy",
            "valueReference": {"identifier": {"system": ODS_SYSTEM, "value": person.pharmacy}}})
    return resource


def death_notification(when: datetime, code: str = "2",
                       display: str = "Formal - death notice received from Registrar of Deaths") -> dict:
    return {
        "url": UKCORE + "DeathNotificationStatus",
        "extension": [
            {"url": "deathNotificationStatus", "valueCodeableConcept": {"coding": [{
                "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-DeathNotificationStatus", "version": "1.0.0",
                "code": code, "display": display}]}},
            {"url": "systemEffectiveDate", "valueDateTime": fhir_datetime(when)},
        ],
    }
