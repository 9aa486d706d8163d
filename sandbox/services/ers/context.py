"""What every part of the e-RS service shares: the operations (A004-A044) with their live paths and the business
functions each allows, one call as the handlers see it (`ErsCall`), and what a handler answers (`Answer`).

The routes build an `ErsCall`, the published-sandbox answers (`published.py`) are tried first, then the session's
referral lifecycle (`lifecycle.py`); either returns an `Answer`, which `transport.py` turns into the HTTP response."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The live base path (the API platform's `referrals`), under which the FHIR versions sit.
BASE_PATH = "/referrals"
STU3 = "STU3"
R4 = "R4"

# Business functions (e-RS roles), sent in NHSD-eRS-Business-Function.
RC = "REFERRING_CLINICIAN"
RCA = "REFERRING_CLINICIAN_ADMIN"
RA = "REFERRING_ADMIN"
SPC = "SERVICE_PROVIDER_CLINICIAN"
SPCA = "SERVICE_PROVIDER_CLINICIAN_ADMIN"
SPA = "SERVICE_PROVIDER_ADMIN"
REFERRERS = (RC, RCA, RA)
PROVIDERS = (SPC, SPCA, SPA)

# Request headers the live service reads.
BUSINESS_FUNCTION = "NHSD-eRS-Business-Function"
ON_BEHALF_OF = "NHSD-eRS-On-Behalf-Of-User-ID"
ODS_CODE = "NHSD-End-User-Organisation-ODS"
COMM_RULE_ORG = "NHSD-eRS-Comm-Rule-Org"
CORRELATION_ID = "X-Correlation-ID"
FILE_NAME = "NHSD-eRS-File-Name"
REFERRAL_ID = "NHSD-eRS-Referral-ID"
SANDBOX_BASE_URL = "x-ers-sandbox-baseurl"  # set by the published sandbox's proxy; decides A042's Location

_EVERY = (RC, RCA, SPC, SPCA)


@dataclass(frozen=True)
class Operation:
    id: str  # the specification's operationId
    api: str  # A004 ... A044
    method: str
    path: str  # below /referrals/FHIR, Flask converters for parameters
    fhir: str
    allowed: tuple[str, ...] | None  # business functions in the order the 403 lists them; None: no check


def _op(op_id: str, method: str, path: str, allowed: tuple[str, ...] | None) -> Operation:
    return Operation(op_id, op_id[:4].upper(), method, path, R4 if path.startswith("/R4/") else STU3, allowed)


OPERATIONS: dict[str, Operation] = {op.id: op for op in (
    _op("a004-retrieve-reference-data", "GET", "/STU3/CodeSystem/<code_system>", _EVERY),
    _op("a005-retrieve-referral-request", "GET", "/STU3/ReferralRequest/<ubrn>", _EVERY),
    _op("a005-retrieve-referral-request-versioned", "GET", "/STU3/ReferralRequest/<ubrn>/_history/<version>", _EVERY),
    _op("a006-retrieve-attachment", "GET", "/STU3/Binary/<attachment_id>", _EVERY),
    _op("a007-retrieve-clinical-information", "POST", "/STU3/ReferralRequest/<ubrn>/$ers.generateCRI", _EVERY),
    _op("a008-retrieve-worklist", "POST", "/STU3/ReferralRequest/$ers.fetchworklist",
        (SPC, SPA, SPCA, RC, RCA, RA)),
    _op("a010-patient-service-search", "POST", "/STU3/HealthcareService/$ers.searchHealthcareServicesForPatient",
        (RC, RCA)),
    _op("a011-create-referral", "POST", "/STU3/ReferralRequest/$ers.createReferral", (RC, RCA)),
    _op("a012-maintain-referral-letter", "POST", "/STU3/ReferralRequest/<ubrn>/$ers.maintainReferralLetter",
        (RC, RCA)),
    _op("a013-accept-referral", "POST", "/STU3/ReferralRequest/<ubrn>/$ers.acceptReferral", (SPC, SPCA)),
    _op("a014-reject-referral", "POST", "/STU3/ReferralRequest/<ubrn>/$ers.rejectReferral", (SPC, SPCA)),
    _op("a015-retrieve-appointment-slots", "GET", "/STU3/Slot", (RC, RCA)),
    _op("a016-book-or-defer-appointment", "POST", "/STU3/Appointment", (RC, RCA)),
    _op("a019-generate-patient-letter", "POST", "/STU3/ReferralRequest/<ubrn>/$ers.generatePatientLetter",
        (RC, RCA)),
    _op("a020-upload-file-to-document-store", "POST", "/STU3/Binary", _EVERY),
    _op("a021-create-referral-request-and-send-for-triage", "POST",
        "/STU3/ReferralRequest/$ers.createReferralAndSendForTriage", (RC, RCA)),
    _op("a022-cancel-appointment-action-later", "POST",
        "/STU3/ReferralRequest/<ubrn>/$ers.cancelAppointmentActionLater", (SPC, SPCA)),
    _op("a023-retrieve-a&g-worklist", "POST", "/STU3/CommunicationRequest/$ers.fetchworklist", (SPC, SPA, SPCA)),
    _op("a024-retrieve-advice-and-guidance", "GET", "/STU3/CommunicationRequest/<ubrn>", _EVERY),
    _op("a024-retrieve-advice-and-guidance-versioned", "GET", "/STU3/CommunicationRequest/<ubrn>/_history/<version>",
        _EVERY),
    _op("a025-retrieve-advice-and-guidance-conversation", "GET", "/STU3/Communication", _EVERY),
    _op("a026-send-a&g-response", "POST", "/STU3/CommunicationRequest/<ubrn>/$ers.sendCommunicationToRequester",
        (SPC, SPCA)),
    _op("a027-convert-a&g-to-referral", "POST", "/STU3/ReferralRequest/$ers.createFromCommunicationRequestActionLater",
        (SPC, SPCA)),
    _op("a028-record-triage-outcome", "POST", "/STU3/ReferralRequest/<ubrn>/$ers.recordReviewOutcome", (SPC, SPCA)),
    _op("a029-available-actions-for-user-list", "GET", "/STU3/Task", (SPC, SPCA, RC, RCA)),
    _op("a031-change-shortlist", "POST", "/STU3/ReferralRequest/<ubrn>/$ers.changeShortlist", (RC, RCA)),
    _op("a032-change-shortlist-and-send-for-triage", "POST",
        "/STU3/ReferralRequest/<ubrn>/$ers.changeShortlistAndSendForTriage", (RC, RCA)),
    _op("a034-update-appointment", "PUT", "/STU3/Appointment/<appointment_id>", (RC, RCA)),
    _op("a036-cancel-referral", "POST", "/STU3/ReferralRequest/<ubrn>/$ers.cancelReferral", _EVERY),
    _op("a038-retrieve-appointment", "GET", "/STU3/Appointment/<appointment_id>", _EVERY),
    _op("a038-retrieve-appointment-versioned", "GET", "/STU3/Appointment/<appointment_id>/_history/<version>",
        _EVERY),
    _op("a043-retrieve-advice-and-guidance-overview-pdf", "POST", "/STU3/CommunicationRequest/<ubrn>/$ers.generateCRI",
        _EVERY),
    _op("a044-create-advice-and-guidance-request", "POST", "/STU3/CommunicationRequest/$ers.createAdviceAndGuidance",
        (RC, RCA)),
    _op("a030-retrieve-business-functions", "GET", "/R4/PractitionerRole", None),
    _op("a033-retrieve-healthcare-service", "GET", "/R4/HealthcareService/<service_id>", (RC, RCA)),
    _op("a037-retrieve-healthcare-service-version", "HEAD", "/R4/HealthcareService/<service_id>", (RC, RCA)),
    _op("a035-search-for-healthcare-services", "GET", "/R4/HealthcareService", (RC, RCA)),
    _op("a040-retrieve-practitioner-info", "GET", "/R4/Practitioner", (SPCA,)),
    _op("a041-search-service-request", "GET", "/R4/ServiceRequest", _EVERY),
    _op("a042-retrieve-attachment", "GET", "/R4/Binary/<attachment_id>", _EVERY),
)}


@dataclass
class ErsCall:
    """One e-RS request as the answering code sees it: the operation, who is calling, and what they sent."""

    operation: Operation
    session: str
    params: dict[str, str]  # path parameters (ubrn, version, appointment_id, service_id, attachment_id, ...)
    query: dict[str, list[str]]  # query parameters, every value of each, as sent
    headers: dict[str, str]  # request headers, names lower-cased (several lines of one name joined with ", ")
    body: Any = None  # the JSON body when it parsed (None when absent); raw bytes are in `raw`
    raw: bytes = b""
    content_type: str = ""

    def header(self, name: str) -> str:
        """A request header's value, '' when absent."""
        return self.headers.get(name.lower(), "")

    @property
    def business_function(self) -> str:
        return self.header(BUSINESS_FUNCTION)

    @property
    def on_behalf_of(self) -> str:
        return self.header(ON_BEHALF_OF)

    @property
    def ods_code(self) -> str:
        return self.header(ODS_CODE)


@dataclass
class Answer:
    """What a handler answers. `body` is a JSON value (sent as application/fhir+json unless `content_type` says
    otherwise), bytes (sent as they are), or None (no body). `published` names the published-sandbox fixture the
    answer reproduces (e.g. "stu3/createReferral/responses/ReferralRequest.json"), for the journal and the tests."""

    status: int
    body: Any = None
    content_type: str = "application/fhir+json"
    etag: str | None = None  # e.g. 'W/"5"'
    location: str | None = None
    disposition: str | None = None  # Content-Disposition
    headers: dict[str, str] = field(default_factory=dict)  # anything else the live service sends
    published: str | None = None
