"""Checks are plain functions over what a supplier sent; each is registered against the requirements it verifies."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.conformance.findings import Finding, defect
from sandbox.conformance.parsing import Malformed, parse_json, printable

log = logging.getLogger(__name__)

_UNPARSED = object()


@dataclass
class RequestView:
    """A request as checks see it, built from a live request or from the journal (so checks can re-run later)."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # path parameters of the matched route
    _json: Any = field(default=_UNPARSED, repr=False)
    _lower: dict[str, str] | None = field(default=None, repr=False)

    def header(self, name: str) -> str | None:
        if self._lower is None:
            self._lower = {}
            for key, value in self.headers:
                self._lower.setdefault(key.lower(), value)
        return self._lower.get(name.lower())

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    @property
    def content_type(self) -> str:
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()

    def json(self):
        """The parsed body; raises Malformed for a body that is not JSON."""
        if self._json is _UNPARSED:
            try:
                self._json = parse_json(self.body)
            except Malformed:
                self._json = _UNPARSED
                raise
        return self._json

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class CheckContext:
    """What a check may need beyond the request: the operation, the session, and facts the service adds."""

    operation: str
    session: str = "default"
    facts: dict[str, Any] = field(default_factory=dict)  # e.g. the identity resolved from a token
    writes: list[Callable[[], None]] = field(default_factory=list)  # made just before the exchange is journaled
    claims: list[Claim] = field(default_factory=list)  # made just before the writes

    def write_with_record(self, write: Callable[[], None]) -> None:
        """Make `write` in the transaction committed just before the exchange is journaled (see
        ExchangeContext.write_with_record); it may raise findings.Refusal when the request must be refused after
        all."""
        self.writes.append(write)

    def claim_with_record(self, claim: Claim) -> None:
        """Use a single-use key up once the service has answered (not when a scripted scenario answers instead);
        if a concurrent request used it first, the exchange is refused with the claim's finding after all."""
        self.claims.append(claim)


@dataclass(frozen=True)
class Claim:
    """A key to use up for good (Store.claim), and the finding that refuses the request if it was used already."""

    namespace: str
    key: str
    expires_at: float
    refusal: Finding


CheckFunction = Callable[[RequestView, CheckContext], Iterable[Finding]]


@dataclass(frozen=True)
class Check:
    func: CheckFunction
    requirements: tuple[str, ...]
    operations: frozenset[str] | None  # None: every operation of the service

    @property
    def name(self) -> str:
        return self.func.__name__


class CheckSet:
    """A service's request checks, in the order live Spine applies them (the first rejection is answered)."""

    def __init__(self, service: str):
        self.service = service
        self._checks: list[Check] = []

    def register(self, *requirements: str, operations: Iterable[str] | None = None):
        def decorate(func: CheckFunction) -> CheckFunction:
            self._checks.append(Check(func, requirements, frozenset(operations) if operations else None))
            return func

        return decorate

    def __iter__(self):
        return iter(self._checks)

    def requirement_ids(self) -> set[str]:
        return {r for c in self._checks for r in c.requirements}

    def run(self, request: RequestView, context: CheckContext) -> list[Finding]:
        findings: list[Finding] = []
        for check in self._checks:
            if check.operations is not None and context.operation not in check.operations:
                continue
            try:
                findings.extend(check.func(request, context))
            except Exception as exc:  # fail closed: a request a check could not judge is refused, not let through
                log.exception("check %s failed on %s %s", check.name, request.method, request.path)
                findings.append(defect("check", check.name, exc))
        return findings


def query_from(multidict: Mapping) -> dict[str, list[str]]:
    """Query parameters as checks see them: lone surrogates (from a test client, or a surrogateescape'd byte) read
    as U+FFFD, so no parameter breaks storage, a history key or a UTF-8 answer that quotes it."""
    return {printable(key): [printable(v) for v in multidict.getlist(key)] for key in multidict}


def headers_from(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Request headers as checks see them (and the journal keeps them), lone surrogates read as U+FFFD."""
    return [(printable(key), printable(value)) for key, value in headers]
