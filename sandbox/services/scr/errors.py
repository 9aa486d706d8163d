"""How the Summary Care Record (PSIS) refuses a message: an application acknowledgement (AE) whose ControlActEvent
reasons carry a PSIS code pair — the general outcome (400 Invalid Request, 420 access control) and the specific
PSIS error — in code system 2.16.840.1.113883.2.1.3.2.4.17.33, as the live service's captured answers show
(NHSDigital/summary-care-record-api: UAT polling error, event list query not-found and no-consent responses)."""

from __future__ import annotations

import json

from flask import Response

from sandbox.conformance.findings import SpineError

PSIS_CODE_SYSTEM = "2.16.840.1.113883.2.1.3.2.4.17.33"

INVALID_REQUEST = ("400", "Invalid Request")
ACCESS_CONTROL = ("420", "Business condition related to access control  which prevents the action being "
                  "performed by PSIS")
SUCCESS_WITH_WARNING = ("210", "Success with Warning")


def nhs_number_missing_or_incorrect() -> tuple[str, str]:
    return "35160", "[PSIS-35160] - Invalid input message. Mandatory field NHS Number is missing or incorrect"


def duplicate_event(document_id: str, nhs_number: str) -> tuple[str, str]:
    return "30134", f"[PSIS-30134] - Duplicate event with eventId {document_id} and nhsNumber {nhs_number}."


def access_not_permitted() -> tuple[str, str]:
    return "30418", "[PSIS-30418] - ACF does not permit access to resource"


def case_not_found(nhs_number: str) -> tuple[str, str]:
    return "30312", f"[PSIS-30312] - Case Instance not found. {nhs_number}"


def render_error(error: SpineError) -> Response:
    """SCR has no HTTP routes of its own (it answers over Spine core messaging); a generic JSON body for the
    engine's fallbacks."""
    return Response(json.dumps({"error": error.code, "message": error.diagnostics}), status=error.status,
                    mimetype="application/json")
