"""PDS behavioural checks over a session's history: retries, back-off, ETags, superseded NHS numbers, request ids.

They run as each exchange is recorded, looking back at the session's earlier exchanges through the keys below,
so a finding lands on the exchange that shows the behaviour (the too-early retry, the stale If-Match).
"""

from __future__ import annotations

import functools
import json
import re
from email.utils import parsedate_to_datetime

from sandbox.conformance.findings import Finding
from sandbox.conformance.history import History, HistoryCheckSet
from sandbox.journal.exchange import Exchange, header_of
from sandbox.services.pds import fixtures

history = HistoryCheckSet("pds")

PATIENT_PATH = re.compile(r"/Patient/([^/?]+)")
PATIENT_HEAD = re.compile(rb'\{\s*"resourceType":\s*"Patient",\s*"id":\s*"([0-9]{10})"')
# A retry is the same request (method, path, query) re-sent after one of these, within RETRY_WINDOW_S.
RETRY_REQUIREMENT = {503: "PDS-ERR-001", 408: "PDS-ERR-003"}
TRANSIENT = {408, 429, 500, 502, 503, 504}  # answers after which re-sending the same X-Request-ID is right
MAX_ATTEMPTS = 5  # attempts at one request (the first and four retries) before a supplier must give up
RETRY_WINDOW_S = 120.0  # later than this, the same request is a new request, not a retry
MIN_BACKOFF_S = 1.0  # after a 429 without Retry-After: a default rate limit is 5 per second, so wait a while
TOLERANCE_S = 0.05  # clock and scheduling slack when comparing waits


def request_id(ex: Exchange) -> str | None:
    value = header_of(ex.request.headers, "X-Request-ID")
    return value.strip().lower() if value else None


def patient_in_path(ex: Exchange) -> str | None:
    return _patient_in(ex.request.path)


@functools.lru_cache(maxsize=4096)  # asked four times an exchange, of paths that repeat
def _patient_in(path: str) -> str | None:
    match = PATIENT_PATH.search(path)
    return match.group(1) if match else None


def returned_patient(ex: Exchange) -> str | None:
    """The id of the Patient a successful answer carried (differs from the number asked for when superseded)."""
    if ex.response.status != 200 or b'"Patient"' not in ex.response.body[:200]:
        return None
    head = PATIENT_HEAD.match(ex.response.body)  # how PDS renders a Patient: no need to parse the whole record
    if head:
        return head.group(1).decode()
    try:
        body = json.loads(ex.response.body)
    except ValueError:
        return None
    return body.get("id") if isinstance(body, dict) and body.get("resourceType") == "Patient" else None


def target(ex: Exchange) -> str:
    return f"{ex.request.method} {ex.request.path}?{ex.request.query_string}"


def answered_at(ex: Exchange) -> float:
    return ex.started_at + ex.duration_ms / 1000


