"""The NHS's published e-RS sandbox, answer by answer (BEHAVIOUR.md sections 8-9): which requests it answers with
which example, and what each route answers when nothing matches. Stateless: the answer depends only on the request.

The answers' JSON is our own transcription, one YAML file per fixture folder under `published/` (`answers`: name ->
fixture path and body). Example request bodies are kept only as digests of their canonical JSON (`examples`: name ->
SHA-256), equal exactly when section 6's deep equality holds, so a body is matched by its digest."""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from sandbox.conformance.parsing import json_digest
from sandbox.services.ers import errors
from sandbox.services.ers.context import FILE_NAME, RC, REFERRAL_ID, SANDBOX_BASE_URL, SPCA, Answer, ErsCall
from sandbox.services.ers.documents import pdf

DATA = Path(__file__).parent / "published"
FHIR_JSON = "application/fhir+json"
JSON_UTF8 = "application/json; charset=utf-8"
PDF = "application/pdf"
STU3_ERROR_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/eRS-APIErrorCode-1"
R4_ERROR_SYSTEM = "https://fhir.nhs.uk/CodeSystem/NHSD-API-ErrorOrWarningCode"
SANDBOX_ERROR_TEXT = ("This is a dummy error produced by sandbox environment. Please use example requests to get "
                      "success responses and make sure the e-RS Business Function provided in the header matches "
                      "business role specified in the example title")
# The strong ETags the published sandbox sends with its error and not-found files (the SHA-1 of each file).
STU3_ERROR_ETAG = '"a721006cf29b27b9b347053dd73866358ca40b5e"'
R4_ERROR_ETAG = '"7281b608a22ee6057ca2c6d9f9be2a3ec354bb79"'
NOT_FOUND_ETAG = '"0c15d12755a0be84e6403445c427231c274919c6"'
INTERNAL_ERROR = "An internal server error occurred"
OBJECT_STORE_FILE = "d497bbe3-f88b-45f1-b3d4-9c563e4c0f5f"
UPLOADED_LOCATION = "Binary/19eb7224-dff3-4730-a5cb-67eac811f1a5"
# Names every JavaScript object has: the published sandbox looks UBRNs up in a plain object, so these crash it.
JS_OBJECT_MEMBERS = frozenset({
    "constructor", "toString", "toLocaleString", "valueOf", "hasOwnProperty", "isPrototypeOf",
    "propertyIsEnumerable", "__proto__", "__defineGetter__", "__defineSetter__", "__lookupGetter__",
    "__lookupSetter__"})
_V4_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE)
_JS_DECIMAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$", re.IGNORECASE)
_JS_PREFIXED = {"0x": (16, re.compile(r"^[0-9a-f]+$", re.I)), "0o": (8, re.compile(r"^[0-7]+$")),
                "0b": (2, re.compile(r"^[01]+$"))}


# ---- the data ---------------------------------------------------------------------------------------------------

@functools.cache
def folder(name: str) -> dict[str, Any]:
    """One fixture folder's transcription (e.g. "stu3/createReferral"): its answers and example digests."""
    with open(DATA / f"{name}.yaml", encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def fixture(folder_name: str, name: str, status: int = 200, etag: str | None = None) -> Answer:
    """A published JSON answer (kind A), a fresh copy each time (callers may change it)."""
    entry = folder(folder_name)["answers"][name]
    return Answer(status, json.loads(json.dumps(entry["body"])), content_type=FHIR_JSON, etag=etag,
                  published=entry["fixture"])


def matching_example(call: ErsCall, folder_name: str, names: tuple[str, ...]) -> str | None:
    """The first of the named examples the request body equals (only a JSON object body can)."""
    if not isinstance(call.body, dict):
        return None
    examples = folder(folder_name)["examples"]
    sent = json_digest(call.body)
    return next((name for name in names if examples[name] == sent), None)


# ---- the no-match answers ---------------------------------------------------------------------------------------

def sandbox_error(status: int, r4: bool) -> Answer:
    """The published sandbox's 'no example matched' answer (kind B)."""
    coding = {"system": R4_ERROR_SYSTEM if r4 else STU3_ERROR_SYSTEM, "code": "SANDBOX_ERROR",
              "display": "Sandbox error"}
    issue = {"severity": "error", "code": "invalid", "details": {"coding": [coding]}, "diagnostics": SANDBOX_ERROR_TEXT}
    body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": [issue]}
    if not r4:
        body = {"meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/eRS-OperationOutcome-1"]}, **body}
    return Answer(status, body, content_type=JSON_UTF8, etag=R4_ERROR_ETAG if r4 else STU3_ERROR_ETAG,
                  published="r4/R4-SandboxErrorOutcome.json" if r4 else "stu3/STU3-SandboxErrorOutcome.json")


