"""Parity with the NHS's published e-RS sandbox (its BEHAVIOUR.md, sections 3-12) over its whole fixture set: every
example request against its answer, every URL lookup, every 403 text, every no-match answer, kinds H and J and the
CORS preflight; in SANDBOX_ERS_MODE=published with the published header sets, and the same scripted answers in the
default live mode. Expected bodies are the published fixtures themselves (an outside reference, via spec_path)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.ers_helpers import (
    BASE_URL_HEADER,
    COMMON,
    EVERY_FUNCTION,
    EXPOSE,
    FILE_COMPRESSED,
    FILE_SMALL,
    OBO_USER,
    PDF_FILE,
    R4,
    RC,
    RCA,
    REQUEST_ID,
    SPA,
    SPC,
    SPCA,
    STU3,
    body_json,
    ers_app,
    ers_headers,
    expected_names,
    mock,
    mock_json,
    names,
)

UBRN = "000000070000"
CORRELATION = "11C46F5F-CDEF-4865-94B2-0EE0EDCC26DA"
GZIP = {"Accept-Encoding": "gzip, deflate"}  # as the NHS suite's client sends
OBJECT_STORE_ID = "d497bbe3-f88b-45f1-b3d4-9c563e4c0f5f"
SANDBOX_ERROR_TEXT = ("This is a dummy error produced by sandbox environment. Please use example requests to get "
                      "success responses and make sure the e-RS Business Function provided in the header matches "
                      "business role specified in the example title")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The published sandbox exactly: its answers and its header sets (no X-Sandbox-* headers)."""
    with ers_app(tmp_path_factory.mktemp("ers-published"), ers_mode="published", response_headers="published") as app:
        yield app.test_client()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The default settings: live mode, the sandbox's own headers added."""
    with ers_app(tmp_path_factory.mktemp("ers-live")) as app:
        yield app.test_client()


# ---- every example request (section 9.2), written from BEHAVIOUR.md -------------------------------------------------

# (method, path below STU3, fixture folder, example request, answer, status, ETag, business function)
BODY_CASES = [
    *[("POST", "/ReferralRequest/$ers.fetchworklist", "retrieveWorklist", example, answer, 200, None, SPC)
      for example, answer in (("MinimalReferralsForReview", "ReferralsForReview"),
                              ("MinimalAppointmentSlotIssues", "AppointmentSlotIssues"),
                              ("FilteringBySpecialty", "FilteredBySpecialty"), ("FilteringByService", "FilteredByService"),
                              ("FilteringByClinician", "FilteredByClinician"),
                              ("MinimalRejectedTriageResponse", "RejectedTriageResponse"),
                              ("MinimalAssessmentReturnedCancelledDna", "AssessmentReturnedCancelledDna"),
                              ("MinimalAwaitingBooking", "AwaitingBooking"),
                              ("MinimalLettersOutstanding", "LettersOutstanding"))],
    *[("POST", "/HealthcareService/$ers.searchHealthcareServicesForPatient", "patientServiceSearch", example, answer,
       200, None, function)
      for example, answer, function in (
          ("RcMinimal", "FetchServiceListWithMultipleServices", RC), ("RcSearchByClinicalTerm", "EmptyResponse", RC),
          ("RcSearchByNamedClinician", "FetchServiceListWithSingleService", RC),
          ("RcSearchForAdviceService", "AdviceServiceSearch", RC),
          ("RcSearchWithCommissioningRuleOrganisation", "FetchServiceListWithMultipleServices", RC),
          ("RcaWithIWT", "FetchServiceListWithSingleService", RCA))],
    *[("POST", "/ReferralRequest/$ers.createReferral", "createReferral", example, answer, 201, 'W/"1"', function)
      for example, answer, function in (
          ("MinimalRequest", "ReferralRequest", RC), ("RequestTwentyServices", "ReferralRequestTwentyServices", RC),
          ("RequestMixedShortlist", "ReferralRequestMixedShortlist", RC),
          ("MinimalRequestWithReferringClinician", "ReferralRequest", RCA))],
    ("POST", "/ReferralRequest/$ers.createReferralAndSendForTriage", "createReferralAndSendForTriage", "Parameters",
     "ReferralRequest", 201, 'W/"1"', RC),
    ("POST", "/ReferralRequest/$ers.createReferralAndSendForTriage", "createReferralAndSendForTriage",
     "ParametersWithNamedClinician", "ReferralRequestWithNamedClinician", 201, 'W/"1"', RCA),
    ("POST", "/ReferralRequest/000000070000/$ers.maintainReferralLetter", "maintainReferralLetter",
     "SingleDocumentReference", "ReferralRequestWithSingleDocumentReference", 200, 'W/"5"', RC),
    ("POST", "/ReferralRequest/000000070001/$ers.maintainReferralLetter", "maintainReferralLetter",
     "MultipleDocumentReferences", "ReferralRequestWithMultipleDocumentReferences", 200, 'W/"5"', RC),
    ("POST", "/ReferralRequest/000000070001/$ers.maintainReferralLetter", "maintainReferralLetter",
     "UpdateClinicalInfo", "ReferralRequestWithUpdatedDocumentReferences", 200, 'W/"5"', RCA),
    ("POST", "/ReferralRequest/000000070000/$ers.rejectReferral", "rejectReferral", "BasicExampleIbs",
     "ExampleResponseIbs", 200, 'W/"10"', SPC),
    ("POST", "/ReferralRequest/000000070000/$ers.rejectReferral", "rejectReferral", "BasicExampleDbs",
     "ExampleResponseDbs", 200, 'W/"10"', SPCA),
    *[("POST", "/Appointment", "bookOrDeferAppointment", name, name, 201, 'W/"1"', RC)
      for name in ("MinimalBooking", "MinimalDeferral", "TriageDeferral", "BookingWithNamedClinician",
                   "DeferralWithSlotReference", "DeferralBookingAttemptProblem")],
    *[("POST", "/ReferralRequest/000000070000/$ers.cancelAppointmentActionLater", "cancelAppointmentActionLater",
       name, name, 200, 'W/"11"', SPC)
      for name in ("MinimalExampleDBS", "PriorityChangeAndWithAttachmentsDBS", "MinimalExampleIBS")],
    ("POST", "/CommunicationRequest/$ers.fetchworklist", "retrieveAdviceAndGuidanceWorklist",
     "MinimalAdviceAndGuidanceRequests", "AdviceAndGuidanceRequests", 200, None, SPA),
    *[("POST", "/CommunicationRequest/000000070000/$ers.sendCommunicationToRequester",
       "sendAdviceAndGuidanceResponse", name, name, 200, None, SPC)
      for name in ("RequireFurtherInformation", "ReturnToReferrerWithAdvice", "AttachmentIncluded")],
    *[("POST", "/ReferralRequest/$ers.createFromCommunicationRequestActionLater", "convertAdviceAndGuidanceToReferral",
       name, name, 201, None, SPC) for name in ("NoAttachments", "WithAttachments")],
    *[("POST", "/ReferralRequest/000000070000/$ers.recordReviewOutcome", "recordTriageOutcome", name, name, 200,
       'W/"10"', SPC) for name in ("ReturnToReferrerWithAdvice", "AcceptReferBookLater", "AttachmentIncluded")],
    *[("POST", "/ReferralRequest/000000070000/$ers.changeShortlist", "changeShortlist", name, name, 200, 'W/"3"', RC)
      for name in ("UnbookedReferral", "UnbookedReferralMultipleServices", "UnbookedReferralMixedShortlist",
                   "NonMixedShortlistWithDocument")],
    ("POST", "/ReferralRequest/000000070000/$ers.changeShortlistAndSendForTriage", "changeShortlistAndSendForTriage",
     "MinimalRequest", "MinimalRequest", 200, None, RC),
    ("PUT", "/Appointment/70000", "updateAppointment", "MinimalCancellationReasonOnlyCommentNotMandatory",
     "MinimalCancellationReasonOnlyCommentNotMandatory", 200, 'W/"5"', RC),
    ("PUT", "/Appointment/70000", "updateAppointment", "CancellationReasonAndMandatoryComment",
     "CancellationReasonAndMandatoryComment", 200, 'W/"5"', RCA),
    ("PUT", "/Appointment/70000", "updateAppointment", "CancellationReasonOnlyCommentMandatory",
     "CancellationReasonOnlyCommentMandatory", 422, 'W/"5"', RC),
    ("PUT", "/Appointment/70000", "updateAppointment", "CancellationInvalidReason", "CancellationInvalidReason", 422,
     'W/"5"', RC),
    *[("POST", "/ReferralRequest/000000070000/$ers.cancelReferral", "cancelReferral", example, answer, 200, None, RC)
      for example, answer in (
          ("IntendPrivateWithoutComment", "CancelledReferralIntendPrivateWithoutComment"),
          ("PatientRequestCancellationOther", "CancelledReferralPatientOther"),
          ("RaisedInError", "CancelledReferralRaisedInError"),
          ("ReferrerCancellation", "CancelledBookedReferralReferrerCancellation"),
          ("NoLongerRequired", "CancelledReferralWithCancelledBookingNoLongerRequired"),
          ("IntendPrivateWithComment", "CancelledReferralResolvedDeferralIntendPrivateWithComment"),
          ("bookedOutsideCabWithoutComment", "CancelledReferralBookedOutsideCabWithoutComment"),
          ("outpatientService", "CancelledReferralOutpatientService"))],
    *[("POST", "/CommunicationRequest/$ers.createAdviceAndGuidance", "createAdviceAndGuidance", name, name, 200, None,
       function) for name in ("ExampleRCAWithAttachments", "ExampleRCWithoutAttachments") for function in (RC, RCA)],
]


