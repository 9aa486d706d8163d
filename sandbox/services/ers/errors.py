"""e-RS errors in their own shapes.

- The live service's errors (STU3 and R4): an OperationOutcome whose issue is coded from the e-RS error code system
  (`ers_error`): STU3 as eRS-OperationOutcome-1 (`https://fhir.nhs.uk/STU3/CodeSystem/eRS-APIErrorCode-1`), R4 as
  NHSDigital-OperationOutcome (`https://fhir.nhs.uk/CodeSystem/http-error-codes` for the REC_ codes, else
  `https://fhir.nhs.uk/CodeSystem/ers-error-codes`).
- The business-function refusals (`forbidden_text`): a text/html 403 whose body is the sentence itself, as the
  published sandbox answers (the only form of them on record).
- Failures to read the body (`framework_error`): 400 invalid JSON, 413, 415, and the 500 of an unreadable body,
  as a JSON object {statusCode, error, message}, as the published sandbox's web framework answers them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Response, request

from sandbox.conformance.findings import SpineError

FHIR_JSON = "application/fhir+json"
STU3_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/eRS-APIErrorCode-1"
STU3_PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/eRS-OperationOutcome-1"
R4_HTTP_SYSTEM = "https://fhir.nhs.uk/CodeSystem/http-error-codes"
R4_ERS_SYSTEM = "https://fhir.nhs.uk/CodeSystem/ers-error-codes"
# The API platform's own codes (its 401/403 before e-RS sees the request), in R4 (responses/Unauthorized.yaml).
R4_APIM_SYSTEM = "https://fhir.nhs.uk/CodeSystem/NHSD-API-ErrorOrWarningCode"
APIM_CODES = frozenset({"ACCESS_DENIED", "TOO_MANY_REQUESTS"})

# Marker codes for the non-FHIR shapes; never sent as codes.
FORBIDDEN_TEXT = "ERS_FORBIDDEN_TEXT"
FRAMEWORK = "ERS_FRAMEWORK"
NO_ROUTE = "ERS_NO_ROUTE"  # no route for the path and method: the published sandbox's catch-all 404 (kind J)
NO_ROUTE_BODY = b'{"error":"File not found"}'
FRAMEWORK_REASONS = {400: "Bad Request", 404: "Not Found", 413: "Request Entity Too Large",
                     415: "Unsupported Media Type", 500: "Internal Server Error"}

# Live error code -> (display, FHIR issue type); codes not listed get a display made from the code.
CODES: dict[str, tuple[str, str]] = {
    "NO_ACCESS": ("No access", "forbidden"),
    "FORBIDDEN": ("Forbidden", "forbidden"),
    "ACCESS_DENIED": ("Access denied", "forbidden"),
    "NOT_FOUND": ("Not found", "not-found"),
    "REFERENCE_NOT_FOUND": ("Reference not found", "not-found"),
    "INVALID_VALUE": ("Invalid value", "value"),
    "MISSING_VALUE": ("Missing value", "required"),
    "VALUE_IS_REQUIRED": ("Value is required", "required"),
    "UNEXPECTED_FIELD": ("Unexpected field", "value"),
    "INVALID_CODE": ("Invalid code", "code-invalid"),
    "INVALID_FHIR_STRUCTURE": ("Invalid FHIR structure", "structure"),
    "INVALID_REQUEST_STATE": ("Invalid request state", "business-rule"),
    "INVALID_STATE": ("Invalid state", "business-rule"),
    "INVALID_REQUEST_TYPE": ("Invalid request type", "business-rule"),
    "INAPPROPRIATE_VALUE": ("Inappropriate value", "business-rule"),
    "NO_RELATIONSHIP": ("No relationship", "forbidden"),
    "PATIENT_ERROR": ("Patient error", "business-rule"),
    "VERSION_MISMATCH": ("Version mismatch", "conflict"),
    "MISSING_HEADER": ("Missing header", "required"),
    "INVALID_HEADER": ("Invalid header", "value"),
    "TOO_MANY_REQUESTS": ("Too many requests", "throttled"),
    "SERVICE_UNAVAILABLE": ("Service unavailable", "transient"),
    "INTERNAL_SERVER_ERROR": ("Internal server error", "exception"),
    # Attachments, advice and guidance, R4 reads.
    "REC_NOT_FOUND": ("Not found", "not-found"),
    "REC_BAD_REQUEST": ("Bad request", "invalid"),
    "FILE_SIZE_ERROR": ("File size error", "invalid"),
    "VALIDATION_FAILED": ("Validation failed", "invalid"),
    "DUPLICATE_FILENAME": ("Duplicate filename", "duplicate"),
    "TOO_MANY_ITEMS": ("Too many items", "business-rule"),
    "FIELD_NOT_PERMITTED": ("Field not permitted", "business-rule"),
    "NO_CHANGES_DETECTED": ("No changes detected", "business-rule"),
    "REFERENCED_USER_IS_NOT_RC": ("Referenced user is not a referring clinician", "business-rule"),
    "REFERENCED_USER_NOT_IN_ORG": ("Referenced user not in organisation", "business-rule"),
}


def ers_error(status: int, code: str, diagnostics: str, issue_code: str | None = None) -> SpineError:
    """A live e-RS error; the FHIR version of the answer follows the request's path."""
    display, default_issue = CODES.get(code, (code.replace("_", " ").capitalize(), "invalid"))
    return SpineError(status, code, diagnostics, display=display, issue_code=issue_code or default_issue)