def not_found_text() -> Answer:
    """The R4 HealthcareService 404 (kind C): the text 'Not Found'."""
    return Answer(404, b"Not Found\n", content_type="text/plain; charset=utf-8", etag=NOT_FOUND_ETAG,
                  published="NotFoundOutcome.txt")


def empty(status: int) -> Answer:
    """An answer with no body and no content type (kind F)."""
    return Answer(status, None)


def internal_error() -> errors.SpineError:
    """The published sandbox crashing on a request (kind H 500)."""
    return errors.framework_error(500, INTERNAL_ERROR)


# ---- PDFs ---------------------------------------------------------------------------------------------------------

def document(fixture_path: str, title: str, lines: list[str], disposition: str | None = None) -> Answer:
    """A PDF answer in place of a published PDF: ours, with the published file name (kind D)."""
    name = fixture_path.rsplit("/", 1)[-1]
    return Answer(200, pdf(title, lines), content_type=PDF, disposition=disposition or f"attachment; filename={name}",
                  published=fixture_path)


ATTACHMENT_PDF = "stu3/retrieveAttachment/responses/example_attachment.pdf"
CLINICAL_INFORMATION_PDF = ("stu3/retrieveClinicalInformation/responses/"
                            "000000070000_Clinical_Information_Summary_20210706114852.pdf")
PATIENT_LETTER_PDF = "stu3/generatePatientLetter/responses/000000070000_Appointment_Confirmation_Summary_20210603121353.pdf"
ADVICE_OVERVIEW_PDF = ("stu3/retrieveAdviceAndGuidanceOverviewPdf/responses/"
                       "000049146177_Advice_And_Guidance_20220610143044.pdf")
OBJECT_STORE_PDF = "r4/retrieveAttachment/example_attachment.pdf"
OBJECT_STORE_DISPOSITION = ("attachment; filename=\"=?UTF-8?Q?The_filenam=C3=A9.pdf?=\"; "
                            "filename*=UTF-8''The%20filenam%C3%A9.pdf")
_SANDBOX_NOTE = "Made by the Spine Sandbox in place of the published e-RS sandbox's example document."


def _attachment_pdf(fixture_path: str = ATTACHMENT_PDF, disposition: str | None = None) -> Answer:
    return document(fixture_path, "Example attachment", [_SANDBOX_NOTE, "An example clinical attachment."],
                    disposition)


# ---- the routes ---------------------------------------------------------------------------------------------------

def _one(call: ErsCall, name: str) -> str | None:
    """A query parameter sent exactly once (a repeated one never equals a single value), else None."""
    values = call.query.get(name)
    return values[0] if values is not None and len(values) == 1 else None


def _js_number(text: str) -> float:
    """What JavaScript's Number(text) gives (NaN for anything that is not a number)."""
    text = text.strip(" \t\n\r\v\f\u00a0\ufeff")
    if text == "":
        return 0.0
    base = _JS_PREFIXED.get(text[:2].lower())
    if base is not None:
        return float(int(text[2:], base[0])) if base[1].match(text[2:]) else math.nan
    if text.lstrip("+-") == "Infinity" and text.count("+") + text.count("-") <= 1:
        return -math.inf if text.startswith("-") else math.inf
    return float(text) if _JS_DECIMAL.match(text) else math.nan


def _version_ok(call: ErsCall) -> bool:
    return call.params.get("version") in (None, "5")


CODE_SYSTEMS = {"SPECIALTY": "SpecialtyCodeSystem", "CLINIC-TYPE": "ClinicTypeCodeSystem",
                "APPOINTMENT-CANCELLATION-REASON": "AppointmentCancellationReasonCodeSystem",
                "REFERRAL-CANCELLATION-REASON": "ReferralCancellationReasonCodeSystem",
                "APPOINTMENT-NON-ATTENDANCE-REASON": "AppointmentNonAttendanceReasonCodeSystem",
                "PRIORITY": "PriorityCodeSystem"}
