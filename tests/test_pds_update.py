"""PATCH /Patient/{id}: If-Match rules, the patch body, PDS's business rules, session storage and isolation, and the
published examples (read-only, every documented update succeeds every time). HTTP in and out."""

from __future__ import annotations

import json

import pytest

from tests.conftest import PdsClient, spec_path
from tests.test_pds_retrieve import error_code
from tests.test_pds_search import findings, ids, search


def request_examples() -> list:
    folder = spec_path("pds-fhir", "specification", "components", "examples", "requests", "PatientPatch")
    return sorted(folder.glob("*.json"))


def diagnostics(response) -> str:
    return response.get_json()["issue"][0].get("diagnostics", "")


def patches(*ops) -> dict:
    return {"patches": list(ops)}


def retrieve(pds, number):
    response = pds.get(f"/Patient/{number}")
    assert response.status_code == 200, response.get_json()
    return response.get_json(), response.headers["ETag"]


def patch(pds, number, body, etag='W/"2"', **headers):
    return pds.patch(f"/Patient/{number}", json=body, headers={"If-Match": etag, **headers})


@pytest.fixture
def person(sandbox):
    return next(p for p in sandbox.population.of_kind("standard") if p.email and p.gp)


# --- the published examples ------------------------------------------------------------------------------------
def test_every_documented_request_example_is_accepted_every_time_and_nothing_is_stored(pds):
    for path in request_examples():
        body = json.loads(path.read_text())
        for _ in range(2):
            response = patch(pds, "9000000009", body)
            assert response.status_code == 200, (path.name, response.get_json())
            assert response.headers["ETag"] == 'W/"3"'
            assert response.get_json()["meta"]["versionId"] == "3"
    resource, etag = retrieve(pds, "9000000009")
    assert etag == 'W/"2"' and resource["gender"] == "female"


def test_repeating_a_documented_update_keeps_passing_the_latest_etag_check(client, pds):
    retrieve(pds, "9000000009")
    for _ in range(3):
        response = patch(pds, "9000000009", patches({"op": "replace", "path": "/gender", "value": "male"}))
        verdicts = {f["outcome"] for f in findings(client, response) if f["requirement"] == "PDS-UPD-001"}
        assert response.status_code == 200 and verdicts == {"pass"}


def test_a_documented_update_is_applied_to_the_answer(pds):
    added = patch(pds, "9000000009", patches({"op": "replace", "path": "/gender", "value": "male"})).get_json()
    assert added["gender"] == "male"
    minimal = patch(pds, "9000000033", patches({"op": "add", "path": "/gender", "value": "female"})).get_json()
    assert minimal["gender"] == "female" and minimal["meta"]["versionId"] == "3"


def test_a_failed_test_on_a_published_example_is_a_warning_not_a_rejection(client, pds):
    response = patch(pds, "9000000009", patches({"op": "test", "path": "/name/0/id", "value": "999"},
                                                {"op": "remove", "path": "/name/0"}))
    assert response.status_code == 200
    warned = [f for f in findings(client, response) if f["outcome"] == "warning"]
    assert warned and warned[0]["requirement"] == "PDS-UPD-019" and "live PDS would reject" in warned[0]["message"]


def test_published_example_patch_errors(pds):
    out_of_bounds = patch(pds, "9000000009", patches({"op": "replace", "path": "/name/7/family", "value": "X"}))
    assert (out_of_bounds.status_code, error_code(out_of_bounds)) == (400, "INVALID_UPDATE")
    assert diagnostics(out_of_bounds).startswith("Invalid update with error - Invalid patch - ")
    stale = patch(pds, "9000000009", patches({"op": "replace", "path": "/gender", "value": "male"}), etag='W/"1"')
    assert (stale.status_code, error_code(stale)) == (409, "RESOURCE_VERSION_MISMATCH")
    not_found = patch(pds, "9111231130", patches({"op": "replace", "path": "/gender", "value": "male"}))
    assert (not_found.status_code, error_code(not_found)) == (404, "RESOURCE_NOT_FOUND")
    invalid = patch(pds, "9000000000", patches({"op": "replace", "path": "/gender", "value": "male"}))
    assert (invalid.status_code, error_code(invalid)) == (400, "INVALID_RESOURCE_ID")


