"""POST /Patient/$process-birth-details for the synthetic population: a real newborn registration - a new NHS number
from the allocation range, the mother linked, the record kept for the session only - and every request PDS refuses,
refused with its OperationOutcome. HTTP in and out. (The published sandbox's own answers: test_pds_published_sandbox.)"""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta

import pytest

from sandbox.synthetic.identifiers import ALLOCATION_START, is_valid_nhs_number, nth_valid_number
from tests.conftest import PdsClient, spec_path
from tests.test_pds_published_sandbox import create_request
from tests.test_pds_retrieve import error_code
from tests.test_pds_search import findings, ids, search
from tests.test_pds_spec_schemas import spec_validator
from tests.test_pds_update import diagnostics

BIRTH = "/Patient/$process-birth-details"
ETHNIC_CATEGORY = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
DEATH_NOTICE = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
TODAY = date.today()


def notification(mother: str, family: str = "Quennell", given: tuple = ("Araminta", "Rose"),
                 born: date = TODAY - timedelta(days=2), gender: str = "female") -> dict:
    """A birth notification as PDS's own tests send one: baby, observations, mother, GP, delivery location."""
    def observation(code: str, display: str, **value) -> dict:
        return {"fullUrl": f"urn:uuid:obs-{code}", "request": {"method": "POST", "url": "Observation"},
                "resource": {"resourceType": "Observation", "status": "final",
                             "subject": {"reference": "urn:uuid:baby"},
                             "code": {"coding": [{"system": "http://snomed.info/sct", "code": code,
                                                  "display": display}]}, **value}}
    baby = {"resourceType": "Patient",
            "name": [{"given": list(given), "family": family, "use": "usual", "period": {"start": str(born)}}],
            "gender": gender, "birthDate": str(born), "multipleBirthInteger": 1,
            "address": [{"period": {"start": str(born)}, "use": "home", "postalCode": "LS1 6AE",
                         "line": ["", "1 Trevelyan Square", "", "Leeds"]}],
            "extension": [
                {"url": ETHNIC_CATEGORY, "valueCodeableConcept": {"coding": [{
                    "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland", "code": "A",
                    "display": "White - British"}]}},
                {"url": BIRTH_PLACE, "valueAddress": {"text": "St Mary's Hospital, Oxford Road, Manchester",
                                                      "city": "Manchester", "district": "Greater Manchester",
                                                      "country": "1"}}]}
    nhs = {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": mother}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:baby", "request": {"method": "POST", "url": "Patient"}, "resource": baby},
        observation("364589006", "Birth weight", valueQuantity={"value": 3400, "unit": "grams", "code": "g"}),
        observation("237364002", "Stillbirth", valueCodeableConcept={"coding": [{
            "system": "urn:oid:2.16.840.1.113883.2.1.3.2.4.17.172", "code": "1", "display": "Live"}]}),
        observation("268477000", "Fetal gestation at delivery", valueQuantity={"value": 39, "unit": "weeks"}),
        observation("246435002", "Number of foetuses", valueInteger=1),
        observation("66091009", "Suspected congenital abnormality", valueCodeableConcept={"coding": [{"code": "N"}]}),
        {"fullUrl": "urn:uuid:mother-link", "request": {"method": "POST", "url": "RelatedPerson"},
         "resource": {"resourceType": "RelatedPerson", "identifier": [nhs], "patient": {"reference": "urn:uuid:baby"},
                      "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                                    "code": "GESTM", "display": "Gestational mother"}]}]}},
        {"fullUrl": "urn:uuid:mother", "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "identifier": [nhs], "birthDate": "1990-01-01",
                      "name": [{"family": family, "given": ["Jane"], "use": "usual"}]}},
        {"fullUrl": "urn:uuid:gp", "request": {"method": "POST", "url": "Organization"},
         "resource": {"resourceType": "Organization", "name": "GP Practice"}},
        {"fullUrl": "urn:uuid:location", "request": {"method": "POST", "url": "Location"},
         "resource": {"resourceType": "Location", "status": "active", "name": "NEONATAL MEDICINE LGI"}}]}


@pytest.fixture
def mother(sandbox) -> str:
    return next(p for p in sandbox.population.of_kind("standard") if p.gender == "female").nhs_number


def baby(body: dict) -> dict:
    return body["entry"][0]["resource"]


def test_a_birth_gets_a_new_nhs_number_from_the_allocation_range(client, pds, mother):
    response = pds.post(BIRTH, json=notification(mother))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    number = body["id"]
    assert number == nth_valid_number(ALLOCATION_START, 0) and is_valid_nhs_number(number)
    assert body["identifier"][0]["value"] == number and response.headers["ETag"] == 'W/"1"'
    assert body["name"][0]["family"] == "Quennell" and body["name"][0]["id"]
    assert body["address"][0]["line"] == ["1 Trevelyan Square", "Leeds"]  # the empty lines dropped
    assert (body["gender"], body["birthDate"], body["multipleBirthInteger"]) == (
        "female", str(TODAY - timedelta(days=2)), 1)
    assert body["extension"] == [{"url": BIRTH_PLACE, "valueAddress": {  # the ethnic category is not kept
        "city": "Manchester", "district": "Greater Manchester", "country": "1"}}]
    assert response.headers["notification-id"] and response.headers["notification-id"] != (
        "2AE84248-5180-42B6-8BB7-C93C0991B863")
    passed = {f["requirement"] for f in findings(client, response) if f["outcome"] == "pass"}
    assert {"PDS-BRT-001", "PDS-BRT-002"} <= passed
    created = pds.post("/Patient", json=create_request("Quennell"))
    assert created.get_json()["id"] == nth_valid_number(ALLOCATION_START, 1)  # one counter for creates and births


