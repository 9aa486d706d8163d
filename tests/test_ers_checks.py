"""e-RS request checks and behavioural checks over HTTP: the published sandbox's refusals (body reading, business
functions) byte for byte, and the live service's header, access-mode and body rules as findings
(X-Sandbox-Findings and /_sandbox/exchanges/<id>), each tied to its requirement; versions, worklist polling and
retry storms over a session's history."""

from __future__ import annotations

import json

import pytest

from sandbox.services.ers.checks import BODY_SCHEMAS, request_problems
from tests.ers_helpers import R4, RA, RC, SPA, SPC, SPCA, STU3, ers_app, ers_headers, mock, mock_json
from tests.oauth_helpers import KeyPair, assertion, cc_form, jwks, post_token, register

CREATE = f"{STU3}/ReferralRequest/$ers.createReferral"
REJECT = f"{STU3}/ReferralRequest/000000070000/$ers.rejectReferral"
WORKLIST = f"{STU3}/ReferralRequest/$ers.fetchworklist"
UPLOAD = f"{STU3}/Binary"
FHIR = {"Content-Type": "application/fhir+json"}
NOT_ALLOWED = ("SANDBOX_ERROR: This endpoint cannot be accessed using the e-RS Business Function provided. "
               "Allowed values: ")
OBO_NEEDED = ("SANDBOX_ERROR: When this endpoint is accessed using the e-RS SERVICE_PROVIDER_CLINICIAN_ADMIN "
              "Business Function then an On-Behalf-Of User ID must be provided")
OBO_ONLY_SPCA = ("SANDBOX_ERROR: An On-Behalf-Of User ID must only be provided if this endpoint is accessed using the "
                 "e-RS SERVICE_PROVIDER_CLINICIAN_ADMIN Business Function")

# Every published example request: its folder under mocks/stu3 -> the operation id whose profile it follows.
EXAMPLES = {
    "createReferral": "a011-create-referral", "createReferralAndSendForTriage":
        "a021-create-referral-request-and-send-for-triage", "changeShortlist": "a031-change-shortlist",
    "changeShortlistAndSendForTriage": "a032-change-shortlist-and-send-for-triage",
    "retrieveWorklist": "a008-retrieve-worklist", "retrieveAdviceAndGuidanceWorklist": "a023-retrieve-a&g-worklist",
    "rejectReferral": "a014-reject-referral", "recordTriageOutcome": "a028-record-triage-outcome",
    "cancelReferral": "a036-cancel-referral", "maintainReferralLetter": "a012-maintain-referral-letter",
    "bookOrDeferAppointment": "a016-book-or-defer-appointment", "updateAppointment": "a034-update-appointment",
    "createAdviceAndGuidance": "a044-create-advice-and-guidance-request",
    "sendAdviceAndGuidanceResponse": "a026-send-a&g-response",
    "convertAdviceAndGuidanceToReferral": "a027-convert-a&g-to-referral",
    "cancelAppointmentActionLater": "a022-cancel-appointment-action-later",
    "patientServiceSearch": "a010-patient-service-search",
}


@pytest.fixture
def published(tmp_path):
    with ers_app(tmp_path, ers_mode="published") as app:
        yield app.test_client()


@pytest.fixture
def live(tmp_path):
    with ers_app(tmp_path) as app:
        yield app.test_client()


def findings(client, response) -> dict[str, list[dict]]:
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    found: dict[str, list[dict]] = {}
    for finding in exchange["findings"]:
        found.setdefault(finding["requirement"], []).append(finding)
    return found


def outcomes(client, response, requirement: str) -> list[str]:
    return [f["outcome"] for f in findings(client, response).get(requirement, [])]


def example(folder: str, name: str) -> dict:
    return mock_json("stu3", folder, "requests", name)


# ================= business function and on-behalf-of (BEHAVIOUR.md section 4) =================

