"""EPS errors in the live shape: an OperationOutcome (meta.lastUpdated, one issue) whose issue carries a coding
from the system that owns the code (Spine's error codes, EPS's issue codes, or the cancellation status history
R-0001 … R-5888), or only diagnostics where live EPS sends no code (e.g. the tracker's query errors)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from flask import Response

from sandbox.conformance.findings import SpineError
from sandbox.services.eps.context import EPS_ISSUE_CODES, SPINE_CODES, STATUS_HISTORY

FHIR_JSON = "application/fhir+json"
_STATUS_HISTORY_CODE = re.compile(r"^R-\d{4}$")

# Codes of the EPS-IssueCode system (the specification's dispensing and prescribing error tables); every other
# code is Spine's (Spine-ErrorOrWarningCode) unless it is a cancellation status (R-dddd).
EPS_CODES = frozenset({
    "PRESCRIPTION_NOT_FOUND", "PRESCRIPTION_WITH_ANOTHER_DISPENSER", "PRESCRIPTION_INVALID_STATE_TRANSITION",
    "PRESCRIPTION_INVALID_LINE_STATE_TRANSITION", "ITEM_NOT_FOUND", "MISMATCH_AUTHORISED_REPEAT_COUNTS",
    "DISPENSE_AMEND_IDENTIFIER_MISMATCH", "CLAIM_AMEND_PERIOD_ISSUE", "INVALID_MESSAGE", "FAILURE_TO_PROCESS_MESSAGE",
    "DUPLICATE_PRESCRIPTION_ID", "TOO_FEW_VALUES_SUBMITTED", "NO_MORE_PRESCRIPTIONS", "MISSING_DIGITAL_SIGNATURE",
    "INVALID_STATE_TRANSITION", "UNABLE_TO_PROCESS_MESSAGE", "MAX_REPEAT_MISMATCH", "PRESCRIPTION_CANCELLED",
    "PRESCRIPTION_EXPIRED", "PRESCRIPTION_DISPENSED", "PATIENT_DECEASED",
})


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def system_of(code: str) -> str:
    if _STATUS_HISTORY_CODE.match(code):
        return STATUS_HISTORY
    return EPS_ISSUE_CODES if code in EPS_CODES else SPINE_CODES


def issue(issue_code: str, code: str = "", display: str = "", diagnostics: str = "",
          severity: str = "error") -> dict:
    """One OperationOutcome issue: a coding when there is a code, diagnostics when there is text."""
    item: dict = {"severity": severity, "code": issue_code}
    if code:
        item["details"] = {"coding": [{"system": system_of(code), "code": code,
                                       "display": display or code.replace("_", " ").capitalize()}]}
    if diagnostics:
        item["diagnostics"] = diagnostics
    return item


def outcome(*issues: dict, contained: list[dict] | None = None, extension: list[dict] | None = None) -> dict:
    body: dict = {"resourceType": "OperationOutcome", "meta": {"lastUpdated": now()}, "issue": list(issues)}
    if contained:
        body["contained"] = contained
    if extension:
        body["extension"] = extension
    return body


def informational() -> dict:
    """Live EPS's answer to an accepted message."""
    return outcome({"severity": "information", "code": "informational"})


def eps_error(status: int, issue_code: str, code: str = "", display: str = "", diagnostics: str = "",
              headers: dict[str, str] | None = None) -> SpineError:
    """A refusal as live EPS answers it; raise it, or put it on a finding's `reject`."""
    return SpineError(status, code, diagnostics, display, issue_code, dict(headers or {}))


def render_error(error: SpineError) -> Response:
    body = outcome(issue(error.issue_code, error.code, error.display, error.diagnostics))
    response = Response(json.dumps(body), error.status, content_type=FHIR_JSON)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response
