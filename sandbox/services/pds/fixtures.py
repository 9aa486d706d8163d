"""The published PDS sandbox patients, and the example patients of the NHS's own open-source Spine clients.

The published sandbox's patient table (published_data.py) holds read-only examples: every documented update to them
succeeds every time and nothing is stored, exactly as on the NHS's own sandbox, so a supplier's existing sandbox
tests pass unchanged. Jayne Smyth (9000000017), whom the specification documents as a full record but the published
sandbox only returns from searches, is retrievable here too, as the specification's example shows her.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime

from sandbox.services.pds import published_data
from sandbox.synthetic.fhir import SECURITY, UKCORE, death_notification, nhs_identifier
from sandbox.synthetic.identifiers import ODS_SYSTEM

NOT_FOUND = "9111231130"  # documented: a valid NHS number with no patient
INVALID = "9000000000"  # documented: fails the check digit
JAYNE = "9000000017"

_PERIOD = {"start": "2024-01-01", "end": "2025-12-31"}
_LINES = ["1 Trevelyan Square", "Boar Lane", "City Centre", "Leeds", "West Yorkshire"]


def _coding_ext(url: str, system: str, code: str, display: str, version: str | None = "1.0.0") -> dict:
    coding = {"system": system}
    if version:
        coding["version"] = version
    coding.update(code=code, display=display)
    return {"url": url, "valueCodeableConcept": {"coding": [coding]}}


def _ods(code: str, with_period: bool = True) -> dict:
    identifier = {"system": ODS_SYSTEM, "value": code}
    if with_period:
        identifier["period"] = dict(_PERIOD)
    return identifier


def _address_keys() -> list[dict]:
    def key(kind: str, value: str) -> dict:
        return {"url": UKCORE + "AddressKey", "extension": [
            {"url": "type", "valueCoding": {"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-AddressKeyType",
                                            "code": kind}},
            {"url": "value", "valueString": value}]}
    return [key("PAF", "12345678"), key("UPRN", "123456789012")]


def _jayne_smyth() -> dict:
    """The specification's fully populated example record of Jayne Smyth (components/examples, Patient-Jayne-Smyth)."""
    number = JAYNE
    return {
        "resourceType": "Patient",
        "id": number,
        "identifier": [nhs_identifier(number)],
        "meta": {"versionId": "2", "security": [dict(SECURITY["U"])]},
        "name": [{"id": "123", "use": "usual", "period": dict(_PERIOD), "given": ["Jayne"], "family": "Smyth",
                  "prefix": ["Mrs"], "suffix": ["MBE"]}],
        "gender": "female",
        "birthDate": "2010-10-22",
        "multipleBirthInteger": 1,
        "deceasedDateTime": "2010-10-22T00:00:00+00:00",
        "generalPractitioner": [{"id": "254406A3", "type": "Organization", "identifier": _ods("Y12345")}],
        "managingOrganization": {"type": "Organization", "identifier": _ods("Y12345")},
        "extension": [
            {"url": UKCORE + "NominatedPharmacy",
             "valueReference": {"identifier": _ods("Y12345", with_period=False)}},
            {"url": UKCORE + "PreferredDispenserOrganization",
             "valueReference": {"identifier": _ods("Y23456", with_period=False)}},
            {"url": UKCORE + "MedicalApplianceSupplier",
             "valueReference": {"identifier": _ods("Y34567", with_period=False)}},
            death_notification(datetime(2010, 10, 22, tzinfo=UTC)),
            {"url": UKCORE + "NHSCommunication", "extension": [
                _coding_ext("language", "https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage", "fr", "French"),
                {"url": "interpreterRequired", "valueBoolean": True}]},
            {"url": UKCORE + "ContactPreference", "extension": [
                _coding_ext("PreferredWrittenCommunicationFormat",
                            "https://fhir.hl7.org.uk/CodeSystem/UKCore-PreferredWrittenCommunicationFormat",
                            "12", "Braille", version=None),
                _coding_ext("PreferredContactMethod",
                            "https://fhir.hl7.org.uk/CodeSystem/UKCore-PreferredContactMethod", "1", "Letter",
                            version=None),
                {"url": "PreferredContactTimes", "valueString": "Not after 7pm"}]},
            {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
             "valueAddress": {"city": "Manchester", "district": "Greater Manchester", "country": "GBR"}},
            {"url": "https://fhir.nhs.uk/StructureDefinition/Extension-PDS-RemovalFromRegistration", "extension": [
                _coding_ext("removalFromRegistrationCode", "https://fhir.nhs.uk/CodeSystem/PDS-RemovalReasonExitCode",
                            "SCT", "Transferred to Scotland", version=None),
                {"url": "effectiveTime", "valuePeriod": {"start": "2020-01-01T00:00:00+00:00",
                                                         "end": "2021-12-31T00:00:00+00:00"}}]},
        ],
        "telecom": [
            {"id": "789", "period": dict(_PERIOD), "system": "phone", "value": "01632960587", "use": "home"},
            {"id": "790", "period": {"start": "2019-01-01", "end": "2022-12-31"}, "system": "email",
             "value": "jayne.smyth@example.com", "use": "home"},
            {"id": "OC789", "period": dict(_PERIOD), "system": "other", "value": "01632960587", "use": "home",
             "extension": [{"url": UKCORE + "OtherContactSystem", "valueCoding": {
                 "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-OtherContactSystem", "code": "textphone",
                 "display": "Minicom (Textphone)"}}]},
        ],
        "contact": [{"id": "C123", "period": dict(_PERIOD), "relationship": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C", "display": "Emergency Contact"}]}],
            "telecom": [{"system": "phone", "value": "01632960587"}]}],
        "address": [
            {"id": "456", "period": dict(_PERIOD), "use": "home", "line": list(_LINES), "postalCode": "LS1 6AE",
             "extension": _address_keys()},
            {"id": "T456", "period": dict(_PERIOD), "use": "temp", "text": "Student Accommodation",
             "line": list(_LINES), "postalCode": "LS1 6AE", "extension": _address_keys()},
        ],
    }


