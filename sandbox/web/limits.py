"""How long a request's URL and headers may be: the live services' front door refuses longer ones, and so does the
sandbox, in the service's own error shape and with a journal entry (the pipeline calls `check_head` first).

The NHS API platform (PDS, SDS, the identity service) runs on Apigee, whose published limits are a 7 KB request
URL and 25 KB of request headers; Spine and MESH publish none, so the same apply to every service. Longer heads,
up to what the HTTP parser takes (sandbox.web.server: 64 KB URLs, 128 KB heads), reach the app so the refusal is
journaled; docs/running.md ("Limits") lists both.
"""

from __future__ import annotations

from flask import Request

from sandbox.conformance.findings import SpineError

MAX_URL_BYTES = 7 * 1024
MAX_HEADER_BYTES = 25 * 1024


def url_bytes(req: Request) -> int:
    """The request target: path and query string (WSGI strings are latin-1, one character per byte; the path is
    already percent-decoded, so an encoded path counts a little shorter than sent)."""
    path = req.environ.get("SCRIPT_NAME", "") + req.environ.get("PATH_INFO", "")
    query = req.environ.get("QUERY_STRING", "")
    return len(path) + (len(query) + 1 if query else 0)


def header_bytes(req: Request) -> int:
    """Every header line as sent ("Name: value\\r\\n"), counted from the environ the headers are read from (as
    werkzeug reads them: HTTP_X_REQUEST_ID is X-Request-ID) without making each name."""
    size = 0
    for key, value in req.environ.items():
        if key.startswith("HTTP_"):
            if key not in _CONTENT_KEYS_AS_HTTP:
                size += len(key) - 1 + len(value)  # less "HTTP_", plus ": " and CRLF
        elif key in _CONTENT_KEYS and value:
            size += len(key) + 4 + len(value)
    return size


_CONTENT_KEYS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
_CONTENT_KEYS_AS_HTTP = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})


def check_head(req: Request, service) -> None:
    """Raise the service's refusal when the URL or the headers are longer than the live service accepts."""
    if service is None:
        return
    size = url_bytes(req)
    if size > MAX_URL_BYTES:
        raise _refusal(service, 414, f"The request URL is {size} bytes long; the live service accepts at most "
                                     f"{MAX_URL_BYTES} bytes (path and query string).")
    size = header_bytes(req)
    if size > MAX_HEADER_BYTES:
        raise _refusal(service, 431, f"The request headers are {size} bytes long; the live service accepts at most "
                                     f"{MAX_HEADER_BYTES} bytes of headers.")


def _refusal(service, status: int, text: str) -> SpineError:
    # The service's own code for a malformed request (PDS INVALID_VALUE, OAuth invalid_request, SDS BAD_REQUEST),
    # with the status the front door answers.
    bad_request = service.http_error(400, text)
    return SpineError(status, service.http_error_codes.get(status) or bad_request.code, text,
                      issue_code="too-long" if status == 414 else "invalid")
