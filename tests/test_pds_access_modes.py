"""PDS access modes end to end: real tokens from the sandbox's identity service (signed-JWT client credentials,
CIS2 and NHS login token exchange, the combined sign-in, session tokens) -> PDS over HTTP -> allowed, or refused
exactly as live PDS refuses, under SANDBOX_AUTH strict, lenient and off."""

from __future__ import annotations

import pytest

from tests.conftest import PdsClient
from tests.oauth_helpers import KeyPair, assertion, cc_form, jwks, post_token, register
from tests.test_oauth_user_restricted import CALLBACK, code_form, sign_in
from tests.test_pds_published_sandbox import birth_request
from tests.test_pds_search import findings, ids

DOCS = "https://digital.nhs.uk/developer/api-catalogue/personal-demographics-service-fhir"
PATIENT_DENIED = (403, "forbidden", "ACCESS_DENIED", "Patient cannot perform this action",
                  f"Your access token has insufficient permissions. See documentation regarding Patient access "
                  f"restrictions {DOCS}")
UPDATE_REFUSED = (403, "forbidden", "INVALID_METHOD", "Cannot update resource with application-restricted access "
                  "token", "Your app has insufficient permissions to use this method. Please contact support.")
CREATE_REFUSED = (403, "forbidden", "INVALID_METHOD", "Cannot update resource without Healthcare Worker access "
                  "token", "Your app has insufficient permissions to use this method. Please contact support.")
BIRTH = "/Patient/$process-birth-details"


def birth_refused(mode: str) -> tuple:
    return (403, "forbidden", "INVALID_METHOD", f"Cannot create resource with {mode} access token",
            "Your app has insufficient permissions to use this method. Please contact support.")
SEARCH_TOO_WIDE = (403, "token", "INVALID_VALUE", "Cannot retrieve more than one result with Application Restricted "
                   "access token", "Your app has insufficient permissions to perform this search. Please contact "
                   "support.")
NOT_PERMITTED = (400, "structure", "INVALID_UPDATE", "Update is invalid", "Invalid update with error - This user does "
                 "not have permission to update the fields in the patches provided.")
BASIC = "family=Smith&gender=female&birthdate=eq2010-10-22"  # the published search with one match (Jane Smith)
WILDCARD = "family=Sm*&gender=female&birthdate=eq2010-10-22"  # the published search with two matches
EXCHANGE = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}
PRIYA, PRIYA_ROLE = "555021935107", "555021936103"
SAM, SAM_ROLES = "555021939101", ("555021940108", "555021941104")  # a worker with two roles


def refusal(response) -> tuple:
    issue = response.get_json()["issue"][0]
    coding = issue["details"]["coding"][0]
    return response.status_code, issue["code"], coding["code"], coding["display"], issue.get("diagnostics")


def outcomes(client, response, requirement: str) -> list[str]:
    return [f["outcome"] for f in findings(client, response) if f["requirement"] == requirement]


def message(client, response, requirement: str) -> str:
    return next(f["message"] for f in findings(client, response) if f["requirement"] == requirement)


class Caller(PdsClient):
    """A supplier's PDS client holding one bearer token."""

    def __init__(self, client, token: str | None):
        super().__init__(client)
        self.token = token

    def _headers(self, headers):
        return super()._headers({"Authorization": f"Bearer {self.token}" if self.token else None, **(headers or {})})

    def patch_patient(self, number: str, *ops, **headers):
        etag = self.get(f"/Patient/{number}").headers.get("ETag", 'W/"1"')
        return self.patch(f"/Patient/{number}", json={"patches": list(ops)}, headers={"If-Match": etag, **headers})


@pytest.fixture(scope="module")
def key():
    return KeyPair("modes-1")


@pytest.fixture
def app_key(client, key):
    return register(client, name="Modes app", keys=jwks(key), redirect_uris=[CALLBACK])["api_key"]


@pytest.fixture
def mint(client, key, app_key):
    """Tokens of each mode, through the sandbox's own token endpoint."""

    def exchanged(issued) -> Caller:  # an ID token from a mock identity provider, exchanged for an access token
        assert issued.status_code == 200, issued.get_json()
        form = cc_form(assertion(key, app_key), subject_token=issued.get_json()["id_token"], **EXCHANGE)
        return Caller(client, _token(client, form))

    class Mint:
        @staticmethod
        def application() -> Caller:
            return Caller(client, _token(client, cc_form(assertion(key, app_key))))

        @staticmethod
        def worker(user_id: str = PRIYA, **id_token) -> Caller:
            return exchanged(client.post("/_sandbox/oauth/cis2/id-token", json={"user_id": user_id, **id_token}))

        @staticmethod
        def patient(number: str, vot: str = "P9.Cp.Cd") -> Caller:
            return exchanged(client.post("/_sandbox/oauth/nhs-login/id-token", json={"nhs_number": number,
                                                                                   "vot": vot}))

    return Mint


