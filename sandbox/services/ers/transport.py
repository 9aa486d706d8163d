"""How e-RS answers leave, exactly as the published sandbox's web server sends them (BEHAVIOUR.md section 7):
content types, ETags, a stable last-modified, ranges, conditional 304s, compression of large JSON and text answers,
HEAD, and the headers every answer carries (CORS, X-Request-ID, the X-Correlation-ID echo, vary, cache-control).

`respond` turns a handler's `Answer` into the Flask response; `finish_response` (the service's hook) decorates every
e-RS response, refusals included, and puts the header names in the published sandbox's spelling and order. Granian
lower-cases header names on the wire and adds `server:`; the Flask test client and `mock_spine()` keep them as set."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from email.utils import parsedate_to_datetime
from typing import Any

from flask import Response, g, request
from werkzeug.datastructures import Headers
from werkzeug.http import http_date

from sandbox.services.ers.context import Answer, ErsCall

FHIR_JSON = "application/fhir+json"
JSON_UTF8 = "application/json; charset=utf-8"
HTML_UTF8 = "text/html; charset=utf-8"
TEXT_UTF8 = "text/plain; charset=utf-8"
PDF = "application/pdf"

# What the published sandbox sends on every answer, whatever the request said.
REQUEST_ID = "58621d65-d5ad-4c3a-959f-0438e355990e-1"
EXPOSE = "x-correlation-id,x-request-id,content-type,Location,ETag,Content-Disposition,Content-Length,Cache-Control"
# The published fixtures' modification time (their commit time): any stable date is as faithful.
LAST_MODIFIED = "Fri, 26 Jun 2026 13:24:20 GMT"
COMPRESS_FROM = 1024  # bytes: smaller answers are never compressed
PREFLIGHT_HEADERS = ("origin,x-requested-with,x-correlation-id,accept,content-type,nhsd-session-urid,"
                     "nhsd-end-user-organisation-ods,nhsd-ers-business-function,authorization,nhsd-ers-comm-rule-org,"
                     "nhsd-ers-file-name,nhsd-ers-referral-id,if-match,nhsd-ers-on-behalf-of-user-id")
PREFLIGHT_MAX_AGE = "3628800"

# Header names as the published sandbox spells them, in the order it sends them (order has no meaning in HTTP, but
# the published test suite compares some names case-sensitively: Date, last-modified, Keep-Alive).
SPELLING = ("content-type", "content-disposition", "etag", "Location", "content-length", "content-range",
            "last-modified", "X-Correlation-ID", "X-Request-ID", "vary", "access-control-allow-origin",
            "access-control-allow-methods", "access-control-allow-headers", "access-control-max-age",
            "access-control-expose-headers", "cache-control", "accept-ranges", "content-encoding", "Date",
            "Connection", "Keep-Alive", "Transfer-Encoding")
_RANK = {name.lower(): (rank, name) for rank, name in enumerate(SPELLING)}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def serialise(body: Any) -> bytes:
    """A JSON answer, compact and UTF-8 as is (indenting would take Python's slow encoder, not the C one; the
    published sandbox's bodies are equal as JSON, not byte for byte, as its fixtures' own indents vary)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def body_bytes(answer: Answer) -> bytes:
    if answer.body is None:
        return b""
    if isinstance(answer.body, (bytes, bytearray)):
        return bytes(answer.body)
    if isinstance(answer.body, str):
        return answer.body.encode("utf-8")
    return serialise(answer.body)


def respond(call: ErsCall, answer: Answer) -> Response:
    """The HTTP response of one answer. Answers reproducing a published fixture (`published`) are served as files
    (last-modified, accept-ranges, conditional and range requests), as the published sandbox serves them."""
    method = request.method
    data = body_bytes(answer)
    served_file = answer.published is not None and answer.body is not None
    headers: list[tuple[str, str]] = []
    if answer.body is not None:
        headers.append(("content-type", answer.content_type))
    if answer.disposition:
        headers.append(("content-disposition", answer.disposition))
    if answer.etag:
        headers.append(("etag", answer.etag))
    if answer.location is not None:
        headers.append(("Location", answer.location))
    if served_file:
        headers += [("last-modified", LAST_MODIFIED), ("accept-ranges", "bytes")]
    headers += [(k, v) for k, v in answer.headers.items()]
    status = answer.status
    if served_file and method in ("GET", "HEAD"):
        if _not_modified(answer.etag):
            return plain(304, [h for h in headers if h[0] in ("etag", "last-modified")], b"")
        ranged = _range(data, status)
        if ranged is not None:
            status, data, extra = ranged
            return plain(status, headers + extra + [("content-length", str(len(data)))],
                             b"" if method == "HEAD" else data)
    if _compressible(answer) and len(data) >= COMPRESS_FROM:
        headers.append(("vary", "origin,accept-encoding"))
        coding = _coding(request.headers.get("Accept-Encoding", ""))
        if coding and method != "HEAD":
            packed = gzip.compress(data, mtime=0) if coding == "gzip" else zlib.compress(data)
            response = plain(status, headers + [("content-encoding", coding), ("Transfer-Encoding", "chunked")],
                             packed)
            response.journal_body = data  # the journal keeps the answer itself (pipeline._journal_body)
            return response
    headers.append(("content-length", str(len(data))))
    return plain(status, headers, b"" if method == "HEAD" else data)


def plain(status: int, headers: list[tuple[str, str]], data: bytes) -> Response:
    """A response with exactly these headers: werkzeug adds no content type or length of its own."""
    response = Response(status=status)
    response.automatically_set_content_length = False
    response.response = [data]
    response.headers = Headers(headers)
    return response