@pytest.mark.parametrize("path, method, function, allowed", [
    (CREATE, "post", SPC, "REFERRING_CLINICIAN,REFERRING_CLINICIAN_ADMIN"),
    (f"{STU3}/ReferralRequest/000000070000", "get", RA,
     "REFERRING_CLINICIAN,REFERRING_CLINICIAN_ADMIN,SERVICE_PROVIDER_CLINICIAN,SERVICE_PROVIDER_CLINICIAN_ADMIN"),
    (f"{STU3}/CommunicationRequest/$ers.fetchworklist", "post", RC,
     "SERVICE_PROVIDER_CLINICIAN,SERVICE_PROVIDER_ADMIN,SERVICE_PROVIDER_CLINICIAN_ADMIN"),
    (WORKLIST, "post", "referring_clinician", "SERVICE_PROVIDER_CLINICIAN,SERVICE_PROVIDER_ADMIN,"
     "SERVICE_PROVIDER_CLINICIAN_ADMIN,REFERRING_CLINICIAN,REFERRING_CLINICIAN_ADMIN,REFERRING_ADMIN"),
    (f"{R4}/HealthcareService/1", "get", SPA, "REFERRING_CLINICIAN,REFERRING_CLINICIAN_ADMIN"),
])
def test_a_business_function_the_endpoint_does_not_allow_is_refused_with_its_list(published, path, method, function,
                                                                                   allowed):
    response = getattr(published, method)(path, headers=ers_headers(function))
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.get_data() == (NOT_ALLOWED + allowed).encode()
    found = findings(published, response)["ERS-BF-001"][0]
    assert found["outcome"] == "fail" and found["rejected_with"]["status"] == 403
    assert found["location"] == "header:NHSD-eRS-Business-Function"


def test_the_on_behalf_of_rules_are_refused_byte_for_byte(published):
    body = example("rejectReferral", "BasicExampleDbs.json")
    without = published.post(REJECT, json=body, headers={**ers_headers(SPC), "NHSD-eRS-Business-Function": SPCA})
    assert (without.status_code, without.get_data()) == (403, OBO_NEEDED.encode())
    assert outcomes(published, without, "ERS-BF-002") == ["fail"]
    extra = published.post(REJECT, json=body, headers=ers_headers(SPC, **{"NHSD-eRS-On-Behalf-Of-User-ID": "1"}))
    assert (extra.status_code, extra.get_data()) == (403, OBO_ONLY_SPCA.encode())
    assert outcomes(published, extra, "ERS-BF-003") == ["fail"]
    proper = published.post(REJECT, json=body, headers=ers_headers(SPCA, **FHIR, **{"If-Match": 'W/"5"'}))
    assert proper.status_code == 200, proper.get_data()
    assert outcomes(published, proper, "ERS-BF-001") == ["pass"] and outcomes(published, proper, "ERS-BF-002") == ["pass"]


def test_without_a_business_function_nothing_is_refused_but_the_missing_header_is_recorded(published):
    body = example("createReferral", "MinimalRequestWithReferringClinician.json")
    headers = {**ers_headers(None, **FHIR), "NHSD-eRS-On-Behalf-Of-User-ID": "1"}  # no check at all, not even this
    response = published.post(CREATE, json=body, headers=headers)
    assert response.status_code == 201
    assert "ERS-BF-001" not in findings(published, response)
    assert outcomes(published, response, "ERS-HDR-002") == ["fail"]  # A011 always needs it (user-restricted only)
    blank = published.post(CREATE, json=body, headers=ers_headers(None, **FHIR, **{
        "NHSD-eRS-Business-Function": "  "}))
    assert blank.status_code == 201  # blank counts as absent


def test_the_practitioner_list_takes_only_spca_and_only_for_on_behalf_of_queries(published):
    path = f"{R4}/Practitioner"
    for headers in ({}, ers_headers(RC), ers_headers(SPC)):
        refused = published.get(f"{path}?_query=onBehalfOf", headers=headers)
        assert (refused.status_code, refused.get_data()) == (403, (NOT_ALLOWED + SPCA).encode())
        assert outcomes(published, refused, "ERS-BF-004") == ["fail"]
    other_query = published.get(f"{path}?_query=everyone", headers=ers_headers(RC))
    assert other_query.status_code == 400  # the route's own answer comes first: no business-function refusal
    assert "ERS-BF-004" not in findings(published, other_query)
    allowed = published.get(f"{path}?_query=onBehalfOf", headers={"NHSD-eRS-Business-Function": SPCA})
    assert allowed.status_code == 200  # no on-behalf-of user needed here
    assert outcomes(published, allowed, "ERS-BF-004") == ["pass"]