def _token(client, form) -> str:
    response = post_token(client, form)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


@pytest.fixture
def people(sandbox):
    standard = sandbox.population.of_kind("standard")
    return next(standard), next(standard)


def strict(sandbox):
    sandbox.settings = sandbox.settings.replace(auth="strict")


def new_patient() -> dict:
    return {"name": [{"use": "usual", "family": "Quennell", "given": ["Araminta"], "period": {"start": "1986-07-01"}}],
            "gender": "female", "birthDate": "1982-07-10",
            "address": [{"use": "home", "line": ["1 Trevelyan Square", "Leeds"], "postalCode": "LS1 6AE",
                         "period": {"start": "2020-01-01"}}],
            "extension": [{"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-RegisteringAuthority",
                           "extension": [{"url": "registeringAuthorityType", "valueCodeableConcept": {"coding": [{
                               "system": "https://fhir.nhs.uk/CodeSystem/UKCore-RegisteringAuthorityType",
                               "code": "x"}]}}, {"url": "organisationIdentifier", "valueString": "RGS"}]}]}


def card(number: str) -> dict:
    return {"resourceType": "Coverage", "status": "active",
            "subscriber": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": number}},
            "identifier": [{"value": "29401395498043123948", "assigner": {
                "identifier": {"system": "urn:iso:std:iso:3166", "value": "FRA"}, "display": "France"}}],
            "payor": [{"identifier": {"value": "92847ADGJL"}}], "beneficiary": {"identifier": {"value": "178705ABC"}},
            "period": {"end": "2030-12-31"}}


EMAIL = {"op": "add", "path": "/telecom/-", "value": {"system": "email", "use": "home", "value": "me@example.com"}}


# --- application-restricted ------------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", ["strict", "lenient"])
def test_application_restricted_reads_and_finds_one_unique_match(client, sandbox, mint, auth):
    sandbox.settings = sandbox.settings.replace(auth=auth)
    app = mint.application()
    retrieved = app.get("/Patient/9000000009")
    assert retrieved.status_code == 200 and outcomes(client, retrieved, "PDS-ACC-001") == ["pass"]
    assert app.get("/Patient/9000000009/RelatedPerson").status_code == 200
    for query in (BASIC, BASIC + "&_max-results=1"):
        found = app.get(f"/Patient?{query}")
        assert found.status_code == 200 and ids(found) == ["9000000009"]
        assert outcomes(client, found, "PDS-ACC-002") == ["pass"]
    several = app.get(f"/Patient?{WILDCARD}")  # two patients match: PDS sets _max-results to 1
    assert several.status_code == 200 and refusal(several)[2] == "TOO_MANY_MATCHES"


def test_application_restricted_refusals(client, mint, people):
    app = mint.application()
    for query in (f"{WILDCARD}&_max-results=2", f"{BASIC}&_max-results=50", f"{BASIC}&_max-results=abc"):
        refused = app.get(f"/Patient?{query}")
        assert refusal(refused) == SEARCH_TOO_WIDE, query
        assert outcomes(client, refused, "PDS-ACC-002") == ["fail"]
    patched = app.patch_patient(people[0].nhs_number, EMAIL)
    assert refusal(patched) == UPDATE_REFUSED and outcomes(client, patched, "PDS-ACC-001") == ["fail"]
    assert refusal(app.post("/Patient", json=new_patient())) == CREATE_REFUSED
    assert refusal(app.post(BIRTH, json={})) == birth_refused("application-restricted")
    for response, method in ((app.get("/Coverage?subscriber:identifier=9000000009"), "GET"),
                             (app.post("/Coverage", json=card("9000000009"), headers={"If-Match": 'W/"2"'}), "POST")):
        assert refusal(response) == (403, "forbidden", "ACCESS_DENIED", f"Cannot {method} resource with "
                                     "application-restricted access token", "Your app has insufficient permissions "
                                     "to use this operation. Please contact support.")
        assert outcomes(client, response, "PDS-COV-002") == ["fail"]
    ignored = app.get("/Patient/9000000009", headers={"NHSD-Session-URID": "not-a-role"})
    assert ignored.status_code == 200 and outcomes(client, ignored, "PDS-HDR-007") == ["info"]


