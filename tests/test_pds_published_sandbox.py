"""Parity with the NHS's published PDS sandbox (its BEHAVIOUR.md): every answer it scripts for its patients,
searches, related people, creates, records at birth and coverage, over HTTP in and out. The expected bodies are the
published sandbox's own stubs, an outside reference (../shared/specs/pds-fhir/published-sandbox, via spec_path):
without them these tests skip. Where the published sandbox crashes or contradicts the specification the sandbox
answers as live PDS does; those tests say so."""

from __future__ import annotations

import copy
import json
import re
from urllib.parse import urlencode

import pytest

from tests.conftest import spec_path

STUBS = ("pds-fhir", "published-sandbox", "stubs")
LIVE = "https://api.service.nhs.uk/personal-demographics/FHIR/R4"
BIRTH = "/Patient/$process-birth-details"
NOTIFICATION_ID = "2AE84248-5180-42B6-8BB7-C93C0991B863"
JANE_PHONE, JANE_EMAIL = "01632960587", "jane.smith@example.com"


def stub(folder: str, name: str) -> dict:
    return json.loads(spec_path(*STUBS, folder, f"{name}.json").read_text())


def error_stub(name: str, diagnostics: str | None = None) -> dict:
    """An error body as the published sandbox fills it in: the stub with its diagnostics set."""
    body = stub("errorResponses", name)
    if diagnostics is not None:
        body["issue"][0]["diagnostics"] = diagnostics
    return body


def without_timestamp(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "timestamp"}


def searchset(entries: list[dict]) -> dict:
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries)}
    return {**bundle, "entry": entries} if entries else bundle


def patient_entry(number: str, score) -> dict:
    """The published sandbox's built-in bundles: the example patients' search records (BEHAVIOUR.md 2.6)."""
    return {"fullUrl": f"{LIVE}/Patient/{number}", "search": {"score": score},
            "resource": stub("searchResponses", f"search_patient_{number}")}


def search(pds, params):
    return pds.get("/Patient?" + urlencode(params, doseq=True))