def _case_id(case) -> str:
    return f"{case[2]}-{case[3]}-{case[7]}"


def _send_example(client, case, content_type: str = "application/fhir+json", **extra):
    method, path, folder, example, _, _, _, function = case
    body = mock("stu3", folder, "requests", f"{example}.json").read_bytes()
    headers = ers_headers(function, **{"Content-Type": content_type, "X-Correlation-ID": CORRELATION, **GZIP, **extra})
    return client.open(f"{STU3}{path}", method=method, data=body, headers=headers)


def _assert_fixture_answer(response, fixture_path: tuple[str, ...], status: int, etag: str | None,
                           exact_headers: bool) -> None:
    assert response.status_code == status, response.get_data()[:300]
    assert body_json(response) == mock_json(*fixture_path)
    assert response.headers["content-type"] == "application/fhir+json"
    assert response.headers.get("etag") == etag
    assert response.headers["X-Correlation-ID"] == CORRELATION
    assert response.headers["X-Request-ID"] == REQUEST_ID
    if "content-length" in response.headers:
        assert int(response.headers["content-length"]) < 1024 and response.headers["vary"] == "origin"
        kind = FILE_SMALL
    else:
        assert response.headers["content-encoding"] == "gzip" and response.headers["transfer-encoding"] == "chunked"
        assert response.headers["vary"] == "origin,accept-encoding"
        kind = FILE_COMPRESSED
    if exact_headers:
        assert names(response) == expected_names(kind, etag=etag is not None, correlation=True)


def test_every_example_request_file_is_covered():
    """Each example request under mocks/stu3/*/requests/ (but the upload file) is one of the cases below."""
    root = mock("stu3")
    on_record = {(p.parent.parent.name, p.stem) for p in root.glob("*/requests/*.json")}
    assert on_record == {(case[2], case[3]) for case in BODY_CASES}
    assert len(on_record) == 63


@pytest.mark.parametrize("case", BODY_CASES, ids=_case_id)
def test_example_request_gets_its_answer_published(published, case):
    response = _send_example(published, case)
    _assert_fixture_answer(response, ("stu3", case[2], "responses", f"{case[4]}.json"), case[5], case[6], True)


@pytest.mark.parametrize("case", BODY_CASES, ids=_case_id)
def test_example_request_gets_its_answer_live(live, case):
    response = _send_example(live, case)
    _assert_fixture_answer(response, ("stu3", case[2], "responses", f"{case[4]}.json"), case[5], case[6], False)
    assert response.headers["X-Sandbox-Published"] == f"stu3/{case[2]}/responses/{case[4]}.json"
    assert response.headers["X-Sandbox-Exchange"]


def test_example_bodies_match_by_deep_equality_not_bytes(published):
    """Key order and number spelling do not matter (section 6); a changed value does."""
    case = next(c for c in BODY_CASES if c[3] == "MinimalRequest" and c[2] == "createReferral")
    body = mock_json("stu3", "createReferral", "requests", "MinimalRequest.json")
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=4).encode()
    headers = ers_headers(RC, **{"Content-Type": "application/json"})
    response = published.post(f"{STU3}{case[1]}", data=reordered, headers=headers)
    assert response.status_code == 201
    changed = json.loads(json.dumps(body).replace("9912003888", "9912003889"))
    assert published.post(f"{STU3}{case[1]}", json=changed, headers=headers).status_code == 422