# --- request rules ---------------------------------------------------------------------------------------------
def test_if_match_missing_is_412_and_malformed_is_400(pds):
    body = patches({"op": "replace", "path": "/gender", "value": "male"})
    missing = pds.patch("/Patient/9000000009", json=body)
    assert (missing.status_code, error_code(missing)) == (412, "PRECONDITION_FAILED")
    assert diagnostics(missing) == "Invalid request with error - If-Match header must be supplied to update this resource"
    malformed = patch(pds, "9000000009", body, etag='"2"')
    assert (malformed.status_code, error_code(malformed)) == (400, "INVALID_VALUE")
    assert diagnostics(malformed) == "Invalid value - '\"2\"' in header 'If-Match'"


def test_content_type(client, pds):
    body = patches({"op": "replace", "path": "/gender", "value": "male"})
    wrong = patch(pds, "9000000009", body, **{"Content-Type": "text/xml"})
    assert (wrong.status_code, error_code(wrong)) == (400, "UNSUPPORTED_SERVICE")
    tolerated = patch(pds, "9000000009", body, **{"Content-Type": "application/json"})
    assert tolerated.status_code == 200
    assert any(f["requirement"] == "PDS-UPD-002" and f["outcome"] == "warning" for f in findings(client, tolerated))


@pytest.mark.parametrize("body, code, expected", [
    ({}, "INVALID_UPDATE", "Invalid update with error - No patches found"),
    ({"patches": []}, "INVALID_UPDATE", "Invalid update with error - No patches found"),
    ([{"op": "replace", "path": "/gender", "value": "male"}], "INVALID_UPDATE",
     "Invalid update with error - No patches found"),
    (patches({"op": "bad_value", "path": "not a path"}), "INVALID_VALUE", "Invalid value - 'bad_value' in field '0/op'"),
    (patches({"op": "replace", "path": "/gender", "value": "male"}, {"op": "add", "path": "gender", "value": "x"}),
     "INVALID_VALUE", "Invalid value - 'gender' in field '1/path'"),
    (patches({"op": "add", "path": "/gender"}), "MISSING_VALUE", "Missing value - '0/value'"),
    (patches({"op": "add", "path": "/pets", "value": "cat"}), "INVALID_UPDATE",
     "Invalid update with error - Update unsupported for resource - 'pets'"),
    (patches({"op": "replace", "path": "/id", "value": "9000000017"}), "INVALID_UPDATE",
     "Invalid update with error - Update unsupported for resource - 'id'"),
    (patches({"op": "remove", "path": "/name/1"}), "INVALID_UPDATE",
     "Invalid update with error - removal '/name/1' is not immediately preceded by equivalent test - instead it is "
     "the first item"),
    (patches({"op": "add", "path": "/name/1", "value": {"use": "nickname", "family": "X"}}), "INVALID_UPDATE", None),
    (patches({"op": "remove", "path": "/telecom"}), "INVALID_UPDATE", None),
])
def test_patch_body_errors(pds, body, code, expected):
    response = patch(pds, "9000000009", body)
    assert (response.status_code, error_code(response)) == (400, code)
    if expected:
        assert diagnostics(response) == expected


def test_malformed_json_is_a_spine_error(pds):
    response = pds.client.patch("/personal-demographics/FHIR/R4/Patient/9000000009", data=b"{not json",
                                headers=pds._headers({"Content-Type": "application/json-patch+json",
                                                      "If-Match": 'W/"2"'}))
    assert (response.status_code, error_code(response)) == (400, "INVALID_UPDATE")
    assert "not valid JSON" in diagnostics(response)