def test_the_business_functions_list_is_never_checked(published):
    response = published.get(f"{R4}/PractitionerRole", headers={"NHSD-eRS-Business-Function": "NOBODY",
                                                               "NHSD-eRS-On-Behalf-Of-User-ID": "1"})
    assert response.status_code == 200
    assert not {"ERS-BF-001", "ERS-HDR-001", "ERS-HDR-002"} & set(findings(published, response))


# ================= body reading (BEHAVIOUR.md section 3) =================

def framework(response) -> tuple[int, dict]:
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "X-Request-ID" not in response.headers and "X-Correlation-ID" not in response.headers
    return response.status_code, response.get_json()


def test_invalid_json_unsupported_types_and_oversized_bodies_are_the_frameworks_errors(published):
    headers = ers_headers(RC, **{"X-Correlation-ID": "c-1"})
    bad = published.post(CREATE, data=b'{"resourceType": ', headers={**headers, "Content-Type": "application/json"})
    assert framework(bad) == (400, {"statusCode": 400, "error": "Bad Request",
                                    "message": "Invalid request payload JSON format"})
    assert outcomes(published, bad, "ERS-BODY-002") == ["fail"]
    for kind in ("application/xml", "multipart/form-data; boundary=x", "image/png"):
        refused = published.post(CREATE, data=b"<x/>", headers={**headers, "Content-Type": kind})
        assert framework(refused) == (415, {"statusCode": 415, "error": "Unsupported Media Type",
                                            "message": "Unsupported Media Type"}), kind
    big = published.post(CREATE, data=b" " * (1_048_576 + 1), headers={**headers, **FHIR})
    assert framework(big) == (413, {"statusCode": 413, "error": "Request Entity Too Large",
                                    "message": "Payload content length greater than maximum allowed: 1048576"})
    assert outcomes(published, big, "ERS-BODY-003") == ["fail"]


def test_a_body_of_exactly_one_mebibyte_is_read(published):
    text = json.dumps({"resourceType": "Parameters", "pad": ""})
    body = text.replace('""', '"' + "x" * (1_048_576 - len(text)) + '"').encode()
    assert len(body) == 1_048_576
    response = published.post(CREATE, data=body, headers=ers_headers(RC, **FHIR))
    assert response.status_code == 422  # read, and matched no example
    assert "ERS-BODY-003" not in findings(published, response)


def test_a_business_function_refusal_comes_after_the_body_is_read(published):
    response = published.post(CREATE, data=b"not json", headers=ers_headers(SPC, **FHIR))
    assert response.status_code == 400  # the framework reads the body before any route logic


def test_text_bodies_are_kept_as_text(tmp_path, published):
    headers = ers_headers(RC, **{"Content-Type": "text/plain"})
    crashed = published.post(CREATE, data=b"hello", headers=headers)
    assert framework(crashed) == (500, {"statusCode": 500, "error": "Internal Server Error",
                                        "message": "An internal server error occurred"})
    assert outcomes(published, crashed, "ERS-BODY-001") == ["fail"]
    as_json = published.post(CREATE, data=json.dumps(example("createReferral", "MinimalRequest.json")),
                             headers=headers)
    assert as_json.status_code == 201  # text that is JSON matches like JSON, but is not the specification's type
    assert outcomes(published, as_json, "ERS-BODY-001") == ["fail"]
    ignored = published.post(f"{STU3}/ReferralRequest/000000070000/$ers.generateCRI", data=b"anything",
                             headers=ers_headers(RC, **{"Content-Type": "text/plain"}))
    assert ignored.status_code == 200  # a route that ignores the body takes any text
    with ers_app(tmp_path / "live") as app:
        live = app.test_client()
        refused = live.post(CREATE, data=b"hello", headers=headers)
        assert framework(refused)[0] == 415  # live e-RS takes only FHIR JSON: no published-sandbox crash