def test_business_function_picks_the_example_list(published):
    """A010/A011/A021: exactly REFERRING_CLINICIAN uses the RC list; RCA or no header uses the other (section 6)."""
    body = mock("stu3", "createReferral", "requests", "MinimalRequestWithReferringClinician.json").read_bytes()
    path = f"{STU3}/ReferralRequest/$ers.createReferral"
    json_type = {"Content-Type": "application/fhir+json"}
    assert published.post(path, data=body, headers=ers_headers(RC, **json_type)).status_code == 422
    assert published.post(path, data=body, headers=ers_headers(None, **json_type)).status_code == 201
    minimal = mock("stu3", "createReferral", "requests", "MinimalRequest.json").read_bytes()
    assert published.post(path, data=minimal, headers=ers_headers(RCA, **json_type)).status_code == 422


# ---- URL lookups (section 9.1 and 9.3) ------------------------------------------------------------------------------

# (path and query, fixture path below mocks/, ETag, business function)
URL_CASES = [
    *[(f"{STU3}/CodeSystem/{code}", f"stu3/getCodeSystem/responses/{name}.json", None, RC) for code, name in (
        ("SPECIALTY", "SpecialtyCodeSystem"), ("CLINIC-TYPE", "ClinicTypeCodeSystem"),
        ("APPOINTMENT-CANCELLATION-REASON", "AppointmentCancellationReasonCodeSystem"),
        ("REFERRAL-CANCELLATION-REASON", "ReferralCancellationReasonCodeSystem"),
        ("APPOINTMENT-NON-ATTENDANCE-REASON", "AppointmentNonAttendanceReasonCodeSystem"),
        ("PRIORITY", "PriorityCodeSystem"))],
    *[(f"{STU3}/ReferralRequest/{ubrn}{suffix}", f"stu3/retrieveReferralRequest/responses/{name}.json", 'W/"5"', SPC)
      for ubrn, name in (("000000070000", "Unbooked"), ("000000070001", "BookedDBS"), ("000000070002", "BookedIBS"),
                         ("000000070003", "DeferredToProvider"), ("000000070004", "ConvertedFromAdviceAndGuidance"),
                         ("000000070005", "WithRelatedReferral"), ("000000070011", "WithAdditionalRequirements"),
                         ("000000070012", "WithUnavailableAttachments"))
      for suffix in ("", "/_history/5")],
    *[(f"{STU3}/CommunicationRequest/{ubrn}{suffix}", f"stu3/retrieveAdviceAndGuidanceRequest/responses/{name}.json",
       'W/"5"', RCA)
      for ubrn, name in (("000000070000", "MinimalExample"), ("000000070001", "WithAttachmentFileReference"),
                         ("000000070002", "WithUnavailableAttachments")) for suffix in ("", "/_history/5")],
    *[(f"{STU3}/Appointment/{appointment}{suffix}", f"stu3/retrieveAppointment/responses/{name}.json", 'W/"5"', SPCA)
      for appointment, name in (("70000", "BookedDBS"), ("70001", "BookedIBS"), ("70002", "AppointmentDeferral"),
                                ("70003", "TriageDeferral"), ("70004", "TriageResponse"), ("70005", "CAAL"),
                                ("70006", "Cancelled"), ("70007", "AandGConvertedToDBS"))
      for suffix in ("", "/_history/5")],
    *[(f"{STU3}/Slot?{query}&appointmentType=ROUTINE&status=free", f"stu3/retrieveAppointmentSlots/responses/{name}",
       None, RC) for query, name in (
        ("schedule.actor:HealthcareService=12000&_count=20&page=1", "Minimum.json"),
        ("schedule.actor:HealthcareService=12000&_count=20&page=1.0", "Minimum.json"),
        ("schedule.actor:HealthcareService=10000&_count=20&page=01", "NoSlots.json"),
        ("schedule.actor:HealthcareService=11000&_count=5&page=1", "Page1PageSize5.json"),
        ("schedule.actor:HealthcareService=11000&_count=5&page=2", "Page2PageSize5.json"),
        ("schedule.actor:HealthcareService=13000&_count=5&page=1", "Page1With2Schedules.json"),
        ("schedule.actor:HealthcareService=14000&schedule.actor:Practitioner=921600556514&_count=5&page=1",
         "SlotClinicianSearch.json"))],
    *[(f"{STU3}/Task?intent=proposal&status=ready&focus=ReferralRequest/{ubrn}/_history/6",
       f"stu3/availableActionsForUserList/{name}.json", None, SPC)
      for ubrn, name in (("000000070000", "Empty"), ("000000070001", "WithRecordReviewOutcome"),
                         ("000000070002", "WithCreateAppointment"), ("000000070003", "WithChangeShortlist"),
                         ("000000070004", "WithChangeShortlistAndSendForTriage"),
                         ("000000070005", "WithCancelReferral"), ("000000070006", "WithCancelDBAppointment"))],
    *[(f"{STU3}/Communication?based-on={quote(based_on, safe='')}",
       f"stu3/retrieveAdviceAndGuidanceConversation/{name}.json", etag, RC)
      for based_on, name, etag in (
          ("CommunicationRequest/000000070000/_history/1", "SingleMessageFromReferrer", 'W/"1"'),
          ("CommunicationRequest/000000070000/_history/2", "OneMessageEachWay", 'W/"2"'),
          ("CommunicationRequest/000000070001/_history/6", "AttachmentPresentInEachDirection", 'W/"6"'),
          ("CommunicationRequest/000000070002/_history/1", "MultiWayConversation", 'W/"6"'),
          ("CommunicationRequest/000000070003/_history/7", "AttachmentUploadedFromRCS", 'W/"7"'),
          ("CommunicationRequest/000000070004/_history/3", "UnavailableAttachments", 'W/"3"'))],
    (f"{R4}/PractitionerRole", "r4/retrieveBusinessFunctions/responses/PractitionerRoleBundle.json", None, None),
    (f"{R4}/PractitionerRole?user=anyone", "r4/retrieveBusinessFunctions/responses/PractitionerRoleBundle.json", None,
     SPA),
    (f"{R4}/Practitioner?_query=onBehalfOf", "r4/retrieveOboUsers/responses/PractitionerBundle.json", None, SPCA),
    *[(f"{R4}/HealthcareService/{service_id}", f"r4/getService/responses/{name}.json", 'W/"1"', RC)
      for service_id, name in (("1", "sampleServiceWithMinimumAttributes"), ("01", "sampleServiceWithMinimumAttributes"),
                               ("1.0", "sampleServiceWithMinimumAttributes"),
                               ("0x1", "sampleServiceWithMinimumAttributes"), ("2", "sampleServiceWithFullAttributes"))],
    *[(f"{R4}/HealthcareService?_id={ids}", f"r4/searchForServices/responses/{name}.json", None, RCA)
      for ids, name in (("1,2", "searchServiceWithMinmumalAttributes"), ("1%2C2", "searchServiceWithMinmumalAttributes"),
                        ("3,4", "searchServiceWithMaxAndMinAttributes"), ("5,6", "searchServiceWithEmptyResponse"))],
    *[(f"{R4}/ServiceRequest?identifier={quote(value, safe='')}", f"r4/searchServiceRequest/responses/{name}.json",
       None, SPC) for value, name in (
        ("https://fhir.nhs.uk/Id/ubr-number|000000070000", "ResponseExampleReferral"),
        ("https://fhir.nhs.uk/Id/ubr-number|000000070001", "ResponseExampleAdvice"),
        ("000000070002", "ResponseExampleReferralAndAdvice"),
        ("https://fhir.nhs.uk/Id/ubr-number|000000070003", "ResponseExampleEmpty"))],
]