REFERRALS = {"000000070000": "Unbooked", "000000070001": "BookedDBS", "000000070002": "BookedIBS",
             "000000070003": "DeferredToProvider", "000000070004": "ConvertedFromAdviceAndGuidance",
             "000000070005": "WithRelatedReferral", "000000070011": "WithAdditionalRequirements",
             "000000070012": "WithUnavailableAttachments"}
ADVICE_REQUESTS = {"000000070000": "MinimalExample", "000000070001": "WithAttachmentFileReference",
                   "000000070002": "WithUnavailableAttachments"}
APPOINTMENTS = {"70000": "BookedDBS", "70001": "BookedIBS", "70002": "AppointmentDeferral", "70003": "TriageDeferral",
                "70004": "TriageResponse", "70005": "CAAL", "70006": "Cancelled", "70007": "AandGConvertedToDBS"}
TASKS = {"000000070000": "Empty", "000000070001": "WithRecordReviewOutcome", "000000070002": "WithCreateAppointment",
         "000000070003": "WithChangeShortlist", "000000070004": "WithChangeShortlistAndSendForTriage",
         "000000070005": "WithCancelReferral", "000000070006": "WithCancelDBAppointment"}
CONVERSATIONS = {  # based-on -> (answer, ETag)
    "CommunicationRequest/000000070000/_history/1": ("SingleMessageFromReferrer", 'W/"1"'),
    "CommunicationRequest/000000070000/_history/2": ("OneMessageEachWay", 'W/"2"'),
    "CommunicationRequest/000000070001/_history/6": ("AttachmentPresentInEachDirection", 'W/"6"'),
    "CommunicationRequest/000000070002/_history/1": ("MultiWayConversation", 'W/"6"'),  # sic: the published ETag
    "CommunicationRequest/000000070003/_history/7": ("AttachmentUploadedFromRCS", 'W/"7"'),
    "CommunicationRequest/000000070004/_history/3": ("UnavailableAttachments", 'W/"3"')}
# A015 rows, tried in order: (service, clinician or None, _count, page, page compared by number, answer, status).
SLOT_ROWS = (("12000", None, "20", "1", True, "Minimum", 200), ("10000", None, "20", "1", True, "NoSlots", 200),
             ("11000", None, "5", "1", False, "Page1PageSize5", 200),
             ("11000", None, "5", "2", False, "Page2PageSize5", 200),
             ("11000", None, "5", "5", False, "ErrorPage5", 400),
             ("13000", None, "5", "1", True, "Page1With2Schedules", 200),
             ("14000", "921600556514", "5", "1", True, "SlotClinicianSearch", 200))
SERVICES_BY_NUMBER = {1: "sampleServiceWithMinimumAttributes", 2: "sampleServiceWithFullAttributes"}
SERVICE_SEARCHES = {"1,2": "searchServiceWithMinmumalAttributes", "3,4": "searchServiceWithMaxAndMinAttributes",
                    "5,6": "searchServiceWithEmptyResponse"}
SERVICE_REQUESTS = {"000000070000": "ResponseExampleReferral", "000000070001": "ResponseExampleAdvice",
                    "000000070002": "ResponseExampleReferralAndAdvice", "000000070003": "ResponseExampleEmpty"}


class BodyRoute:
    """A route that picks its answer by the request body (section 6): (example, answer) pairs in order, one list,
    or one for exactly REFERRING_CLINICIAN and another for anyone else (`other`)."""

    def __init__(self, folder_name: str, status: int, etag: str | None, pairs: tuple[tuple[str, str], ...],
                 other: tuple[tuple[str, str], ...] | None = None):
        self.folder, self.status, self.etag, self.pairs, self.other = folder_name, status, etag, pairs, other

    def answer(self, call: ErsCall) -> Answer | None:
        pairs = self.pairs if self.other is None or call.business_function == RC else self.other
        found = matching_example(call, self.folder, tuple(example for example, _ in pairs))
        if found is None:
            return None
        return fixture(self.folder, dict(pairs)[found], self.status, self.etag)


def _same(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, name) for name in names)


