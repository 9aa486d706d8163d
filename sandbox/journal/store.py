"""The storage interface the journal and session state go through, and the factory that picks a backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from sandbox.conformance.findings import Finding
from sandbox.journal.exchange import Exchange


class VersionConflict(Exception):
    """A state write expected one version and found another (or found nothing)."""

    def __init__(self, expected: int | None, actual: int | None):
        super().__init__(f"expected version {expected}, found {actual}")
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class StateItem:
    value: Any
    version: int


@dataclass
class ExchangeFilter:
    session: str | None = None
    service: str | None = None
    operation: str | None = None
    scenario: str | None = None
    status: int | None = None
    outcome: str | None = None  # exchanges with at least one finding of this outcome
    requirement: str | None = None  # exchanges with a finding for this requirement
    since: float | None = None
    until: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SessionRecord:
    """A named session: optionally bound to an assurance plan, for a supplier's system."""

    id: str
    created_at: float
    plan: str | None = None
    supplier: str = ""
    system: str = ""
    token_hash: str | None = None  # SHA-256 of the session token; the token itself is never stored


@dataclass(frozen=True)
class Attestation:
    """An assessor's verdict on a requirement verified by hand."""

    session: str
    requirement: str
    verdict: str  # pass | fail
    by: str
    note: str
    at: float
    seq: int | None = None


@dataclass(frozen=True)
class FindingTotal:
    """How many findings of one outcome a requirement has in a session."""

    requirement: str
    outcome: str
    count: int


@dataclass(frozen=True)
class CoverageCell:
    requirement: str
    scenario: str | None
    outcome: str
    count: int


@dataclass(frozen=True)
class SessionSpan:
    exchanges: int
    first: float | None
    last: float | None
    failed_exchanges: int = 0