@pytest.mark.parametrize("case", URL_CASES, ids=lambda c: c[0].removeprefix("/referrals/FHIR/"))
def test_url_lookup_gets_its_answer(published, case):
    url, fixture, etag, function = case
    response = published.get(url, headers=ers_headers(function, **{"X-Correlation-ID": CORRELATION}, **GZIP))
    _assert_fixture_answer(response, tuple(fixture.split("/")), 200, etag, True)


@pytest.mark.parametrize("case", URL_CASES, ids=lambda c: c[0].removeprefix("/referrals/FHIR/"))
def test_url_lookup_gets_its_answer_live(live, case):
    url, fixture, etag, function = case
    response = live.get(url, headers=ers_headers(function, **{"X-Correlation-ID": CORRELATION}, **GZIP))
    _assert_fixture_answer(response, tuple(fixture.split("/")), 200, etag, False)


def test_slots_page_five_is_the_published_400(published):
    response = published.get(f"{STU3}/Slot?schedule.actor:HealthcareService=11000&_count=5&page=5"
                             "&appointmentType=ROUTINE&status=free", headers=ers_headers(RC))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/fhir+json"
    assert body_json(response) == mock_json("stu3", "retrieveAppointmentSlots", "responses", "ErrorPage5.json")


def test_head_on_a_healthcare_service_is_get_without_body(published):
    """A037: HEAD answers as GET, headers and all, with no body and never compressed (section 7)."""
    get = published.get(f"{R4}/HealthcareService/2", headers=ers_headers(RC, **GZIP))
    head = published.head(f"{R4}/HealthcareService/2", headers=ers_headers(RC, **GZIP))
    assert head.status_code == 200 and head.get_data() == b""
    assert head.headers["etag"] == get.headers["etag"] == 'W/"1"'
    assert head.headers["vary"] == "origin,accept-encoding" and "content-encoding" not in head.headers
    assert int(head.headers["content-length"]) == len(body_json_bytes(get))
    small = published.head(f"{R4}/HealthcareService/1", headers=ers_headers(RC, **GZIP))
    assert small.headers["vary"] == "origin" and int(small.headers["content-length"]) < 1024
    missing = published.head(f"{R4}/HealthcareService/3", headers=ers_headers(RC))
    assert missing.status_code == 404 and missing.get_data() == b""
    assert missing.headers["content-type"] == "text/plain; charset=utf-8" and missing.headers["content-length"] == "10"


def body_json_bytes(response) -> bytes:
    import gzip

    return gzip.decompress(response.get_data())


# ---- PDFs (kind D) ----------------------------------------------------------------------------------------------------

PDF_CASES = [
    ("GET", f"{STU3}/Binary/att-70000-70001", "example_attachment.pdf"),
    ("GET", f"{STU3}/Binary/att-", "example_attachment.pdf"),
    ("GET", f"{STU3}/Binary/4b1a2e5c-9D3f-4a7b-8c2d-1e2f3a4b5c6d", "example_attachment.pdf"),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.generateCRI",
     "000000070000_Clinical_Information_Summary_20210706114852.pdf"),
    ("POST", f"{STU3}/ReferralRequest/000000099999/$ers.generatePatientLetter",
     "000000070000_Appointment_Confirmation_Summary_20210603121353.pdf"),
    ("POST", f"{STU3}/CommunicationRequest/{UBRN}/$ers.generateCRI",
     "000049146177_Advice_And_Guidance_20220610143044.pdf"),
]


@pytest.mark.parametrize("mode", ["published", "live"])
@pytest.mark.parametrize("case", PDF_CASES, ids=lambda c: c[1].rsplit("/", 2)[-2])
def test_pdf_answers(request, mode, case):
    method, url, file_name = case
    response = request.getfixturevalue(mode).open(url, method=method, headers=ers_headers(RC, **GZIP))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == f"attachment; filename={file_name}"
    assert response.get_data().startswith(b"%PDF-") and b"%%EOF" in response.get_data()[-32:]
    assert "content-encoding" not in response.headers  # PDFs are never compressed
    assert int(response.headers["content-length"]) == len(response.get_data())
    assert {n for n in names(response) if not n.startswith("x-sandbox-")} == PDF_FILE


def test_pdf_routes_accept_any_text_body(published):
    """A007/A019/A043 ignore the body once it is readable (section 3)."""
    response = published.post(f"{STU3}/ReferralRequest/{UBRN}/$ers.generateCRI", data="anything",
                              headers=ers_headers(SPC, **{"Content-Type": "text/plain"}))
    assert response.status_code == 200 and response.get_data().startswith(b"%PDF-")


