"""GET /Patient/{id}: every documented retrieval behaviour, over HTTP in and out."""

from __future__ import annotations

import json

import pytest

from sandbox.synthetic.identifiers import NHS_NUMBER_SYSTEM
from tests.conftest import pds_headers, spec_path

ERROR_SYSTEM = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"


def error_code(response) -> str:
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    coding = body["issue"][0]["details"]["coding"][0]
    assert coding["system"] == ERROR_SYSTEM and coding["version"] == "1"
    return coding["code"]


# The published sandbox's patient table (9000000009, 9000000025 and the rest) answers exactly as that sandbox does:
# tests/test_pds_published_sandbox.py. Jayne Smyth is retrievable as the specification's example shows her.
@pytest.mark.parametrize("number, example", [
    ("9000000017", "Patient-Jayne-Smyth.json"),
    ("9000000033", "Minimal_Patient.json"),
])
def test_published_patients_are_returned_exactly_as_documented(pds, number, example):
    documented = json.loads(spec_path("pds-fhir", "specification", "components", "examples", example).read_text())
    response = pds.get(f"/Patient/{number}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/fhir+json"
    assert response.headers["ETag"] == 'W/"2"'
    assert response.get_json() == documented


def test_documented_errors(pds):
    not_found = pds.get("/Patient/9111231130")
    assert (not_found.status_code, error_code(not_found)) == (404, "RESOURCE_NOT_FOUND")
    assert not_found.headers["X-Sandbox-Scenario"] == "pds-get-patient-not-found"  # a plan step names it
    invalid = pds.get("/Patient/9000000000")
    assert (invalid.status_code, error_code(invalid)) == (400, "INVALID_RESOURCE_ID")
    short = pds.get("/Patient/12345")
    assert (short.status_code, error_code(short)) == (400, "INVALID_RESOURCE_ID")


def test_missing_and_invalid_request_id_are_refused_with_the_spec_messages(pds):
    missing = pds.get("/Patient/9000000009", headers={"X-Request-ID": None})
    assert (missing.status_code, error_code(missing)) == (400, "MISSING_VALUE")
    assert missing.get_json()["issue"][0]["diagnostics"] == (
        "Invalid request with error - X-Request-ID header must be supplied to access this resource")
    invalid = pds.get("/Patient/9000000009", headers={"X-Request-ID": "1234"})
    assert (invalid.status_code, error_code(invalid)) == (400, "INVALID_VALUE")
    assert invalid.get_json()["issue"][0]["diagnostics"] == "Invalid value - '1234' in header 'X-Request-ID'"
    assert invalid.headers["X-Request-ID"] == "1234"


def test_request_and_correlation_ids_are_mirrored(pds):
    response = pds.get("/Patient/9000000009", headers={"X-Request-ID": "60E0B220-8136-4CA5-AE46-1D97EF59D068",
                                                      "X-Correlation-ID": "11C46F5F-CDEF-4865-94B2-0EE0EDCC26DA"})
    assert response.headers["X-Request-ID"] == "60E0B220-8136-4CA5-AE46-1D97EF59D068"
    assert response.headers["X-Correlation-ID"] == "11C46F5F-CDEF-4865-94B2-0EE0EDCC26DA"


def first_of_kind(sandbox, kind: str):
    return next(sandbox.population.of_kind(kind))


def test_synthetic_patient_is_a_uk_core_patient_with_a_versioned_etag(pds, sandbox):
    person = first_of_kind(sandbox, "standard")
    response = pds.get(f"/Patient/{person.nhs_number}")
    body = response.get_json()
    assert response.status_code == 200
    assert body["id"] == person.nhs_number
    assert body["identifier"][0] == {**body["identifier"][0], "system": NHS_NUMBER_SYSTEM, "value": person.nhs_number}
    assert response.headers["ETag"] == f'W/"{body["meta"]["versionId"]}"'
    assert body["name"][0]["family"] == person.family
    assert body["address"][0]["postalCode"] == person.home.postcode


def test_restricted_patient_has_location_fields_removed(pds, sandbox):
    person = first_of_kind(sandbox, "restricted")
    body = pds.get(f"/Patient/{person.nhs_number}").get_json()
    assert body["meta"]["security"][0]["code"] == "R"
    assert not {"address", "telecom", "generalPractitioner"} & set(body)


def test_superseded_patient_returns_the_superseding_record(pds, sandbox):
    person = first_of_kind(sandbox, "superseded")
    response = pds.get(f"/Patient/{person.nhs_number}")
    survivor = sandbox.population.person(person.superseded_by)
    assert response.status_code == 200
    assert response.get_json()["id"] == survivor.nhs_number != person.nhs_number
    assert response.headers["X-Sandbox-Scenario"] == "pds-superseded-patient"


def test_invalidated_patient_is_refused(pds, sandbox):
    response = pds.get(f"/Patient/{first_of_kind(sandbox, 'invalidated').nhs_number}")
    assert (response.status_code, error_code(response)) == (404, "INVALIDATED_RESOURCE")


def test_deceased_patient_carries_date_of_death(pds, sandbox):
    body = pds.get(f"/Patient/{first_of_kind(sandbox, 'deceased').nhs_number}").get_json()
    assert body["deceasedDateTime"]
    assert any(e["url"].endswith("DeathNotificationStatus") for e in body["extension"])


def test_unrouted_method_and_path_get_spine_shaped_errors(client, pds):
    wrong_method = client.delete("/personal-demographics/FHIR/R4/Patient/9000000009")
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "METHOD_NOT_ALLOWED"
    unknown = pds.get("/Nonsense")
    assert unknown.status_code == 404 and error_code(unknown) == "RESOURCE_NOT_FOUND"
    outside = client.get("/no-such-service")
    assert outside.status_code == 404 and "personal-demographics" in outside.get_json()["message"]


def test_routing_answers_each_request_for_its_own_host_path_method_and_query(client):
    """Requests to one host share a binding of the URL map (SandboxFlask.create_url_adapter); each is still routed
    and redirected by its own path, method and query, under its own host."""
    for n, host in enumerate(("a.example", "b.example:8080", "a.example", "b.example:8080")):
        moved = client.get(f"/personal-demographics//FHIR/R4/Patient/9000000009?n={n}", headers={"Host": host})
        assert (moved.status_code, moved.headers["Location"]) == (
            308, f"http://{host}/personal-demographics/FHIR/R4/Patient/9000000009?n={n}")
        wrong_method = client.delete("/personal-demographics/FHIR/R4/Patient/9000000009", headers={"Host": host})
        assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "GET, PATCH"
        found = client.get("/personal-demographics/FHIR/R4/Patient/9000000009", headers=pds_headers(Host=host))
        assert found.status_code == 200 and found.get_json()["id"] == "9000000009"


def test_routes_found_once_answer_every_later_request_with_its_own_path(client, pds, sandbox, monkeypatch):
    """A route found for a path is kept (SandboxFlask._match): later requests to that path, or to another path of the
    same route, are answered for their own NHS number; a refused method and an unknown path are refused every time;
    and when more paths than are kept have been seen, the kept ones are forgotten and found again."""
    monkeypatch.setattr("sandbox.app.MATCHES_KEPT", 3)
    standard = first_of_kind(sandbox, "standard").nhs_number
    for _ in range(3):
        for number in ("9000000009", "9000000017", standard, "9000000033"):
            found = pds.get(f"/Patient/{number}")
            assert found.status_code == 200 and found.get_json()["id"] == number
            assert found.headers["X-Request-ID"] == found.request.headers["X-Request-ID"]
        wrong_method = client.delete("/personal-demographics/FHIR/R4/Patient/9000000009")
        assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "GET, PATCH"
        assert pds.get("/Nonsense").status_code == 404
    assert 0 < len(client.application._matches) <= 3