@functools.cache
def _jayne_text() -> str:
    return json.dumps(_jayne_smyth())


def is_fixture(number: str) -> bool:
    """A published example: read-only, its answers scripted (the not-found example included)."""
    return number in published_data.patient_numbers() or number in (JAYNE, NOT_FOUND)


def fixture(number: str) -> dict | None:
    """A fresh copy: callers may trim or patch it without touching the example."""
    if number == JAYNE:
        return json.loads(_jayne_text())
    return published_data.patient(number)


def related_people(number: str) -> list[dict]:
    """The published example's related people (none for the other examples), fresh copies."""
    return [entry["resource"] for entry in published_data.related_entries(number) or []]


# --- the NHS's own open-source Spine clients' example patients ----------------------------------------------------
# NHS numbers the NHS's open-source Spine clients use in their published examples: the MHS adaptor's integration
# tests and fake Spine (PDS retrieval, SCR) and the EPS FHIR facade's prescriptions and their HL7v3 conversions.
# They are ordinary, updatable patients here (unlike the read-only PDS sandbox examples above), so those examples
# work unchanged against the sandbox over HL7v3 and FHIR alike.
MOLLOY = ("9691813343", "9689174606")  # the fake Spine's PDS retrieval answer, for both releases of its tests
_CLIENT_EXAMPLE_KINDS = {
    "9691035456": "standard", "9689177923": "standard", "9446245796": "standard",  # MHS adaptor: SCR
    "9449304130": "standard", "9449304106": "standard", "9449305552": "standard",  # EPS: prescriptions, dispensing
    "9449310394": "standard", "9912003489": "standard",
    "9453740578": "deceased",  # EPS: the Spine error example for a deceased patient
}
CLIENT_EXAMPLE_NUMBERS = (*MOLLOY, *_CLIENT_EXAMPLE_KINDS)


def _molloy(number: str) -> dict:
    """The patient the MHS adaptor's fake Spine returns for a PDS retrieval: its facts, in FHIR."""
    return {
        "resourceType": "Patient", "id": number, "identifier": [nhs_identifier(number)],
        "meta": {"versionId": "1", "security": [dict(SECURITY["U"])]},
        "name": [{"id": "EYSTY", "use": "usual", "period": {"start": "1971-07-05"}, "given": ["Duncan", "Jack"],
                  "family": "MOLLOY", "prefix": ["Mr"]}],
        "gender": "male",
        "birthDate": "1939-01-20",
        "address": [{"id": "WYTKJ", "period": {"start": "2008-04-26"}, "use": "home",
                     "line": ["12 QUEENS TERRACE", "WALLSEND", "TYNE & WEAR"], "postalCode": "NE28 7QU"}],
        "generalPractitioner": [{"id": "AIYUC", "type": "Organization", "identifier": {
            "system": ODS_SYSTEM, "value": "A87016", "period": {"start": "1970-01-31"}}}],
    }


def client_example(number: str, population) -> dict | None:
    """A fresh record for one of the client-example NHS numbers (None for any other number): the fake Spine's
    patient where its facts are published, otherwise a synthetic person of the example's kind under that number."""
    if number not in CLIENT_EXAMPLE_NUMBERS:
        return None
    if number in MOLLOY:
        return _molloy(number)
    from sandbox.synthetic.fhir import patient_resource  # the population's FHIR form, as PDS serves it

    index = int(number[:9]) % population.size
    while population.kind(index) != _CLIENT_EXAMPLE_KINDS[number]:
        index = (index + 1) % population.size
    resource = patient_resource(population.person(index))
    resource["id"] = number
    resource["identifier"][0]["value"] = number
    return resource