def test_a042_redirects_to_the_object_store_and_it_serves_the_pdf(published):
    base = "http://127.0.0.1:9100"
    response = published.get(f"{R4}/Binary/att-1", headers=ers_headers(RC, **{BASE_URL_HEADER: base}))
    assert response.status_code == 307
    assert response.headers["Location"] == f"{base}/ObjectStore/{OBJECT_STORE_ID}"
    assert response.get_data() == b"" and response.headers["content-length"] == "0"
    assert "content-type" not in response.headers
    assert names(response) == COMMON | {"location", "content-length"}
    stored = published.get(f"/referrals/ObjectStore/{OBJECT_STORE_ID}", headers={"X-Correlation-ID": CORRELATION})
    assert stored.status_code == 200 and stored.get_data().startswith(b"%PDF-")
    assert stored.headers["content-disposition"] == ("attachment; filename=\"=?UTF-8?Q?The_filenam=C3=A9.pdf?=\"; "
                                                     "filename*=UTF-8''The%20filenam%C3%A9.pdf")
    assert "x-request-id" not in names(stored)  # paths with /ObjectStore never carry it
    assert stored.headers["X-Correlation-ID"] == CORRELATION
    assert names(stored) == (PDF_FILE - {"x-request-id"}) | {"x-correlation-id"}


def test_a042_without_the_base_url_header(published, live):
    """Published: the text 'undefined' (its proxy always sets the header); live: the sandbox's own address."""
    response = published.get(f"{R4}/Binary/4b1a2e5c-9d3f-4a7b-8c2d-1e2f3a4b5c6d", headers=ers_headers(RC))
    assert response.headers["Location"] == f"undefined/ObjectStore/{OBJECT_STORE_ID}"
    response = live.get(f"{R4}/Binary/4b1a2e5c-9d3f-4a7b-8c2d-1e2f3a4b5c6d", headers=ers_headers(RC))
    assert response.status_code == 307
    assert response.headers["Location"].endswith(f"/referrals/ObjectStore/{OBJECT_STORE_ID}")
    assert response.headers["Location"].startswith("http")


# ---- no-match answers (section 8) ------------------------------------------------------------------------------------

SANDBOX_ERROR = ("B", "stu3")
R4_ERROR = ("B", "r4")
# (method, url, JSON body or None, business function, status, kind)
NO_MATCH_CASES = [
    ("GET", f"{STU3}/ReferralRequest/000000070099", None, RC, 422, SANDBOX_ERROR),
    ("GET", f"{STU3}/ReferralRequest/{UBRN}/_history/4", None, RC, 422, SANDBOX_ERROR),
    ("GET", f"{STU3}/ReferralRequest/$ers.createReferral", None, RC, 422, SANDBOX_ERROR),  # a UBRN, not a route
    ("GET", f"{STU3}/CommunicationRequest/000000070003", None, RC, 422, SANDBOX_ERROR),
    ("GET", f"{STU3}/Appointment/70008", None, RC, 422, SANDBOX_ERROR),
    ("GET", f"{STU3}/Appointment/70000/_history/1", None, RC, 422, SANDBOX_ERROR),
    ("GET", f"{STU3}/Binary/not-an-attachment", None, RC, 422, SANDBOX_ERROR),
    ("GET", f"{STU3}/Binary/4b1a2e5c-9d3f-3a7b-8c2d-1e2f3a4b5c6d", None, RC, 422, SANDBOX_ERROR),  # not version 4
    ("POST", f"{STU3}/ReferralRequest/000000070001/$ers.acceptReferral", {}, SPC, 422, SANDBOX_ERROR),
    ("GET", f"{STU3}/Slot?schedule.actor:HealthcareService=12000&_count=20&appointmentType=ROUTINE&status=free", None,
     RC, 400, SANDBOX_ERROR),
    ("GET", f"{STU3}/Slot?schedule.actor:HealthcareService=11000&_count=5&page=01&appointmentType=ROUTINE&status=free",
     None, RC, 400, SANDBOX_ERROR),
    ("GET", f"{STU3}/Slot?schedule.actor:HealthcareService=12000&_count=20&page=1&appointmentType=URGENT&status=free",
     None, RC, 400, SANDBOX_ERROR),
    ("GET", f"{STU3}/Task?intent=proposal&status=ready&focus=ReferralRequest/{UBRN}/_history/5", None, SPC, 400,
     SANDBOX_ERROR),
    ("GET", f"{STU3}/Communication?based-on=CommunicationRequest/{UBRN}/_history/3", None, SPC, 400, SANDBOX_ERROR),
    ("GET", f"{STU3}/Communication", None, SPC, 400, SANDBOX_ERROR),
    ("GET", f"{R4}/Practitioner?_query=other", None, SPCA, 400, R4_ERROR),
    ("GET", f"{R4}/Practitioner", None, RC, 400, R4_ERROR),  # _query first, even for a wrong business function
    ("GET", f"{R4}/ServiceRequest?identifier=000000070004", None, RC, 400, R4_ERROR),
    ("GET", f"{R4}/ServiceRequest?identifier={UBRN}&identifier={UBRN}", None, RC, 400, R4_ERROR),
    ("GET", f"{R4}/Binary/nope", None, RC, 400, R4_ERROR),
    ("GET", f"{STU3}/CodeSystem/specialty", None, RC, 404, ("F",)),
    ("GET", f"{R4}/HealthcareService/3", None, RC, 404, ("C",)),
    ("GET", f"{R4}/HealthcareService/abc", None, RC, 404, ("C",)),
    ("GET", f"{R4}/HealthcareService?_id=2,1", None, RC, 404, ("C",)),
    ("GET", f"{R4}/HealthcareService?_id=1&_id=2", None, RC, 404, ("C",)),
    ("GET", f"{R4}/HealthcareService", None, RC, 404, ("C",)),
    ("POST", f"{STU3}/ReferralRequest/000000070099/$ers.maintainReferralLetter", {}, RC, 500, ("H",)),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.maintainReferralLetter", {}, RC, 422, SANDBOX_ERROR),
    ("PUT", f"{STU3}/Appointment/70000", {"resourceType": "Appointment"}, RC, 500, ("H",)),
    ("GET", f"{R4}/ServiceRequest", None, RC, 500, ("H",)),
    ("GET", f"{STU3}/ReferralRequest/constructor", None, RC, 500, ("H",)),
    ("GET", f"{STU3}/CommunicationRequest/toString", None, RC, 500, ("H",)),
    ("GET", f"/referrals/ObjectStore/{UBRN}", None, None, 500, ("H",)),
    *[("POST", f"{STU3}{path}", {"resourceType": "Parameters"}, function, 422, SANDBOX_ERROR)
      for path, function in (
          ("/ReferralRequest/$ers.fetchworklist", SPC),
          ("/HealthcareService/$ers.searchHealthcareServicesForPatient", RC),
          ("/ReferralRequest/$ers.createReferral", RC), ("/ReferralRequest/$ers.createReferralAndSendForTriage", RC),
          (f"/ReferralRequest/{UBRN}/$ers.rejectReferral", SPC), ("/Appointment", RC),
          (f"/ReferralRequest/{UBRN}/$ers.cancelAppointmentActionLater", SPC),
          ("/CommunicationRequest/$ers.fetchworklist", SPC),
          (f"/CommunicationRequest/{UBRN}/$ers.sendCommunicationToRequester", SPC),
          ("/ReferralRequest/$ers.createFromCommunicationRequestActionLater", SPC),
          (f"/ReferralRequest/{UBRN}/$ers.recordReviewOutcome", SPC), (f"/ReferralRequest/{UBRN}/$ers.changeShortlist", RC),
          (f"/ReferralRequest/{UBRN}/$ers.changeShortlistAndSendForTriage", RC),
          (f"/ReferralRequest/{UBRN}/$ers.cancelReferral", RC), ("/CommunicationRequest/$ers.createAdviceAndGuidance", RC))],
]