def assert_fhir(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.headers["Content-Type"] == "application/fhir+json"
    return response.get_json()


# --- 2.1, 2.3, 3: retrieval ------------------------------------------------------------------------------------
TABLE = {"9000000009": "2", "9000000025": "2", "9000000033": "2", "5900046192": "3", "5900056597": "3",
         "5900057208": "1", "5900059073": "2", "5900059332": "1", "9693632109": "58", "9732110317": "7",
         "9733162043": "2", "9736363015": "6", "9736363023": "5", "9736363066": "3", "9736363074": "3"}


@pytest.mark.parametrize("number, version", TABLE.items())
def test_every_published_patient_is_retrieved_as_published(pds, number, version):
    response = pds.get(f"/Patient/{number}", headers={"X-Correlation-ID": "c0ffee"})
    assert assert_fhir(response, 200) == stub("patientResponses", f"patient_{number}")
    assert response.headers["ETag"] == f'W/"{version}"'
    assert response.headers["X-Correlation-ID"] == "c0ffee"


def test_retrieval_errors_are_the_published_bodies(pds):
    assert assert_fhir(pds.get("/Patient/9111231130"), 404) == error_stub("RESOURCE_NOT_FOUND")
    assert assert_fhir(pds.get("/Patient/9000000000"), 400) == error_stub("INVALID_RESOURCE_ID")
    assert assert_fhir(pds.get(BIRTH), 400) == error_stub("INVALID_RESOURCE_ID")  # GET: the NHS number check
    missing = pds.get("/Patient/9000000009", headers={"X-Request-ID": None})
    assert assert_fhir(missing, 400) == error_stub("MISSING_VALUE", "Invalid request with error - X-Request-ID header "
                                                   "must be supplied to access this resource")
    invalid = pds.get("/Patient/9000000009", headers={"X-Request-ID": "1234"})
    assert assert_fhir(invalid, 400) == error_stub("INVALID_VALUE", "Invalid value - '1234' in header 'X-Request-ID'")
    assert invalid.headers["X-Request-ID"] == "1234"


def test_published_patients_are_never_changed_by_an_update(pds):
    update = pds.patch("/Patient/9693632109", json={"patches": [{"op": "replace", "path": "/gender",
                                                                 "value": "male"}]}, headers={"If-Match": 'W/"58"'})
    assert assert_fhir(update, 200)["meta"]["versionId"] == "59" and update.headers["ETag"] == 'W/"59"'
    again = pds.get("/Patient/9693632109")
    assert again.get_json() == stub("patientResponses", "patient_9693632109") and again.headers["ETag"] == 'W/"58"'


# --- 4: search ---------------------------------------------------------------------------------------------------
FUZZY = {"_fuzzy-match": "true"}
SMYTHE_MAT = {**FUZZY, "family": "Smythe", "given": "Mat", "birthdate": "ge2000-05-03", "gender": "male",
              "address-postalcode": "DN17 4AA"}
SMITH_MALE = {"family": "Smith", "gender": "male", "birthdate": "eq2000-05-05"}
JANE_SEARCH = {"family": "Smith", "gender": "female", "birthdate": "eq2010-10-22"}
WILDCARD = {**JANE_SEARCH, "family": "Sm*"}

# (row, query, the published bundle: a stub under searchResponses or a built-in one)
ROWS = [
    ("S1", {**FUZZY, "family": "Blogs", "given": "Joe", "birthdate": "1955-11-05"}, "bill_garton_searchset"),
    ("S2", {**FUZZY, "family": "ATTSÖN", "given": "PÀULINÉ", "birthdate": "1960-07-14"}, "pauline_attison_searchset"),
    ("S3", {**SMYTHE_MAT, "email": "test@test.com", "phone": "01222111111"}, "fuzzy_single_searchset"),
    ("S4", SMYTHE_MAT, "fuzzy_multimatch_searchset"),
    ("S5", {**SMYTHE_MAT, "email": "rubbish@work.com", "phone": "01222111111"}, "EMPTY"),
    ("S6", {**FUZZY, "family": "HUME", "given": "Casey", "birthdate": "1999-09-09"}, "med_rowenad_searchset"),
    ("S7", {**FUZZY, "family": "MED", "given": "Casey", "birthdate": "2024-01-12"}, "EMPTY"),
    ("S8", {**FUZZY, "family": "LEEKE", "given": "Horace", "birthdate": "1956-05-02", "address-postalcode": "DN16"},
     "EMPTY"),
    ("S9", {**FUZZY, **JANE_SEARCH, "given": "Jane"}, "FUZZY17"),
    ("S10", {**FUZZY, **JANE_SEARCH, "given": "Jane", "phone": JANE_PHONE}, "JANE(0.9124)"),
    ("S11", {**FUZZY, **JANE_SEARCH, "given": "Jane", "email": JANE_EMAIL}, "JANE(0.9124)"),
    ("S12", {**FUZZY, **JANE_SEARCH, "given": "Jane", "phone": JANE_PHONE, "email": JANE_EMAIL}, "JANE(0.9542)"),
    ("S13", {**SMITH_MALE, "email": "Historic@historic.com", "_history": "true"}, "historic_email_searchset"),
    ("S14", {**SMITH_MALE, "email": "Historic@historic.com"}, "EMPTY"),
    ("S15", {**SMITH_MALE, "family": "Sm*", "email": "rubbish@test.com", "phone": "01234123123"}, "EMPTY"),
    ("S16", {"family": "HUME", "birthdate": "1999-09-09", "_history": "true"}, "med_rowenad_searchset"),
    ("S17", {"family": "MED", "gender": "female", "birthdate": "2024-01-12"}, "EMPTY"),
    ("S18", WILDCARD, "WILDCARD"),
    ("S19", {**WILDCARD, "_max-results": "1"}, "TOO_MANY_MATCHES"),
    ("S20", {**WILDCARD, "phone": "01234123123", "_max-results": "1"}, "JANE(1)"),
    ("S21", {**WILDCARD, "email": "someone@example.com", "_max-results": "1"}, "JANE(1)"),
    ("S22", {**WILDCARD, "phone": JANE_PHONE}, "JANE(1)"),
    ("S23", {**WILDCARD, "email": JANE_EMAIL}, "JANE(1)"),
    ("S24", {**WILDCARD, "email": JANE_EMAIL, "phone": JANE_PHONE}, "JANE(1)"),
    ("S25", {**WILDCARD, "email": "janet.smythe@example.com"}, "JANE(1)"),
    ("S26", {**SMITH_MALE, "family": "Sm*", "email": "test@test.com", "phone": "01234123123"},
     "multimatch_phoneAndEmail_searchset"),
    ("S27", {"family": "Smythe", "given": "Janet", "gender": "female", "birthdate": "eq2005-06-16"},
     "search_patient_9000000025"),
    ("S28", JANE_SEARCH, "JANE(1)"),
    ("S28", {**JANE_SEARCH, "email": JANE_EMAIL, "phone": JANE_PHONE}, "JANE(1)"),
    ("S28", {**JANE_SEARCH, "birthdate": ["ge2010-10-21", "le2010-10-23"]}, "JANE(1)"),
    ("S28", {"_fuzzy-match": "false", "_exact-match": "false", "_history": "true", "family": "Smith", "given": "Jane",
             "gender": "female", "birthdate": "2010-10-22", "death-date": "2010-10-22", "email": JANE_EMAIL,
             "phone": JANE_PHONE, "address-postalcode": "LS1 6AE", "general-practitioner": "Y12345"}, "JANE(1)"),
    ("S29", {"family": "Smith", "given": ["John Paul", "James"], "gender": "male", "birthdate": "eq2010-10-22"},
     "john_paul_smith_searchset"),
    ("S30", {"family": "CUFF", "birthdate": "eq1926-01-07", "gender": "female"}, "cuff_superseded_searchset"),
    ("S31", {**SMITH_MALE, "given": ["Sam", "Bob"]}, "other_givenName"),
    ("S32", {**SMITH_MALE, "email": "test@test.com", "phone": "01234123123"}, "multimatch_phoneAndEmail_searchset"),
    ("S33", {"family": "Muir", "gender": "male", "birthdate": "eq2017-09-06", "phone": "00917855986859"},
     "countrycode_mobile_searchset"),
    ("S34", {**SMITH_MALE, "address-postalcode": "DN17*"}, "postalcode_wildcard_searchset"),
    ("S35", {"family": "Me*", "birthdate": "eq2015-10-22", "general-practitioner": "A20047"},
     "general_practitioner_searchset"),
    ("S36", {"family": "TUNNEY", "birthdate": "ge1980-01-01", "death-date": "le2019-02-28"}, "dateOfDeath_searchset"),
    ("S37", {"family": "McMatch-Single", "address-postalcode": "BAP 4WG", "gender": "male", "birthdate": "2024-05-09"},
     "mock_single_searchset"),
    ("S38", {"family": "McMatch-Multiple", "address-postalcode": "DN19 7UD", "birthdate": "2024-03-19"},
     "mock_multiple_searchset"),
    ("S39", {"family": "Jones", "gender": "male", "birthdate": "ge1992-01-01", "_max-results": "6"},
     "jackie_jones_searchset"),
    ("S40", {"family": "Godsoe", "gender": "male", "birthdate": "eq1936-02-24"}, "rodney_godsoe_searchset"),
    ("S41", {"family": "Massam", "birthdate": "eq1920-08-11"}, "martha_massam_searchset"),
    ("S41", {"family": "Massam", "birthdate": "le1920-08-11"}, "martha_massam_searchset"),
    ("S42", {"family": "YOUDS", "birthdate": "1970-01-24", "_max-results": "1"}, "TOO_MANY_MATCHES"),
    ("S43", {"family": "YOUDS", "birthdate": "1970-01-24"}, "youds_searchset"),
    ("S45", {**JANE_SEARCH, "email": "deb.trotter@example.com", "phone": "0121111111"}, "EMPTY"),
    ("S46", {"family": "Bingham", "birthdate": "1934-12-18"}, "EMPTY"),
    ("S47", {"_exact-match": "true", "family": "KNAPP", "gender": "female", "birthdate": "1943-07-03"},
     "knap_kathy_exact_match"),
    ("S48", {"family": "Knapp", "gender": "female", "birthdate": "1943-07-03"}, "EMPTY"),
]


def published_answer(name: str) -> dict:
    built_in = {"EMPTY": [], "FUZZY17": [patient_entry("9000000017", 0.8976)],
                "WILDCARD": [patient_entry("9000000009", 0.8343), patient_entry("9000000017", 0.8343)]}
    if name in built_in:
        return searchset(built_in[name])
    if name.startswith("JANE("):
        score = float(name[5:-1])
        return searchset([patient_entry("9000000009", int(score) if score == 1 else score)])
    return stub("searchResponses", name)


@pytest.mark.parametrize("row, query, answer", ROWS, ids=[f"{r[0]}-{i}" for i, r in enumerate(ROWS)])
def test_every_scripted_search_is_answered_as_published(pds, row, query, answer):
    response = search(pds, query)
    body = assert_fhir(response, 200)
    expected = published_answer(answer)
    assert without_timestamp(body) == without_timestamp(expected)
    assert ("timestamp" in body) == (answer != "TOO_MANY_MATCHES")  # every searchset is stamped, as published
    assert "ETag" not in response.headers


def test_a_search_for_the_examples_without_an_example_warns_as_published(pds):
    for query in ({**JANE_SEARCH, "gender": "male"}, {"family": "Smith", "birthdate": "2010-10-22", "given": "Jane"},
                  {**JANE_SEARCH, "family": "SMITH"}, {**WILDCARD, "_max-results": "5"}):
        body = assert_fhir(search(pds, query), 200)
        assert without_timestamp(body) == stub("errorResponses", "NOT_SUPPORTED_SEARCH") and body["timestamp"]
        assert search(pds, query).headers["X-Sandbox-Scenario"] == "pds-search-no-example-response"


def test_a_search_the_published_sandbox_does_not_script_runs_over_the_population(pds, sandbox):
    person = next(sandbox.population.of_kind("standard"))
    fuzzy = search(pds, {**FUZZY, "family": person.family, "given": person.given[0],
                         "birthdate": str(person.birth_date)})
    assert person.nhs_number in [e["resource"]["id"] for e in fuzzy.get_json()["entry"]]


@pytest.mark.parametrize("query, error", [
    ({}, ("UNSUPPORTED_SERVICE", None)),
    ({**JANE_SEARCH, "colour": "blue"}, ("ADDITIONAL_PROPERTIES", "Invalid request with error - Additional properties "
                                                                  "are not allowed ('colour' was unexpected)")),
    ({"family": "Smith", "birthdate": "22-10-2010"}, ("INVALID_VALUE", "Invalid value - '22-10-2010' in field "
                                                                       "'birthdate'")),
    ({"family": "Smith", "birthdate": "2010-10-22", "death-date": "gt2010"},
     ("INVALID_VALUE", "Invalid value - 'gt2010' in field 'death-date'")),
    ({"family": "Smith", "gender": "female"}, ("MISSING_VALUE", "Missing value - 'birth_date/birth_date_range_start/"
                                                                "birth_date_range_end'")),
    ({"given": "Jane", "birthdate": "2010-10-22"}, ("INVALID_SEARCH_DATA", "Invalid search data provided - 'No searches "
                                                   "were performed as the search criteria did not meet the minimum "
                                                   "requirements'")),
])
def test_search_errors_are_the_published_bodies(pds, query, error):
    name, diagnostics = error
    assert assert_fhir(search(pds, query), 400) == error_stub(name, diagnostics)


def test_where_the_published_search_contradicts_the_specification_the_sandbox_answers_as_live(pds):
    # _history=false is not a history search (the published sandbox reads any value as true: S13)
    assert search(pds, {**SMITH_MALE, "email": "Historic@historic.com", "_history": "false"}).get_json()["total"] == 0
    # an impossible date, two unknown parameters, an empty family: refused (the published sandbox lets them through)
    assert search(pds, {**JANE_SEARCH, "birthdate": "2010-13-99"}).status_code == 400
    assert search(pds, {**JANE_SEARCH, "a": "1", "b": "2"}).get_json()["issue"][0]["diagnostics"] == (
        "Invalid request with error - Additional properties are not allowed ('a', 'b' were unexpected)")
    assert search(pds, {"family": "", "birthdate": "2010-10-22"}).status_code == 400
    # a scripted bundle larger than _max-results is TOO_MANY_MATCHES (the published sandbox returns all 20)
    limited = search(pds, {**SMYTHE_MAT, "_max-results": "5"}).get_json()
    assert limited == stub("searchResponses", "TOO_MANY_MATCHES")


# --- 5: related people ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("number", ["9000000009", "9000000017"])
def test_published_related_people(pds, number):
    body = assert_fhir(pds.get(f"/Patient/{number}/RelatedPerson"), 200)
    expected = stub("relatedPersonResponses", f"related_person_{number}")
    assert without_timestamp(body) == without_timestamp(expected) and body["timestamp"]


@pytest.mark.parametrize("number", ["9000000025", "9000000033", "5900046192"])
def test_other_published_patients_have_no_related_people(pds, number):
    body = assert_fhir(pds.get(f"/Patient/{number}/RelatedPerson"), 200)
    assert without_timestamp(body) == searchset([]) and body["timestamp"]


def test_related_people_errors(pds):
    assert assert_fhir(pds.get("/Patient/9000000000/RelatedPerson"), 400) == error_stub("INVALID_RESOURCE_ID")
    not_found = assert_fhir(pds.get("/Patient/9111231130/RelatedPerson"), 404)
    assert without_timestamp(not_found) == error_stub("RESOURCE_NOT_FOUND")


# --- 7: create -----------------------------------------------------------------------------------------------------
def create_request(family: str = "Edwards", postcode: str = "LS1 6AE") -> dict:
    """A create request with the published create's shape (the specification's example's demographics)."""
    return {"resourceType": "Patient",
            "name": [{"use": "usual", "given": ["Jane"], "family": family, "prefix": ["Mrs"],
                      "period": {"start": "1986-07-01"}}],
            "address": [{"line": ["1 Trevelyan Square", "", "Boar Lane", "Leeds"], "period": {"start": "2020-01-01"},
                         "postalCode": postcode, "use": "home"}],
            "gender": "female", "birthDate": "1982-07-10",
            "extension": [{"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-RegisteringAuthority",
                           "extension": [{"url": "registeringAuthorityType", "valueCodeableConcept": {"coding": [{
                               "system": "https://fhir.nhs.uk/CodeSystem/UKCore-RegisteringAuthorityType",
                               "code": "x"}]}}, {"url": "organisationIdentifier", "valueString": "RGS"}]}]}


def assert_new_record(body: dict, template: dict, number: str, sent: dict, id_length: int) -> None:
    """A created record as published: the template with the number, the first name and address as sent (the
    empty address lines dropped) each with a new upper-case hexadecimal id, and the gender and date of birth."""
    name_id, address_id = body["name"][0].pop("id"), body["address"][0].pop("id")
    assert re.fullmatch(f"[0-9A-F]{{{id_length}}}", name_id) and re.fullmatch(f"[0-9A-F]{{{id_length}}}", address_id)
    expected = copy.deepcopy(template)
    expected.update(id=number, gender=sent["gender"], birthDate=sent["birthDate"], name=[sent["name"][0]],
                    address=[{**sent["address"][0], "line": [x for x in sent["address"][0]["line"] if x != ""]}])
    expected["identifier"][0]["value"] = number
    assert body == expected


def test_the_published_create_example_is_always_5182663366_and_never_stored(pds):
    for _ in range(2):
        response = pds.post("/Patient", json=create_request())
        assert_new_record(assert_fhir(response, 201), stub("postPatientResponses", "new_patient"), "5182663366",
                          create_request(), 6)
    assert pds.get("/Patient/5182663366").status_code == 404


@pytest.mark.parametrize("family, postcode, name, diagnostics", [
    ("McMatch-Single", "BAP 4WG", "SINGLE_MATCH_FOUND",
     "Unable to create new patient. NHS number 5900054586 found for supplied demographic data."),
    ("McMatch-Multiple", "DN19 7UD", "MULTIPLE_MATCHES_FOUND", None),
])
def test_the_published_create_matches(pds, family, postcode, name, diagnostics):
    body = assert_fhir(pds.post("/Patient", json=create_request(family, postcode)), 200)
    expected = stub("postPatientResponses", name)
    if diagnostics:
        expected["issue"][0]["diagnostics"] = diagnostics
    assert body == expected


def _without(field: str):
    return lambda body: {k: v for k, v in body.items() if k != field}


def _set(path: tuple, value):
    def change(body):
        body = copy.deepcopy(body)
        target = body
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return body
    return change


@pytest.mark.parametrize("change, name, diagnostics", [
    (_without("name"), "MISSING_VALUE", "Missing value - 'name'"),
    (_without("address"), "MISSING_VALUE", "Missing value - 'address'"),
    (_without("gender"), "MISSING_VALUE", "Missing value - 'gender'"),
    (_without("birthDate"), "MISSING_VALUE", "Missing value - 'birthDate'"),
    (_set(("address", 0), ["another", "array"]), "INVALID_VALUE", "Invalid value - '['another', 'array']' in field "
                                                                  "'address/0'"),
    (_set(("address", 0, "period"), None), "MISSING_VALUE", "Missing value - 'address/0/period'"),
    (_set(("name", 0, "given"), "not an array"), "INVALID_VALUE", "Invalid value - 'not an array' in field "
                                                                  "'name/0/given'"),
    (_set(("gender",), "other"), "INVALID_VALUE", "Invalid value - 'other' in field 'gender'"),
    (_set(("birthDate",), "not-a-date"), "INVALID_VALUE", "Invalid value - 'not-a-date' in field 'birthDate'"),
])
def test_create_errors_are_the_published_bodies(pds, change, name, diagnostics):
    response = pds.post("/Patient", json=change(create_request("Quennell")))
    assert assert_fhir(response, 400) == error_stub(name, diagnostics)


def test_where_the_published_create_crashes_or_contradicts_the_specification_the_sandbox_answers_as_live(pds):
    for change in (_set(("address",), []), _set(("birthDate",), 19820710), _set(("address", 0, "line"), None),
                   _set(("birthDate",), "1982-13-99")):
        response = pds.post("/Patient", json=change(create_request("Quennell")))
        assert response.status_code == 400 and response.get_json()["issue"][0]["diagnostics"]
    unknown = pds.post("/Patient", json=_set(("gender",), "mal")(create_request("Quennell")))
    assert unknown.get_json()["issue"][0]["diagnostics"] == "Invalid value - 'mal' in field 'gender'"
    no_given = pds.post("/Patient", json=_set(("name", 0), {"use": "usual", "family": "Quennell", "period": {
        "start": "1986-07-01"}})(create_request()))
    assert no_given.status_code == 201  # given names are optional in the specification


# --- 8: record at birth --------------------------------------------------------------------------------------------
def birth_request(mother: str = "9000000009", family: str = "Quennell", postcode: str = "LS1 6AE") -> dict:
    """A record at birth with the published shape: baby, birth weight, ..., the mother at entry 7."""
    def observation(code: str, display: str, **value) -> dict:
        return {"resource": {"resourceType": "Observation", "status": "final",
                             "code": {"coding": [{"system": "http://snomed.info/sct", "code": code,
                                                  "display": display}]}, **value}}
    baby = {"resourceType": "Patient",
            "name": [{"given": ["Araminta", "Rose"], "family": family, "use": "usual", "period": {"start": "2026-01-02"}}],
            "gender": "female", "birthDate": "2026-01-02",
            "address": [{"period": {"start": "2026-01-02"}, "use": "home", "postalCode": postcode,
                         "line": ["", "1 Trevelyan Square", "", "Leeds"]}],
            "multipleBirthInteger": 1}
    mother_patient = {"resourceType": "Patient", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number",
                                                                 "value": mother}],
                      "name": [{"family": family, "given": ["Jane"], "use": "usual"}], "birthDate": "1990-01-01"}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": baby},
        observation("364589006", "Birth weight", valueQuantity={"value": 3500, "unit": "grams"}),
        observation("237364002", "Stillbirth", valueCodeableConcept={"coding": [{"code": "1", "display": "Live"}]}),
        observation("268477000", "Fetal gestation at delivery", valueQuantity={"value": 39, "unit": "weeks"}),
        observation("246435002", "Number of foetuses", valueInteger=1),
        observation("66091009", "Suspected congenital abnormality", valueCodeableConcept={"coding": [{"code": "N"}]}),
        {"resource": {"resourceType": "RelatedPerson", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number",
                                                                       "value": mother}]}},
        {"resource": mother_patient},
        {"resource": {"resourceType": "Location", "status": "active", "name": "NEONATAL MEDICINE LGI"}}]}