# --- synthetic patients: stored per session --------------------------------------------------------------------
def test_an_update_is_stored_versioned_and_seen_by_get_and_search_in_that_session_only(client, sandbox, person):
    mine, theirs = PdsClient(client, "session-a"), PdsClient(client, "session-b")
    before, etag = retrieve(mine, person.nhs_number)
    version = int(before["meta"]["versionId"])
    response = patch(mine, person.nhs_number, patches(
        {"op": "test", "path": "/name/0/id", "value": before["name"][0]["id"]},
        {"op": "replace", "path": "/name/0/family", "value": "Featherstone"}), etag=etag)
    assert response.status_code == 200, response.get_json()
    assert response.headers["ETag"] == f'W/"{version + 1}"'
    assert response.get_json()["name"][0]["family"] == "Featherstone"
    after, new_etag = retrieve(mine, person.nhs_number)
    assert new_etag == f'W/"{version + 1}"' and after["name"][0]["family"] == "Featherstone"
    found = search(mine, {"family": "Featherstone", "birthdate": str(person.birth_date)})
    assert person.nhs_number in ids(found)
    assert person.nhs_number not in ids(search(mine, {"family": person.family, "birthdate": str(person.birth_date)}))
    other, other_etag = retrieve(theirs, person.nhs_number)
    assert other_etag == etag and other["name"][0]["family"] == person.family
    assert person.nhs_number not in ids(search(theirs, {"family": "Featherstone",
                                                        "birthdate": str(person.birth_date)}))
    stale = patch(mine, person.nhs_number, patches({"op": "replace", "path": "/gender", "value": "unknown"}),
                  etag=etag)
    assert (stale.status_code, error_code(stale)) == (409, "RESOURCE_VERSION_MISMATCH")


def test_a_superseded_number_retrieves_its_superseding_record_as_this_session_changed_it(client, sandbox):
    merged = next(sandbox.population.of_kind("superseded"))
    survivor = sandbox.population.person(merged.superseded_by).nhs_number
    mine, theirs = PdsClient(client, "session-a"), PdsClient(client, "session-b")
    before, _ = retrieve(mine, merged.nhs_number)  # the unchanged answers, as every session starts with them
    _, etag = retrieve(mine, survivor)
    response = patch(mine, survivor, patches({"op": "replace", "path": "/gender", "value": "unknown"}), etag=etag)
    assert response.status_code == 200, response.get_json()
    after, new_etag = retrieve(mine, merged.nhs_number)
    assert after["id"] == survivor and after["gender"] == "unknown" and new_etag == response.headers["ETag"]
    other, _ = retrieve(theirs, merged.nhs_number)
    assert other == before


def test_new_list_items_get_an_id_and_a_period_and_supplied_ids_warn(client, pds, person):
    _, etag = retrieve(pds, person.nhs_number)
    response = patch(pds, person.nhs_number, patches({"op": "add", "path": "/name/-", "value": {
        "id": "MINE", "use": "temp", "given": ["Jo"], "family": "Bloggs"}}), etag=etag)
    added = response.get_json()["name"][-1]
    assert added["id"] != "MINE" and added["period"]["start"]
    assert any(f["requirement"] == "PDS-UPD-008" and f["outcome"] == "warning" for f in findings(client, response))


def test_first_telecom_can_be_added_to_a_patient_without_any(pds, sandbox):
    person = next(sandbox.population.of_kind("minimal"))
    _, etag = retrieve(pds, person.nhs_number)
    response = patch(pds, person.nhs_number, patches({"op": "add", "path": "/telecom/-", "value": {
        "system": "email", "value": "first.contact@example.com", "use": "home"}}), etag=etag)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["telecom"][0]["value"] == "first.contact@example.com"


def rule(pds, person, *ops):
    resource, etag = retrieve(pds, person.nhs_number)
    ops = [op(resource) if callable(op) else op for op in ops]
    return patch(pds, person.nhs_number, patches(*ops), etag=etag)