@pytest.mark.parametrize("case", NO_MATCH_CASES, ids=lambda c: f"{c[0]}-{c[1].removeprefix('/referrals/')}-{c[4]}")
def test_no_match_answers(published, case):
    method, url, body, function, status, kind = case
    headers = ers_headers(function, **{"X-Correlation-ID": CORRELATION})
    response = published.open(url, method=method, json=body, headers=headers) if body is not None else \
        published.open(url, method=method, headers=headers)
    assert response.status_code == status, response.get_data()[:300]
    assert_kind(response, kind)


def assert_kind(response, kind: tuple[str, ...]) -> None:
    """The body and headers of a no-match or failure answer (section 7's kinds B, C, F, H)."""
    if kind[0] == "B":
        fixture = ("r4", "R4-SandboxErrorOutcome.json") if kind[1] == "r4" else ("stu3", "STU3-SandboxErrorOutcome.json")
        assert response.get_json() == mock_json(*fixture)
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert response.headers["etag"] == ('"7281b608a22ee6057ca2c6d9f9be2a3ec354bb79"' if kind[1] == "r4"
                                            else '"a721006cf29b27b9b347053dd73866358ca40b5e"')
        assert names(response) == expected_names(FILE_SMALL, etag=True, correlation=True)
    elif kind[0] == "C":
        assert response.get_data() == mock("NotFoundOutcome.txt").read_bytes()
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["etag"] == '"0c15d12755a0be84e6403445c427231c274919c6"'
        assert names(response) == expected_names(FILE_SMALL, etag=True, correlation=True)
    elif kind[0] == "F":
        assert response.get_data() == b"" and response.headers["content-length"] == "0"
        assert names(response) == expected_names(COMMON | {"content-length"}, correlation=True)
    elif kind[0] == "H":
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert response.get_json()["statusCode"] == response.status_code
        assert "x-request-id" not in names(response) and "x-correlation-id" not in names(response)
        if response.status_code == 500:
            assert response.get_json() == {"statusCode": 500, "error": "Internal Server Error",
                                           "message": "An internal server error occurred"}


def test_head_on_a041_is_the_error_without_body(published):
    response = published.head(f"{R4}/ServiceRequest?identifier={UBRN}", headers=ers_headers(RC))
    assert response.status_code == 400 and response.get_data() == b""
    assert response.headers["etag"] == '"7281b608a22ee6057ca2c6d9f9be2a3ec354bb79"'


def test_upload_is_created_without_storing(published):
    """A020 (kind G): a body and both file headers: 201 with the published Location; missing one: 422."""
    data = mock("stu3", "uploadFileToDocumentStore", "requests", "upload.txt").read_bytes()
    headers = ers_headers(RC, **{"Content-Type": "text/plain", "NHSD-eRS-File-Name": "upload.txt",
                                 "NHSD-eRS-Referral-ID": UBRN})
    response = published.post(f"{STU3}/Binary", data=data, headers=headers)
    assert response.status_code == 201 and response.get_data() == b""
    assert response.headers["Location"] == "Binary/19eb7224-dff3-4730-a5cb-67eac811f1a5"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-length"] == "0"
    assert names(response) == COMMON | {"content-type", "content-length", "location"}
    del headers["NHSD-eRS-File-Name"]
    response = published.post(f"{STU3}/Binary", data=data, headers=headers)
    assert response.status_code == 422
    assert response.get_json() == mock_json("stu3", "STU3-SandboxErrorOutcome.json")
    response = published.post(f"{STU3}/Binary", data=b"", headers={**headers, "NHSD-eRS-File-Name": "upload.txt"})
    assert response.status_code == 422  # no body
    response = published.post(f"{STU3}/Binary", data=data, headers={**headers, "Content-Type": "application/zip"})
    assert response.status_code == 415  # not one of the types A020 takes (the body checks)


def test_bodies_the_published_sandbox_crashes_on(published):
    """A text body that is not JSON, or a JSON string, on a route that matches bodies: 500 (kind H)."""
    url = f"{STU3}/ReferralRequest/$ers.createReferral"
    text = published.post(url, data="not json", headers=ers_headers(RC, **{"Content-Type": "text/plain"}))
    assert text.status_code == 500
    assert_kind(text, ("H",))
    string = published.post(url, data='"x"', headers=ers_headers(RC, **{"Content-Type": "application/json"}))
    assert string.status_code == 500
    assert_kind(string, ("H",))


def test_bodies_that_never_match(published):
    """Arrays, numbers, null, form data, octets and no body: the route's no-match answer."""
    url = f"{STU3}/ReferralRequest/$ers.createReferral"
    for data, content_type in (("[1]", "application/json"), ("3", "application/json"), ("null", "application/json"),
                               ("a=b", "application/x-www-form-urlencoded"), ("xyz", "application/octet-stream"),
                               ("", "application/json")):
        response = published.post(url, data=data, headers=ers_headers(RC, **{"Content-Type": content_type}))
        assert response.status_code == 422, (data, content_type)
        assert response.get_json() == mock_json("stu3", "STU3-SandboxErrorOutcome.json")


# ---- section 4: business functions (checks.py) ------------------------------------------------------------------------