BODY_ROUTES: dict[str, BodyRoute] = {
    "a008-retrieve-worklist": BodyRoute("stu3/retrieveWorklist", 200, None, (
        ("MinimalReferralsForReview", "ReferralsForReview"), ("MinimalAppointmentSlotIssues", "AppointmentSlotIssues"),
        ("FilteringBySpecialty", "FilteredBySpecialty"), ("FilteringByService", "FilteredByService"),
        ("FilteringByClinician", "FilteredByClinician"), ("MinimalRejectedTriageResponse", "RejectedTriageResponse"),
        ("MinimalAssessmentReturnedCancelledDna", "AssessmentReturnedCancelledDna"),
        ("MinimalAwaitingBooking", "AwaitingBooking"), ("MinimalLettersOutstanding", "LettersOutstanding"))),
    "a010-patient-service-search": BodyRoute("stu3/patientServiceSearch", 200, None, (
        ("RcMinimal", "FetchServiceListWithMultipleServices"), ("RcSearchByClinicalTerm", "EmptyResponse"),
        ("RcSearchByNamedClinician", "FetchServiceListWithSingleService"),
        ("RcSearchForAdviceService", "AdviceServiceSearch"),
        ("RcSearchWithCommissioningRuleOrganisation", "FetchServiceListWithMultipleServices")),
        other=(("RcaWithIWT", "FetchServiceListWithSingleService"),)),
    "a011-create-referral": BodyRoute("stu3/createReferral", 201, 'W/"1"', (
        ("MinimalRequest", "ReferralRequest"), ("RequestTwentyServices", "ReferralRequestTwentyServices"),
        ("RequestMixedShortlist", "ReferralRequestMixedShortlist")),
        other=(("MinimalRequestWithReferringClinician", "ReferralRequest"),)),
    "a021-create-referral-request-and-send-for-triage": BodyRoute("stu3/createReferralAndSendForTriage", 201, 'W/"1"', (
        ("Parameters", "ReferralRequest"),), other=(("ParametersWithNamedClinician", "ReferralRequestWithNamedClinician"),)),
    "a014-reject-referral": BodyRoute("stu3/rejectReferral", 200, 'W/"10"', (
        ("BasicExampleIbs", "ExampleResponseIbs"), ("BasicExampleDbs", "ExampleResponseDbs"))),
    "a016-book-or-defer-appointment": BodyRoute("stu3/bookOrDeferAppointment", 201, 'W/"1"', _same(
        "MinimalBooking", "MinimalDeferral", "TriageDeferral", "BookingWithNamedClinician", "DeferralWithSlotReference",
        "DeferralBookingAttemptProblem")),
    "a022-cancel-appointment-action-later": BodyRoute("stu3/cancelAppointmentActionLater", 200, 'W/"11"', _same(
        "MinimalExampleDBS", "PriorityChangeAndWithAttachmentsDBS", "MinimalExampleIBS")),
    "a023-retrieve-a&g-worklist": BodyRoute("stu3/retrieveAdviceAndGuidanceWorklist", 200, None, (
        ("MinimalAdviceAndGuidanceRequests", "AdviceAndGuidanceRequests"),)),
    "a026-send-a&g-response": BodyRoute("stu3/sendAdviceAndGuidanceResponse", 200, None, _same(
        "RequireFurtherInformation", "ReturnToReferrerWithAdvice", "AttachmentIncluded")),
    "a027-convert-a&g-to-referral": BodyRoute("stu3/convertAdviceAndGuidanceToReferral", 201, None, _same(
        "NoAttachments", "WithAttachments")),
    "a028-record-triage-outcome": BodyRoute("stu3/recordTriageOutcome", 200, 'W/"10"', _same(
        "ReturnToReferrerWithAdvice", "AcceptReferBookLater", "AttachmentIncluded")),
    "a031-change-shortlist": BodyRoute("stu3/changeShortlist", 200, 'W/"3"', _same(
        "UnbookedReferral", "UnbookedReferralMultipleServices", "UnbookedReferralMixedShortlist",
        "NonMixedShortlistWithDocument")),
    "a032-change-shortlist-and-send-for-triage": BodyRoute("stu3/changeShortlistAndSendForTriage", 200, None, _same(
        "MinimalRequest")),
    "a036-cancel-referral": BodyRoute("stu3/cancelReferral", 200, None, (
        ("IntendPrivateWithoutComment", "CancelledReferralIntendPrivateWithoutComment"),
        ("PatientRequestCancellationOther", "CancelledReferralPatientOther"),
        ("RaisedInError", "CancelledReferralRaisedInError"),
        ("ReferrerCancellation", "CancelledBookedReferralReferrerCancellation"),
        ("NoLongerRequired", "CancelledReferralWithCancelledBookingNoLongerRequired"),
        ("IntendPrivateWithComment", "CancelledReferralResolvedDeferralIntendPrivateWithComment"),
        ("bookedOutsideCabWithoutComment", "CancelledReferralBookedOutsideCabWithoutComment"),
        ("outpatientService", "CancelledReferralOutpatientService"))),
    "a044-create-advice-and-guidance-request": BodyRoute("stu3/createAdviceAndGuidance", 200, None, _same(
        "ExampleRCAWithAttachments", "ExampleRCWithoutAttachments")),
}
MAINTAIN_LETTER = {"000000070000": (("SingleDocumentReference", "ReferralRequestWithSingleDocumentReference"),),
                   "000000070001": (("MultipleDocumentReferences", "ReferralRequestWithMultipleDocumentReferences"),
                                    ("UpdateClinicalInfo", "ReferralRequestWithUpdatedDocumentReferences"))}