def forbidden_text(sentence: str) -> SpineError:
    """A business-function or on-behalf-of refusal: 403, the sentence as a text/html body."""
    return SpineError(403, FORBIDDEN_TEXT, sentence)


def framework_error(status: int, message: str) -> SpineError:
    """A body that cannot be read (400 bad JSON, 413, 415, 500): the web framework's own JSON object."""
    return SpineError(status, FRAMEWORK, message)


def render_error(error: SpineError) -> Response:
    if error.code == NO_ROUTE:
        response = Response(NO_ROUTE_BODY, 404, content_type="application/json; charset=utf-8")
    elif error.code == FORBIDDEN_TEXT:
        response = Response(error.diagnostics, error.status, content_type="text/html; charset=utf-8")
    elif error.code == FRAMEWORK:
        body = {"statusCode": error.status, "error": FRAMEWORK_REASONS.get(error.status, "Error"),
                "message": error.diagnostics}
        response = Response(json.dumps(body, separators=(",", ":")), error.status,
                            content_type="application/json; charset=utf-8")
    else:
        response = Response(json.dumps(outcome(error, r4="/FHIR/R4/" in request.path), indent=2), error.status,
                            content_type=FHIR_JSON)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def outcome(error: SpineError, r4: bool) -> dict:
    """The OperationOutcome of a live error, STU3 or R4."""
    display = error.display or CODES.get(error.code, (error.code.replace("_", " ").capitalize(), ""))[0]
    if r4:
        system = (R4_HTTP_SYSTEM if error.code.startswith("REC_") else R4_APIM_SYSTEM if error.code in APIM_CODES
                  else R4_ERS_SYSTEM)
        # NHSDigital-OperationOutcome requires meta.lastUpdated
        moment = datetime.now(UTC)
        updated = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        return {"resourceType": "OperationOutcome", "meta": {"lastUpdated": updated}, "issue": [{
            "severity": "error", "code": error.issue_code,
            "details": {"coding": [{"system": system, "code": error.code, "display": display}]},
            "diagnostics": error.diagnostics}]}
    return {"meta": {"profile": [STU3_PROFILE]}, "resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": error.issue_code,
        "details": {"coding": [{"system": STU3_SYSTEM, "code": error.code, "display": display}]},
        "diagnostics": error.diagnostics}]}