class Store(ABC):
    """One small interface for the journal and session state. SQLite (embedded, WAL) is the backend today; the
    interface is what a shared backend for several replicas (PostgreSQL) implements."""

    # --- the journal -------------------------------------------------------------------------------------------
    @abstractmethod
    def record(self, exchange: Exchange, keys: Iterable[str] = ()) -> None:
        """Commit the exchange and its findings; returns only once it is durable against a killed process.
        `keys` index the exchange for behavioural checks that look back over the session (`related`)."""

    @abstractmethod
    def record_many(self, exchanges: Iterable[Exchange]) -> int:
        """Commit many exchanges in one transaction (imports, benchmarks); returns how many."""

    @abstractmethod
    def exchange(self, exchange_id: str) -> Exchange | None: ...

    @abstractmethod
    def exchanges(self, where: ExchangeFilter, limit: int = 100, before: int | None = None) -> list[dict]:
        """Newest first: summaries (no bodies), each with its journal 'seq' for paging with `before`."""

    @abstractmethod
    def iter_exchanges(self, session: str) -> Iterator[Exchange]:
        """Oldest first, complete with bodies and findings: for behavioural checks and reports."""

    @abstractmethod
    def count_exchanges(self, where: ExchangeFilter) -> int: ...

    @abstractmethod
    def related(self, session: str, key: str, limit: int = 1) -> list[Exchange]:
        """The session's exchanges recorded with `key`, newest first: the history a behavioural check asks for.
        Their findings are not loaded (behaviour is judged on what was sent and answered)."""

    @abstractmethod
    def latest(self, session: str, service: str, limit: int = 1) -> list[Exchange]:
        """The session's newest exchanges with one service, newest first, without their findings."""

    @abstractmethod
    def exchanges_by_seq(self, seqs: Iterable[int]) -> list[Exchange]:
        """Complete exchanges for journal seqs, in seq order (report evidence)."""

    # --- sessions and attestations --------------------------------------------------------------------------
    @abstractmethod
    def create_session(self, record: SessionRecord) -> None:
        """Raises VersionConflict when the id is taken."""

    @abstractmethod
    def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abstractmethod
    def session_for_token(self, token_hash: str) -> SessionRecord | None: ...

    @abstractmethod
    def list_sessions(self) -> list[SessionRecord]: ...

    @abstractmethod
    def add_attestation(self, attestation: Attestation) -> Attestation: ...

    @abstractmethod
    def attestations(self, session: str) -> list[Attestation]:
        """Oldest first; the latest per requirement is the one that counts."""

    # --- aggregates for progress and reports (SQL, never 100,000 exchanges in memory) -------------------------
    @abstractmethod
    def finding_totals(self, session: str) -> list[FindingTotal]: ...

    @abstractmethod
    def coverage(self, session: str) -> list[CoverageCell]:
        """Findings counted per requirement, answering scenario (None: the service's logic) and outcome."""

    @abstractmethod
    def scenario_counts(self, session: str) -> dict[str | None, int]: ...

    @abstractmethod
    def finding_samples(self, session: str, requirement: str, outcome: str, first: int,
                        last: int) -> list[tuple[int, Finding]]:
        """The first `first` and last `last` findings of one requirement and outcome, as (exchange seq, finding),
        oldest first and without duplicates."""

    @abstractmethod
    def session_span(self, session: str) -> SessionSpan: ...

    @abstractmethod
    def timeline(self, session: str, start: float, width: float) -> list[tuple[int, int, int]]:
        """Exchanges per time bucket of `width` seconds from `start`: (bucket, exchanges, exchanges with a fail)."""

    @abstractmethod
    def operation_counts(self, session: str) -> list[tuple[str, str, int, int]]:
        """(service, operation, status, exchanges) for the session."""

    # --- session state -----------------------------------------------------------------------------------------
    @abstractmethod
    def get_state(self, session: str, namespace: str, key: str) -> StateItem | None: ...

    @abstractmethod
    def put_state(self, session: str, namespace: str, key: str, value: Any,
                  expect_version: int | None = None, *, create_only: bool = False) -> int:
        """Write and return the new version. With expect_version, the current version must equal it; with
        create_only, the key must not exist yet. Otherwise raises VersionConflict."""

    @abstractmethod
    def list_state(self, session: str, namespace: str) -> dict[str, StateItem]: ...

    def state_stamp(self, session: str, namespace: str) -> int | None:
        """A value that changes whenever the namespace changes (and perhaps at other times): what was read of the
        namespace under one stamp may be kept while the stamp stays the same. None: no such promise."""
        return None

    @abstractmethod
    def delete_state(self, session: str, namespace: str, key: str | None = None) -> None:
        """Delete one key, or the whole namespace when key is None."""

    @abstractmethod
    def next_counter(self, session: str, name: str, start: int = 0) -> int:
        """An atomic per-session counter (e.g. NHS number allocation): returns start, start+1, ..."""

    def clear_state(self, session: str, namespace_prefix: str) -> None:
        """Delete every namespace of the session whose name starts with the prefix (e.g. a service's whole state)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement clear_state")

    # --- single use ------------------------------------------------------------------------------------------------
    @abstractmethod
    def claim(self, session: str, namespace: str, key: str, expires_at: float) -> bool:
        """Use `key` up: True the first time, False every time after, atomically across threads and worker
        processes (single-use tokens, JWT ids). The key is forgotten after `expires_at` (epoch seconds), when
        whatever it identifies is refused for its age anyway. Inside transaction(), part of it: a transaction that
        fails gives the key back."""

    @abstractmethod
    def claimed(self, session: str, namespace: str, key: str) -> bool: ...

    # --- binary blobs (large bodies, file payloads) --------------------------------------------------------------
    def put_blob(self, session: str, key: str, data: bytes) -> None:
        """Store bytes under a per-session key, replacing any earlier value."""
        raise NotImplementedError(f"{type(self).__name__} does not implement blobs")

    def get_blob(self, session: str, key: str) -> bytes | None:
        raise NotImplementedError(f"{type(self).__name__} does not implement blobs")

    def delete_blobs(self, session: str, prefix: str) -> None:
        """Delete every blob of the session whose key starts with the prefix ("" deletes them all)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement blobs")

    # --- grouping writes -----------------------------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager:
        """Group the state, counter and blob writes made inside the block into one atomic commit (reads inside see a
        consistent snapshot). Nested blocks join the outer one. Backends without it run each write on its own."""
        return nullcontext()

    @abstractmethod
    def close(self) -> None: ...

    @property
    def closed(self) -> bool:
        """True once close() was called: background threads that use the store (e.g. Spine deliveries) stop then."""
        return False


def open_store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        from sandbox.journal.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        raise ValueError("a PostgreSQL journal is not available in this version: leave SANDBOX_DATABASE_URL empty "
                         "(SQLite under the data directory) or give sqlite:///path/to/journal.sqlite3")
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path/to/journal.sqlite3")
