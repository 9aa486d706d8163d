"""MESH errors as MESH answers them: v1 (`errorEvent`, `errorCode`, `errorDescription`) or v2 (`detail` list) by the
Accept header, and the 400 validation shape (`detail` with `loc`) for a missing or malformed parameter."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from flask import Response, request

from sandbox.conformance.findings import SpineError
from sandbox.web import current

JSON = "application/json"
V1 = "application/vnd.mesh.v1+json"
V2 = "application/vnd.mesh.v2+json"
_VERSIONED = re.compile(r"application/vnd\.mesh\.v([0-9]{1,6})\+json")  # ASCII digits, a few of them

# Error code -> (event, description), from the MESH API specification's error code table where it has one, and
# otherwise the names the NHS MESH sandbox uses.
CODES: dict[str, tuple[str, str]] = {
    "02": ("SEND", "Data file is missing or inaccessible"),
    "06": ("SEND", "Malformed headers"),
    "07": ("SEND", "Invalid From Address, the mailbox does not match the authorization header"),
    "08": ("SEND", "Missing Mex-To header"),
    "12": ("SEND", "Unregistered to address"),
    "14": ("SEND", "Undelivered message"),
    "16": ("SEND", "Sender is not allowed to send messages of this type"),
    "17": ("SEND", "Workflow ID not registered for mailbox"),
    "20": ("RECEIVE", "Message does not exist"),
    "InvalidHeaderChunks": ("SEND", "Invalid chunk values sent in mex-Chunk-Range header"),
    "UnsupportedContentEncoding": ("SEND", "Unsupported content encoding"),
    "MessageTooLarge": ("SEND", "Message is larger than MESH accepts"),
    "MessageFinalised": ("SEND", "Message has been finalised; no more chunks can be uploaded"),
    "MessageGone": ("RECEIVE", "Message no longer available for download"),
    "EncodingRequired": ("RECEIVE", "Message can only be downloaded with Accept-Encoding: gzip"),
    "AUTH": ("", "Authentication failed"),
    "Forbidden": ("", "Not permitted for this mailbox"),
}


@dataclass(frozen=True)
class MeshError(SpineError):
    """A MESH refusal. `loc` makes it a 400 validation error (where the bad parameter is); `message_id` is echoed."""

    message_id: str = ""
    loc: tuple[str, ...] = ()
    error_type: str = "value_error"

    @classmethod
    def of(cls, status: int, code: str, detail: str = "", message_id: str = "", **headers: str) -> MeshError:
        return cls(status, code, detail, message_id=message_id, headers=headers)

    @classmethod
    def invalid(cls, where: str, name: str, detail: str, error_type: str = "value_error") -> MeshError:
        """400 with the validation shape: where is 'header', 'query' or 'path'."""
        return cls(400, "VALIDATION", detail, loc=(where, name), error_type=error_type)


@functools.lru_cache(maxsize=16)
def api_version(accept: str | None) -> int | None:
    """1 for application/json or v1, 2 for v2 (and later); None for a MESH media type that is malformed. Kept for
    the Accept values seen last (clients send the same one on every request)."""
    if not accept:
        return 1
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if "vnd.mesh" not in media:
            continue
        match = _VERSIONED.fullmatch(media)
        return min(int(match.group(1)), 2) if match and int(match.group(1)) >= 1 else None
    return 1


def request_version() -> int:
    ex = current.exchange()
    view = ex.view if ex is not None else None  # the request's headers, already read: cheaper than request.headers
    return api_version(view.header("Accept") if view is not None else request.headers.get("Accept")) or 1


def json_response(body, status: int = 200, version: int | None = None, headers: dict | None = None) -> Response:
    """`body` as JSON (a str is taken as JSON text already)."""
    version = version or request_version()
    return Response(body if isinstance(body, str) else json.dumps(body), status=status, headers=headers,
                    content_type=V2 if version >= 2 else JSON)  # as mimetype= makes them: neither takes a charset


def render_error(error: SpineError) -> Response:
    if isinstance(error, MeshError) and error.loc:
        body = {"detail": [{"loc": list(error.loc), "msg": error.diagnostics, "type": error.error_type}]}
        return json_response(body, error.status, version=1)
    event, description = CODES.get(error.code, ("", ""))
    text = f"{description}: {error.diagnostics}" if description and error.diagnostics else (
        description or error.diagnostics)
    message_id = error.message_id if isinstance(error, MeshError) else ""
    code = "" if error.code == "AUTH" else error.code
    version = request_version()
    if version >= 2:
        ex = current.exchange()
        body: dict = {"internal_id": ex.id if ex else None, "detail": [{"event": event, "code": code, "msg": text}]}
        if message_id:
            body = {"message_id": message_id, **body}
    else:
        body = {"errorEvent": event, "errorCode": code, "errorDescription": text}
        if message_id:
            body = {"messageID": message_id, **body}
    return json_response(body, error.status, version=version)