# --- healthcare worker -----------------------------------------------------------------------------------------
def test_healthcare_worker_searches_reads_updates_and_creates(client, sandbox, mint, people):
    strict(sandbox)
    worker = mint.worker(aal="AAL2")
    several = worker.get(f"/Patient?{WILDCARD}")
    assert several.status_code == 200 and len(ids(several)) == 2
    assert worker.get(f"/Patient/{people[0].nhs_number}/RelatedPerson").status_code == 200
    patched = worker.patch_patient(people[0].nhs_number, {"op": "replace", "path": "/gender", "value": "unknown"})
    assert patched.status_code == 200 and patched.get_json()["gender"] == "unknown"
    assert outcomes(client, patched, "PDS-ACC-007") == ["pass"]
    created = worker.post("/Patient", json=new_patient())
    assert created.status_code == 201 and outcomes(client, created, "PDS-ACC-001") == ["pass"]
    recorded = worker.post(BIRTH, json=birth_request())
    assert recorded.status_code == 201 and outcomes(client, recorded, "PDS-ACC-001") == ["pass"]
    for response, method in ((worker.get("/Coverage?subscriber:identifier=9000000009"), "GET"),
                             (worker.post("/Coverage", json=card("9000000009"), headers={"If-Match": 'W/"2"'}), "POST")):
        assert refusal(response)[:4] == (403, "forbidden", "ACCESS_DENIED",
                                         f"Cannot {method} resource with user-restricted access token")


def test_session_urid_must_be_a_role_of_the_logged_in_worker(client, mint):
    priya, sam = mint.worker(), mint.worker(SAM, role_id=SAM_ROLES[0])
    same = priya.get("/Patient/9000000009", headers={"NHSD-Session-URID": PRIYA_ROLE})
    assert same.status_code == 200 and outcomes(client, same, "PDS-ACC-006") == ["pass"]
    other_role = sam.get("/Patient/9000000009", headers={"NHSD-Session-URID": SAM_ROLES[1]})
    assert other_role.status_code == 200  # any role the user holds, not only the one selected at sign-in
    unsent = priya.get("/Patient/9000000009")
    assert unsent.status_code == 200 and outcomes(client, unsent, "PDS-ACC-006") == ["info"]
    refused = {value: priya.get("/Patient/9000000009", headers={"NHSD-Session-URID": value})
               for value in (SAM_ROLES[0], "invalid")}  # another worker's role; not a role id at all
    for value, response in refused.items():
        assert refusal(response) == (400, "value", "INVALID_VALUE", "Provided value is invalid",
                                     f"Invalid value - '{value}' in header 'NHSD-Session-URID'. Refer to the guidance "
                                     f"for this header in our API Specification {DOCS}")
    assert "not a role of CIS2 user 555021935107 (their roles: 555021936103)" in message(
        client, refused[SAM_ROLES[0]], "PDS-ACC-006")


def test_the_combined_sign_in_carries_the_workers_roles(client, key):
    app = register(client, name="Combined app", keys=jwks(key), redirect_uris=[CALLBACK])  # its secret: shown once
    query, _ = sign_in(client, app, worker=f"{SAM}/{SAM_ROLES[1]}", aal="AAL3")
    token = post_token(client, code_form(app, query["code"][0])).get_json()["access_token"]
    sam = Caller(client, token)
    assert sam.get("/Patient/9000000009", headers={"NHSD-Session-URID": SAM_ROLES[0]}).status_code == 200
    assert sam.get("/Patient/9000000009", headers={"NHSD-Session-URID": PRIYA_ROLE}).status_code == 400


def test_aal1_is_not_enough_for_healthcare_worker_access(client, mint):
    worker = mint.worker(aal="AAL1")
    weak = worker.get("/Patient/9000000009")
    assert refusal(weak)[:3] == (401, "forbidden", "ACCESS_DENIED")
    assert "needs AAL2 or AAL3" in message(client, weak, "PDS-ACC-007")
    # judged with the token, before the headers: a missing X-Request-ID is not what this request hears about
    assert worker.get("/Patient/9000000009", headers={"X-Request-ID": None}).status_code == 401


