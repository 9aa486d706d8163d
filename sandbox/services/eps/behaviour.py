"""EPS behavioural checks over a session's history: X-Request-ID is new for every new request and kept only for a
re-sent failed request with the same body (EPS-BEH-001), and a 504 is retried with an identical payload (EPS-BEH-002).

They run as each exchange is recorded, looking back at the session's earlier EPS exchanges under the keys below, so
a finding lands on the exchange that shows the behaviour (the re-used id, the changed retry)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from sandbox.conformance.findings import Finding
from sandbox.conformance.history import History, HistoryCheckSet
from sandbox.journal.exchange import Exchange, header_of
from sandbox.services.eps.context import HL7V3, REQUEST_ID

history = HistoryCheckSet("eps")

REQ_REQUEST_ID, REQ_GATEWAY_TIMEOUT = "EPS-BEH-001", "EPS-BEH-002"
GATEWAY_TIMEOUT = 504
RETRY_WINDOW_S = 300.0  # a re-send of a 504'd request within this time is its retry
WHERE = f"header:{REQUEST_ID}"


def request_id(ex: Exchange) -> str | None:
    value = header_of(ex.request.headers, REQUEST_ID)
    return value.strip().lower() if value and value.strip() else None


def payload(ex: Exchange) -> str:
    """What makes two requests the same request: the operation and the body, byte for byte."""
    digest = hashlib.sha256(f"{ex.request.method} {ex.request.path}\0".encode("utf-8", "replace"))
    digest.update(ex.request.body or b"")
    return digest.hexdigest()


def failed(ex: Exchange) -> bool:
    """A request worth re-sending as it was: the service did not process it (a timeout, an outage, throttling)."""
    return ex.response.status >= 500 or ex.response.status in (408, 429)


@history.key(newest_only=True)  # the checks ask only for the newest earlier request with the id or payload
def keys(ex: Exchange) -> Iterator[str]:
    if ex.operation == HL7V3:  # the derived HL7v3 exchange is the sandbox's own, not a request
        return
    value = request_id(ex)
    if value:
        yield f"request-id:{value}"
    yield f"payload:{payload(ex)}"


@history.register(REQ_REQUEST_ID)
def request_ids_are_new(ex: Exchange, past: History) -> Iterator[Finding]:
    value = request_id(ex)
    if ex.operation == HL7V3 or value is None:
        return  # a missing X-Request-ID is EPS-HDR-001's finding
    earlier = past.related(f"request-id:{value}")
    if not earlier:
        yield Finding.passed(REQ_REQUEST_ID, f"{REQUEST_ID} {value} is new in this session.", WHERE)
        return
    previous = earlier[0]
    if not failed(previous):
        yield Finding.failed(REQ_REQUEST_ID, f"{REQUEST_ID} {value} was already used by exchange {previous.id} "
                             f"(answered {previous.response.status}); every new request needs a new X-Request-ID, "
                             "even for the same prescription. Keep it only to re-send a failed request.", WHERE)
    elif payload(previous) != payload(ex):
        yield Finding.failed(REQ_REQUEST_ID, f"{REQUEST_ID} {value} is re-used from exchange {previous.id} (answered "
                             f"{previous.response.status}) with a different request: a re-sent failed request keeps "
                             "its body; a changed request is a new request with a new X-Request-ID.", WHERE)
    else:
        yield Finding.passed(REQ_REQUEST_ID, f"The failed request of exchange {previous.id} "
                             f"({previous.response.status}) is re-sent unchanged with the same {REQUEST_ID}.", WHERE)


@history.register(REQ_GATEWAY_TIMEOUT)
def timeouts_retried_identically(ex: Exchange, past: History) -> Iterator[Finding]:
    if ex.operation == HL7V3:
        return
    value = request_id(ex)
    timed_out = next((e for e in past.related(f"request-id:{value}") if e.response.status == GATEWAY_TIMEOUT),
                     None) if value else None
    if timed_out is not None and ex.started_at - timed_out.started_at <= RETRY_WINDOW_S:
        if payload(timed_out) == payload(ex):
            yield Finding.passed(REQ_GATEWAY_TIMEOUT, f"The request answered 504 in exchange {timed_out.id} is "
                                 "retried with an identical payload and the same X-Request-ID.", "body")
        else:
            yield Finding.failed(REQ_GATEWAY_TIMEOUT, f"The request answered 504 in exchange {timed_out.id} is "
                                 "retried with a different payload; retry a 504 with the identical payload.", "body")
        return
    same = next(iter(past.related(f"payload:{payload(ex)}")), None)
    if same is not None and same.response.status == GATEWAY_TIMEOUT and \
            ex.started_at - same.started_at <= RETRY_WINDOW_S and request_id(same) != value:
        yield Finding.warning(REQ_GATEWAY_TIMEOUT, f"The request answered 504 in exchange {same.id} is retried "
                              f"with a new {REQUEST_ID}; a retry keeps the same one, so EPS can tell it is a retry.",
                              WHERE)