UPDATE_APPOINTMENT = (("MinimalCancellationReasonOnlyCommentNotMandatory", 200),
                      ("CancellationReasonAndMandatoryComment", 200),
                      ("CancellationReasonOnlyCommentMandatory", 422), ("CancellationInvalidReason", 422))


def _code_system(call: ErsCall) -> Answer | None:
    name = CODE_SYSTEMS.get(call.params.get("code_system", ""))
    return fixture("stu3/getCodeSystem", name) if name else None


def _by_path(table: dict[str, str], param: str, folder_name: str, etag: str):
    def route(call: ErsCall) -> Answer | None:
        name = table.get(call.params.get(param, ""))
        return fixture(folder_name, name, 200, etag) if name and _version_ok(call) else None
    return route


def _attachment_id(identifier: str) -> bool:
    return identifier.startswith("att-") or bool(_V4_UUID.match(identifier))


def _binary(call: ErsCall) -> Answer | None:
    return _attachment_pdf() if _attachment_id(call.params.get("attachment_id", "")) else None


def _clinical_information(call: ErsCall) -> Answer:
    return document(CLINICAL_INFORMATION_PDF, "Clinical Information Summary", [
        _SANDBOX_NOTE, f"Referral (UBRN): {call.params.get('ubrn', '')}", "Clinical information as referred."])


def _patient_letter(call: ErsCall) -> Answer:
    return document(PATIENT_LETTER_PDF, "Appointment Confirmation Summary", [
        _SANDBOX_NOTE, f"Referral (UBRN): {call.params.get('ubrn', '')}", "Your appointment is confirmed."])


def _advice_overview(call: ErsCall) -> Answer:
    return document(ADVICE_OVERVIEW_PDF, "Advice and Guidance", [
        _SANDBOX_NOTE, f"Advice and guidance request (UBRN): {call.params.get('ubrn', '')}",
        "The conversation between the referrer and the provider."])


def _accept(call: ErsCall) -> Answer | None:
    if call.params.get("ubrn") == "000000070000":
        return fixture("stu3/acceptReferral", "ExampleResponse", 200, 'W/"9"')
    return None


def _slots(call: ErsCall) -> Answer | None:
    if _one(call, "appointmentType") != "ROUTINE" or _one(call, "status") != "free":
        return None
    service, clinician = _one(call, "schedule.actor:HealthcareService"), _one(call, "schedule.actor:Practitioner")
    count, page = _one(call, "_count"), _one(call, "page")
    if page is None:
        return None
    for row_service, row_clinician, row_count, row_page, by_number, name, status in SLOT_ROWS:
        page_matches = _js_number(page) == float(row_page) if by_number else page == row_page
        if (service == row_service and (row_clinician is None or clinician == row_clinician) and count == row_count
                and page_matches):
            return fixture("stu3/retrieveAppointmentSlots", name, status)
    return None


def _tasks(call: ErsCall) -> Answer | None:
    if _one(call, "intent") != "proposal" or _one(call, "status") != "ready":
        return None
    focus = _one(call, "focus") or ""
    match = re.fullmatch(r"ReferralRequest/([^/]*)/_history/6", focus)
    name = TASKS.get(match.group(1)) if match else None
    return fixture("stu3/availableActionsForUserList", name) if name else None