@pytest.mark.parametrize("ops, status, code, message", [
    (({"op": "remove", "path": "/gender"},), 400, "INVALID_UPDATE", "gender cannot be removed"),
    (({"op": "replace", "path": "/gender", "value": "other"},), 400, "UNSUPPORTED_VALUE", "'other' in field 'gender'"),
    (({"op": "replace", "path": "/gender", "value": "mal"},), 400, "INVALID_VALUE",
     "Invalid value - 'mal' in field 'gender'"),
    (({"op": "replace", "path": "/birthDate", "value": "2999-01-01"},), 400, "INVALID_UPDATE", "future"),
    (({"op": "replace", "path": "/birthDate", "value": "10/10/2010"},), 400, "INVALID_VALUE", "'birthDate'"),
    (({"op": "add", "path": "/deceasedDateTime", "value": "2020-01-01T00:00:00+00:00"},), 400, "INVALID_UPDATE",
     "death notification status must be added"),
    (({"op": "add", "path": "/name/-", "value": {"use": "usual", "family": "Second"}},), 403, "FORBIDDEN_UPDATE",
     "Forbidden update with error - multiple usual names cannot be added"),
    ((lambda r: {"op": "replace", "path": "/name/0/family", "value": "Nobody"},), 400, "INVALID_UPDATE",
     "Invalid update with error - no id or url found for path with root /name/0"),
    (({"op": "replace", "path": "/name/0/id", "value": "123456"},
      {"op": "replace", "path": "/name/0/family", "value": "Nobody"}), 400, "INVALID_UPDATE",
     "Invalid update with error - no 'name' resources with object id '123456'"),
    ((lambda r: {"op": "test", "path": "/name/0/id", "value": r["name"][0]["id"]},
      lambda r: {"op": "replace", "path": "/name/0/use", "value": "temp"}), 400, "INVALID_UPDATE", "cannot change"),
    ((lambda r: {"op": "test", "path": "/name/0/id", "value": r["name"][0]["id"]},
      {"op": "replace", "path": "/name/0/family", "value": "Sm1th#"}), 400, "UNSUPPORTED_CHARACTERS_IN_FIELD",
     "name/0/family"),
    ((lambda r: {"op": "test", "path": "/name/0/id", "value": r["name"][0]["id"]},
      {"op": "add", "path": "/name/0/suffix", "value": ["phd"]}), 400, "INVALID_VALUE", "name/0/suffix/0"),
    ((lambda r: {"op": "test", "path": "/name/0/id", "value": "not-its-id"},
      {"op": "remove", "path": "/name/0"}), 400, "INVALID_UPDATE", "Invalid patch - test of '/name/0/id' failed"),
    (({"op": "add", "path": "/address/-", "value": {"use": "work", "line": ["1 Office Park"], "postalCode": "LS1 1AA"}},),
     400, "UNSUPPORTED_VALUE", "'work'"),
    (({"op": "add", "path": "/address/-", "value": {"use": "temp", "text": "Holiday Home", "line": ["1 Beach Rd"],
                                                     "postalCode": "TR1 1AA", "period": {"start": "2024-01-01"}}},),
     400, "INVALID_UPDATE", "temp address must have a period"),
    (({"op": "add", "path": "/address/-", "value": {"use": "home", "line": ["2 New St"], "postalCode": "LS1 1AA"}},),
     400, "INVALID_UPDATE", "more than one current 'home' address"),
    (({"op": "add", "path": "/telecom/-", "value": {"system": "email", "value": "not-an-email", "use": "work"}},),
     400, "INVALID_VALUE", "not-an-email"),
    (({"op": "add", "path": "/contact/-", "value": {"relationship": [{"coding": [{"code": "N"}]}],
                                                     "telecom": [{"system": "phone", "value": "01632960001"}]}},),
     400, "UNSUPPORTED_VALUE", "contact/"),
    (({"op": "add", "path": "/name/-", "value": {"use": "temp", "family": "Jones", "period": {
        "start": "2024-02-01", "end": "2024-01-01"}}},), 400, "INVALID_UPDATE", "before its start"),
    (({"op": "add", "path": "/name/-", "value": {"use": "temp", "family": "Jones", "pets": ["cat"]}},), 400,
     "ADDITIONAL_PROPERTIES", "Invalid request with error - Additional properties are not allowed ('pets' was "
     "unexpected)"),
    (({"op": "add", "path": "/multipleBirthInteger", "value": 12},), 400, "INVALID_VALUE",
     "'multipleBirthInteger'"),
    ((lambda r: {"op": "test", "path": "/generalPractitioner/0/id", "value": r["generalPractitioner"][0]["id"]},
      {"op": "remove", "path": "/generalPractitioner/0"}), 403, "FORBIDDEN_UPDATE", "general practice"),
])
def test_business_rules(pds, person, ops, status, code, message):
    response = rule(pds, person, *ops)
    assert (response.status_code, error_code(response)) == (status, code), response.get_json()
    assert message in diagnostics(response)


