"""PDS errors as live PDS renders them: an OperationOutcome with a Spine-ErrorOrWarningCode coding."""

from __future__ import annotations

import json

from flask import Response

from sandbox.conformance.findings import SpineError

ERROR_SYSTEM = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"
FHIR_JSON = "application/fhir+json"

# Spine error code -> (display, the FHIR issue type PDS pairs it with), as live PDS answers them: PDS's own tests hold
# live answers against the same bodies the published sandbox serves.
CODES: dict[str, tuple[str, str]] = {
    "ACCESS_DENIED": ("Access denied", "forbidden"),
    "ADDITIONAL_PROPERTIES": ("Additional properties should not be included", "invariant"),
    "FORBIDDEN_UPDATE": ("Update is forbidden", "forbidden"),
    "INVALID_RESOURCE_ID": ("Resource Id is invalid", "value"),
    "INVALIDATED_RESOURCE": ("Resource that has been marked as invalid was requested - invalid resources "
                             "cannot be retrieved", "processing"),
    "INVALID_SEARCH_DATA": ("Search data is invalid", "value"),
    "INVALID_UPDATE": ("Update is invalid", "structure"),
    "INVALID_CREATE": ("Patient create data is invalid", "value"),
    "INVALID_VALUE": ("Provided value is invalid", "value"),
    "METHOD_NOT_ALLOWED": ("Method not allowed", "not-supported"),
    "MISSING_VALUE": ("Required value is missing", "required"),
    "MULTIPLE_MATCHES": ("Multiple matches found", "value"),
    "NOT_ACCEPTABLE": ("Not acceptable", "not-supported"),
    "PAYLOAD_TOO_LARGE": ("Request body too large", "too-long"),
    "PRECONDITION_FAILED": ("Required condition was not fulfilled", "structure"),
    "RESOURCE_NOT_FOUND": ("Resource not found", "not-found"),
    "RESOURCE_VERSION_MISMATCH": ("Resource version supplied does not match actual version", "conflict"),
    "SERVICE_UNAVAILABLE": ("Service unavailable", "timeout"),
    "SINGLE_MATCH": ("Single match found", "value"),
    "TOO_FEW_VALUES_SUBMITTED": ("Too few values submitted", "value"),
    "TOO_MANY_MATCHES": ("Too Many Matches", "multiple-matches"),
    "TOO_MANY_REQUESTS": ("You have exceeded your application's rate limit", "throttled"),
    "TOO_MANY_VALUES_SUBMITTED": ("Too many values submitted", "value"),
    "UNABLE_TO_CALL_SERVICE": ("Unable to call service", "timeout"),
    "UNSUPPORTED_CHARACTERS_IN_FIELD": ("Unsupported characters in field", "value"),
    "UNSUPPORTED_MEDIA_TYPE": ("Unsupported media type", "not-supported"),
    "UNSUPPORTED_SERVICE": ("Unsupported Service", "processing"),
    "UNSUPPORTED_VALUE": ("Unsupported value", "value"),
    "VALIDATION_ERROR": ("Validation error", "invalid"),
    "INTERNAL_SERVER_ERROR": ("Internal server error", "exception"),
    "INSERT_BIRTH_DEATH_STATUS_INCONSISTENT": ("INSERT_BIRTH_DEATH_STATUS_INCONSISTENT", "processing"),
}
# PDS answers these two as information, not errors (as its own tests and the published sandbox show).
SEVERITY: dict[str, str] = {"RESOURCE_NOT_FOUND": "information", "FORBIDDEN_UPDATE": "information"}


def issue(code: str, diagnostics: str = "", severity: str = "error", display: str = "",
          issue_code: str | None = None) -> dict:
    default_display, default_issue = CODES.get(code, (code.replace("_", " ").capitalize(), "invalid"))
    item: dict = {
        "severity": severity,
        "code": issue_code or default_issue,
        "details": {"coding": [{"system": ERROR_SYSTEM, "version": "1", "code": code,
                                "display": display or default_display}]},
    }
    if diagnostics:
        item["diagnostics"] = diagnostics
    return item


def operation_outcome(*issues: dict) -> dict:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def render_error(error: SpineError) -> Response:
    # A scenario or check may name the FHIR issue type; "invalid" is the dataclass default, so defer to the table.
    issue_code = error.issue_code if error.issue_code != "invalid" else None
    body = operation_outcome(issue(error.code, error.diagnostics, SEVERITY.get(error.code, "error"), error.display,
                                   issue_code))
    return fhir_response(body, error.status)


def fhir_response(body: dict | bytes, status: int = 200, headers: dict | None = None) -> Response:
    """`body`: a resource, or one fhir_json() made already."""
    data = body if isinstance(body, bytes) else fhir_json(body)
    return Response(data, status=status, headers=headers or {}, mimetype=FHIR_JSON)


def fhir_json(body: dict) -> bytes:
    # "replace": a lone surrogate quoted back from a request (only a test client can send one) cannot break the answer
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "replace")