def test_the_baby_is_linked_to_its_mother_and_kept_for_the_session_only(client, sandbox, mother):
    mine, theirs = PdsClient(client, "maternity"), PdsClient(client, "elsewhere")
    number = mine.post(BIRTH, json=notification(mother)).get_json()["id"]
    retrieved = mine.get(f"/Patient/{number}")
    assert retrieved.status_code == 200 and retrieved.headers["ETag"] == 'W/"1"'
    assert retrieved.get_json()["name"][0]["given"] == ["Araminta", "Rose"]
    people = mine.get(f"/Patient/{number}/RelatedPerson").get_json()["entry"]
    assert len(people) == 1
    person = people[0]["resource"]
    assert person["patient"]["identifier"]["value"] == mother
    assert {c["code"] for c in person["relationship"][0]["coding"]} == {"Personal", "MTH", "N"}
    born = str(TODAY - timedelta(days=2))
    assert number in ids(search(mine, {"family": "Quennell", "birthdate": born}))
    assert error_code(theirs.get(f"/Patient/{number}")) == "RESOURCE_NOT_FOUND"
    assert number not in ids(search(theirs, {"family": "Quennell", "birthdate": born}))
    assert mine.get(f"/Patient/{mother}").status_code == 200


def test_the_newborn_record_is_a_pds_patient(pds, mother):
    folder = str(spec_path("pds-fhir", "specification", "components", "schemas"))
    body = pds.post(BIRTH, json=notification(mother)).get_json()
    errors = [e.message for e in spec_validator(folder, "Patient.yaml").iter_errors(body)]
    assert not errors, errors


def test_a_baby_already_registered_is_a_match(pds, mother):
    first = pds.post(BIRTH, json=notification(mother)).get_json()["id"]
    again = pds.post(BIRTH, json=notification(mother))
    assert (again.status_code, error_code(again)) == (200, "SINGLE_MATCH")
    assert diagnostics(again) == f"Unable to create new patient. NHS number {first} found for supplied demographic data."
    assert pds.get(f"/Patient/{nth_valid_number(ALLOCATION_START, 1)}").status_code == 404  # nothing allocated


def test_a_merged_mother_is_linked_under_her_current_number(pds, sandbox):
    merged = next(p for p in sandbox.population.of_kind("superseded"))
    survivor = sandbox.population.person(merged.superseded_by).nhs_number
    number = pds.post(BIRTH, json=notification(merged.nhs_number)).get_json()["id"]
    person = pds.get(f"/Patient/{number}/RelatedPerson").get_json()["entry"][0]["resource"]
    assert person["patient"]["identifier"]["value"] == survivor


