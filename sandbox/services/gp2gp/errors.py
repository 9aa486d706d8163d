"""GP2GP's own error codes (code system 2.16.840.1.113883.2.1.3.2.4.17.101): what a practice puts in the
negative application acknowledgement (MCCI_IN010000UK13 AE) of an EHR request it cannot answer, or of an extract
it cannot integrate, as the GP2GP specification lists them."""

from __future__ import annotations

import json

from flask import Response

from sandbox.conformance.findings import SpineError

GP2GP_ERROR_CODE_SYSTEM = "2.16.840.1.113883.2.1.3.2.4.17.101"

CODES: dict[str, str] = {
    "06": "Patient not at surgery",
    "07": "GP2GP messaging is not enabled on this system",
    "09": "EHR Extract received without corresponding request",
    "10": "Failed to successfully generate EHR Extract",
    "11": "Failed to successfully integrate EHR Extract",
    "12": "Duplicate EHR Extract received",
    "15": "A-B-A EHR Extract received and stored as suppressed record",
    "17": "A-B-A EHR Extract received and rejected due to wrong record or wrong patient",
    "18": "Request message not well-formed or not able to be processed",
    "19": "Sender check indicates that requestor is not the patient's current healthcare provider",
    "20": "Spine system responded with an error",
    "21": "EHR Extract message not well-formed or not able to be processed",
    "23": "Message not sent because sending practice is not large message compliant",
    "24": "SDS lookup provided zero or more than one result",
    "25": "Large messages rejected due to timeout duration reached",
    "26": "Returning patient EHR Extract received and filed as an attachment",
    "28": "Non A-B-A EHR Extract received and rejected due to wrong record or wrong patient",
    "29": "Large message re-assembly failure",
    "30": "Large message general failure",
    "31": "The overall EHR Extract has been rejected because one or more attachments via large messages were not "
          "received",
    "99": "Unexpected condition",
}


def error(code: str) -> tuple[str, str]:
    return code, CODES[code]


def render_error(err: SpineError) -> Response:
    """GP2GP has no HTTP routes of its own (it answers over Spine core messaging); a generic JSON body for the
    engine's fallbacks."""
    return Response(json.dumps({"error": err.code, "message": err.diagnostics}), status=err.status,
                    mimetype="application/json")