def test_bodies_that_are_read_but_match_nothing(published):
    form = published.post(CREATE, data=b"a=b", headers=ers_headers(RC, **{
        "Content-Type": "application/x-www-form-urlencoded"}))
    assert form.status_code == 422
    assert outcomes(published, form, "ERS-BODY-001") == ["fail"]
    for empty in (b"", b"null"):
        response = published.post(CREATE, data=empty, headers=ers_headers(RC, **FHIR))
        assert response.status_code == 422
        assert outcomes(published, response, "ERS-BODY-005") == ["fail"]
    untyped = published.post(CREATE, data=json.dumps(example("createReferral", "MinimalRequest.json")),
                             headers=ers_headers(RC))  # no Content-Type counts as application/json
    assert untyped.status_code == 201
    assert outcomes(published, untyped, "ERS-BODY-001") == ["fail"]


def test_uploads_have_their_own_types_and_limit(published):
    headers = ers_headers(RC, **{"NHSD-eRS-File-Name": "letter.txt", "NHSD-eRS-Referral-ID": "000000070000"})
    stored = published.post(UPLOAD, data=b"x" * 5_242_880, headers={**headers, "Content-Type": "text/plain"})
    assert stored.status_code == 201
    assert outcomes(published, stored, "ERS-BODY-004") == ["pass"]
    assert outcomes(published, stored, "ERS-HDR-006") == ["pass"] and outcomes(published, stored, "ERS-HDR-007") == [
        "pass"]
    big = published.post(UPLOAD, data=b"x" * 5_242_881, headers={**headers, "Content-Type": "text/plain"})
    assert framework(big) == (413, {"statusCode": 413, "error": "Request Entity Too Large",
                                    "message": "Payload content length greater than maximum allowed: 5242880"})
    for kind in (None, "application/json", "application/zip"):
        sent = {**headers, "NHSD-eRS-Business-Function": SPA}  # the type is refused before the business function
        if kind:
            sent["Content-Type"] = kind
        refused = published.post(UPLOAD, data=b"x", headers=sent)
        assert framework(refused)[0] == 415, kind
        assert outcomes(published, refused, "ERS-BODY-004") == ["fail"]
    nameless = published.post(UPLOAD, data=b"x", headers=ers_headers(RC, **{"Content-Type": "application/pdf"}))
    assert nameless.status_code == 422
    assert outcomes(published, nameless, "ERS-HDR-006") == ["fail"]
    assert outcomes(published, nameless, "ERS-HDR-007") == ["warning"]


# ================= the live service's headers (findings, the published answers unchanged) =================

def test_role_headers_are_required_and_shaped(published):
    body = example("createReferral", "MinimalRequest.json")
    missing = published.post(CREATE, json=body, headers={"NHSD-eRS-Business-Function": RC, **FHIR})
    assert missing.status_code == 201
    assert outcomes(published, missing, "ERS-HDR-001") == ["fail"]
    every = [f["outcome"] for found in findings(published, missing).values() for f in found]
    summary = " ".join(f"{kind}={every.count(kind)}" for kind in ("fail", "warning", "pass"))
    assert missing.headers["X-Sandbox-Findings"] == (
        f"{summary}; /_sandbox/exchanges/{missing.headers['X-Sandbox-Exchange']}")
    wrong = published.post(CREATE, json=body, headers=ers_headers(RC, **FHIR, **{
        "NHSD-End-User-Organisation-ODS": "not an ods code"}))
    assert outcomes(published, wrong, "ERS-HDR-001") == ["fail"]
    good = published.post(CREATE, json=body, headers=ers_headers(RC, **FHIR))
    assert outcomes(published, good, "ERS-HDR-001") == ["pass"] and outcomes(published, good, "ERS-HDR-002") == [
        "pass"]
    # Where only user-restricted access needs them and no token tells the mode, their absence is a warning.
    read = published.get(f"{STU3}/ReferralRequest/000000070000")
    assert read.status_code == 200
    assert outcomes(published, read, "ERS-HDR-001") == ["warning"]
    assert outcomes(published, read, "ERS-HDR-002") == ["warning"]