def baby_of(body: dict) -> dict:
    return body["entry"][0]["resource"]


def test_a_published_patients_baby_is_always_5900010775_and_never_stored(pds):
    request = birth_request()
    for mother in ("9000000009", "5182663366"):  # a published patient, or the one the published create answers
        response = pds.post(BIRTH, json=birth_request(mother))
        body = assert_fhir(response, 201)
        assert body["multipleBirthInteger"] == 1
        assert_new_record(body, stub("postPdsRecordAtBirthResponses", "new_pds_record_at_birth"), "5900010775",
                          baby_of(request), 8)
        assert response.headers["notification-id"] == NOTIFICATION_ID
    assert pds.get("/Patient/5900010775").status_code == 404


@pytest.mark.parametrize("family, postcode, name, diagnostics", [
    ("McMatch-Single", "BAP 4WG", "SINGLE_MATCH_FOUND",
     "Unable to create new patient. NHS number 5900004899 found for supplied demographic data."),
    ("McMatch-Multiple", "DN19 7UD", "MULTIPLE_MATCHES_FOUND", None),
])
def test_the_published_birth_matches(pds, family, postcode, name, diagnostics):
    response = pds.post(BIRTH, json=birth_request(family=family, postcode=postcode))
    expected = stub("postPatientResponses", name)
    if diagnostics:
        expected["issue"][0]["diagnostics"] = diagnostics
    assert assert_fhir(response, 200) == expected
    assert response.headers["notification-id"] == NOTIFICATION_ID


