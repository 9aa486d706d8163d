"""POST /Patient: the published request examples, matching against the population, allocation, validation errors."""

from __future__ import annotations

import copy
import json

import pytest

from tests.conftest import PdsClient, spec_path
from tests.test_pds_retrieve import error_code
from tests.test_pds_search import findings, ids, search
from tests.test_pds_update import diagnostics


def request_example(name: str) -> dict:
    folder = spec_path("pds-fhir", "specification", "components", "examples", "requests", "PatientCreate")
    return json.loads((folder / name).read_text())


@pytest.fixture
def new_patient() -> dict:
    body = request_example("Allocate_NHS_Number.json")
    body["name"][0].update(family="Quennell", given=["Araminta"])
    return body


def test_the_published_allocate_example_is_created_every_time(pds):
    for _ in range(2):  # as the published sandbox answers it: the same NHS number, nothing stored
        response = pds.post("/Patient", json=request_example("Allocate_NHS_Number.json"))
        assert response.status_code == 201, response.get_json()
        assert response.headers["X-Sandbox-Scenario"] == "pds-create-allocate"
        assert response.get_json()["id"] == "5182663366"
    assert pds.get("/Patient/5182663366").status_code == 404


@pytest.mark.parametrize("example, code, scenario", [
    ("Single_Match_found.json", "SINGLE_MATCH", "pds-create-single-match"),
    ("Multi_Match_found.json", "MULTIPLE_MATCHES", "pds-create-multiple-matches"),
])
def test_the_published_match_examples(pds, example, code, scenario):
    response = pds.post("/Patient", json=request_example(example))
    assert (response.status_code, error_code(response)) == (200, code)
    assert response.headers["X-Sandbox-Scenario"] == scenario
    assert "Unable to create new patient" in diagnostics(response)
    if code == "SINGLE_MATCH":
        assert "5900054586" in diagnostics(response)  # the published sandbox's match


def test_a_created_patient_is_stored_for_the_session_only(client, new_patient):
    mine, theirs = PdsClient(client, "creator"), PdsClient(client, "bystander")
    created = mine.post("/Patient", json=new_patient)
    body = created.get_json()
    assert created.status_code == 201 and created.headers["ETag"] == 'W/"1"'
    assert body["name"][0]["family"] == "Quennell" and body["name"][0]["id"]
    assert body["address"][0]["postalCode"] == "LS1 6AE" and "extension" not in body  # registering authority: not kept
    retrieved = mine.get(f"/Patient/{body['id']}")
    assert retrieved.status_code == 200 and retrieved.get_json() == body
    assert body["id"] in ids(search(mine, {"family": "Quennell", "birthdate": new_patient["birthDate"]}))
    assert theirs.get(f"/Patient/{body['id']}").status_code == 404
    again = mine.post("/Patient", json=new_patient)
    assert (again.status_code, error_code(again)) == (200, "SINGLE_MATCH")
    assert body["id"] in diagnostics(again)


def test_creating_a_patient_the_population_already_has_is_a_match(pds, sandbox, new_patient):
    person = next(p for p in sandbox.population.of_kind("standard") if p.gender in ("male", "female"))
    body = copy.deepcopy(new_patient)
    body["name"][0].update(family=person.family, given=list(person.given))
    body.update(gender=person.gender, birthDate=person.birth_date.isoformat())
    response = pds.post("/Patient", json=body)
    assert (response.status_code, error_code(response)) == (200, "SINGLE_MATCH")
    assert person.nhs_number in diagnostics(response)


def test_creating_without_searching_first_is_a_warning(client, pds, new_patient):
    response = pds.post("/Patient", json=new_patient)
    assert any(f["requirement"] == "PDS-CRT-003" and f["outcome"] == "warning" for f in findings(client, response))
    search(pds, {"family": "Quennell", "birthdate": new_patient["birthDate"]})
    new_patient["name"][0]["family"] = "Quennelle"
    response = pds.post("/Patient", json=new_patient)
    assert any(f["requirement"] == "PDS-CRT-003" and f["outcome"] == "pass" for f in findings(client, response))


def without(body: dict, field: str) -> dict:
    return {k: v for k, v in body.items() if k != field}


@pytest.mark.parametrize("change, code, expected", [
    (lambda b: {"nhsNumberAllocation": "Done"}, "INVALID_CREATE",
     "Invalid patient create data provided - 'Invalid payload received - incorrect format'"),
    (lambda b: without(b, "birthDate"), "MISSING_VALUE", "Missing value - 'birthDate'"),
    (lambda b: without(b, "extension"), "MISSING_VALUE", "Missing value - 'extension'"),
    (lambda b: {**b, "extension": []}, "TOO_FEW_VALUES_SUBMITTED", None),
    (lambda b: {**b, "pets": ["cat"]}, "ADDITIONAL_PROPERTIES",
     "Invalid request with error - Additional properties are not allowed ('pets' was unexpected)"),
    (lambda b: {**b, "gender": "mal"}, "INVALID_VALUE", "Invalid value - 'mal' in field 'gender'"),
    (lambda b: {**b, "gender": "other"}, "INVALID_VALUE", "Invalid value - 'other' in field 'gender'"),
    (lambda b: {**b, "birthDate": "2999-01-01"}, "INVALID_UPDATE", "future"),
    (lambda b: {**b, "name": b["name"] * 2}, "TOO_MANY_VALUES_SUBMITTED", "Too many values submitted - 'name'"),
    (lambda b: {**b, "extension": [{"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-"
                                            "RegisteringAuthority", "extension": []}]}, "TOO_FEW_VALUES_SUBMITTED", None),
])
def test_create_validation_errors(pds, new_patient, change, code, expected):
    response = pds.post("/Patient", json=change(new_patient))
    assert (response.status_code, error_code(response)) == (400, code), response.get_json()
    if expected:
        assert expected in diagnostics(response)


def test_malformed_json_is_invalid_create(pds):
    response = pds.client.post("/personal-demographics/FHIR/R4/Patient", data=b"{",
                               headers=pds._headers({"Content-Type": "application/json"}))
    assert (response.status_code, error_code(response)) == (400, "INVALID_CREATE")


def test_create_faults(pds, new_patient):
    new_patient["name"][0]["family"] = "Sandbox-Timeout"
    first = pds.post("/Patient", json=new_patient)
    assert (first.status_code, error_code(first)) == (503, "SERVICE_UNAVAILABLE")
    assert first.headers["Retry-After"] == "1"
    assert pds.post("/Patient", json=new_patient).status_code == 201
    new_patient["name"][0]["family"] = "Sandbox-RateLimit"
    limited = pds.post("/Patient", json=new_patient)
    assert (limited.status_code, error_code(limited)) == (429, "TOO_MANY_REQUESTS")