def test_if_match_is_required_on_changes_and_shaped_as_a_version(published):
    body = example("rejectReferral", "BasicExampleDbs.json")
    cases = {None: "fail", '"5"': "fail", "W/5": "fail", 'W/"5"': "pass"}
    for value, expected in cases.items():
        headers = ers_headers(SPC, **FHIR, **({"If-Match": value} if value else {}))
        response = published.post(REJECT, json=body, headers=headers)
        assert response.status_code == 200  # the published sandbox inspects none of them
        assert outcomes(published, response, "ERS-HDR-004") == [expected], value
        assert findings(published, response)["ERS-HDR-004"][0]["location"] == "header:If-Match"


def test_correlation_ids_and_the_slot_search_header(published):
    empty = published.get(f"{STU3}/ReferralRequest/000000070000", headers=ers_headers(RC, **{"X-Correlation-ID": ""}))
    assert outcomes(published, empty, "ERS-HDR-003") == ["warning"]
    assert "X-Correlation-ID" not in empty.headers
    given = published.get(f"{STU3}/ReferralRequest/000000070000", headers=ers_headers(RC, **{
        "X-Correlation-ID": "11C46F5F-CDEF-4865-94B2-0EE0EDCC26DA"}))
    assert outcomes(published, given, "ERS-HDR-003") == ["pass"]
    slots = f"{STU3}/Slot?schedule.actor:HealthcareService=12000&appointmentType=ROUTINE&status=free&_count=20&page=1"
    without = published.get(slots, headers=ers_headers(RC))
    assert without.status_code == 200 and outcomes(published, without, "ERS-HDR-005") == ["fail"]
    with_org = published.get(slots, headers=ers_headers(RC, **{"NHSD-eRS-Comm-Rule-Org": "R68"}))
    assert outcomes(published, with_org, "ERS-HDR-005") == ["pass"]


# ================= request bodies against our schemas =================

def test_every_published_example_request_conforms_to_its_profile():
    checked = 0
    for folder, operation in EXAMPLES.items():
        for path in sorted(mock("stu3", folder, "requests").glob("*.json")):
            problems = request_problems(operation, json.loads(path.read_bytes()))
            assert not problems, f"{folder}/{path.name}: " + "; ".join(map(str, problems))
            checked += 1
    assert checked == 63
    assert set(EXAMPLES.values()) == set(BODY_SCHEMAS)


def test_body_problems_are_findings_with_json_pointers(published):
    body = example("createReferral", "MinimalRequest.json")
    body["parameter"][0]["valueIdentifier"]["value"] = "12345"
    body["parameter"] = [p for p in body["parameter"] if p["name"] != "firstReminderLetterFollowUpDays"]
    body["parameter"].append({"name": "colour", "valueString": "blue"})
    response = published.post(CREATE, json=body, headers=ers_headers(RC, **FHIR))
    assert response.status_code == 422  # no longer an example: the published no-match answer, not a refusal
    found = {(f["location"], f["message"].split(" (")[0]) for f in findings(published, response)["ERS-SCHEMA-001"]}
    assert ("/parameter/0/valueIdentifier/value", "'12345' does not match '^[0-9]{10}$'") in found
    assert ("/parameter/4/name", "'colour' is not one of 'patient', 'referringClinician', 'shortlist', "
            "'intentionToAddReferralLetter', 'firstReminderLetterFollowUpDays', 'eReferralPathwayStart'") in found
    assert ("/parameter", "parameter 'firstReminderLetterFollowUpDays' is required") in found
    again = published.post(CREATE, json=body, headers=ers_headers(RC, **FHIR))  # a remembered verdict: the same
    assert {(f["location"], f["message"].split(" (")[0])
            for f in findings(published, again)["ERS-SCHEMA-001"]} == found


