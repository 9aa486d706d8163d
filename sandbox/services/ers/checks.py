"""e-RS request checks, in the order the request meets them: the API platform (access token, access mode), the web
framework reading the body (BEHAVIOUR.md section 3), the business-function rules (section 4), then what the live
service expects of headers and bodies (the specification's parameters and request profiles).

Only the first three refuse a request, and the first refusal in this order is the answer. The live service's
header and body rules are findings, not refusals: the published sandbox inspects none of them and answers anyway,
and its answers must stay as they are (the session's lifecycle refuses what live e-RS refuses, with its own codes)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from sandbox.conformance.checks import CheckContext, CheckSet, RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import Malformed, parse_json
from sandbox.conformance.schemas import (
    REMEMBERED_BODY_BYTES,
    SchemaProblem,
    definition_validator,
    pointer_of,
    problems_in,
    schema_findings,
)
from sandbox.services.ers import errors
from sandbox.services.ers.context import (
    BUSINESS_FUNCTION,
    COMM_RULE_ORG,
    CORRELATION_ID,
    FILE_NAME,
    ODS_CODE,
    ON_BEHALF_OF,
    OPERATIONS,
    R4,
    REFERRAL_ID,
    SPCA,
    Operation,
)
from sandbox.web.access import APPLICATION, HEALTHCARE_WORKER, PATIENT, Access, access_findings

checks = CheckSet("ers")

SCHEMA_FILE = Path(__file__).with_name("schemas") / "requests.yaml"

# ---- requirement ids (requirements.yaml)
REQ_TOKEN, REQ_MODE, REQ_APP_HEADERS, REQ_APP_SERVICE, REQ_AAL = (
    "ERS-AUTH-001", "ERS-AUTH-002", "ERS-AUTH-003", "ERS-AUTH-004", "ERS-AUTH-005")
REQ_ODS, REQ_BF_HEADER, REQ_CORRELATION, REQ_IF_MATCH, REQ_COMM_RULE, REQ_FILE_NAME, REQ_REFERRAL_ID = (
    "ERS-HDR-001", "ERS-HDR-002", "ERS-HDR-003", "ERS-HDR-004", "ERS-HDR-005", "ERS-HDR-006", "ERS-HDR-007")
REQ_BF_ALLOWED, REQ_OBO_NEEDED, REQ_OBO_ONLY_SPCA, REQ_OBO_QUERY = (
    "ERS-BF-001", "ERS-BF-002", "ERS-BF-003", "ERS-BF-004")
REQ_CONTENT_TYPE, REQ_JSON, REQ_SIZE, REQ_UPLOAD, REQ_BODY_PRESENT = (
    "ERS-BODY-001", "ERS-BODY-002", "ERS-BODY-003", "ERS-BODY-004", "ERS-BODY-005")

# ---- operations, by what the specification lists for them
A008, A010, A011, A012, A014, A015, A016, A020, A021, A022, A023 = (
    "a008-retrieve-worklist", "a010-patient-service-search", "a011-create-referral",
    "a012-maintain-referral-letter", "a014-reject-referral", "a015-retrieve-appointment-slots",
    "a016-book-or-defer-appointment", "a020-upload-file-to-document-store",
    "a021-create-referral-request-and-send-for-triage", "a022-cancel-appointment-action-later",
    "a023-retrieve-a&g-worklist")
A026, A027, A028, A030, A031, A032, A034, A036, A040, A044 = (
    "a026-send-a&g-response", "a027-convert-a&g-to-referral", "a028-record-triage-outcome",
    "a030-retrieve-business-functions", "a031-change-shortlist", "a032-change-shortlist-and-send-for-triage",
    "a034-update-appointment", "a036-cancel-referral", "a040-retrieve-practitioner-info",
    "a044-create-advice-and-guidance-request")
ALL = tuple(OPERATIONS)
WRITES = tuple(op.id for op in OPERATIONS.values() if op.method in ("POST", "PUT"))  # the body is read (section 3)
# The endpoints the specification's access-mode table opens to application-restricted (unattended) access.
APPLICATION_APIS = frozenset({"A004", "A005", "A007", "A008", "A013", "A024", "A025", "A028", "A029", "A033",
                              "A035", "A036", "A037", "A042", "A043"})
# Endpoints whose ODS and business-function headers are the "...OnlyUserRestricted" parameters: required for
# user-restricted access, not allowed for application-restricted access. Elsewhere (but A030) they are required.
USER_ONLY_HEADERS = frozenset({"A004", "A005", "A006", "A007", "A008", "A013", "A024", "A025", "A033", "A035",
                               "A037", "A042", "A043"})
NO_ROLE_HEADERS = frozenset({A030})  # A030 is how a user learns their business functions and organisations
IF_MATCH_OPS = (A012, "a013-accept-referral", A014, A022, A026, A028, A031, A032, A034, A036)
# Request body -> (our schema definition, requirement), from each operation's request profile.
BODY_SCHEMAS: dict[str, tuple[str, str]] = {
    A011: ("eRS-CreateReferral-Parameters", "ERS-SCHEMA-001"),
    A021: ("eRS-CreateReferralAndSendForTriage-Parameters", "ERS-SCHEMA-002"),
    A031: ("eRS-ChangeShortlist-Parameters", "ERS-SCHEMA-003"),
    A032: ("eRS-ChangeShortlistAndSendForTriage-Request-Parameters", "ERS-SCHEMA-004"),
    A008: ("referralWorklist", "ERS-SCHEMA-005"),
    A023: ("adviceAndGuidanceWorklist", "ERS-SCHEMA-006"),
    A014: ("eRS-RejectReferral-Parameters", "ERS-SCHEMA-007"),
    A028: ("eRS-RecordReviewOutcome-Parameters", "ERS-SCHEMA-008"),
    A036: ("eRS-CancelReferral-Request-Parameters", "ERS-SCHEMA-009"),
    A012: ("eRS-MaintainReferralLetter-Parameters", "ERS-SCHEMA-010"),
    A016: ("eRS-Appointment", "ERS-SCHEMA-011"),
    A034: ("eRS-Appointment", "ERS-SCHEMA-012"),
    A044: ("eRS-CreateAdviceAndGuidance-Request-Parameters", "ERS-SCHEMA-013"),
    A026: ("eRS-SendCommunicationToRequester-Request-Parameters", "ERS-SCHEMA-014"),
    A027: ("eRS-CreateFromCommunicationRequestActionLater-Request-Parameters", "ERS-SCHEMA-015"),
    A022: ("eRS-cancelAppointmentActionLater-Parameters", "ERS-SCHEMA-016"),
    A010: ("eRS-PatientServiceSearch-Parameters", "ERS-SCHEMA-017"),
}
BODY_OPS = tuple(BODY_SCHEMAS)

# ---- the published sandbox's web framework (BEHAVIOUR.md sections 3 and 9.2)
MAX_BODY = 1_048_576
MAX_UPLOAD = 5_242_880
UPLOAD_TYPES = frozenset({
    "text/plain", "application/pdf", "text/xml", "text/rtf", "audio/basic", "audio/mpeg", "image/png", "image/gif",
    "image/jpeg", "image/tiff", "video/mpeg", "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/dicom"})
ACCEPTED_NOT_JSON = frozenset({"application/x-www-form-urlencoded", "application/octet-stream"})
FHIR_JSON = "application/fhir+json"
MEDIA_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")
INVALID_JSON = "Invalid request payload JSON format"
UNSUPPORTED = "Unsupported Media Type"
INTERNAL = "An internal server error occurred"

# ---- the business-function refusals, byte for byte as the published sandbox sends them (section 4)
NOT_ALLOWED = "SANDBOX_ERROR: This endpoint cannot be accessed using the e-RS Business Function provided. Allowed values: "
OBO_NEEDED = ("SANDBOX_ERROR: When this endpoint is accessed using the e-RS SERVICE_PROVIDER_CLINICIAN_ADMIN Business "
              "Function then an On-Behalf-Of User ID must be provided")
OBO_ONLY_SPCA = ("SANDBOX_ERROR: An On-Behalf-Of User ID must only be provided if this endpoint is accessed using the "
                 "e-RS SERVICE_PROVIDER_CLINICIAN_ADMIN Business Function")

# ---- header shapes (components/stu3/schemas/headers/request)
BUSINESS_FUNCTIONS = ("REFERRING_CLINICIAN", "REFERRING_CLINICIAN_ADMIN", "REFERRING_ADMIN", "COMMISSIONER",
                      "SERVICE_PROVIDER_CLINICIAN_ADMIN", "SERVICE_PROVIDER_CLINICIAN", "SERVICE_PROVIDER_ADMIN",
                      "INFORMATION_ANALYST", "BOOKING_MANAGER", "ADDITIONAL_REQUIREMENTS_MANAGER")
ODS_PATTERN = re.compile(r"^[A-Z0-9]{3,10}$")
IF_MATCH_PATTERN = re.compile(r'^W/"[0-9]+"$')
STRONG_AAL = ("AAL2", "AAL3")


def operation_of(ctx: CheckContext) -> Operation:
    return OPERATIONS[ctx.operation]


def header(req: RequestView, name: str) -> str | None:
    """A header as the published sandbox's Node server sees it: every line of the name joined with ', ' (None when
    absent)."""
    values = [value for key, value in req.headers if key.lower() == name.lower()]
    return ", ".join(values) if values else None


def filled(req: RequestView, name: str) -> str:
    """A header's value, '' when absent or blank (both mean 'not sent' to the published sandbox)."""
    return (header(req, name) or "").strip()