def _compressible(answer: Answer) -> bool:
    kind = answer.content_type.split(";")[0].strip().lower()
    return kind in (FHIR_JSON, "application/json") or kind.startswith("text/")


def _coding(accept_encoding: str) -> str | None:
    """gzip when the request accepts it (q > 0), else deflate, else none ('*', 'br' or 'identity' alone: none)."""
    accepted = set()
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            accepted.add(name.strip().lower())
    return "gzip" if "gzip" in accepted else "deflate" if "deflate" in accepted else None


def _not_modified(etag: str | None) -> bool:
    wanted = request.headers.get("If-None-Match")
    if wanted:
        if etag is None:
            return False
        tags = [t.strip().removeprefix("W/") for t in wanted.split(",")]
        return "*" in tags or etag.removeprefix("W/") in tags
    since = request.headers.get("If-Modified-Since")
    if since:
        try:
            return parsedate_to_datetime(since) >= parsedate_to_datetime(LAST_MODIFIED)
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
    return False


def _range(data: bytes, status: int) -> tuple[int, bytes, list[tuple[str, str]]] | None:
    """`Range: bytes=a-b` on a 200 file answer: 206 with that part, or 416 when it lies outside the file."""
    match = _RANGE.match(request.headers.get("Range", "").strip())
    if status != 200 or match is None or match.group(1) == match.group(2) == "":
        return None
    size = len(data)
    first_text, last_text = match.groups()
    if first_text == "":
        first, last = max(size - int(last_text), 0), size - 1
    else:
        first, last = int(first_text), min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or first > last:
        return 416, b"", [("content-range", f"bytes */{size}")]
    return 206, data[first:last + 1], [("content-range", f"bytes {first}-{last}/{size}")]


def preflight() -> Response | None:
    """A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method), answered on any path; an OPTIONS
    without them is the web framework's 404 (section 3.2)."""
    if request.method != "OPTIONS":
        return None
    origin = request.headers.get("Origin")
    wanted_method = request.headers.get("Access-Control-Request-Method")
    if not origin or not wanted_method:
        g.ers_preflight_failed = True
        body = {"statusCode": 404, "error": "Not Found",
                "message": "CORS error: Missing Access-Control-Request-Method header"}
        return plain(404, [("content-type", JSON_UTF8)], json.dumps(body, separators=(",", ":")).encode())
    allowed = set(PREFLIGHT_HEADERS.split(","))
    wanted_headers = [h.strip().lower() for h in request.headers.get("Access-Control-Request-Headers", "").split(",")]
    if any(h and h not in allowed for h in wanted_headers):
        g.ers_preflight_failed = True
        body = json.dumps({"message": "CORS error: Some headers are not allowed"}, separators=(",", ":")).encode()
        return plain(200, [("content-type", JSON_UTF8), ("content-length", str(len(body)))], body)
    g.ers_preflight = True
    return plain(200, [("access-control-allow-origin", origin), ("access-control-allow-methods", wanted_method),
                           ("access-control-allow-headers", PREFLIGHT_HEADERS),
                           ("access-control-max-age", PREFLIGHT_MAX_AGE), ("content-length", "0")], b"")


def _framework_error(response: Response) -> bool:
    """Kind H: the web framework's own JSON error (bad body, 413, 415, 500), which carries no request ids."""
    return (response.mimetype == "application/json" and not response.is_streamed
            and response.get_data().startswith(b'{"statusCode":'))


def finish_response(response: Response) -> None:
    """What every e-RS answer carries (section 7), then the headers in the published spelling and order."""
    headers = response.headers
    failed_preflight = bool(g.get("ers_preflight_failed"))
    bare = failed_preflight or _framework_error(response)
    correlation = request.headers.get("X-Correlation-ID", "")
    if correlation and not failed_preflight and not _framework_error(response):
        headers["X-Correlation-ID"] = correlation
    if not bare and "/ObjectStore" not in request.path:
        headers["X-Request-ID"] = REQUEST_ID
    if "vary" not in headers and not failed_preflight and not g.get("ers_preflight"):
        headers["vary"] = "origin"
    origin = request.headers.get("Origin")
    if origin and "access-control-allow-origin" not in headers and not failed_preflight:
        headers["access-control-allow-origin"] = origin
    headers["access-control-expose-headers"] = EXPOSE
    headers["cache-control"] = "no-cache"
    if "content-length" not in headers and "Transfer-Encoding" not in headers and not response.is_streamed:
        headers["content-length"] = str(len(response.get_data()))
    headers["Date"] = http_date()
    # Werkzeug's own server (`spine-sandbox run`) closes every connection and says so: a keep-alive claim beside
    # its close would make clients reuse the connection, and its drain of the socket then waits on their next request.
    closing = request.environ.get("SERVER_SOFTWARE", "").startswith("Werkzeug/")
    if "close" not in request.headers.get("Connection", "").lower() and not closing:
        headers["Connection"] = "keep-alive"  # as Node's server sends it; Granian keeps the connection open too
        headers["Keep-Alive"] = "timeout=5"
    response.automatically_set_content_length = False
    response.headers = Headers(_published_order(list(headers.items())))


def _published_order(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    known, other = [], []
    for name, value in pairs:
        rank = _RANK.get(name.lower())
        if rank is None:
            other.append((name, value))
        else:
            known.append((rank[0], rank[1], value))
    return [(name, value) for _, name, value in sorted(known, key=lambda item: item[0])] + other