def test_triage_shortlists_and_worklist_types_follow_their_operation():
    triage = mock_json("stu3", "createReferralAndSendForTriage", "requests", "Parameters.json")
    shortlist = next(p for p in triage["parameter"] if p["name"] == "shortlist")
    shortlist["resource"]["entry"].append(shortlist["resource"]["entry"][0])
    problems = request_problems("a021-create-referral-request-and-send-for-triage", triage)
    assert [(p.pointer, p.validator) for p in problems] == [(
        f"/parameter/{triage['parameter'].index(shortlist)}/resource/entry", "maxItems")]
    advice = mock_json("stu3", "retrieveAdviceAndGuidanceWorklist", "requests", "MinimalAdviceAndGuidanceRequests.json")
    assert request_problems("a023-retrieve-a&g-worklist", advice) == []
    assert request_problems("a008-retrieve-worklist", advice)  # A008 lists referrals, not advice requests
    assert request_problems("a008-retrieve-worklist", ["not", "an", "object"])[0].validator == "type"


def test_appointments_name_the_patient_and_the_service_once():
    booking = mock_json("stu3", "bookOrDeferAppointment", "requests", "MinimalBooking.json")
    booking["participant"] = booking["participant"][:1]
    messages = [p.message for p in request_problems("a016-book-or-defer-appointment", booking)]
    assert any("http://fhir.nhs.net/Id/nhs-number is required" in m for m in messages), messages


# ================= access modes (tokens from the sandbox's identity service) =================

@pytest.fixture
def tokens(live):
    key = KeyPair("ers-checks-1")
    api_key = register(live, name="e-RS app", keys=jwks(key))["api_key"]

    def token(form) -> str:
        response = post_token(live, form)
        assert response.status_code == 200, response.get_json()
        return response.get_json()["access_token"]

    def worker(user_id: str = "555021935107", aal: str = "AAL3") -> str:
        issued = live.post("/_sandbox/oauth/cis2/id-token", json={"user_id": user_id, "aal": aal})
        assert issued.status_code == 200, issued.get_json()
        return token(cc_form(assertion(key, api_key), subject_token=issued.get_json()["id_token"],
                             grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
                             subject_token_type="urn:ietf:params:oauth:token-type:id_token"))

    return {"application": token(cc_form(assertion(key, api_key))), "worker": worker(), "weak": worker(aal="AAL1")}


def test_application_restricted_tokens_call_only_their_endpoints(live, tokens):
    bearer = {"Authorization": f"Bearer {tokens['application']}"}
    refused = live.post(CREATE, json=example("createReferral", "MinimalRequest.json"), headers={**bearer, **FHIR})
    assert refused.status_code == 403
    issue = refused.get_json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "NO_ACCESS" and issue["code"] == "forbidden"
    assert outcomes(live, refused, "ERS-AUTH-002") == ["fail"]
    read = live.get(f"{STU3}/ReferralRequest/000000070000", headers=bearer)
    assert read.status_code == 200
    assert outcomes(live, read, "ERS-AUTH-002") == ["pass"] and outcomes(live, read, "ERS-AUTH-001") == ["pass"]
    assert "ERS-HDR-001" not in findings(live, read)  # not allowed for this mode, so not missing either
    with_roles = live.get(f"{STU3}/ReferralRequest/000000070000", headers={**bearer, **ers_headers(RC),
                                                                           **bearer})
    assert outcomes(live, with_roles, "ERS-AUTH-003") == ["fail"]
    unfiltered = live.post(WORKLIST, json=example("retrieveWorklist", "MinimalReferralsForReview.json"),
                           headers={**bearer, **FHIR})
    assert outcomes(live, unfiltered, "ERS-AUTH-004") == ["fail"]
    filtered = live.post(WORKLIST, json=example("retrieveWorklist", "FilteringByService.json"),
                         headers={**bearer, **FHIR})
    assert outcomes(live, filtered, "ERS-AUTH-004") == ["pass"]