def test_a_stillbirth_is_recorded_with_its_death_notification(pds, mother):
    request = notification(mother)
    when = f"{TODAY - timedelta(days=2)}T10:00:00+00:00"
    baby(request)["deceasedDateTime"] = when
    baby(request)["extension"].append({"url": DEATH_NOTICE, "extension": [{"url": "deathNotificationStatus",
                                       "valueCodeableConcept": {"coding": [{"code": "2"}]}}]})
    inconsistent = pds.post(BIRTH, json=request)
    assert (inconsistent.status_code, error_code(inconsistent)) == (400, "INSERT_BIRTH_DEATH_STATUS_INCONSISTENT")
    assert diagnostics(inconsistent) == "Insert Birth - Death Status Inconsistent"
    request["entry"][2]["resource"]["valueCodeableConcept"]["coding"][0].update(code="2", display="Antepartum")
    recorded = pds.post(BIRTH, json=request)
    assert recorded.status_code == 201 and recorded.get_json()["deceasedDateTime"] == when
    notice = next(e for e in recorded.get_json()["extension"] if e["url"] == DEATH_NOTICE)
    assert notice["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "2"


def _change(*path, value=None, delete: bool = False):
    def apply(body):
        body = copy.deepcopy(body)
        target = body
        for step in path[:-1]:
            target = target[step]
        if delete:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return body
    return apply


def _without_entry(kind: str):
    return lambda body: {**body, "entry": [e for e in body["entry"] if e["resource"]["resourceType"] != kind]}


BABY = ("entry", 0, "resource")


@pytest.mark.parametrize("change, status, code, expected", [
    (_without_entry("Location"), 400, "TOO_FEW_VALUES_SUBMITTED",
     "Too few values submitted - <json too long to display> in field 'entry'"),
    (_change(*BABY, "extension", value=[]), 400, "TOO_FEW_VALUES_SUBMITTED", "in field 'entry/0/resource/extension'"),
    (_change(*BABY, "address", 0, "line", value=["1 Trevelyan Square"]), 400, "INVALID_CREATE",
     "Invalid patient create data provided - 'address lines 1 and 4 or 2 and 4 must be completed as a minimum'"),
    (_change(*BABY, "name", 0, "period", value={"start": "2020-01-01", "end": str(TODAY)}), 400, "INVALID_CREATE",
     "Invalid patient create data provided - 'An end date can not be provided on usual name'"),
    (_change(*BABY, "birthDate", value=str(TODAY - timedelta(days=200))), 400, "INVALID_DOB_OVER_SIX_MONTHS",
     "You are trying to create a birth notification for a child over the age of 6 months. Please allocate an NHS "
     "Number instead"),
    (_change(*BABY, "birthDate", value=str(TODAY + timedelta(days=1))), 400, "INVALID_VALUE", "in field 'birthDate'"),
    (_change(*BABY, "birthDate", value="2026-02-30"), 400, "INVALID_VALUE", "Invalid value - '2026-02-30' in field "
                                                                            "'birthDate'"),
    (_change(*BABY, "name", 0, "family", delete=True), 400, "MISSING_VALUE",
     "Missing value - 'entry/0/resource/name/0/family'"),
    (_change(*BABY, "name", 0, "given", delete=True), 400, "MISSING_VALUE",
     "Missing value - 'entry/0/resource/name/0/given'"),
    (_change(*BABY, "multipleBirthInteger", delete=True), 400, "MISSING_VALUE",
     "Missing value - 'entry/0/resource/multipleBirthInteger'"),
    (_change(*BABY, "multipleBirthInteger", value=1.5), 400, "INVALID_VALUE",
     "Invalid value - '1.5' in field 'entry/0/resource/multipleBirthInteger'"),
    (_change(*BABY, "gender", value="mal"), 400, "INVALID_VALUE", "Invalid value - 'mal' in field 'gender'"),
    (_change("entry", 1, "resource", "valueQuantity", "value", value="heavy"), 400, "INVALID_VALUE",
     "Invalid value - 'heavy' in field 'entry/1/resource/valueQuantity/value'"),
    (_change("entry", 7, "resource", "identifier", 0, "value", value="9000000000"), 400, "INVALID_VALUE",
     "Invalid value - '9000000000' in field 'entry/7/resource/identifier/0/value'"),
    (_change("entry", 7, "resource", "identifier", 0, "value", value="9111231130"), 400, "INVALID_VALUE",
     "Invalid value - '9111231130' in field 'entry/7/resource/identifier/0/value'"),  # no such patient
    (_change("entry", 7, "resource", "identifier", 0, "value", value="9991234578"), 400, "INVALID_VALUE",
     "Invalid value - '9991234578' in field 'entry/7/resource/identifier/0/value'"),
    (_change("entry", value="all of it"), 400, "INVALID_VALUE", "Invalid value - 'all of it' in field 'entry'"),
    (lambda body: [body], 400, "MISSING_VALUE", "Missing baby Patient resource in entry array"),
    (_change(*BABY, "address", 0, "line", value=["1 Trevelyan Square", 7, "", "Leeds"]), 400, "INVALID_VALUE",
     "in field 'address/0/line/1'"),
    (_change(*BABY, "address", 0, "pets", value=["cat"]), 400, "ADDITIONAL_PROPERTIES", "'pets' was unexpected"),
])
def test_a_birth_pds_cannot_register_is_refused(pds, mother, change, status, code, expected):
    response = pds.post(BIRTH, json=change(notification(mother)))
    assert response.status_code == status, response.get_json()
    if code:
        assert error_code(response) == code
        assert expected in diagnostics(response)
        assert response.headers["notification-id"]


def test_a_body_that_is_not_json_is_invalid_create(pds):
    for body in (b"{", b"not json", b"[" * 100_000):
        response = pds.client.post("/personal-demographics/FHIR/R4" + BIRTH, data=body,
                                   headers=pds._headers({"Content-Type": "application/fhir+json"}))
        assert (response.status_code, error_code(response)) == (400, "INVALID_CREATE"), body[:10]


def test_the_weight_and_mother_are_found_by_what_they_are_not_where(pds, mother):
    request = notification(mother)
    request["entry"].reverse()  # the baby is still the first Patient without an NHS number
    recorded = pds.post(BIRTH, json=request)
    assert recorded.status_code == 201, recorded.get_json()
    moved = json.loads(json.dumps(request))
    weight = next(i for i, e in enumerate(moved["entry"]) if e["resource"].get("code", {}).get("coding", [{}])[0].get(
        "code") == "364589006")
    del moved["entry"][weight]["resource"]["valueQuantity"]["value"]
    missing = pds.post(BIRTH, json=moved)
    assert diagnostics(missing) == f"Missing value - 'entry/{weight}/resource/valueQuantity/value'"
