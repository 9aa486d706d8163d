"""GET /Patient/{id}/RelatedPerson: the published examples' related people, or a synthetic person's relations.

A relation that is itself a patient in the population comes as a patient reference only; any other relation comes
with personal details (name, phone, and the patient's home address). A baby whose birth the session recorded has
its mother, as a patient reference. A restricted patient's related people are never returned: the bundle is empty.
"""

from __future__ import annotations

from sandbox.services.pds import fixtures
from sandbox.services.pds.bundles import LIVE_BASE, searchset
from sandbox.services.pds.new_patient import object_id
from sandbox.services.pds.records import PatientRecords, Record
from sandbox.synthetic.fhir import address, human_name, period
from sandbox.synthetic.identifiers import NHS_NUMBER_SYSTEM
from sandbox.synthetic.population import Person, Relation

NAMESPACE = "pds.related"  # session state: NHS number -> the related people the session gave a patient (a newborn)
ROLE_SYSTEM = "https://fhir.nhs.uk/R4/CodeSystem/UKCore-AdditionalRelatedPersonRole"
TYPE_SYSTEM = "http://hl7.org/fhir/ValueSet/relatedperson-relationshiptype"
# Population relationship -> (relationship type code, display, next of kin)
TYPES = {"MTH": ("MTH", "mother", True), "FTH": ("FTH", "father", True), "SPS": ("SPS", "spouse", True),
         "N": ("FAMMEMB", "family member", True), "C": ("U", "Unknown", False)}


def related_bundle(records: PatientRecords, record: Record) -> dict:
    number = record.nhs_number
    if record.restricted:
        people = []
    elif record.source == "example":
        people = fixtures.related_people(number)
    elif record.source == "session" and (linked := records.sandbox.store.state.get(records.session, NAMESPACE, number)):
        people = linked.value
    else:
        person = records.sandbox.population.by_nhs_number(number)
        people = [_related(person, r, rank, records) for rank, r in enumerate(person.relations, 1)] if person else []
    return searchset([{"fullUrl": f"{LIVE_BASE}/Patient/{number}/RelatedPerson/{p['id']}", "resource": p}
                      for p in people])


def _related(person: Person, relation: Relation, rank: int, records: PatientRecords) -> dict:
    code, display, next_of_kin = TYPES[relation.relationship]
    coding = [{"system": ROLE_SYSTEM, "code": "Personal", "display": "Personal relationship with the patient"},
              {"system": TYPE_SYSTEM, "code": code, "display": display}]
    if next_of_kin:
        coding.append({"system": TYPE_SYSTEM, "code": "N", "display": "Next-of-Kin"})
    since = person.usual_name.start
    referenced = records.sandbox.population.person(relation.patient) if relation.patient is not None else None
    related: dict = {"id": relation.id, "resourceType": "RelatedPerson",
                     "patient": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": referenced.nhs_number}}
                     if referenced else {},
                     "active": True, "period": period(since)}
    if referenced is None and relation.name is not None:
        related["name"] = [{k: v for k, v in human_name(relation.name).items() if k != "id"}]
    related["relationship"] = [{"coding": coding}]
    related["extension"] = [{"url": "https://fhir.nhs.uk/R4/StructureDefinition/Extension-UKCore-ContactRank",
                             "valuePositiveInt": rank}]
    if relation.relationship in ("MTH", "FTH"):
        related["extension"].insert(0, {"url": "https://fhir.nhs.uk/R4/StructureDefinition/Extension-UKCore-"
                                               "CopyCorrespondenceIndicator", "valueBoolean": True})
    if referenced is None:
        if relation.phone:
            related["telecom"] = [{"period": period(since), "system": "phone", "value": relation.phone.replace(" ", ""),
                                   "use": "home"}]
        if person.home is not None:
            related["address"] = [{k: v for k, v in address(person.home).items() if k != "id"}]
    return related


def link_mother(records: PatientRecords, baby: str, mother: str, since: str) -> None:
    """Record a newborn's mother as its related person, for this session (a patient reference, as PDS keeps a
    relation who is a patient herself)."""
    coding = [{"system": ROLE_SYSTEM, "code": "Personal", "display": "Personal relationship with the patient"},
              {"system": TYPE_SYSTEM, "code": "MTH", "display": "mother"},
              {"system": TYPE_SYSTEM, "code": "N", "display": "Next-of-Kin"}]
    person = {"id": object_id(8), "resourceType": "RelatedPerson",
              "patient": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": mother}}, "active": True,
              "period": {"start": since}, "relationship": [{"coding": coding}],
              "extension": [{"url": "https://fhir.nhs.uk/R4/StructureDefinition/Extension-UKCore-"
                                    "CopyCorrespondenceIndicator", "valueBoolean": True},
                            {"url": "https://fhir.nhs.uk/R4/StructureDefinition/Extension-UKCore-ContactRank",
                             "valuePositiveInt": 1}]}
    records.sandbox.store.state.put(records.session, NAMESPACE, baby, [person])
