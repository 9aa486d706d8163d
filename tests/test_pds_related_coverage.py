"""GET /Patient/{id}/RelatedPerson and GET/POST /Coverage, as documented and for synthetic patients."""

from __future__ import annotations

import json

import pytest

from tests.conftest import PdsClient
from tests.test_pds_retrieve import error_code
from tests.test_pds_search import example, findings, without_timestamp
from tests.test_pds_update import diagnostics


def related(pds, number):
    return pds.get(f"/Patient/{number}/RelatedPerson")


def test_published_related_people_are_the_documented_examples(pds):
    # body for body against the published sandbox: tests/test_pds_published_sandbox.py
    multiple = related(pds, "9000000009")
    assert multiple.status_code == 200 and multiple.headers["ETag"] == 'W/"2"'
    assert [e["resource"]["id"] for e in multiple.get_json()["entry"]] == ["507B7621", "B3380E98"]
    single = related(pds, "9000000017").get_json()
    assert [e["resource"]["id"] for e in single["entry"]] == ["F4CF8B96"]
    for number in ("9000000025", "9000000033"):
        empty = related(pds, number).get_json()
        assert without_timestamp(empty) == {"resourceType": "Bundle", "type": "searchset", "total": 0}


def test_related_people_errors(pds, sandbox):
    assert error_code(related(pds, "9111231130")) == "RESOURCE_NOT_FOUND"
    assert error_code(related(pds, "9000000000")) == "INVALID_RESOURCE_ID"
    missing_id = pds.get("/Patient/9000000009/RelatedPerson", headers={"X-Request-ID": None})
    assert (missing_id.status_code, error_code(missing_id)) == (400, "MISSING_VALUE")
    gone = next(sandbox.population.of_kind("invalidated"))
    assert error_code(related(pds, gone.nhs_number)) == "INVALIDATED_RESOURCE"


def test_synthetic_relations_are_references_or_personal_details(pds, sandbox):
    child = next(p for p in sandbox.population.of_kind("standard") if any(r.patient is not None for r in p.relations))
    entry = related(pds, child.nhs_number).get_json()["entry"][0]
    mother = sandbox.population.person(child.relations[0].patient)
    assert entry["resource"]["patient"]["identifier"]["value"] == mother.nhs_number
    assert "name" not in entry["resource"] and "address" not in entry["resource"]
    assert entry["fullUrl"].endswith(f"/Patient/{child.nhs_number}/RelatedPerson/{entry['resource']['id']}")
    adult = next(p for p in sandbox.population.of_kind("standard") if len(p.relations) == 2)
    people = related(pds, adult.nhs_number).get_json()["entry"]
    ranks = [e["resource"]["extension"][-1]["valuePositiveInt"] for e in people]
    assert ranks == [1, 2]
    assert people[0]["resource"]["name"][0]["family"] == adult.relations[0].name.family
    assert people[0]["resource"]["address"][0]["postalCode"] == adult.home.postcode
    lonely = next(p for p in sandbox.population.of_kind("standard") if not p.relations)
    assert related(pds, lonely.nhs_number).get_json()["total"] == 0


def test_restricted_patients_related_people_are_never_returned(pds, sandbox):
    restricted = next(sandbox.population.of_kind("restricted"))
    response = related(pds, restricted.nhs_number)
    assert response.status_code == 200 and response.get_json()["total"] == 0


def coverage_search(pds, query):
    return pds.get("/Coverage?" + query)


def test_published_coverage(client, pds):
    # body for body against the published sandbox: tests/test_pds_published_sandbox.py
    found = coverage_search(pds, "subscriber:identifier=9000000009")
    assert found.status_code == 200 and found.headers["ETag"] == 'W/"2"'
    assert found.get_json()["entry"][0]["resource"]["subscriber"]["identifier"]["value"] == "9000000009"
    assert any(f["requirement"] == "PDS-COV-002" and f["outcome"] == "info" for f in findings(client, found))
    none = coverage_search(pds, "subscriber:identifier=9000000033").get_json()
    assert without_timestamp(none) == {"resourceType": "Bundle", "type": "searchset", "total": 0,
                                       "meta": {"versionId": "1"}}