def _baby(path: tuple, value):
    return _set(("entry", 0, "resource", *path), value)


def _drop(*path):
    def change(body):
        body = copy.deepcopy(body)
        target = body
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
        return body
    return change


@pytest.mark.parametrize("change, name, diagnostics", [
    (lambda b: {**b, "entry": []}, "MISSING_VALUE", "Missing baby Patient resource in entry array"),
    (lambda b: {"resourceType": "Bundle"}, "MISSING_VALUE", "Missing baby Patient resource in entry array"),
    (_drop("entry", 0, "resource", "name", 0, "use"), "MISSING_VALUE", "Missing value - 'entry/0/resource/name/0/use'"),
    (_drop("entry", 0, "resource", "address"), "MISSING_VALUE", "Missing value - 'entry/0/resource/address'"),
    (_drop("entry", 0, "resource", "gender"), "MISSING_VALUE", "Missing value - 'entry/0/resource/gender'"),
    (_drop("entry", 0, "resource", "birthDate"), "MISSING_VALUE", "Missing value - 'entry/0/resource/birthDate'"),
    (_drop("entry", 1, "resource", "valueQuantity", "value"), "MISSING_VALUE",
     "Missing value - 'entry/1/resource/valueQuantity/value'"),
    (_baby(("address", 0), "another"), "INVALID_VALUE", "Invalid value - 'another' in field 'entry/0/resource/address/0'"),
    (_drop("entry", 0, "resource", "address", 0, "period"), "MISSING_VALUE", "Missing value - 'address/0/period'"),
    (_baby(("name", 0, "given"), "not an array"), "INVALID_VALUE",
     "Invalid value - 'not an array' in field 'entry/0/resource/name/0/given'"),
    (_baby(("name", 0, "given"), "O`Brien"), "INVALID_VALUE",
     "Invalid value - 'O`Brien' in field 'entry/0/resource/name/0/given'"),
    (_baby(("gender",), "other"), "INVALID_VALUE", "Invalid value - 'other' in field 'gender'"),
    (_baby(("birthDate",), "not-a-date"), "INVALID_VALUE", "Invalid value - 'not-a-date' in field 'birthDate'"),
    (_drop("entry", 7, "resource", "identifier", 0, "value"), "MISSING_VALUE",
     "Missing value - 'entry/7/resource/identifier/0/value'"),
    (_set(("entry", 1, "resource", "valueQuantity", "value"), 35552), "INVALID_VALUE",
     "Invalid value - '35552' in field 'entry/1/resource/valueQuantity/value'"),
    (_baby(("multipleBirthInteger",), 100), "INVALID_VALUE",
     "Invalid value - '100' in field 'entry/0/resource/multipleBirthInteger'"),
])
def test_birth_errors_are_the_published_bodies(pds, change, name, diagnostics):
    response = pds.post(BIRTH, json=change(birth_request()))
    assert assert_fhir(response, 400) == error_stub(name, diagnostics)
    assert response.headers["notification-id"] == NOTIFICATION_ID


