"""One exchange: what the supplier sent, what the sandbox answered, which scenario answered, and the findings."""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass, field

from sandbox.conformance.findings import Finding, Outcome, summarise
from sandbox.journal import redaction

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DIGIT_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]  # every 10-bit value as two digits


def new_exchange_id(now: float | None = None) -> str:
    """A ULID: sortable by time across processes and replicas, unique without coordination."""
    millis = int((time.time() if now is None else now) * 1000)
    # 48 bits of time and 80 random bits, as 26 Crockford base-32 digits (130 bits, the top two zero), made two digits
    # at a time. The random part need not be secret, only unrepeated: `random` is seeded from the OS per process (and
    # again in a forked child), without a system call per id.
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | random.getrandbits(80)
    return "".join([_DIGIT_PAIRS[value >> shift & 1023] for shift in range(120, -1, -10)])


@dataclass
class RecordedRequest:
    method: str
    path: str
    query_string: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    client: str = ""

    def __post_init__(self) -> None:
        # Secrets are redacted as the exchange is made, so the journal never holds one, history checks and their
        # keys see what the journal keeps, and an exchange read back from an older journal is redacted too.
        self.path = redaction.redact_text(self.path)
        self.query_string = redaction.redact_query(self.query_string)
        self.headers = redaction.redact_headers(self.headers)
        self.body = redaction.redact_body(self.body, content_type(self.headers))

    def to_dict(self, body_limit: int | None = None) -> dict:
        return {"method": self.method, "path": self.path, "query_string": self.query_string,
                "headers": [list(h) for h in self.headers], "client": self.client,
                **body_fields(self.body, self.headers, body_limit)}


@dataclass
class RecordedResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def __post_init__(self) -> None:
        self.headers = redaction.redact_headers(self.headers)
        self.body = redaction.redact_body(self.body, content_type(self.headers))

    def to_dict(self, body_limit: int | None = None) -> dict:
        return {"status": self.status, "headers": [list(h) for h in self.headers],
                **body_fields(self.body, self.headers, body_limit)}


def header_of(headers: list[tuple[str, str]], name: str) -> str | None:
    """A recorded header's value (the first, case-insensitively), None when absent."""
    name = name.lower()
    return next((value for key, value in headers if key.lower() == name), None)


def content_type(headers: list[tuple[str, str]]) -> str:
    return header_of(headers, "Content-Type") or ""


def body_fields(body: bytes, headers, limit: int | None) -> dict:
    """A body as JSON can carry it: text where it is UTF-8, base64 otherwise; truncated only when asked."""
    shown = body if limit is None else body[:limit]
    try:
        data = {"body": shown.decode("utf-8"), "body_encoding": "utf-8"}
    except UnicodeDecodeError:
        data = {"body": base64.b64encode(shown).decode("ascii"), "body_encoding": "base64"}
    data["body_size"] = len(body)
    if len(shown) < len(body):
        data["body_truncated"] = True
    return data


@dataclass
class Exchange:
    id: str
    session: str
    service: str
    operation: str
    started_at: float
    duration_ms: float
    request: RecordedRequest
    response: RecordedResponse
    findings: list[Finding] = field(default_factory=list)
    scenario: str | None = None
    seq: int | None = None  # the journal's own order, set once stored
    damage: str | None = None  # read back from a damaged journal row: what of it could not be read, and why

    @property
    def counts(self) -> dict[str, int]:
        return summarise(self.findings)

    @property
    def failed(self) -> bool:
        return any(f.outcome == Outcome.FAIL for f in self.findings)

    def summary(self) -> dict:
        return {"id": self.id, "session": self.session, "service": self.service, "operation": self.operation,
                "scenario": self.scenario, "started_at": self.started_at, "duration_ms": round(self.duration_ms, 3),
                "method": self.request.method, "path": self.request.path, "status": self.response.status,
                "findings": self.counts}

    def to_dict(self, body_limit: int | None = None) -> dict:
        data = self.summary()
        data["request"] = self.request.to_dict(body_limit)
        data["response"] = self.response.to_dict(body_limit)
        data["findings"] = [f.to_dict() for f in self.findings]
        data["counts"] = self.counts
        if self.damage:
            data["damaged"] = self.damage
        return data