def retry_after(ex: Exchange) -> float | None:
    """Retry-After in seconds: a number of seconds or an HTTP date."""
    value = header_of(ex.response.headers, "Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - answered_at(ex))
    except (TypeError, ValueError):
        return None


@history.key(newest_only=True)  # PDS-HDR-008 asks only whether the request id was used before
def request_id_key(ex: Exchange):
    rid = request_id(ex)
    if rid:
        yield f"request-id:{rid}"


@history.key
def keys(ex: Exchange):
    yield f"target:{target(ex)}"
    asked, returned = patient_in_path(ex), returned_patient(ex)
    for number in {asked, returned} - {None}:
        yield f"patient:{number}"
    if asked and returned and asked != returned:
        yield f"superseded:{asked}"
        yield f"superseding:{returned}"


@history.asks
def superseding_keys(ex: Exchange):
    number = patient_in_path(ex)
    if number:
        yield f"superseded:{number}"
        yield f"superseding:{number}"


@history.register("PDS-ERR-001", "PDS-ERR-003")
def retries_are_patient_and_bounded(ex: Exchange, past: History):
    key = f"target:{target(ex)}"
    earlier = past.related(key)
    if not earlier or earlier[0].response.status not in RETRY_REQUIREMENT:
        return
    earlier = past.related(key, limit=MAX_ATTEMPTS)  # only now: most requests are not retries
    previous = earlier[0]
    status, requirement = previous.response.status, RETRY_REQUIREMENT[previous.response.status]
    waited = ex.started_at - answered_at(previous)
    if waited > RETRY_WINDOW_S:
        return  # a new attempt long after, not a retry
    asked = retry_after(previous)
    what = f"{ex.request.method} {ex.request.path}"
    if asked is not None:
        if waited + TOLERANCE_S < asked:
            yield Finding.failed(requirement, f"Retried {what} {waited:.2f} s after exchange {previous.id} was "
                                 f"answered {status} with Retry-After: {asked:g}; wait at least {asked:g} s before "
                                 "retrying.", "header:Retry-After")
        else:
            yield Finding.passed(requirement, f"Waited {waited:.2f} s before retrying {what} (exchange "
                                 f"{previous.id} asked for Retry-After: {asked:g}).", "header:Retry-After")
    rid, previous_rid = request_id(ex), request_id(previous)
    if rid and rid == previous_rid:
        yield Finding.passed(requirement, f"The retry of exchange {previous.id} re-sends the same X-Request-ID "
                             f"{rid}.", "header:X-Request-ID")
    elif previous_rid:
        yield Finding.failed(requirement, f"The retry of exchange {previous.id} (answered {status}) sends "
                             f"X-Request-ID {rid or '(none)'} instead of re-sending {previous_rid}; a retry must "
                             "carry the same X-Request-ID.", "header:X-Request-ID")
    failures = next((n for n, e in enumerate(earlier) if e.response.status != status), len(earlier))
    if failures >= MAX_ATTEMPTS:
        yield Finding.failed(requirement, f"Attempt {failures + 1} at {what} after {failures} answers of {status} "
                             f"in a row; give up after at most {MAX_ATTEMPTS} attempts and tell the user.")


@history.register("PDS-ERR-002")
def backs_off_after_rate_limit(ex: Exchange, past: History):
    latest = past.latest()
    if not latest or latest[0].response.status != 429:
        return
    previous = latest[0]
    waited = ex.started_at - answered_at(previous)
    needed = retry_after(previous)
    needed = MIN_BACKOFF_S if needed is None else needed
    if waited + TOLERANCE_S < needed:
        yield Finding.failed("PDS-ERR-002", f"Sent {ex.request.method} {ex.request.path} {waited:.2f} s after "
                             f"exchange {previous.id} was refused with 429 TOO_MANY_REQUESTS; back off for at least "
                             f"{needed:g} s (the Retry-After, or {MIN_BACKOFF_S:g} s without one) instead of "
                             "re-sending at once.")
    else:
        yield Finding.passed("PDS-ERR-002", f"Waited {waited:.2f} s after the 429 of exchange {previous.id} before "
                             "sending again.")


@history.register("PDS-UPD-001")
def patch_uses_latest_etag(ex: Exchange, past: History):
    number = patient_in_path(ex)
    if ex.request.method != "PATCH" or not number:
        return
    if_match = (header_of(ex.request.headers, "If-Match") or "").strip()
    # The published examples are read-only: an update is answered but never stored, so their current version
    # is the one a retrieval returns (W/"2"), and every documented update with it succeeds, every time.
    read_only = fixtures.is_fixture(number)

    def answered_etag(e: Exchange) -> bool:
        return (200 <= e.response.status < 300 and bool(header_of(e.response.headers, "ETag"))
                and not (read_only and e.request.method == "PATCH"))

    newest = past.related(f"patient:{number}")  # read with the rest of the history: usually the one
    if not newest or answered_etag(newest[0]):
        latest = newest[0] if newest else None
    else:
        latest = next((e for e in past.related(f"patient:{number}", limit=20) if answered_etag(e)), None)
    etag = header_of(latest.response.headers, "ETag").strip() if latest else None
    if not if_match:
        yield Finding.failed("PDS-UPD-001", f"PATCH of {number} has no If-Match header; send the ETag of your "
                             "latest retrieval of the patient" + (f" ({etag})." if etag else "."), "header:If-Match")
    elif latest is None:
        yield Finding.failed("PDS-UPD-001", f"PATCH of {number} sends If-Match {if_match}, but this session has not "
                             f"retrieved {number}: retrieve the patient first and send the ETag it returns.",
                             "header:If-Match")
    elif if_match == etag:
        yield Finding.passed("PDS-UPD-001", f"If-Match {if_match} is the ETag of the latest answer for {number} "
                             f"(exchange {latest.id}).", "header:If-Match")
    else:
        yield Finding.failed("PDS-UPD-001", f"If-Match {if_match} is not the latest ETag of {number}: exchange "
                             f"{latest.id} returned ETag {etag}. Use the ETag of the newest retrieval or update.",
                             "header:If-Match")


@history.register("PDS-GET-002")
def uses_superseding_number(ex: Exchange, past: History):
    number = patient_in_path(ex)
    if not number:
        return
    revealed = past.related(f"superseded:{number}")
    if revealed:
        newer = returned_patient(revealed[0])
        yield Finding.failed("PDS-GET-002", f"NHS number {number} is superseded: exchange {revealed[0].id} returned "
                             f"the record {newer}. Replace {number} with {newer} and use that from then on.",
                             "path:id")
        return
    switched = past.related(f"superseding:{number}")
    if switched:
        yield Finding.passed("PDS-GET-002", f"Uses the superseding NHS number {number} after exchange "
                             f"{switched[0].id} showed {patient_in_path(switched[0])} was merged into it.", "path:id")


@history.register("PDS-HDR-008")
def request_ids_are_unique(ex: Exchange, past: History):
    rid = request_id(ex)
    if not rid:
        return
    earlier = past.related(f"request-id:{rid}")
    if not earlier:
        yield Finding.passed("PDS-HDR-008", f"X-Request-ID {rid} is new in this session.", "header:X-Request-ID")
        return
    previous = earlier[0]
    status = previous.response.status
    if status in TRANSIENT and target(previous) == target(ex):
        yield Finding.passed("PDS-HDR-008", f"X-Request-ID {rid} is re-used to re-send exchange {previous.id}, "
                             f"which was answered {status}.", "header:X-Request-ID")
    else:
        yield Finding.failed("PDS-HDR-008", f"X-Request-ID {rid} was already used by exchange {previous.id} "
                             f"({previous.request.method} {previous.request.path}, answered {status}); every new "
                             "request needs a new X-Request-ID, re-used only to re-send a request that failed.",
                             "header:X-Request-ID")