@pytest.mark.parametrize("change", [
    lambda b: {**b, "entry": {"not": "a list"}}, lambda b: {**b, "entry": [None, *b["entry"]]},
    _baby(("address",), []), _baby(("address",), [None]), _baby(("birthDate",), 20260102),
    _drop("entry", 0, "resource", "address", 0, "line"),
])
def test_where_the_published_birth_crashes_the_sandbox_answers_400_naming_the_field(pds, change):
    response = pds.post(BIRTH, json=change(birth_request()))
    body = assert_fhir(response, 400)
    assert body["issue"][0]["diagnostics"] and body["issue"][0]["details"]["coding"][0]["code"] in (
        "INVALID_VALUE", "MISSING_VALUE", "INVALID_CREATE")


# --- 10, 11: coverage ------------------------------------------------------------------------------------------------
def coverage_request(number: str = "9000000009", **changes) -> dict:
    body = {"resourceType": "Coverage", "status": "active",
            "subscriber": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": number}},
            "identifier": [{"value": "29401395498043123948", "assigner": {"identifier": {
                "system": "urn:iso:std:iso:3166", "value": "DEU"}, "display": "Germany"}}],
            "payor": [{"identifier": {"value": "92847ADGJL"}}], "beneficiary": {"identifier": {"value": "178705ABC"}},
            "period": {"end": "2030-12-31"}}
    body.update(changes)
    return body