def _conversation(call: ErsCall) -> Answer | None:
    row = CONVERSATIONS.get(_one(call, "based-on") or "")
    return fixture("stu3/retrieveAdviceAndGuidanceConversation", row[0], 200, row[1]) if row else None


def _maintain_letter(call: ErsCall) -> Answer | None:
    pairs = MAINTAIN_LETTER.get(call.params.get("ubrn", ""))
    if pairs is None:
        return None
    found = matching_example(call, "stu3/maintainReferralLetter", tuple(example for example, _ in pairs))
    return fixture("stu3/maintainReferralLetter", dict(pairs)[found], 200, 'W/"5"') if found else None


def _upload(call: ErsCall) -> Answer | None:
    if call.raw and call.header(FILE_NAME) and call.header(REFERRAL_ID):
        return Answer(201, b"", content_type="text/html; charset=utf-8", location=UPLOADED_LOCATION)
    return None


def _update_appointment(call: ErsCall) -> Answer | None:
    found = matching_example(call, "stu3/updateAppointment", tuple(name for name, _ in UPDATE_APPOINTMENT))
    return fixture("stu3/updateAppointment", found, dict(UPDATE_APPOINTMENT)[found], 'W/"5"') if found else None


def _business_functions(call: ErsCall) -> Answer:
    return fixture("r4/retrieveBusinessFunctions", "PractitionerRoleBundle")


def _service(call: ErsCall) -> Answer | None:
    number = _js_number(call.params.get("service_id", ""))
    name = SERVICES_BY_NUMBER.get(int(number)) if number in (1.0, 2.0) else None
    return fixture("r4/getService", name, 200, 'W/"1"') if name else None


def _service_search(call: ErsCall) -> Answer | None:
    name = SERVICE_SEARCHES.get(_one(call, "_id") or "")
    return fixture("r4/searchForServices", name) if name else None


def _obo_users(call: ErsCall) -> Answer | None:
    if _one(call, "_query") == "onBehalfOf" and call.business_function == SPCA:
        return fixture("r4/retrieveOboUsers", "PractitionerBundle")
    return None


def searched_ubrn(value: str) -> str:
    """A041's identifier: the part between the first and second '|' when there is one, else the whole value."""
    return value.split("|")[1] if "|" in value else value


def _service_requests(call: ErsCall) -> Answer | None:
    value = _one(call, "identifier")
    name = SERVICE_REQUESTS.get(searched_ubrn(value)) if value is not None else None
    return fixture("r4/searchServiceRequest", name) if name and not _head(call) else None


def _head(call: ErsCall) -> bool:
    from flask import request

    return request.method == "HEAD"


def _redirect(call: ErsCall) -> Answer | None:
    if _head(call) or not _attachment_id(call.params.get("attachment_id", "")):
        return None
    base = call.header(SANDBOX_BASE_URL) or _default_base()
    return Answer(307, None, location=f"{base}/ObjectStore/{OBJECT_STORE_FILE}")


def _default_base() -> str:
    """Where A042 redirects when the request has no x-ers-sandbox-baseurl: the published sandbox writes 'undefined'
    (its proxy always sets the header); live, the sandbox's own address (ERS-PUB-005)."""
    from flask import request

    from sandbox.runtime import current_sandbox

    settings = current_sandbox().settings
    if settings.ers_mode == "published":
        return "undefined"
    return (settings.public_url.rstrip("/") or request.host_url.rstrip("/")) + "/referrals"


