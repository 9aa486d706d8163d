"""GET /Patient: the published sandbox searches exactly as documented, every documented error, and live-like
searches over the whole synthetic population (HTTP in and out; the spec's examples as outside references)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.conftest import spec_path
from tests.test_pds_retrieve import error_code


def example(name: str) -> dict:
    return json.loads(spec_path("pds-fhir", "specification", "components", "examples", name).read_text())


def without_timestamp(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "timestamp"}


def search(pds, params, **kwargs):
    query = urlencode(params, doseq=True) if not isinstance(params, str) else params
    return pds.get("/Patient?" + query, **kwargs)


def findings(client, response) -> list[dict]:
    return client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()["findings"]


JANE = {"email": "jane.smith@example.com", "phone": "01632960587"}
BASIC = {"family": "Smith", "gender": "female", "birthdate": "eq2010-10-22"}


# --- the published sandbox table (every answer, body for body: tests/test_pds_published_sandbox.py) ----------------
@pytest.mark.parametrize("params, found", [
    ({**BASIC, **JANE}, ["9000000009"]),
    ({**BASIC, "family": "Sm*", **JANE}, ["9000000009"]),
    ({**BASIC, "family": "Sm*", **JANE, "_max-results": "1"}, ["9000000009"]),
    ({**BASIC, "birthdate": ["ge2010-10-21", "le2010-10-23"], **JANE}, ["9000000009"]),
    ({**BASIC, "given": "Jane", **JANE, "_fuzzy-match": "true"}, ["9000000009"]),
    ({**BASIC, "given": "Jane", "_fuzzy-match": "true"}, ["9000000017"]),
    ({**BASIC, "family": "Sm*"}, ["9000000009", "9000000017"]),
    ({"family": "Smythe", "given": "Janet", "gender": "female", "birthdate": "eq2005-06-16",
      "email": "janet.smythe@example.com", "phone": "01632960587"}, ["9000000025"]),
    ({"family": "Smith", "given": ["John Paul", "James"], "gender": "male", "birthdate": "eq2010-10-22",
      "email": "johnp.smith@example.com", "phone": "01632960587"}, ["9000000015"]),
])
def test_the_specifications_sandbox_searches_find_its_patients(pds, params, found):
    response = search(pds, params)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/fhir+json"
    assert [e["resource"]["id"] for e in response.get_json()["entry"]] == found


def test_documented_negative_search_gives_an_empty_bundle(pds):
    response = search(pds, {**BASIC, "email": "deb.trotter@example.com", "phone": "0121111111"})
    body = response.get_json()
    assert response.status_code == 200
    assert without_timestamp(body) == {"resourceType": "Bundle", "type": "searchset", "total": 0}
    assert body["timestamp"].endswith("+00:00")


def test_too_many_matches_is_a_200_operation_outcome(pds):
    response = search(pds, {**BASIC, "family": "Sm*", "_max-results": "1"})
    assert response.status_code == 200
    issue = response.get_json()["issue"][0]
    assert (issue["severity"], issue["code"], error_code(response)) == ("information", "multiple-matches",
                                                                        "TOO_MANY_MATCHES")


def test_an_undocumented_search_for_the_examples_warns_as_the_published_sandbox_does(pds):
    response = search(pds, {"family": "Smith", "birthdate": "2010-10-22", "given": "Jane"})
    assert response.status_code == 200
    issue = response.get_json()["issue"][0]
    assert issue["severity"] == "warning" and issue["code"] == "not-supported"
    assert issue["diagnostics"] == "This mock endpoint has no example response for this combination of search parameters"
    assert response.headers["X-Sandbox-Scenario"] == "pds-search-no-example-response"


def test_published_searches_are_tagged_with_their_scenario(pds):
    assert search(pds, {**BASIC, "family": "Sm*"}).headers["X-Sandbox-Scenario"] == "pds-search-wildcard"
    assert search(pds, {**BASIC, **JANE}).headers["X-Sandbox-Scenario"] == "pds-search-basic"


# --- documented errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, status, code, diagnostics", [
    ("", 400, "UNSUPPORTED_SERVICE", None),
    ({**BASIC, "family": "Sm*", "invalidParam": "123", "email": "j.smith@example.com", "phone": "0163"}, 400,
     "ADDITIONAL_PROPERTIES",
     "Invalid request with error - Additional properties are not allowed ('invalidParam' was unexpected)"),
    ({"email": "j.smith@example.com", "phone": "0163"}, 400, "MISSING_VALUE",
     "Missing value - 'birth_date/birth_date_range_start/birth_date_range_end'"),
    ({"family": "Smith", "birthdate": "22-10-2010"}, 400, "INVALID_VALUE",
     "Invalid value - '22-10-2010' in field 'birthdate'"),
    ({"family": "Smith", "birthdate": "eq2010-02-30"}, 400, "INVALID_VALUE",
     "Invalid value - 'eq2010-02-30' in field 'birthdate'"),
    ({"family": "Smith", "birthdate": "2010-10-22", "death-date": "yesterday"}, 400, "INVALID_VALUE",
     "Invalid value - 'yesterday' in field 'death-date'"),
    ({"family": "Smith", "birthdate": "2010-10-22", "gender": "mal"}, 400, "INVALID_VALUE",
     "Invalid value - 'mal' in field 'gender'"),
    ({"family": "Jones", "birthdate": "2010-10-22", "_max-results": "0"}, 400, "INVALID_VALUE",
     "Invalid value - '0' in field '_max-results'"),
    ({"family": "Jones", "birthdate": "2010-10-22", "_max-results": "51"}, 400, "INVALID_VALUE",
     "Invalid value - '51' in field '_max-results'"),
    ({"family": "Jones", "birthdate": "2010-10-22", "_max-results": "ten"}, 400, "INVALID_VALUE",
     "Invalid value - 'ten' in field '_max-results'"),
    ({"family": "Jones", "birthdate": "2010-10-22", "_fuzzy-match": "yes"}, 400, "INVALID_VALUE",
     "Invalid value - 'yes' in field '_fuzzy-match'"),
    ({"family": "J" * 36, "birthdate": "2010-10-22"}, 400, "INVALID_VALUE", None),
    ({"given": "Jane", "birthdate": "2010-10-22"}, 400, "INVALID_SEARCH_DATA",
     "Invalid search data provided - 'No searches were performed as the search criteria did not meet the minimum "
     "requirements'"),
    ({"family": "Jones", "gender": "female", "birthdate": "2010-10-22", "_fuzzy-match": "true"}, 400,
     "INVALID_SEARCH_DATA", None),
    ({"family": "J*", "birthdate": "2010-10-22"}, 400, "INVALID_SEARCH_DATA", None),
    ({"family": "Jo*", "given": "Jane", "birthdate": "2010-10-22", "_fuzzy-match": "true"}, 400,
     "INVALID_SEARCH_DATA", None),
    ({"family": "Jones", "birthdate": "2010-10-22", "address-postcode": "LS1 6AE",
      "address-postalcode": "LS1 6AE"}, 400, "INVALID_SEARCH_DATA", None),
    ({"family": ["Jones", "Smith"], "birthdate": "2010-10-22"}, 400, "INVALID_SEARCH_DATA", None),
    ({"family": "Jones", "birthdate": ["eq2010-10-22", "eq2011-10-22"]}, 400, "INVALID_SEARCH_DATA", None),
    ({"family": "Jones", "birthdate": ["ge2012-10-22", "le2011-10-22"]}, 400, "INVALID_SEARCH_DATA", None),
])
def test_documented_search_errors(pds, params, status, code, diagnostics):
    response = search(pds, params)
    assert (response.status_code, error_code(response)) == (status, code)
    if diagnostics:
        assert response.get_json()["issue"][0]["diagnostics"] == diagnostics


def test_every_problem_is_a_finding_and_the_first_is_the_answer(client, pds):
    response = search(pds, {"gender": "mal", "birthdate": "tomorrow", "colour": "blue"})
    assert error_code(response) == "ADDITIONAL_PROPERTIES"
    failed = {f["requirement"] for f in findings(client, response) if f["outcome"] == "fail"}
    assert {"PDS-SRCH-002", "PDS-SRCH-003", "PDS-SRCH-004"} <= failed


def test_valid_search_records_passes_and_the_deprecated_postcode_warns(client, pds, sandbox):
    person = next(sandbox.population.of_kind("standard"))
    response = search(pds, {"family": person.family, "birthdate": person.birth_date.isoformat(),
                            "address-postcode": person.home.postcode})
    outcomes = {(f["requirement"], f["outcome"]) for f in findings(client, response)}
    assert ("PDS-SRCH-008", "warning") in outcomes
    assert {("PDS-SRCH-001", "pass"), ("PDS-SRCH-002", "pass"), ("PDS-SRCH-006", "pass")} <= outcomes
    assert response.get_json()["entry"][0]["resource"]["id"] == person.nhs_number


# --- the synthetic population ----------------------------------------------------------------------------------
def people(sandbox, kind="standard"):
    return sandbox.population.of_kind(kind)


def ids(response) -> list[str]:
    return [e["resource"]["id"] for e in response.get_json().get("entry", [])]


def test_non_fuzzy_search_finds_a_population_patient_with_score_one(pds, sandbox):
    person = next(people(sandbox))
    response = search(pds, {"family": person.family, "birthdate": f"eq{person.birth_date}",
                            "gender": person.gender})
    body = response.get_json()
    assert response.status_code == 200 and body["resourceType"] == "Bundle" and body["type"] == "searchset"
    entry = next(e for e in body["entry"] if e["resource"]["id"] == person.nhs_number)
    assert entry["search"]["score"] == 1.0
    assert entry["fullUrl"].endswith(f"/Patient/{person.nhs_number}")


def test_search_results_hold_only_search_data(pds, sandbox):
    person = next(p for p in people(sandbox, "multi-address") if p.pharmacy)
    resource = search(pds, {"family": person.family, "birthdate": str(person.birth_date)}).get_json()["entry"][0][
        "resource"]
    assert [a["use"] for a in resource["address"]] == ["home"]
    assert all(n["use"] in ("usual", "nickname", "temp") for n in resource["name"])
    assert all(e["url"].endswith("DeathNotificationStatus") for e in resource.get("extension", []))


def test_wildcards_match_the_start_of_names_and_postcodes(pds, sandbox):
    person = next(people(sandbox))
    by_family = search(pds, {"family": person.family[:3] + "*", "birthdate": str(person.birth_date)})
    assert person.nhs_number in ids(by_family)
    assert all(e["search"]["score"] < 1 for e in by_family.get_json()["entry"])
    outward = person.home.postcode.split()[0]
    by_postcode = search(pds, {"family": person.family, "birthdate": str(person.birth_date),
                               "address-postalcode": outward[:2] + "*"})
    assert person.nhs_number in ids(by_postcode)
    spaced = search(pds, {"family": person.family.lower(), "birthdate": str(person.birth_date),
                          "address-postalcode": person.home.postcode.replace(" ", "").lower()})
    assert person.nhs_number in ids(spaced)


def test_birthdate_ranges_and_death_date(pds, sandbox):
    person = next(people(sandbox, "deceased"))
    day = person.birth_date
    ranged = search(pds, {"family": person.family, "birthdate": [f"ge{day.replace(day=1)}", f"le{day}"]})
    assert person.nhs_number in ids(ranged)
    died = person.death.date()
    assert person.nhs_number in ids(search(pds, {"family": person.family, "birthdate": f"eq{day}",
                                                 "death-date": f"eq{died}"}))
    assert person.nhs_number not in ids(search(pds, {"family": person.family, "birthdate": f"eq{day}",
                                                     "death-date": f"ge{died.replace(year=died.year + 1)}"}))


def test_given_names_phone_email_and_gp_narrow_the_search(pds, sandbox):
    person = next(p for p in people(sandbox) if p.email and p.gp and len(p.given) == 2)
    base = {"family": person.family, "birthdate": str(person.birth_date)}
    assert ids(search(pds, {**base, "given": list(person.given)})) == [person.nhs_number]
    assert person.nhs_number not in ids(search(pds, {**base, "given": [person.given[0], "Nobody"]}))
    assert person.nhs_number in ids(search(pds, {**base, "email": person.email.upper()}))
    assert person.nhs_number in ids(search(pds, {**base, "phone": person.phone}))
    assert person.nhs_number not in ids(search(pds, {**base, "phone": "01632960000" if person.phone.replace(
        " ", "") != "01632960000" else "01632960001"}))
    assert person.nhs_number in ids(search(pds, {**base, "general-practitioner": person.gp.lower()}))
    assert person.nhs_number not in ids(search(pds, {**base, "general-practitioner": "Y99999"}))


def test_previous_names_need_history_unless_fuzzy(pds, sandbox):
    person = next(p for p in people(sandbox) if any(n.use == "old" for n in p.names))
    old = next(n for n in person.names if n.use == "old")
    base = {"family": old.family, "birthdate": str(person.birth_date)}
    assert person.nhs_number not in ids(search(pds, base))
    with_history = search(pds, {**base, "_history": "true"})
    assert person.nhs_number in ids(with_history)
    resource = with_history.get_json()["entry"][ids(with_history).index(person.nhs_number)]["resource"]
    assert resource["name"][0]["family"] == person.family  # current data comes back, not the historic match
    fuzzy = search(pds, {**base, "given": old.given[0], "_fuzzy-match": "true"})
    assert person.nhs_number in ids(fuzzy)


def test_fuzzy_search_matches_homophones_and_transposed_names(pds, sandbox):
    from sandbox.synthetic.population import soundex

    person = next(p for p in people(sandbox) if p.family == "Smith")
    sounds_alike = search(pds, {"family": "Smythe", "given": person.given[0], "birthdate": str(person.birth_date),
                                "_fuzzy-match": "true"})
    assert soundex("Smythe") == soundex("Smith") and person.nhs_number in ids(sounds_alike)
    assert person.nhs_number not in ids(search(pds, {"family": "Smythe", "birthdate": str(person.birth_date)}))
    transposed = search(pds, {"family": person.given[0], "given": person.family, "birthdate": str(person.birth_date),
                              "_fuzzy-match": "true"})
    assert person.nhs_number in ids(transposed)
    scores = [e["search"]["score"] for e in transposed.get_json()["entry"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)


def test_fuzzy_combination_with_postcode_and_gender(pds, sandbox):
    person = next(p for p in people(sandbox) if p.gender in ("male", "female"))
    response = search(pds, {"given": person.given[0], "gender": person.gender, "birthdate": str(person.birth_date),
                            "address-postalcode": person.home.postcode, "_fuzzy-match": "true"})
    assert person.nhs_number in ids(response)


def test_exact_match_returns_only_score_one(pds, sandbox):
    person = next(people(sandbox))
    loose = search(pds, {"family": person.family[:2] + "*", "birthdate": str(person.birth_date)})
    assert ids(loose)
    exact = search(pds, {"family": person.family[:2] + "*", "birthdate": str(person.birth_date),
                         "_exact-match": "true"})
    assert exact.get_json()["total"] == 0
    assert ids(search(pds, {"family": person.family, "birthdate": str(person.birth_date),
                            "_exact-match": "true"}))


def test_more_matches_than_max_results_is_too_many_matches(pds, sandbox):
    from collections import Counter

    family, _ = Counter(p.family for p in people(sandbox)).most_common(1)[0]
    wide = {"family": family, "birthdate": ["ge1900-01-01", "le2025-01-01"]}
    total = search(pds, wide).get_json()["total"]
    assert 1 < total <= 50
    assert search(pds, {**wide, "_max-results": str(total)}).get_json()["total"] == total
    assert error_code(search(pds, {**wide, "_max-results": str(total - 1)})) == "TOO_MANY_MATCHES"


def test_restricted_patients_are_trimmed_and_hidden_from_location_searches(pds, sandbox):
    person = next(people(sandbox, "restricted"))
    base = {"family": person.family, "birthdate": str(person.birth_date)}
    resource = next(e["resource"] for e in search(pds, base).get_json()["entry"]
                    if e["resource"]["id"] == person.nhs_number)
    assert resource["meta"]["security"][0]["code"] == "R"
    assert not {"address", "telecom", "contact", "generalPractitioner"} & set(resource)
    assert person.nhs_number not in ids(search(pds, {**base, "address-postalcode": person.home.postcode}))
    assert person.nhs_number not in ids(search(pds, {**base, "general-practitioner": person.gp}))


def test_invalidated_never_returned_and_superseded_returns_the_survivor(pds, sandbox):
    gone = next(people(sandbox, "invalidated"))
    assert gone.nhs_number not in ids(search(pds, {"family": gone.family, "birthdate": str(gone.birth_date)}))
    merged = next(people(sandbox, "superseded"))
    survivor = sandbox.population.person(merged.superseded_by)
    found = ids(search(pds, {"family": merged.family, "birthdate": str(merged.birth_date)}))
    assert survivor.nhs_number in found and merged.nhs_number not in found




def test_forced_too_many_matches_and_search_faults(pds, sandbox):
    person = next(people(sandbox))
    forced = search(pds, {"family": person.family, "birthdate": str(person.birth_date)},
                    headers={"X-Sandbox-Scenario": "pds-search-too-many-matches"})
    assert (forced.status_code, error_code(forced)) == (200, "TOO_MANY_MATCHES")
    limited = search(pds, {"family": "Sandbox-RateLimit", "birthdate": "2000-01-01"})
    assert (limited.status_code, error_code(limited)) == (429, "TOO_MANY_REQUESTS")
    timeout = search(pds, {"family": "Sandbox-Timeout", "birthdate": "2000-01-01"})
    assert (timeout.status_code, error_code(timeout)) == (408, "UNABLE_TO_CALL_SERVICE")
    refused_first = search(pds, {"family": "Sandbox-Timeout"})
    assert (refused_first.status_code, error_code(refused_first)) == (400, "MISSING_VALUE")