@pytest.mark.parametrize("number, name, version", [("9000000009", "patient_with_coverage_9000000009", "2"),
                                                   ("9000000033", "patient_without_coverage", "1")])
def test_published_coverage(pds, number, name, version):
    response = pds.get(f"/Coverage?subscriber:identifier={number}")
    body = assert_fhir(response, 200)
    assert without_timestamp(body) == without_timestamp(stub("coverageResponses", name)) and body["timestamp"]
    assert response.headers["ETag"] == f'W/"{version}"'


def test_coverage_search_errors_are_the_published_bodies(pds):
    wrong = error_stub("INVALID_SEARCH_DATA", "Invalid search data provided - 'Coverage search request must follow "
                                              "the format /Coverage?subscriber:identifier=NHS_NUMBER'")
    for query in ("", "?id=9999999990&year=2003"):
        assert assert_fhir(pds.get(f"/Coverage{query}"), 400) == wrong
    assert assert_fhir(pds.get("/Coverage?subscriber:identifier=9000000000"), 400) == error_stub("INVALID_RESOURCE_ID")


def test_a_published_coverage_update_is_answered_as_published_and_never_stored(pds):
    sent = coverage_request()
    response = pds.post("/Coverage", json=sent, headers={"If-Match": 'W/"2"'})
    assert response.headers["ETag"] == 'W/"3"'
    expected = stub("coverageResponses", "patient_with_coverage_9000000009")
    card = expected["entry"][0]["resource"]
    card["beneficiary"]["identifier"]["value"] = "178705ABC"
    card["identifier"][0]["assigner"]["identifier"]["value"] = "DEU"
    card["identifier"][0]["value"] = "29401395498043123948"
    card["payor"][0]["identifier"]["value"] = "92847ADGJL"
    card["period"]["end"] = "2030-12-31"
    expected["meta"]["versionId"] = "3"
    assert assert_fhir(response, 201) == expected  # the timestamp too: the published card's own
    again = pds.get("/Coverage?subscriber:identifier=9000000009")
    assert again.headers["ETag"] == 'W/"2"'
    assert again.get_json()["entry"] == stub("coverageResponses", "patient_with_coverage_9000000009")["entry"]