def test_healthcare_workers_call_every_endpoint(live, tokens):
    headers = {**ers_headers(RC, **FHIR), "Authorization": f"Bearer {tokens['worker']}"}
    response = live.post(CREATE, json=example("createReferral", "MinimalRequest.json"), headers=headers)
    assert response.status_code == 201
    assert outcomes(live, response, "ERS-AUTH-001") == ["pass"] and outcomes(live, response, "ERS-AUTH-002") == [
        "pass"]
    assert outcomes(live, response, "ERS-AUTH-005") == ["pass"]
    weak = live.post(CREATE, json=example("createReferral", "MinimalRequest.json"),
                     headers={**headers, "Authorization": f"Bearer {tokens['weak']}"})
    assert weak.status_code == 201 and outcomes(live, weak, "ERS-AUTH-005") == ["fail"]


def test_strict_authentication_refuses_without_a_token_in_the_e_rs_shape(tmp_path):
    with ers_app(tmp_path, auth="strict") as app:
        client = app.test_client()
        response = client.get(f"{STU3}/ReferralRequest/000000070000", headers={"NHSD-eRS-Business-Function": RC})
        assert response.status_code == 401
        issue = response.get_json()["issue"][0]
        assert (issue["code"], issue["details"]["coding"][0]["code"]) == ("login", "NO_ACCESS")
        assert outcomes(client, response, "ERS-AUTH-001") == ["fail"]


# ================= behaviour over the session =================

def test_changes_name_the_version_last_read(published):
    body = example("rejectReferral", "BasicExampleDbs.json")
    unread = published.post(REJECT, json=body, headers=ers_headers(SPC, **FHIR, **{"If-Match": 'W/"5"'}))
    assert outcomes(published, unread, "ERS-VER-001") == ["warning"]
    read = published.get(f"{STU3}/ReferralRequest/000000070000", headers=ers_headers(SPC))
    assert read.headers["ETag"] == 'W/"5"'
    current = published.post(REJECT, json=body, headers=ers_headers(SPC, **FHIR, **{"If-Match": 'W/"5"'}))
    assert outcomes(published, current, "ERS-VER-001") == ["pass"]
    # The published examples never keep a change, so their read still tells the current version after one.
    again = published.post(REJECT, json=body, headers=ers_headers(SPC, **FHIR, **{"If-Match": 'W/"5"'}))
    assert outcomes(published, again, "ERS-VER-001") == ["pass"]
    stale = published.post(REJECT, json=body, headers=ers_headers(SPC, **FHIR, **{"If-Match": 'W/"4"'}))
    assert stale.status_code == 200  # answered anyway: the published sandbox keeps no versions
    found = findings(published, stale)["ERS-VER-001"][0]
    assert found["outcome"] == "fail" and 'W/"5"' in found["message"] and found["location"] == "header:If-Match"


def test_polling_the_same_worklist_again_at_once_is_a_warning(published):
    headers = ers_headers(SPC, **FHIR)
    review = example("retrieveWorklist", "MinimalReferralsForReview.json")
    first = published.post(WORKLIST, json=review, headers=headers)
    assert first.status_code == 200 and "ERS-POLL-001" not in findings(published, first)
    other = published.post(WORKLIST, json=example("retrieveWorklist", "MinimalAppointmentSlotIssues.json"),
                           headers=headers)
    assert "ERS-POLL-001" not in findings(published, other)  # another worklist
    second = published.post(WORKLIST, json=review, headers=headers)
    assert second.status_code == 200
    assert outcomes(published, second, "ERS-POLL-001") == ["warning"]


def test_a_refused_request_re_sent_unchanged_is_a_warning_then_a_storm(published):
    body = example("createReferral", "MinimalRequest.json")
    headers = ers_headers(SPC, **FHIR)
    attempts = [published.post(CREATE, json=body, headers={**headers, "X-Correlation-ID": str(n)}) for n in range(3)]
    assert [a.status_code for a in attempts] == [403, 403, 403]
    assert [outcomes(published, a, "ERS-RETRY-001") for a in attempts] == [[], ["warning"], ["fail"]]
    fixed = published.post(CREATE, json=body, headers=ers_headers(RC, **FHIR))
    assert fixed.status_code == 201 and "ERS-RETRY-001" not in findings(published, fixed)