# --- patient ---------------------------------------------------------------------------------------------------
def test_patient_reaches_only_their_own_record(client, sandbox, mint, people):
    strict(sandbox)
    me, other = people
    patient = mint.patient(me.nhs_number)
    own = patient.get(f"/Patient/{me.nhs_number}")
    assert own.status_code == 200 and outcomes(client, own, "PDS-ACC-003") == ["pass"]
    assert outcomes(client, own, "PDS-ACC-004") == ["pass"]
    assert patient.get(f"/Patient/{me.nhs_number}/RelatedPerson").status_code == 200
    for path in (f"/Patient/{other.nhs_number}", f"/Patient/{other.nhs_number}/RelatedPerson", "/Patient/9000000009",
                 "/Patient/123456789", f"/Patient?{BASIC}"):
        assert refusal(patient.get(path)) == PATIENT_DENIED, path
    theirs = patient.get(f"/Patient/{other.nhs_number}")
    assert f"is not the signed-in patient's own ({me.nhs_number})" in message(client, theirs, "PDS-ACC-003")
    assert refusal(patient.patch_patient(other.nhs_number, EMAIL)) == PATIENT_DENIED
    assert refusal(patient.post("/Patient", json=new_patient())) == CREATE_REFUSED
    assert refusal(patient.post(BIRTH, json={})) == birth_refused("patient-access")


def test_patient_coverage_is_their_own(mint, people):
    me, other = people
    patient = mint.patient(me.nhs_number)
    found = patient.get(f"/Coverage?subscriber:identifier={me.nhs_number}")
    assert found.status_code == 200 and found.get_json()["total"] == 0
    updated = patient.post("/Coverage", json=card(me.nhs_number), headers={"If-Match": found.headers["ETag"]})
    assert updated.status_code == 201
    assert refusal(patient.get(f"/Coverage?subscriber:identifier={other.nhs_number}")) == PATIENT_DENIED
    assert refusal(patient.post("/Coverage", json=card(other.nhs_number), headers={"If-Match": 'W/"1"'})) == \
        PATIENT_DENIED


@pytest.mark.parametrize("vot", ["P5.Cp.Cd", "P0.Cm", "P9.Cp"])
def test_patient_access_needs_a_p9_vector_of_trust(client, mint, people, vot):
    refused = mint.patient(people[0].nhs_number, vot=vot).get(f"/Patient/{people[0].nhs_number}")
    assert refusal(refused) == PATIENT_DENIED and outcomes(client, refused, "PDS-ACC-004") == ["fail"]


