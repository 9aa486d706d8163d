"""Identity service errors as the live service renders them: {error, error_description, message_id}."""

from __future__ import annotations

import json

from flask import Response

from sandbox.conformance.findings import SpineError
from sandbox.web import current

INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
INVALID_GRANT = "invalid_grant"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
UNSUPPORTED_RESPONSE_TYPE = "unsupported_response_type"
PUBLIC_KEY_ERROR = "public_key error"  # sic: the live service's code for JWKS problems


def oauth_error(status: int, description: str, error: str = INVALID_REQUEST, **headers: str) -> SpineError:
    return SpineError(status, error, description, headers=dict(headers))


def render_error(error: SpineError) -> Response:
    exchange = current.exchange()
    body = {"error": error.code, "error_description": error.diagnostics,
            # live sends its gateway message id; ours is the journal's exchange id, so support can find it
            "message_id": exchange.id if exchange else ""}
    return Response(json.dumps(body), status=error.status, mimetype="application/json")