# ================= every check is total =================

HOSTILE_BODIES = [b"[]", b'"x"', b"1e999", b"[" * 5000 + b"]" * 5000, b'{"parameter": 7}', b'{"parameter": [1, null]}',
                  b'{"resourceType": "Parameters", "parameter": [{"name": {"a": 1}}]}', b"\xff\xfe{}", b"{}" * 3,
                  json.dumps({"resourceType": "Appointment", "participant": "x"}).encode(), b"\x00"]


@pytest.mark.parametrize("operation", sorted(BODY_SCHEMAS))
def test_no_body_makes_a_check_crash(live, operation):
    from sandbox.services.ers.context import OPERATIONS

    op = OPERATIONS[operation]
    path = STU3 + op.path.removeprefix("/STU3").replace("<ubrn>", "000000070000").replace("<appointment_id>", "70000")
    for body in HOSTILE_BODIES:
        for kind in ("application/fhir+json", "text/plain"):
            headers = ers_headers(op.allowed[0], **({"Content-Type": kind} if kind else {}), **{"If-Match": "x"})
            response = live.open(path, method=op.method, data=body, headers=headers)
            assert "sandbox-defect" not in findings(live, response), (operation, body[:20], kind)


def test_a_created_resource_is_found_in_a_compressed_answer_and_its_etag_is_the_version_to_send():
    """The live lifecycle's creates answer a new UBRN (compressed when large); a later change must name its ETag."""
    import gzip

    from sandbox.conformance.history import HistoryCheckSet
    from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse
    from sandbox.services.ers import behaviour

    created = json.dumps({"resourceType": "ReferralRequest", "id": "200000000001", "pad": "x" * 2000}).encode()
    create = Exchange("01", "s", "ers", "a011-create-referral", 1000.0, 5.0,
                      RecordedRequest("POST", CREATE, headers=[("Content-Type", "application/fhir+json")]),
                      RecordedResponse(201, [("ETag", 'W/"1"'), ("Content-Encoding", "gzip")], gzip.compress(created)))
    assert behaviour.created_resource(create) == "ReferralRequest/200000000001"
    assert "resource:ReferralRequest/200000000001" in set(behaviour.keys(create))

    class Past:  # the session's history as the behavioural checks ask for it
        def related(self, key: str, limit: int = 1):
            return [create] if key in set(behaviour.keys(create)) else []

    def change(if_match: str, status: int = 200) -> Exchange:
        return Exchange("02", "s", "ers", "a036-cancel-referral", 1010.0, 5.0,
                        RecordedRequest("POST", f"{STU3}/ReferralRequest/200000000001/$ers.cancelReferral",
                                        headers=[("If-Match", if_match)]), RecordedResponse(status))

    assert isinstance(behaviour.history, HistoryCheckSet)
    assert [f.outcome for f in behaviour.versions_are_current(change('W/"1"'), Past())] == ["pass"]
    assert [f.outcome for f in behaviour.versions_are_current(change('W/"0"'), Past())] == ["fail"]
    refused = list(behaviour.versions_are_current(change('W/"1"', status=409), Past()))
    assert [f.outcome for f in refused] == ["fail"] and "409" in refused[0].message


def test_every_requirement_id_the_e_rs_code_names_is_in_the_catalogue(live):
    import re

    from tests.conftest import ROOT

    sandbox = live.application.extensions["sandbox"]
    named = {(found, path.name) for path in (ROOT / "sandbox" / "services" / "ers").glob("*.py")
             for found in re.findall(r"ERS-[A-Z]+-[0-9]{3}", path.read_text())}
    missing = sorted(f"{req} ({where})" for req, where in named if req not in sandbox.requirements)
    assert len(named) > 40 and not missing, missing
    ours = [r for r in sandbox.requirements if r.service == "ers"]
    assert all(r.source and r.text.endswith((".", ")")) for r in ours), [r.id for r in ours if not r.text.endswith(
        (".", ")"))]