@pytest.mark.parametrize("query, status, code", [
    ("id=9999999990&year=2003", 400, "INVALID_SEARCH_DATA"),
    ("", 400, "INVALID_SEARCH_DATA"),
    ("subscriber:identifier=9000000009&subscriber:identifier=9000000017", 400, "INVALID_SEARCH_DATA"),
    ("subscriber:identifier=9000000000", 400, "INVALID_RESOURCE_ID"),
    ("subscriber:identifier=9111231130", 404, "RESOURCE_NOT_FOUND"),
])
def test_coverage_search_errors(pds, query, status, code):
    response = coverage_search(pds, query)
    assert (response.status_code, error_code(response)) == (status, code)
    if code == "INVALID_SEARCH_DATA":
        assert diagnostics(response) == ("Invalid search data provided - 'Coverage search request must follow the "
                                         "format /Coverage?subscriber:identifier=NHS_NUMBER'")


def card(number: str = "9000000009") -> dict:
    body = example("Coverage.json")
    body["subscriber"]["identifier"]["value"] = number
    return body


def test_published_coverage_update_is_answered_and_not_stored(pds):
    for _ in range(2):
        response = pds.post("/Coverage", json=card(), headers={"If-Match": 'W/"2"'})
        assert response.status_code == 201 and response.headers["ETag"] == 'W/"3"'
        body = response.get_json()
        resource = body["entry"][0]["resource"]  # the published card, carrying the request's values
        assert body["meta"] == {"versionId": "3"} and resource["identifier"][0]["value"] == "29401395498043123948"
        assert resource["period"] == card()["period"] and resource["payor"] == card()["payor"]
    assert coverage_search(pds, "subscriber:identifier=9000000009").headers["ETag"] == 'W/"2"'


@pytest.mark.parametrize("change, headers, status, code", [
    (lambda b: b, {"If-Match": 'W/"1"'}, 409, "RESOURCE_VERSION_MISMATCH"),
    (lambda b: b, {}, 412, "PRECONDITION_FAILED"),
    (lambda b: {**b, "identifier": [{"assigner": b["identifier"][0]["assigner"]}]}, {"If-Match": 'W/"2"'}, 400,
     "MISSING_VALUE"),
    (lambda b: {**b, "subscriber": {"identifier": {"value": "9000000000"}}}, {"If-Match": 'W/"2"'}, 400,
     "INVALID_RESOURCE_ID"),
    (lambda b: {**b, "period": {"end": "31/12/2030"}}, {"If-Match": 'W/"2"'}, 400, "INVALID_VALUE"),
    (lambda b: {**b, "subscriber": {"identifier": {"value": "9111231130"}}}, {"If-Match": 'W/"2"'}, 404,
     "RESOURCE_NOT_FOUND"),
])
def test_coverage_update_errors(pds, change, headers, status, code):
    response = pds.post("/Coverage", json=change(card()), headers=headers)
    assert (response.status_code, error_code(response)) == (status, code), response.get_json()


def test_synthetic_coverage_update_is_stored_for_the_session(client, sandbox):
    person = next(sandbox.population.of_kind("standard"))
    mine, theirs = PdsClient(client, "ehic-a"), PdsClient(client, "ehic-b")
    query = f"subscriber:identifier={person.nhs_number}"
    before = coverage_search(mine, query)
    assert before.get_json()["total"] == 0
    created = mine.post("/Coverage", json=card(person.nhs_number), headers={"If-Match": before.headers["ETag"]})
    assert created.status_code == 201
    after = coverage_search(mine, query)
    assert after.get_json()["total"] == 1 and after.headers["ETag"] == created.headers["ETag"]
    assert mine.get(f"/Patient/{person.nhs_number}").headers["ETag"] == created.headers["ETag"]
    assert coverage_search(theirs, query).get_json()["total"] == 0
    stale = mine.post("/Coverage", json=card(person.nhs_number), headers={"If-Match": before.headers["ETag"]})
    assert stale.status_code == 409
    assert json.loads(after.get_data())["entry"][0]["resource"]["identifier"][0]["value"] == "29401395498043123948"