@pytest.mark.parametrize("body, headers, status, name, diagnostics", [
    (coverage_request(), {"If-Match": None}, 412, "PRECONDITION_FAILED",
     "Invalid request with error - If-Match header must be supplied to update this resource"),
    (coverage_request(), {"If-Match": 'W/"3"'}, 409, "RESOURCE_VERSION_MISMATCH", None),
    (coverage_request(identifier=[{"assigner": {"identifier": {"system": "urn:iso:std:iso:3166", "value": "FRA"}}}]),
     {}, 400, "MISSING_VALUE", "Missing value - 'identifier/0/value'"),
    ({k: v for k, v in coverage_request().items() if k != "status"}, {}, 400, "MISSING_VALUE", "Missing value - 'status'"),
    (coverage_request(subscriber={"identifier": {}}), {}, 400, "MISSING_VALUE",
     "Missing value - 'subscriber/identifier/value'"),
    (coverage_request(beneficiary={"identifier": {}}), {}, 400, "MISSING_VALUE",
     "Missing value - 'beneficiary/identifier/value'"),
    ({k: v for k, v in coverage_request().items() if k != "period"}, {}, 400, "MISSING_VALUE", "Missing value - 'period'"),
    (coverage_request(period={"end": "not-a-date"}), {}, 400, "INVALID_VALUE",
     "Invalid value - 'not-a-date' in field 'period'"),
    (coverage_request(identifier=[{"value": "ES4567890123@", "assigner": {"identifier": {
        "system": "urn:iso:std:iso:3166", "value": "FRA"}}}]), {}, 400, "INVALID_VALUE",
     "Invalid value - 'ES4567890123@' in field 'identifier/value'"),
    (coverage_request(beneficiary={"identifier": {"value": "X" * 26}}), {}, 400, "INVALID_VALUE",
     f"Invalid value - '{'X' * 26}' in field 'beneficiary/identifier/value'"),
    (coverage_request(status="cancelled"), {}, 400, "INVALID_VALUE", "Invalid value - 'cancelled' in field 'status'"),
])
def test_coverage_update_errors_are_the_published_bodies(pds, body, headers, status, name, diagnostics):
    response = pds.post("/Coverage", json=body, headers={"If-Match": 'W/"2"', **headers})
    assert assert_fhir(response, status) == error_stub(name, diagnostics)


def test_a_coverage_update_without_content_type_is_unsupported_service(pds):
    response = pds.client.post("/personal-demographics/FHIR/R4/Coverage", data=json.dumps(coverage_request()),
                               headers=pds._headers({"If-Match": 'W/"2"'}))
    assert assert_fhir(response, 400) == error_stub("UNSUPPORTED_SERVICE")