def test_patient_updates_are_limited_to_the_documented_fields(client, mint, people):
    me = people[0]
    patient = mint.patient(me.nhs_number)
    added = patient.patch_patient(me.nhs_number, EMAIL)
    assert added.status_code == 200, added.get_json()
    assert outcomes(client, added, "PDS-ACC-005") == ["pass"]
    email_index = next(i for i, t in enumerate(added.get_json()["telecom"]) if t["system"] == "email")
    home_phone = next(i for i, t in enumerate(added.get_json()["telecom"]) if t["system"] == "phone")
    place = {"op": "add", "path": "/extension/-", "value": {
        "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
        "valueAddress": {"city": "Leeds", "country": "GBR"}}}
    assert patient.patch_patient(me.nhs_number, place).status_code == 200
    for op, why in (
            ({"op": "replace", "path": "/gender", "value": "unknown"}, "'gender' is not a field patients may change"),
            ({"op": "replace", "path": f"/telecom/{email_index}/value", "value": "new@example.com"},
             "must send the whole item"),
            ({"op": "replace", "path": f"/telecom/{home_phone}", "value": {"system": "phone", "use": "mobile",
                                                                           "value": "07700900000"}},
             "is a phone (home) contact, which patients may not change"),
            ({"op": "add", "path": "/telecom/-", "value": {"system": "phone", "use": "work", "value": "0113"}},
             "which patients may not set"),
            ({"op": "add", "path": "/extension/-", "value": {
                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ContactPreference"}},
             "extension https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ContactPreference")):
        refused = patient.patch_patient(me.nhs_number, op)
        assert refusal(refused) == NOT_PERMITTED, op
        assert why in message(client, refused, "PDS-ACC-005")
    mobile = {"op": "add", "path": "/telecom/-", "value": {"system": "phone", "use": "mobile", "value": "07700900123"}}
    assert patient.patch_patient(me.nhs_number, mobile).status_code == 200


# --- strictness ------------------------------------------------------------------------------------------------
def test_without_a_token_lenient_applies_no_mode_rules_but_says_so(client, people):
    anonymous = Caller(client, None)
    wide = anonymous.get("/Patient?family=YOUDS&birthdate=1970-01-24&_max-results=4")  # the published four matches
    assert wide.status_code == 200 and len(ids(wide)) == 4
    assert outcomes(client, wide, "PDS-HDR-005") == ["fail"] and outcomes(client, wide, "PDS-ACC-001") == ["info"]
    assert "Access-mode rules not applied" in message(client, wide, "PDS-ACC-001")
    assert anonymous.patch_patient(people[0].nhs_number, EMAIL).status_code == 200
    assert anonymous.get("/Coverage?subscriber:identifier=9000000009").status_code == 200
    assert anonymous.post("/Patient", json=new_patient()).status_code == 201


def test_without_a_token_strict_refuses_first(sandbox, client):
    strict(sandbox)
    assert refusal(Caller(client, None).get(f"/Patient?{BASIC}"))[:3] == (401, "forbidden", "ACCESS_DENIED")


def test_off_applies_no_mode_rules_and_records_none(client, sandbox, mint, people):
    sandbox.settings = sandbox.settings.replace(auth="off")
    app = mint.application()
    patched = app.patch_patient(people[0].nhs_number, EMAIL)
    assert patched.status_code == 200
    assert not [f for f in findings(client, patched) if f["requirement"].startswith("PDS-ACC")]
    fault = app.patch_patient("9999000045", EMAIL)  # the fault scenarios still answer
    assert fault.status_code == 503


# --- session tokens --------------------------------------------------------------------------------------------
def session_caller(client, plan: str) -> Caller:
    made = client.post("/_sandbox/sessions", json={"plan": plan, "supplier": "Acme", "system": "PAS"})
    assert made.status_code == 201, made.get_json()
    return Caller(client, made.get_json()["token"])


def test_a_session_token_takes_its_plans_mode(client, sandbox, people):
    strict(sandbox)
    app = session_caller(client, "pds-application-restricted")
    assert app.get(f"/Patient?{BASIC}").status_code == 200
    assert refusal(app.get(f"/Patient?{WILDCARD}&_max-results=2")) == SEARCH_TOO_WIDE
    assert refusal(app.patch_patient(people[0].nhs_number, EMAIL)) == UPDATE_REFUSED
    worker = session_caller(client, "pds-healthcare-worker")
    assert worker.patch_patient(people[0].nhs_number, EMAIL).status_code == 200
    assert refusal(worker.get("/Coverage?subscriber:identifier=9000000009"))[3] == \
        "Cannot GET resource with user-restricted access token"
    unchecked = worker.get("/Patient/9000000009", headers={"NHSD-Session-URID": "123"})
    assert unchecked.status_code == 200 and outcomes(client, unchecked, "PDS-ACC-006") == ["info"]


def test_a_session_token_of_a_patient_plan(tmp_path, settings, people):
    from sandbox.app import create_app

    (tmp_path / "pack" / "plans").mkdir(parents=True)
    (tmp_path / "pack" / "plans" / "patient.yaml").write_text(
        "id: pds-patient\ntitle: PDS patient access\nversion: '1'\ndescription: a patient app\n"
        "access_mode: patient\nservices: [pds]\nscenarios: []\nrequirements: [PDS-ACC-001]\n")
    app = create_app(settings.replace(scenarios=(*settings.scenarios, tmp_path / "pack"), auth="strict"))
    client = app.test_client()
    patient = session_caller(client, "pds-patient")
    number = people[0].nhs_number
    own = patient.get(f"/Patient/{number}")  # a session token names no NHS number: the rule is not checked
    assert own.status_code == 200 and outcomes(client, own, "PDS-ACC-003") == ["info"]
    assert refusal(patient.get(f"/Patient?{BASIC}")) == PATIENT_DENIED
    assert patient.get("/Coverage?subscriber:identifier=9000000009").status_code == 200
    assert refusal(patient.patch_patient(number, {"op": "replace", "path": "/gender", "value": "unknown"})) == \
        NOT_PERMITTED


# --- scenario catalogue ----------------------------------------------------------------------------------------
def test_refusals_are_catalogue_scenarios(client, mint, people):
    app = mint.application()
    patched = app.patch_patient("9999000045", EMAIL)  # refused by the platform before PDS could fault
    assert refusal(patched) == UPDATE_REFUSED and patched.headers["X-Sandbox-Scenario"] == "pds-access-application-patch"
    catalogue = {s["id"]: s for s in client.get("/_sandbox/scenarios").get_json()["scenarios"]}
    assert "access_rules=patient" in catalogue["pds-access-patient-search"]["trigger"]