EVERY = (RC, RCA, SPC, SPCA)
# (method, url, allowed business functions in the 403's order), written from section 8.
ALLOWED = [
    ("GET", f"{STU3}/CodeSystem/SPECIALTY", EVERY), ("GET", f"{STU3}/ReferralRequest/{UBRN}", EVERY),
    ("GET", f"{STU3}/ReferralRequest/{UBRN}/_history/5", EVERY), ("GET", f"{STU3}/Binary/att-1", EVERY),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.generateCRI", EVERY),
    ("POST", f"{STU3}/ReferralRequest/$ers.fetchworklist", (SPC, SPA, SPCA, RC, RCA, "REFERRING_ADMIN")),
    ("POST", f"{STU3}/HealthcareService/$ers.searchHealthcareServicesForPatient", (RC, RCA)),
    ("POST", f"{STU3}/ReferralRequest/$ers.createReferral", (RC, RCA)),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.maintainReferralLetter", (RC, RCA)),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.acceptReferral", (SPC, SPCA)),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.rejectReferral", (SPC, SPCA)),
    ("GET", f"{STU3}/Slot", (RC, RCA)), ("POST", f"{STU3}/Appointment", (RC, RCA)),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.generatePatientLetter", (RC, RCA)),
    ("POST", f"{STU3}/ReferralRequest/$ers.createReferralAndSendForTriage", (RC, RCA)),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.cancelAppointmentActionLater", (SPC, SPCA)),
    ("POST", f"{STU3}/CommunicationRequest/$ers.fetchworklist", (SPC, SPA, SPCA)),
    ("GET", f"{STU3}/CommunicationRequest/{UBRN}", EVERY), ("GET", f"{STU3}/Communication", EVERY),
    ("POST", f"{STU3}/CommunicationRequest/{UBRN}/$ers.sendCommunicationToRequester", (SPC, SPCA)),
    ("POST", f"{STU3}/ReferralRequest/$ers.createFromCommunicationRequestActionLater", (SPC, SPCA)),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.recordReviewOutcome", (SPC, SPCA)),
    ("GET", f"{STU3}/Task", (SPC, SPCA, RC, RCA)),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.changeShortlist", (RC, RCA)),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.changeShortlistAndSendForTriage", (RC, RCA)),
    ("PUT", f"{STU3}/Appointment/70000", (RC, RCA)),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}/$ers.cancelReferral", EVERY),
    ("GET", f"{STU3}/Appointment/70000", EVERY), ("GET", f"{STU3}/Appointment/70000/_history/5", EVERY),
    ("POST", f"{STU3}/CommunicationRequest/{UBRN}/$ers.generateCRI", EVERY),
    ("POST", f"{STU3}/CommunicationRequest/$ers.createAdviceAndGuidance", (RC, RCA)),
    ("GET", f"{R4}/HealthcareService/1", (RC, RCA)), ("HEAD", f"{R4}/HealthcareService/1", (RC, RCA)),
    ("GET", f"{R4}/HealthcareService?_id=1,2", (RC, RCA)), ("GET", f"{R4}/ServiceRequest", EVERY),
    ("GET", f"{R4}/Binary/att-1", EVERY),
]
NOT_ALLOWED = "SANDBOX_ERROR: This endpoint cannot be accessed using the e-RS Business Function provided. Allowed values: "
SPCA_WITHOUT_OBO = ("SANDBOX_ERROR: When this endpoint is accessed using the e-RS SERVICE_PROVIDER_CLINICIAN_ADMIN "
                    "Business Function then an On-Behalf-Of User ID must be provided")
OBO_NOT_SPCA = ("SANDBOX_ERROR: An On-Behalf-Of User ID must only be provided if this endpoint is accessed using the "
                "e-RS SERVICE_PROVIDER_CLINICIAN_ADMIN Business Function")


def _forbidden_cases():
    for method, url, allowed in ALLOWED:
        for function in (*EVERY_FUNCTION, "referring_clinician"):
            if function not in allowed:
                yield method, url, function, NOT_ALLOWED + ",".join(allowed)
        if SPCA in allowed:
            yield method, url, SPCA + ":no-obo", SPCA_WITHOUT_OBO
        other = next(f for f in allowed if f != SPCA)
        yield method, url, other + ":obo", OBO_NOT_SPCA
    yield "GET", f"{R4}/Practitioner?_query=onBehalfOf", RC, NOT_ALLOWED + SPCA
    yield "GET", f"{R4}/Practitioner?_query=onBehalfOf", "", NOT_ALLOWED + SPCA


@pytest.mark.parametrize("case", list(_forbidden_cases()), ids=lambda c: f"{c[0]}-{c[1].split('FHIR/')[1]}-{c[2]}")
def test_business_function_refusals(published, case):
    method, url, function, text = case
    name, _, variant = function.partition(":")
    headers = {"NHSD-eRS-Business-Function": name, "X-Correlation-ID": CORRELATION}
    if variant == "obo":
        headers["NHSD-eRS-On-Behalf-Of-User-ID"] = OBO_USER
    response = published.open(url, method=method, headers=headers)
    assert response.status_code == 403
    assert response.get_data() == (b"" if method == "HEAD" else text.encode())
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert names(response) == COMMON | {"content-type", "content-length", "x-correlation-id"}


def test_no_business_function_means_no_check(published):
    """An absent or empty business function header skips the check, on-behalf-of included (section 4.1)."""
    response = published.get(f"{STU3}/ReferralRequest/{UBRN}", headers={"NHSD-eRS-On-Behalf-Of-User-ID": OBO_USER})
    assert response.status_code == 200
    response = published.get(f"{STU3}/ReferralRequest/{UBRN}", headers={"NHSD-eRS-Business-Function": ""})
    assert response.status_code == 200


def test_business_functions_list_has_no_check(published):
    """A030 answers whatever the headers (section 9.3)."""
    for function in ("nobody", SPCA, ""):
        response = published.get(f"{R4}/PractitionerRole", headers={"NHSD-eRS-Business-Function": function})
        assert response.status_code == 200


# ---- kinds H and J, preflight ----------------------------------------------------------------------------------------

