"""e-RS behavioural checks over a session's history: versions respected, worklists polled politely, no retry storms.

They run as each exchange is recorded, looking back at the session's earlier e-RS exchanges through the keys below,
so a finding lands on the exchange that shows the behaviour (the stale If-Match, the too-early poll, the third
identical refused request).
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib

from sandbox.conformance.findings import Finding
from sandbox.conformance.history import History, HistoryCheckSet
from sandbox.journal.exchange import Exchange, header_of
from sandbox.services.ers.checks import A008, A016, A023, A034, IF_MATCH_OPS, IF_MATCH_PATTERN
from sandbox.services.ers.context import (
    BUSINESS_FUNCTION,
    COMM_RULE_ORG,
    FILE_NAME,
    ODS_CODE,
    ON_BEHALF_OF,
    REFERRAL_ID,
)

history = HistoryCheckSet("ers")

REQ_VERSION, REQ_POLL, REQ_RETRY = "ERS-VER-001", "ERS-POLL-001", "ERS-RETRY-001"

# The resource a request is about: /ReferralRequest/<ubrn>, /CommunicationRequest/<ubrn>, /Appointment/<id> (the
# `$ers.` operations on a whole type name none).
RESOURCE_PATH = re.compile(r"/FHIR/STU3/(ReferralRequest|CommunicationRequest|Appointment)/([^/$?][^/?]*)")
VERSIONED = "/_history/"
RESOURCE_TYPES = ("ReferralRequest", "CommunicationRequest", "Appointment")
# The published sandbox's own examples: its writes are answered but never stored, so their reads keep saying the
# same version, and only those reads say what the current version is.
PUBLISHED_IDS = re.compile(r"^(0000000700[0-9]{2}|700[0-9]{2})$")
WORKLISTS = (A008, A023)
MIN_POLL_INTERVAL_S = 60.0  # ERS-POLL-001: one poll a minute per worklist
RETRY_WINDOW_S = 60.0  # an identical request within this time of a refusal re-sends it
STORM = 3  # the third identical refused attempt in a row is a storm
WORTH_RETRYING = {408, 423, 429}  # timeout, locked, throttled: re-sending later is right (after backing off)
# What makes two requests the same request (volatile headers such as X-Correlation-ID are left out).
SAME_REQUEST_HEADERS = ("authorization", "content-type", "if-match", BUSINESS_FUNCTION.lower(), ON_BEHALF_OF.lower(),
                        ODS_CODE.lower(), COMM_RULE_ORG.lower(), FILE_NAME.lower(), REFERRAL_ID.lower())
# A booking (A016) or an appointment change (A034) answers with the Appointment naming the referral's new version.
APPOINTMENT_CHANGES = (A016, A034)
INCOMING_REFERRAL = re.compile(rb'"reference"\s*:\s*"ReferralRequest/([0-9]{12})/_history/([0-9]+)"')
MAX_BODY_READ = 256 * 1024  # bodies of answers read for a created resource's id; larger ones are not creations


def answered_at(ex: Exchange) -> float:
    return ex.started_at + ex.duration_ms / 1000


def resource_in_path(ex: Exchange) -> str | None:
    match = RESOURCE_PATH.search(ex.request.path)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def created_resource(ex: Exchange) -> str | None:
    """The resource a successful create answered with (A011, A016, A021, A027): its type and id from the body."""
    if ex.response.status not in (200, 201) or ex.request.method != "POST" or resource_in_path(ex):
        return None
    body = answer_body(ex)
    if not body or not any(t.encode() in body[:400] for t in RESOURCE_TYPES):
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(document, dict) and document.get("resourceType") in RESOURCE_TYPES and isinstance(
            document.get("id"), str):
        return f"{document['resourceType']}/{document['id']}"
    return None


def answer_body(ex: Exchange) -> bytes | None:
    """The answer's body as sent before compression (gzip or deflate for larger answers), None when too large."""
    body = ex.response.body or b""
    coding = (header_of(ex.response.headers, "Content-Encoding") or "").strip().lower()
    if coding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if coding == "gzip" else zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, MAX_BODY_READ + 1)
        except zlib.error:
            return None
    return body if len(body) <= MAX_BODY_READ else None


def etag(ex: Exchange) -> str | None:
    value = header_of(ex.response.headers, "ETag")
    return value.strip() if value else None


def same_request(ex: Exchange) -> str:
    """A digest of what makes a request the same request: method, path, query, body and the headers that matter."""
    digest = hashlib.sha256()
    for part in (ex.request.method, ex.request.path, ex.request.query_string):
        digest.update(part.encode("utf-8", "replace") + b"\0")
    for name in SAME_REQUEST_HEADERS:
        digest.update((header_of(ex.request.headers, name) or "").encode("utf-8", "replace") + b"\0")
    digest.update(ex.request.body or b"")
    return digest.hexdigest()


def worklist(ex: Exchange) -> str | None:
    """One worklist: the operation and body (list type and filters), for one organisation and business function."""
    if ex.operation not in WORKLISTS:
        return None
    digest = hashlib.sha256(ex.request.body or b"").hexdigest()[:32]
    who = f"{header_of(ex.request.headers, ODS_CODE) or ''}|{header_of(ex.request.headers, BUSINESS_FUNCTION) or ''}"
    return f"{ex.operation}:{hashlib.sha256(who.encode('utf-8', 'replace')).hexdigest()[:16]}:{digest}"