def test_formal_death_notification_rules(pds, sandbox):
    deceased = next(sandbox.population.of_kind("deceased"))
    resource, etag = retrieve(pds, deceased.nhs_number)
    notice = resource["extension"].index(next(e for e in resource["extension"] if e["url"].endswith(
        "DeathNotificationStatus")))
    changed = patch(pds, deceased.nhs_number, patches(
        {"op": "replace", "path": "/deceasedDateTime", "value": "2001-01-01T00:00:00+00:00"}), etag=etag)
    assert (changed.status_code, error_code(changed)) == (403, "FORBIDDEN_UPDATE")
    removed = patch(pds, deceased.nhs_number, patches(
        {"op": "test", "path": f"/extension/{notice}/url", "value": resource["extension"][notice]["url"]},
        {"op": "remove", "path": f"/extension/{notice}"}), etag=etag)
    assert (removed.status_code, error_code(removed)) == (400, "INVALID_UPDATE")


def test_valid_death_is_recorded_with_an_informal_notification(pds, person):
    response = rule(pds, person, {"op": "add", "path": "/deceasedDateTime", "value": "2024-03-01T10:00:00+00:00"},
                    {"op": "add", "path": "/extension/-", "value": {
                        "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus",
                        "extension": [{"url": "deathNotificationStatus", "valueCodeableConcept": {"coding": [{
                            "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-DeathNotificationStatus",
                            "version": "1.0.0", "code": "1", "display": "Informal - death notice received via an "
                            "update from a local NHS Organisation such as GP or Trust"}]}}]}})
    assert response.status_code == 200, response.get_json()
    formal = rule(pds, person, lambda r: {"op": "replace", "path": f"/extension/{len(r['extension']) - 1}", "value": {
        "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus",
        "extension": [{"url": "deathNotificationStatus", "valueCodeableConcept": {"coding": [{
            "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-DeathNotificationStatus", "code": "2"}]}}]}})
    assert (formal.status_code, error_code(formal)) == (403, "FORBIDDEN_UPDATE")


def test_restricted_patient_cannot_be_updated(pds, sandbox):
    restricted = next(sandbox.population.of_kind("restricted"))
    _, etag = retrieve(pds, restricted.nhs_number)
    response = patch(pds, restricted.nhs_number, patches({"op": "replace", "path": "/gender", "value": "unknown"}),
                     etag=etag)
    assert (response.status_code, error_code(response)) == (403, "FORBIDDEN_UPDATE")


def test_business_rule_failures_are_findings(client, pds, person):
    response = rule(pds, person, {"op": "remove", "path": "/gender"})
    failed = [f for f in findings(client, response) if f["outcome"] == "fail" and f["requirement"].startswith("PDS-UPD")]
    assert failed[0]["requirement"] == "PDS-UPD-010" and failed[0]["location"] == "/gender"


def test_superseded_number_updates_the_survivor_and_invalidated_is_refused(pds, sandbox):
    merged = next(sandbox.population.of_kind("superseded"))
    survivor = sandbox.population.person(merged.superseded_by).nhs_number
    resource, etag = retrieve(pds, merged.nhs_number)
    assert resource["id"] == survivor
    response = patch(pds, merged.nhs_number, patches({"op": "replace", "path": "/gender", "value": "unknown"}),
                     etag=etag)
    assert response.status_code == 200 and response.get_json()["id"] == survivor
    assert retrieve(pds, survivor)[0]["gender"] == "unknown"
    gone = next(sandbox.population.of_kind("invalidated"))
    refused = patch(pds, gone.nhs_number, patches({"op": "replace", "path": "/gender", "value": "male"}))
    assert (refused.status_code, error_code(refused)) == (404, "INVALIDATED_RESOURCE")


@pytest.mark.parametrize("number, if_match, status, scenario", [
    ("9000000009", 'W/"1"', 409, "pds-update-incorrect-version"),
    ("9000000009", 'W/"2"', 200, "pds-update-published-example"),
    ("5900057208", 'W/"1"', 200, "pds-update-published-example"),  # a published patient at version 1
    ("5900057208", 'W/"7"', 409, "pds-update-incorrect-version"),
])
def test_an_update_of_a_published_patient_is_labelled_by_whether_if_match_names_its_version(pds, number, if_match,
                                                                                             status, scenario):
    update = pds.patch(f"/Patient/{number}", json={"patches": [{"op": "replace", "path": "/gender", "value": "male"}]},
                       headers={"If-Match": if_match})
    assert (update.status_code, update.headers["X-Sandbox-Scenario"]) == (status, scenario)