def test_framework_errors(published):
    """Kind H: bad JSON 400, unsupported type 415, over 1 MiB 413 (checks.py); no request ids."""
    url = f"{STU3}/ReferralRequest/$ers.createReferral"
    headers = ers_headers(RC, **{"X-Correlation-ID": CORRELATION})
    cases = (({"Content-Type": "application/json"}, b"{nope", 400, "Bad Request", "Invalid request payload JSON format"),
             ({"Content-Type": "application/xml"}, b"<a/>", 415, "Unsupported Media Type", "Unsupported Media Type"),
             ({"Content-Type": "application/json"}, b" " * (1024 * 1024 + 1), 413, "Request Entity Too Large",
              "Payload content length greater than maximum allowed: 1048576"))
    for extra, data, status, error, message in cases:
        response = published.post(url, data=data, headers={**headers, **extra})
        assert response.status_code == status
        assert response.get_json() == {"statusCode": status, "error": error, "message": message}
        assert_kind(response, ("H",))


@pytest.mark.parametrize("method,url", [
    ("DELETE", f"{STU3}/ReferralRequest/{UBRN}"), ("PATCH", f"{STU3}/Appointment/70000"),
    ("POST", f"{STU3}/ReferralRequest/{UBRN}"), ("HEAD", f"{STU3}/Appointment"), ("GET", f"{STU3}/Appointment"),
    ("GET", f"{R4}/HealthcareService/1/_history/1"), ("GET", f"{STU3}/Slot/"), ("GET", "/referrals/FHIR/STU3"),
    ("GET", "/referrals/nothing/here"), ("PUT", "/referrals"), ("GET", "/referrals//_ping"),
    ("GET", f"{STU3}//ReferralRequest/{UBRN}")])
def test_catch_all(published, method, url):
    response = published.open(url, method=method, headers={"X-Correlation-ID": CORRELATION})
    assert response.status_code == 404
    if method != "HEAD":
        assert response.get_data() == b'{"error":"File not found"}'
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["content-length"] == "26"
    assert names(response) == COMMON | {"content-type", "content-length", "x-correlation-id"}


def test_percent_encoded_paths_route_as_decoded(published):
    body = mock("stu3", "createReferral", "requests", "MinimalRequest.json").read_bytes()
    response = published.post(f"{STU3}/ReferralRequest/%24ers.createReferral", data=body,
                              headers=ers_headers(RC, **{"Content-Type": "application/fhir+json"}))
    assert response.status_code == 201
    assert published.get(f"{STU3}/ReferralRequest/%30%30000007000%30", headers=ers_headers(RC)).status_code == 200


def test_cors_preflight(published):
    origin = "https://supplier.example"
    response = published.options(f"{STU3}/ReferralRequest/{UBRN}", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "nhsd-ers-business-function, x-correlation-id"})
    assert response.status_code == 200 and response.get_data() == b""
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-methods"] == "GET"
    assert response.headers["access-control-allow-headers"].startswith("origin,x-requested-with,x-correlation-id")
    assert response.headers["access-control-max-age"] == "3628800"
    assert response.headers["access-control-expose-headers"] == EXPOSE
    assert response.headers["X-Request-ID"] == REQUEST_ID and response.headers["content-length"] == "0"
    refused = published.options("/referrals/anything", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-custom"})
    assert refused.status_code == 200
    assert refused.get_json() == {"message": "CORS error: Some headers are not allowed"}
    assert "access-control-allow-origin" not in refused.headers
    missing = published.options(f"{STU3}/Slot")
    assert missing.status_code == 404
    assert missing.get_json() == {"statusCode": 404, "error": "Not Found",
                                  "message": "CORS error: Missing Access-Control-Request-Method header"}
    assert "x-request-id" not in names(missing) and "vary" not in names(missing)


def test_origin_is_allowed_on_every_kind(published):
    origin = "https://supplier.example"
    for url in (f"{STU3}/ReferralRequest/{UBRN}", f"{STU3}/ReferralRequest/1", "/referrals/x"):
        response = published.get(url, headers={"Origin": origin})
        assert response.headers["access-control-allow-origin"] == origin


def test_ping_and_status(published):
    ping = published.get("/referrals/_ping")
    assert ping.status_code == 200 and ping.get_data() == b"{status: 200}"
    assert ping.headers["content-type"] == "text/html; charset=utf-8" and ping.headers["accept-ranges"] == "bytes"
    status = published.get("/referrals/_status")
    assert status.status_code == 200 and status.get_data() == b"" and status.headers["content-length"] == "0"


# ---- header spelling and the sandbox's own headers (section 12) ------------------------------------------------------

def test_header_names_are_spelled_as_the_published_sandbox_sends_them(published):
    response = published.get(f"{STU3}/ReferralRequest/{UBRN}", headers=ers_headers(RC, **GZIP))
    sent = [name for name, _ in response.headers.items()]
    for spelled in ("Date", "last-modified", "Keep-Alive", "content-type", "etag", "X-Request-ID", "vary",
                    "cache-control", "accept-ranges", "content-encoding", "Connection", "Transfer-Encoding"):
        assert spelled in sent, spelled
    assert not any(name.lower().startswith("x-sandbox") for name in sent)


def test_live_mode_adds_the_sandbox_headers_and_keeps_the_published_ones(live):
    response = live.get(f"{STU3}/ReferralRequest/{UBRN}", headers=ers_headers(RC))
    assert names(response) - {"x-sandbox-exchange", "x-sandbox-findings", "x-sandbox-published"} == \
        expected_names(FILE_COMPRESSED - {"content-encoding", "transfer-encoding"} | {"content-length"}, etag=True)
    assert response.headers["X-Sandbox-Published"] == "stu3/retrieveReferralRequest/responses/Unbooked.json"


def test_published_headers_mode_still_journals_the_exchange(published):
    response = published.get(f"{STU3}/ReferralRequest/000000070001", headers=ers_headers(RC, **GZIP))
    assert response.headers["content-encoding"] == "gzip"
    listed = published.get("/_sandbox/exchanges?service=ers&limit=1").get_json()["exchanges"][0]
    exchange = published.get(f"/_sandbox/exchanges/{listed['id']}").get_json()
    assert exchange["request"]["path"] == f"{STU3}/ReferralRequest/000000070001"
    assert json.loads(exchange["response"]["body"]) == mock_json("stu3", "retrieveReferralRequest", "responses",
                                                                 "BookedDBS.json")


def test_fixture_data_is_ours_not_the_files():
    """The published answers are kept as our own YAML (bodies and example digests), never as the fixture files."""
    data = Path(__file__).resolve().parent.parent / "sandbox" / "services" / "ers" / "published"
    assert data.is_dir()
    assert not list(data.rglob("*.json")) and not list(data.rglob("*.pdf"))
    assert list(data.rglob("*.yaml"))
