"""SDS errors as the SDS API writes them: an OperationOutcome (4-space indented) coded from the STU3
Spine-ErrorOrWarningCode value set, whose id is the exchange's correlation id (also sent as X-Correlation-Id)."""

from __future__ import annotations

import json
import re
import uuid

from flask import Response, g, request

from sandbox.conformance.findings import SpineError

ERROR_SYSTEM = "https://fhir.nhs.uk/STU3/ValueSet/Spine-ErrorOrWarningCode-1"
FHIR_JSON = "application/fhir+json"
CORRELATION_HEADER = "X-Correlation-ID"
RESPONSE_HEADER = "X-Correlation-Id"  # as the SDS API writes it
UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Spine code -> (display, FHIR issue type)
CODES: dict[str, tuple[str, str]] = {
    "BAD_REQUEST": ("Bad request", "required"),
    "NO_RECORD_FOUND": ("No record found", "not-found"),
    "NOT_IMPLEMENTED": ("Not implemented", "not-supported"),
    "MISSING_OR_INVALID_HEADER": ("There is a required header missing or invalid", "not-supported"),
    "INTERNAL_SERVER_ERROR": ("Unexpected internal server error", "exception"),
    "SERVICE_UNAVAILABLE": ("Service unavailable", "transient"),
}
# What the live API platform answers in place of any 5xx of the service (not the sandbox's gateway: see BEHAVIOUR).
PLATFORM_UNKNOWN = "UNKNOWN_ERROR"
PLATFORM_SYSTEM = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"
PLATFORM_DISPLAY = ("An unknown error occurred processing this request. Contact us for assistance diagnosing this "
                    "issue: https://digital.nhs.uk/developer/help-and-support. (Message ID: {id})")


def bad_request(detail: str) -> SpineError:
    return SpineError(400, "BAD_REQUEST", f"HTTP 400: Bad Request ({detail})")


def correlation_values() -> str | None:
    """X-Correlation-ID as the service reads it: several header lines joined with commas (and so malformed)."""
    values = request.headers.getlist(CORRELATION_HEADER)
    return ",".join(values) if values else None


def correlation_id() -> str:
    """The id this exchange answers with: the caller's when it is a well-formed UUID, otherwise a fresh one."""
    if "sds_correlation_id" not in g:
        sent = correlation_values()
        g.sds_correlation_id = sent if sent and UUID_PATTERN.match(sent) else str(uuid.uuid4()).upper()
    return g.sds_correlation_id


def render_error(error: SpineError) -> Response:
    ident = correlation_id()
    if error.code == PLATFORM_UNKNOWN:
        issue = {"severity": "error", "code": "unknown", "details": {"coding": [
            {"system": PLATFORM_SYSTEM, "code": PLATFORM_UNKNOWN, "display": PLATFORM_DISPLAY.format(id=ident)}]}}
    else:
        display, issue_code = CODES.get(error.code, (error.code.replace("_", " ").capitalize(),
                                                     "exception" if error.status >= 500 else "invalid"))
        if error.issue_code not in ("invalid", ""):
            issue_code = error.issue_code
        issue = {"severity": "error", "code": issue_code, "details": {"coding": [
            {"system": ERROR_SYSTEM, "code": error.code, "display": error.display or display}]},
            "diagnostics": error.diagnostics}
    body = {"resourceType": "OperationOutcome", "id": ident, "issue": [issue]}
    response = Response(json.dumps(body, indent=4), status=error.status, content_type=FHIR_JSON)
    response.headers[RESPONSE_HEADER] = ident
    return response