def referral_versions_in_answer(ex: Exchange) -> dict[str, str]:
    """What an answer about another resource says of a referral's version: a booking or an appointment change
    (A016, A034) answers with the Appointment, whose incomingReferral names `ReferralRequest/<ubrn>/_history/<v>`,
    the referral's version after the change."""
    if ex.operation not in APPOINTMENT_CHANGES or not 200 <= ex.response.status < 300:
        return {}
    body = answer_body(ex)
    found = {}
    for match in INCOMING_REFERRAL.finditer(body or b""):
        found[f"ReferralRequest/{match.group(1).decode()}"] = f'W/"{match.group(2).decode()}"'
    return found


@history.key
def keys(ex: Exchange):
    for resource in {resource_in_path(ex), created_resource(ex), *referral_versions_in_answer(ex)} - {None}:
        yield f"resource:{resource}"
    yield f"request:{same_request(ex)}"
    poll = worklist(ex)
    if poll:
        yield f"worklist:{poll}"


def version_told(ex: Exchange, resource: str, published: bool) -> str | None:
    """The current version of `resource` an earlier answer says: the ETag of a successful read or change of it, or
    the referral version an appointment change names; None for a read of an older version and (for the published
    examples) a change, which they never keep."""
    if not 200 <= ex.response.status < 300 or VERSIONED in ex.request.path:
        return None
    if published and ex.request.method in ("POST", "PUT"):
        return None
    if resource in (resource_in_path(ex), created_resource(ex)):
        return etag(ex)
    return referral_versions_in_answer(ex).get(resource)


@history.register(REQ_VERSION)
def versions_are_current(ex: Exchange, past: History):
    resource = resource_in_path(ex)
    sent = (header_of(ex.request.headers, "If-Match") or "").strip()
    if ex.operation not in IF_MATCH_OPS or not resource or not IF_MATCH_PATTERN.match(sent):
        return  # a missing or malformed If-Match is ERS-HDR-004's finding
    published = bool(PUBLISHED_IDS.match(resource.split("/", 1)[1]))
    told = ((e, version_told(e, resource, published)) for e in past.related(f"resource:{resource}", limit=20))
    latest, current = next(((e, version) for e, version in told if version), (None, None))
    if ex.response.status == 409:
        yield Finding.failed(REQ_VERSION, f"If-Match {sent} is not the current version of {resource} (the answer is "
                             "409)" + (f"; exchange {latest.id} returned {current}" if latest else "")
                             + ". Read it again and use the ETag of that read.", "header:If-Match")
    elif latest is None:
        yield Finding.warning(REQ_VERSION, f"If-Match {sent} names a version of {resource}, which this session has "
                              "not read: read it first (A005, A024, A038) and send the ETag that returns.",
                              "header:If-Match")
    elif sent == current:
        yield Finding.passed(REQ_VERSION, f"If-Match {sent} is the version exchange {latest.id} returned for "
                             f"{resource}.", "header:If-Match")
    else:
        yield Finding.failed(REQ_VERSION, f"If-Match {sent} is stale: exchange {latest.id} returned {current} for "
                             f"{resource}. Send the ETag of your latest read or change.", "header:If-Match")


@history.register(REQ_POLL)
def worklists_polled_politely(ex: Exchange, past: History):
    poll = worklist(ex)
    if not poll:
        return
    earlier = past.related(f"worklist:{poll}")
    if not earlier:
        return
    previous = earlier[0]
    if previous.response.status >= 400:
        return  # re-sending a refused fetch is a retry (ERS-RETRY-001), not a poll
    waited = ex.started_at - answered_at(previous)
    if waited < MIN_POLL_INTERVAL_S:
        yield Finding.warning(REQ_POLL, f"The same worklist was fetched {max(waited, 0):.1f} s after exchange "
                              f"{previous.id}; poll a worklist at most once every {MIN_POLL_INTERVAL_S:g} s.")
    else:
        yield Finding.passed(REQ_POLL, f"Waited {waited:.0f} s since the last fetch of this worklist (exchange "
                             f"{previous.id}).")


@history.register(REQ_RETRY)
def no_retry_storms(ex: Exchange, past: History):
    earlier = past.related(f"request:{same_request(ex)}", limit=STORM - 1)
    refused = []
    moment = ex.started_at
    for previous in earlier:  # newest first: the run of identical refusals just before this one
        status = previous.response.status
        if not 400 <= status < 500 or status in WORTH_RETRYING or moment - answered_at(previous) > RETRY_WINDOW_S:
            break
        refused.append(previous)
        moment = previous.started_at
    if not refused:
        return
    last = refused[0]
    what = f"{ex.request.method} {ex.request.path}"
    if len(refused) + 1 >= STORM:
        yield Finding.failed(REQ_RETRY, f"Attempt {len(refused) + 1} at the same {what}, re-sent unchanged after "
                             f"{len(refused)} refusals ({last.response.status}, exchange {last.id}): a refused "
                             "request fails the same way again; fix it or tell the user.")
    else:
        yield Finding.warning(REQ_RETRY, f"{what} is re-sent unchanged after exchange {last.id} was refused with "
                              f"{last.response.status}; a 4xx refusal is not worth retrying as it is.")