def media_type(req: RequestView) -> str:
    """The request's media type, lower case without parameters; no Content-Type counts as application/json."""
    value = (header(req, "Content-Type") or "").split(";")[0].strip().lower()
    return value or "application/json"  # an empty header is no header to the framework


def is_json_type(kind: str) -> bool:
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def access_of(ctx: CheckContext) -> Access:
    return ctx.facts.get("access") or Access()


def applied(access: Access) -> bool:
    """Whether the access-mode rules apply: a valid token (or a session token standing in for one), unless
    SANDBOX_AUTH=off."""
    return access.valid and access.strictness != "off"


# ================= 1. The API platform: the access token and what its access mode may call =================

def denied(op: Operation, status: int, diagnostics: str) -> SpineError:
    """The API platform's 401 or 403 as the specification documents it: STU3 NO_ACCESS (eRS-APIErrorCode-1), R4
    ACCESS_DENIED (NHSD-API-ErrorOrWarningCode); responses/Unauthorized.yaml and Forbidden.yaml."""
    code = "ACCESS_DENIED" if op.fhir == R4 else "NO_ACCESS"
    return errors.ers_error(status, code, diagnostics, "login" if status == 401 else "forbidden")


@checks.register(REQ_TOKEN, operations=ALL)
def authorization(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    for found in access_findings(REQ_TOKEN, ctx):  # honours SANDBOX_AUTH: strict refuses, lenient records
        if found.reject is not None:
            found = replace(found, reject=denied(operation_of(ctx), 401, found.reject.diagnostics))
        yield found


@checks.register(REQ_MODE, REQ_AAL, operations=ALL)
def access_mode(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    access, op = access_of(ctx), operation_of(ctx)
    if not applied(access):
        return
    where = f"{op.api} ({op.id})"
    if access.mode == PATIENT:
        yield Finding.failed(REQ_MODE, f"{where} was called with a patient (NHS login) access token; the e-RS API "
                             "has no patient access mode.", "header:Authorization",
                             reject=denied(op, 403, "Patient access is not supported by this API."))
    elif access.mode == APPLICATION and op.api not in APPLICATION_APIS:
        yield Finding.failed(REQ_MODE, f"{where} is not open to application-restricted access; it needs a "
                             "healthcare worker (NHS CIS2 user-restricted) token. Application-restricted tokens may "
                             f"call only {', '.join(sorted(APPLICATION_APIS))}.", "header:Authorization",
                             reject=denied(op, 403, "This endpoint cannot be accessed using application-restricted "
                                           "access."))
    else:
        yield Finding.passed(REQ_MODE, f"{where} may be called with {access.describe()}.", "header:Authorization")
    if access.mode == HEALTHCARE_WORKER and access.session is None:
        if access.aal in STRONG_AAL:
            yield Finding.passed(REQ_AAL, f"The user authenticated at {access.aal}.", "header:Authorization")
        else:
            yield Finding.failed(REQ_AAL, f"The user authenticated at {access.aal or 'an unknown level'}; e-RS needs "
                                 "AAL2 or AAL3 (a smartcard or an equivalent authenticator).", "header:Authorization")


# ================= 2. The web framework reads the body (BEHAVIOUR.md section 3) =================

@checks.register(REQ_SIZE, REQ_UPLOAD, REQ_CONTENT_TYPE, REQ_JSON, operations=WRITES)
def body_reading(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    """Size, then content type, then JSON: how the published sandbox's framework reads a POST or PUT body."""
    op, size, kind = operation_of(ctx), len(req.body), media_type(req)
    upload = op.id == A020
    limit, requirement = (MAX_UPLOAD, REQ_UPLOAD) if upload else (MAX_BODY, REQ_SIZE)
    if size > limit:
        yield Finding.failed(requirement, f"The body is {size} bytes; {op.api} takes at most {limit}.", "body",
                             reject=errors.framework_error(
                                 413, f"Payload content length greater than maximum allowed: {limit}"))
        return
    if upload:
        yield from _upload_type(kind)
        return
    if not MEDIA_TYPE.match(kind):
        yield Finding.failed(REQ_CONTENT_TYPE, f"Content-Type {header(req, 'Content-Type')!r} is not a media type.",
                             "header:Content-Type", reject=errors.framework_error(415, "Invalid content-type header"))
        return
    if is_json_type(kind):
        if size and not _parses(req):
            yield Finding.failed(REQ_JSON, "The body is not valid JSON.", "body",
                                 reject=errors.framework_error(400, INVALID_JSON))
            return
        if size and op.id in BODY_OPS:
            yield _fhir_json(kind, req)
        return
    if kind.startswith("text/"):
        yield from _text_body(req, op, kind)
    elif kind in ACCEPTED_NOT_JSON:
        if op.id in BODY_OPS:
            yield Finding.failed(REQ_CONTENT_TYPE, f"The body is sent as {kind}; {op.api} takes a FHIR resource as "
                                 f"{FHIR_JSON}, so this body matches nothing.", "header:Content-Type")
    else:
        yield Finding.failed(REQ_CONTENT_TYPE, f"Content-Type {kind} is not accepted; send JSON as {FHIR_JSON}.",
                             "header:Content-Type", reject=errors.framework_error(415, UNSUPPORTED))


def _parses(req: RequestView) -> bool:
    try:
        req.json()
    except Malformed:
        return False
    return True


def _fhir_json(kind: str, req: RequestView) -> Finding:
    if kind == FHIR_JSON:
        return Finding.passed(REQ_CONTENT_TYPE, f"The body is sent as {FHIR_JSON}.", "header:Content-Type")
    return Finding.failed(REQ_CONTENT_TYPE, f"The body is sent as {header(req, 'Content-Type') or 'no Content-Type'}; "
                          f"the specification takes {FHIR_JSON} (the published sandbox accepts any JSON type).",
                          "header:Content-Type")


def _text_body(req: RequestView, op: Operation, kind: str) -> Iterator[Finding]:
    """Text is kept as text: routes that ignore the body take any; routes that match bodies parse it as JSON and
    fail with the framework's 500 when it is not (a published-sandbox defect; the live service answers 415)."""
    if op.id not in BODY_OPS:
        return
    if req.body and not _parses(req):
        published = _ers_mode() == "published"
        yield Finding.failed(REQ_CONTENT_TYPE, f"The body is sent as {kind} and is not JSON; send the FHIR resource "
                             f"as {FHIR_JSON}.", "header:Content-Type",
                             reject=errors.framework_error(500, INTERNAL) if published
                             else errors.framework_error(415, UNSUPPORTED))
    elif req.body:
        yield _fhir_json(kind, req)


def _upload_type(kind: str) -> Iterator[Finding]:
    if kind in UPLOAD_TYPES:
        yield Finding.passed(REQ_UPLOAD, f"The file is sent as {kind}, a type e-RS stores.", "header:Content-Type")
    else:
        yield Finding.failed(REQ_UPLOAD, f"Content-Type {kind} is not a file type e-RS stores; use one of "
                             f"{', '.join(sorted(UPLOAD_TYPES))}.", "header:Content-Type",
                             reject=errors.framework_error(415, UNSUPPORTED))


def _ers_mode() -> str:
    """SANDBOX_ERS_MODE while answering; 'published' when no sandbox is at hand (checks re-run from the journal)."""
    try:
        from sandbox.runtime import current_sandbox

        return current_sandbox().settings.ers_mode
    except Exception:  # outside a request: judge as the published sandbox does
        return "published"


# ================= 3. The business function and the on-behalf-of user (BEHAVIOUR.md section 4, A040 9.3) ==========

@checks.register(REQ_BF_ALLOWED, REQ_OBO_NEEDED, REQ_OBO_ONLY_SPCA,
                 operations=tuple(op.id for op in OPERATIONS.values() if op.allowed is not None and op.id != A040))
def business_function(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    op = operation_of(ctx)
    function, on_behalf = filled(req, BUSINESS_FUNCTION), filled(req, ON_BEHALF_OF)
    if not function:
        return  # no check at all, not even of the on-behalf-of header (ERS-HDR-002 records the missing header)
    where = f"header:{BUSINESS_FUNCTION}"
    if function not in op.allowed:
        yield Finding.failed(REQ_BF_ALLOWED, f"{op.api} cannot be used as {function}; it allows "
                             f"{', '.join(op.allowed)}.", where, reject=errors.forbidden_text(
                                 NOT_ALLOWED + ",".join(op.allowed)))
        return
    yield Finding.passed(REQ_BF_ALLOWED, f"{op.api} allows the business function {function}.", where)
    if function == SPCA and not on_behalf:
        yield Finding.failed(REQ_OBO_NEEDED, f"{SPCA} acts on behalf of a service provider clinician: send their "
                             f"user id in {ON_BEHALF_OF}.", f"header:{ON_BEHALF_OF}",
                             reject=errors.forbidden_text(OBO_NEEDED))
    elif function == SPCA:
        yield Finding.passed(REQ_OBO_NEEDED, f"{SPCA} names the clinician it acts for in {ON_BEHALF_OF}.",
                             f"header:{ON_BEHALF_OF}")
    elif on_behalf:
        yield Finding.failed(REQ_OBO_ONLY_SPCA, f"{ON_BEHALF_OF} is sent with {function}; only {SPCA} acts on "
                             "behalf of another user.", f"header:{ON_BEHALF_OF}",
                             reject=errors.forbidden_text(OBO_ONLY_SPCA))


@checks.register(REQ_OBO_QUERY, operations=(A040,))
def practitioner_business_function(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    """A040's own rule: only for `_query=onBehalfOf` (anything else is the route's 400), and the business function
    must be exactly SPCA, even when absent."""
    if req.query.get("_query") != ["onBehalfOf"]:
        return
    function = filled(req, BUSINESS_FUNCTION)
    if function == SPCA:
        yield Finding.passed(REQ_OBO_QUERY, f"A040 is called as {SPCA}.", f"header:{BUSINESS_FUNCTION}")
    else:
        yield Finding.failed(REQ_OBO_QUERY, f"A040 lists the users an {SPCA} may act for; it is called as "
                             f"{function or 'no business function'}.", f"header:{BUSINESS_FUNCTION}",
                             reject=errors.forbidden_text(NOT_ALLOWED + SPCA))


# ================= 4. What the live service expects of the headers (findings only) =================

@checks.register(REQ_ODS, REQ_BF_HEADER, REQ_APP_HEADERS, operations=tuple(o for o in ALL if o not in NO_ROLE_HEADERS))
def role_headers(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    """The caller's organisation and business function: required for user-restricted access everywhere (but
    A030); not allowed for application-restricted access where the specification says so."""
    op, access = operation_of(ctx), access_of(ctx)
    mode = access.mode if applied(access) else None
    user_only = op.api in USER_ONLY_HEADERS
    if mode == APPLICATION and user_only:
        sent = [name for name in (BUSINESS_FUNCTION, ODS_CODE, ON_BEHALF_OF) if header(req, name) is not None]
        if sent:
            yield Finding.failed(REQ_APP_HEADERS, f"{', '.join(sent)} {'is' if len(sent) == 1 else 'are'} not "
                                 f"allowed with application-restricted access to {op.api}.", f"header:{sent[0]}")
        else:
            yield Finding.passed(REQ_APP_HEADERS, "No user-restricted headers are sent with application-restricted "
                                 "access.")
        return
    # Without a token the mode is unknown: a header only user-restricted access needs is then a warning.
    lenient = mode is None and user_only
    yield from _ods(req, op, lenient)
    yield from _business_function_header(req, op, lenient)


def _missing(requirement: str, name: str, why: str, lenient: bool) -> Finding:
    if lenient:
        return Finding.warning(requirement, f"{name} is not sent; {why} (required for user-restricted access).",
                               f"header:{name}")
    return Finding.failed(requirement, f"{name} is not sent; {why} (the published sandbox answers anyway; live e-RS "
                          "does not).", f"header:{name}")


def _ods(req: RequestView, op: Operation, lenient: bool) -> Iterator[Finding]:
    value = filled(req, ODS_CODE)
    if not value:
        yield _missing(REQ_ODS, ODS_CODE, f"{op.api} acts for the user's organisation, named by its ODS code", lenient)
    elif ODS_PATTERN.match(value):
        yield Finding.passed(REQ_ODS, f"{ODS_CODE} {value!r} is an ODS code.", f"header:{ODS_CODE}")
    else:
        yield Finding.failed(REQ_ODS, f"{ODS_CODE} {value[:40]!r} is not an ODS code (3 to 10 upper-case letters and "
                             "digits, e.g. R69).", f"header:{ODS_CODE}")


def _business_function_header(req: RequestView, op: Operation, lenient: bool) -> Iterator[Finding]:
    value = filled(req, BUSINESS_FUNCTION)
    if not value:
        yield _missing(REQ_BF_HEADER, BUSINESS_FUNCTION, f"{op.api} acts in one of the user's e-RS roles "
                       "(A030 lists them)", lenient)
    elif value in BUSINESS_FUNCTIONS:
        yield Finding.passed(REQ_BF_HEADER, f"{BUSINESS_FUNCTION} {value!r} is an e-RS business function.",
                             f"header:{BUSINESS_FUNCTION}")
    else:
        yield Finding.failed(REQ_BF_HEADER, f"{BUSINESS_FUNCTION} {value[:60]!r} is not an e-RS business function "
                             f"({', '.join(BUSINESS_FUNCTIONS)}); names are upper case.", f"header:{BUSINESS_FUNCTION}")


@checks.register(REQ_CORRELATION, operations=ALL)
def correlation_id(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    lines = [value for key, value in req.headers if key.lower() == CORRELATION_ID.lower()]
    if not lines:
        return
    where = f"header:{CORRELATION_ID}"
    if len(lines) > 1:
        yield Finding.warning(REQ_CORRELATION, f"{CORRELATION_ID} is sent {len(lines)} times; send one value, which "
                              "comes back joined with commas.", where)
    elif not lines[0].strip():
        yield Finding.warning(REQ_CORRELATION, f"{CORRELATION_ID} is empty, so it is not echoed back; send a value "
                              "(a UUID, e.g. 11C46F5F-CDEF-4865-94B2-0EE0EDCC26DA) or leave the header out.", where)
    else:
        yield Finding.passed(REQ_CORRELATION, f"{CORRELATION_ID} is one value, echoed back unchanged.", where)


@checks.register(REQ_IF_MATCH, operations=IF_MATCH_OPS)
def if_match(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    op, value = operation_of(ctx), header(req, "If-Match")
    if value is None:
        yield Finding.failed(REQ_IF_MATCH, f"{op.api} changes a resource: send If-Match with the version you read "
                             "(its ETag, e.g. W/\"4\").", "header:If-Match")
    elif IF_MATCH_PATTERN.match(value.strip()):
        yield Finding.passed(REQ_IF_MATCH, f"If-Match {value.strip()} names a version.", "header:If-Match")
    else:
        yield Finding.failed(REQ_IF_MATCH, f"If-Match {value[:40]!r} is not a weak ETag of a version number "
                             "(W/\"<n>\", as the ETag of a read returns it).", "header:If-Match")


@checks.register(REQ_COMM_RULE, operations=(A015,))
def commissioning_rule_org(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    value = filled(req, COMM_RULE_ORG)
    if value:
        yield Finding.passed(REQ_COMM_RULE, f"{COMM_RULE_ORG} {value[:20]!r} is sent.", f"header:{COMM_RULE_ORG}")
    else:
        yield Finding.failed(REQ_COMM_RULE, f"{COMM_RULE_ORG} is not sent: pass the referral's commissioning rule "
                             "organisation (Extension-eRS-Commissioning-Rule-Org), or slots that cannot be booked "
                             "for it may be listed.", f"header:{COMM_RULE_ORG}")


@checks.register(REQ_FILE_NAME, REQ_REFERRAL_ID, REQ_BODY_PRESENT, operations=(A020,))
def upload_headers(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    name, referral = filled(req, FILE_NAME), filled(req, REFERRAL_ID)
    if not name:
        yield Finding.failed(REQ_FILE_NAME, f"{FILE_NAME} is not sent: name the file, with its extension.",
                             f"header:{FILE_NAME}")
    elif "." not in name.strip(".")[1:]:
        yield Finding.warning(REQ_FILE_NAME, f"{FILE_NAME} {name[:60]!r} has no extension; e-RS shows the name as "
                              "given, extension included.", f"header:{FILE_NAME}")
    else:
        yield Finding.passed(REQ_FILE_NAME, f"{FILE_NAME} {name[:60]!r} names the file.", f"header:{FILE_NAME}")
    if referral:
        yield Finding.passed(REQ_REFERRAL_ID, f"{REFERRAL_ID} {referral[:20]!r} names the referral.",
                             f"header:{REFERRAL_ID}")
    else:
        yield Finding.warning(REQ_REFERRAL_ID, f"{REFERRAL_ID} is not sent; a file to attach to an existing referral "
                              "must name it (the published sandbox refuses the upload without it).",
                              f"header:{REFERRAL_ID}")
    if not req.body:
        yield Finding.failed(REQ_BODY_PRESENT, "The upload has no content.", "body")


# ================= 5. The request body against the operation's request profile (findings only) =================

@checks.register(REQ_BODY_PRESENT, REQ_APP_SERVICE, *(req for _, req in BODY_SCHEMAS.values()), operations=BODY_OPS)
def request_body(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    op = operation_of(ctx)
    definition, requirement = BODY_SCHEMAS[op.id]
    document = _document(req)
    if document is _UNREADABLE:
        return  # refused while reading the body, or text the route matches nothing with
    if document is None:
        yield Finding.failed(REQ_BODY_PRESENT, f"{op.api} takes a {definition} body; none was sent.", "body")
        return
    problems = _remembered_problems(op.id, req.body) if len(req.body) <= REMEMBERED_BODY_BYTES else \
        request_problems(op.id, document)
    yield from schema_findings(problems, requirement, definition)
    if op.id == A008 and not problems and applied(access_of(ctx)) and access_of(ctx).mode == APPLICATION:
        yield from _worklist_service(document)


_UNREADABLE = object()


@functools.lru_cache(maxsize=512)
def _remembered_problems(operation_id: str, body: bytes) -> tuple[SchemaProblem, ...]:
    return tuple(request_problems(operation_id, parse_json(body)))


def _document(req: RequestView) -> Any:
    """The body as JSON; None when there is none (empty, or JSON null); _UNREADABLE when it is not JSON."""
    if not req.body:
        return None
    try:
        return req.json()
    except Malformed:
        return _UNREADABLE


def _worklist_service(document: dict) -> Iterator[Finding]:
    if any(p.get("name") == "service" for p in document.get("parameter", []) if isinstance(p, dict)):
        yield Finding.passed(REQ_APP_SERVICE, "The unattended worklist request names its service.", "/parameter")
    else:
        yield Finding.failed(REQ_APP_SERVICE, "With application-restricted access A008 must name the service whose "
                             "worklist it reads (parameter 'service').", "/parameter")


def validator(definition: str) -> Draft202012Validator:
    return definition_validator(SCHEMA_FILE, definition)


CARDINALITY = ("contains", "minContains", "maxContains")


def request_problems(operation_id: str, document: Any) -> list[SchemaProblem]:
    """Every way a request body breaks its operation's request profile, each with a JSON pointer (for the lifecycle
    too, which refuses what live e-RS refuses). Operations without a body profile have none."""
    if operation_id not in BODY_SCHEMAS:
        return []
    check = validator(BODY_SCHEMAS[operation_id][0])
    if check.is_valid(document):  # the usual case, in one pass; the problems of a bad body take two more
        return []
    found = [p for p in problems_in(check, document) if p.validator not in CARDINALITY]
    counted = [_cardinality(error) for error in check.iter_errors(document) if error.validator in CARDINALITY]
    return found + counted


def _cardinality(error) -> SchemaProblem:
    """'How many' problems in words: which parameter (or participant), how often it appears, how often it may."""
    wanted = error.schema.get("contains", {})
    label = _first_const(wanted)
    low, high = error.schema.get("minContains", 1), error.schema.get("maxContains")
    count = sum(1 for item in error.instance if Draft202012Validator(wanted).is_valid(item)) \
        if isinstance(error.instance, list) else 0
    what = f"parameter {label!r}" if "name" in str(wanted) else f"a participant identified by {label}"
    if count < low:
        message = f"{what} is required ({'exactly once' if high == 1 else f'at least {low} times'}); it is missing"
    else:
        message = f"{what} appears {count} times; at most {high} allowed"
    return SchemaProblem(pointer_of(error.absolute_path), message, "cardinality")


def _first_const(schema: Any) -> str:
    if isinstance(schema, dict):
        if "const" in schema:
            return str(schema["const"])
        for value in schema.values():
            found = _first_const(value)
            if found:
                return found
    return ""