ROUTES = {
    "a004-retrieve-reference-data": _code_system,
    "a005-retrieve-referral-request": _by_path(REFERRALS, "ubrn", "stu3/retrieveReferralRequest", 'W/"5"'),
    "a005-retrieve-referral-request-versioned": _by_path(REFERRALS, "ubrn", "stu3/retrieveReferralRequest", 'W/"5"'),
    "a024-retrieve-advice-and-guidance": _by_path(ADVICE_REQUESTS, "ubrn", "stu3/retrieveAdviceAndGuidanceRequest",
                                                  'W/"5"'),
    "a024-retrieve-advice-and-guidance-versioned": _by_path(ADVICE_REQUESTS, "ubrn",
                                                            "stu3/retrieveAdviceAndGuidanceRequest", 'W/"5"'),
    "a038-retrieve-appointment": _by_path(APPOINTMENTS, "appointment_id", "stu3/retrieveAppointment", 'W/"5"'),
    "a038-retrieve-appointment-versioned": _by_path(APPOINTMENTS, "appointment_id", "stu3/retrieveAppointment",
                                                    'W/"5"'),
    "a006-retrieve-attachment": _binary,
    "a007-retrieve-clinical-information": _clinical_information,
    "a019-generate-patient-letter": _patient_letter,
    "a043-retrieve-advice-and-guidance-overview-pdf": _advice_overview,
    "a013-accept-referral": _accept,
    "a015-retrieve-appointment-slots": _slots,
    "a029-available-actions-for-user-list": _tasks,
    "a025-retrieve-advice-and-guidance-conversation": _conversation,
    "a012-maintain-referral-letter": _maintain_letter,
    "a020-upload-file-to-document-store": _upload,
    "a034-update-appointment": _update_appointment,
    "a030-retrieve-business-functions": _business_functions,
    "a033-retrieve-healthcare-service": _service,
    "a037-retrieve-healthcare-service-version": _service,
    "a035-search-for-healthcare-services": _service_search,
    "a040-retrieve-practitioner-info": _obo_users,
    "a041-search-service-request": _service_requests,
    "a042-retrieve-attachment": _redirect,
    **{op_id: route.answer for op_id, route in BODY_ROUTES.items()},
}
# Routes whose no-match answer is 400 rather than 422 (STU3 searches) or the R4 error file.
_NO_MATCH_400 = {"a015-retrieve-appointment-slots", "a025-retrieve-advice-and-guidance-conversation",
                 "a029-available-actions-for-user-list"}
_NOT_FOUND_TEXT = {"a033-retrieve-healthcare-service", "a037-retrieve-healthcare-service-version",
                   "a035-search-for-healthcare-services"}
_MATCHES_BODY = set(BODY_ROUTES) | {"a012-maintain-referral-letter", "a034-update-appointment"}


def answer(call: ErsCall) -> Answer | None:
    """The published sandbox's scripted answer when the request matches one of its examples, else None."""
    route = ROUTES.get(call.operation.id)
    return route(call) if route is not None else None


def no_match(call: ErsCall) -> Answer:
    """What the route answers when no example matches (BEHAVIOUR.md section 8, 'no match'), including the published
    sandbox's crashes (500, kind H), which only `SANDBOX_ERS_MODE=published` reproduces."""
    op = call.operation.id
    if op in _MATCHES_BODY and _unreadable_text(call):
        raise internal_error()
    if op == "a004-retrieve-reference-data":
        return empty(404)
    if op in ("a005-retrieve-referral-request", "a005-retrieve-referral-request-versioned",
              "a024-retrieve-advice-and-guidance", "a024-retrieve-advice-and-guidance-versioned") \
            and call.params.get("ubrn") in JS_OBJECT_MEMBERS:
        raise internal_error()
    if op == "a012-maintain-referral-letter" and call.params.get("ubrn") not in MAINTAIN_LETTER:
        raise internal_error()
    if op == "a034-update-appointment":
        raise internal_error()
    if op in _NOT_FOUND_TEXT:
        return not_found_text()
    if op == "a040-retrieve-practitioner-info" and _one(call, "_query") == "onBehalfOf":
        raise errors.forbidden_text("SANDBOX_ERROR: This endpoint cannot be accessed using the e-RS Business Function "
                                    "provided. Allowed values: " + SPCA)
    if op == "a041-search-service-request" and "identifier" not in call.query and not _head(call):
        raise internal_error()
    if call.operation.fhir == "R4":
        return sandbox_error(400, r4=True)
    return sandbox_error(400 if op in _NO_MATCH_400 else 422, r4=False)


def _unreadable_text(call: ErsCall) -> bool:
    """A body the published sandbox cannot compare and crashes on: a JSON string, or text that is not JSON."""
    if isinstance(call.body, str):
        return True
    kind = call.content_type.split(";")[0].strip().lower()
    return call.body is None and kind.startswith("text/") and bool(call.raw.strip())


def object_store(call: ErsCall) -> Answer:
    """GET /ObjectStore/<id>: the one published file, where A042 redirects; any other id crashes the published
    sandbox (kind H 500)."""
    if call.params.get("file_id") != OBJECT_STORE_FILE:
        raise internal_error()
    return _attachment_pdf(OBJECT_STORE_PDF, OBJECT_STORE_DISPOSITION)

