"""Storage: four small interfaces, each with one job and its guarantees written on it, and the Store that holds one
of each. A backend is one class per interface (sandbox.journal.sqlite with sandbox.journal.state: the embedded
default; sandbox.journal.postgres: several replicas on one database).

- Journal: exchanges and their findings. Append-only, ordered by `seq`; an exchange is durable (and seen by every
  query, in every process and replica) once record() returns, which is before its answer is sent.
- Totals: what reports and progress count over the journal, computed by the database.
- Sessions: named sessions, their plans and assessors' attestations.
- SessionState: per-session versioned values with compare-and-set, counters, single-use keys and blobs, atomic across
  threads, processes and replicas; transaction() groups them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
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


class ClaimTaken(Exception):
    """A key use() was to claim is claimed already; the transaction it was part of keeps nothing. The namespace and
    key say which, when the backend can tell (None: one of the transaction's claims)."""

    def __init__(self, namespace: str | None, key: str | None):
        super().__init__(f"{namespace} {key[:80]!r} is claimed already" if key is not None
                         else "a key the transaction claimed is claimed already")
        self.namespace = namespace
        self.key = key


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


def filter_sql(where: ExchangeFilter, mark: str, value: Callable[[Any], Any]) -> tuple[str, list]:
    """The filter as an SQL condition on `exchanges` (and its `finding_index`), for the SQL backends: `mark` is the
    driver's placeholder, `value` makes a value safe to bind."""
    clauses, args = ["1=1"], []
    for column in ("session", "service", "operation", "scenario", "status"):
        if getattr(where, column) is not None:
            clauses.append(f"{column} = {mark}")
            args.append(value(getattr(where, column)))
    for column, bound, operator in (("started_at", where.since, ">="), ("started_at", where.until, "<")):
        if bound is not None:
            clauses.append(f"{column} {operator} {mark}")
            args.append(value(bound))
    if where.outcome is not None:
        clauses.append(f"n_{where.outcome} > 0" if where.outcome in ("pass", "fail", "warning", "info") else "1=0")
    if where.requirement is not None:
        within = f" AND session = {mark}" if where.session is not None else ""
        clauses.append(f"seq IN (SELECT exchange_seq FROM finding_index WHERE requirement = {mark}{within})")
        args.extend([value(where.requirement)] + ([value(where.session)] if within else []))
    return " AND ".join(clauses), args


CLAIMED_FOR_EVER = 1e12  # epoch seconds (the year 33,658)


def claim_until(seconds: float) -> float:
    """A claim's expiry as backends keep it: not before 0 nor after CLAIMED_FOR_EVER (NaN and huge numbers: for ever)."""
    try:
        seconds = float(seconds)
    except OverflowError:  # an int too large for a float
        return CLAIMED_FOR_EVER
    return min(max(seconds, 0.0), CLAIMED_FOR_EVER) if seconds == seconds else CLAIMED_FOR_EVER


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


class Journal(ABC):
    """Exchanges and their findings: append-only, ordered by `seq` (the order they were recorded)."""

    @abstractmethod
    def record(self, exchange: Exchange, keys: Iterable[str] = (), history: bool = True,
               newest_only: Iterable[str] = ()) -> None:
        """Commit the exchange and its findings; returns only once it is durable against a killed process.
        `keys` index the exchange for behavioural checks that look back over the session (`related`); under a
        `newest_only` key only the newest exchange need be found (`related` with a limit of 1, `newest`). With
        `history` false (its service has no behavioural checks, so nothing will look it up) `related`, `latest` and
        `newest` need not find it; every other query does."""

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

    def newest(self, session: str, service: str, keys: Iterable[str]) -> tuple[dict[str, Exchange], Exchange | None]:
        """The newest exchange recorded under each of `keys` (those that have one) and the session's newest exchange
        with the service, without findings: what behavioural checks mostly ask, in one read where the backend can."""
        found = {key: hit[0] for key in keys if (hit := self.related(session, key))}
        latest = self.latest(session, service)
        return found, latest[0] if latest else None

    @abstractmethod
    def exchanges_by_seq(self, seqs: Iterable[int]) -> list[Exchange]:
        """Complete exchanges for journal seqs, in seq order (report evidence)."""

    @abstractmethod
    def last_activity(self) -> dict[str, float]:
        """Each session in the journal, with when its newest exchange started (retention)."""

    @abstractmethod
    def forget(self, sessions: Iterable[str]) -> int:
        """Delete the sessions' exchanges and findings (retention); returns how many exchanges went."""

    def close(self) -> None:  # noqa: B027 - nothing to close unless the backend holds something
        pass


class Totals(ABC):
    """What progress and reports count over a session's journal, counted by the database (never 100,000 exchanges
    in memory). Every count includes every exchange recorded before the call."""

    @abstractmethod
    def findings(self, session: str) -> list[FindingTotal]: ...

    @abstractmethod
    def coverage(self, session: str) -> list[CoverageCell]:
        """Findings counted per requirement, answering scenario (None: the service's logic) and outcome."""

    @abstractmethod
    def scenarios(self, session: str) -> dict[str | None, int]: ...

    @abstractmethod
    def samples(self, session: str, requirement: str, outcome: str, first: int, last: int) -> list[tuple[int, Finding]]:
        """The first `first` and last `last` findings of one requirement and outcome, as (exchange seq, finding),
        oldest first and without duplicates."""

    @abstractmethod
    def span(self, session: str) -> SessionSpan: ...

    @abstractmethod
    def timeline(self, session: str, start: float, width: float) -> list[tuple[int, int, int]]:
        """Exchanges per time bucket of `width` seconds from `start`: (bucket, exchanges, exchanges with a fail)."""

    @abstractmethod
    def operations(self, session: str) -> list[tuple[str, str, int, int]]:
        """(service, operation, status, exchanges) for the session."""


class Sessions(ABC):
    """Named sessions and assessors' attestations. Each write is committed when the call returns."""

    @abstractmethod
    def create(self, record: SessionRecord) -> None:
        """Raises VersionConflict when the id (or the token) is taken."""

    @abstractmethod
    def get(self, session_id: str) -> SessionRecord | None: ...

    @abstractmethod
    def for_token(self, token_hash: str) -> SessionRecord | None: ...

    @abstractmethod
    def all(self) -> list[SessionRecord]:
        """Oldest first."""

    @abstractmethod
    def attest(self, attestation: Attestation) -> Attestation:
        """Add an attestation; returns it with its `seq`."""

    @abstractmethod
    def attestations(self, session: str) -> list[Attestation]:
        """Oldest first; the latest per requirement is the one that counts."""

    @abstractmethod
    def forget(self, sessions: Iterable[str]) -> None:
        """Delete the sessions' records and attestations (retention)."""


class SessionState(ABC):
    """Per-session state. Every call is atomic across threads, worker processes and replicas, and each write is
    durable when it returns (or, inside transaction(), when the block ends)."""

    @abstractmethod
    def get(self, session: str, namespace: str, key: str) -> StateItem | None: ...

    @abstractmethod
    def put(self, session: str, namespace: str, key: str, value: Any, expect_version: int | None = None,
            create_only: bool = False) -> int:
        """Write and return the new version. With expect_version, the current version must equal it; with
        create_only, the key must not exist yet. Otherwise raises VersionConflict (compare-and-set)."""

    def write(self, session: str, namespace: str, key: str, value: Any, create_only: bool = False) -> None:
        """put() whose new version nobody reads: inside transaction(), a backend may send it with the block's next
        statement rather than wait for it, so a create_only conflict may be raised (VersionConflict) only when the
        block ends, failing the whole block."""
        self.put(session, namespace, key, value, create_only=create_only)

    @abstractmethod
    def items(self, session: str, namespace: str) -> dict[str, StateItem]: ...

    def stamp(self, session: str, namespace: str) -> int | None:
        """A value that changes whenever the namespace changes (and perhaps at other times): what was read of the
        namespace under one stamp may be kept while the stamp stays the same. None: no such promise."""
        return None

    @abstractmethod
    def delete(self, session: str, namespace: str, key: str | None = None) -> None:
        """Delete one key, or the whole namespace when key is None."""

    @abstractmethod
    def clear(self, session: str, namespace_prefix: str) -> None:
        """Delete every namespace of the session whose name starts with the prefix (e.g. a service's whole state)."""

    @abstractmethod
    def next_counter(self, session: str, name: str, start: int = 0) -> int:
        """An atomic per-session counter (e.g. NHS number allocation): returns start, start+1, ..."""

    @abstractmethod
    def claim(self, session: str, namespace: str, key: str, expires_at: float) -> bool:
        """Use `key` up: True the first time, False every time after, atomically everywhere (single-use tokens,
        JWT ids). The key is forgotten after `expires_at` (epoch seconds), when whatever it identifies is refused
        for its age anyway. Inside transaction(), part of it: a transaction that fails gives the key back."""

    def use(self, session: str, namespace: str, key: str, expires_at: float) -> None:
        """claim() whose answer the caller needs only as a failure: ClaimTaken when the key is claimed already. Inside
        transaction(), a backend may send it with the block's other writes rather than wait for it, so ClaimTaken may
        be raised only when the block ends, failing the whole block."""
        if not self.claim(session, namespace, key, expires_at):
            raise ClaimTaken(namespace, key)

    @abstractmethod
    def claimed(self, session: str, namespace: str, key: str) -> bool: ...

    @abstractmethod
    def forget_expired_claims(self, now: float) -> int:
        """Drop the claims past their time; returns how many."""

    @abstractmethod
    def put_blob(self, session: str, key: str, data: bytes) -> None:
        """Store bytes under a per-session key, replacing any earlier value."""

    @abstractmethod
    def get_blob(self, session: str, key: str) -> bytes | None: ...

    @abstractmethod
    def delete_blobs(self, session: str, prefix: str) -> None:
        """Delete every blob of the session whose key starts with the prefix ("" deletes them all)."""

    @abstractmethod
    def forget(self, sessions: Iterable[str]) -> None:
        """Delete everything the sessions hold: values, counters and blobs (retention). Their claims lapse in time."""

    @abstractmethod
    def transaction(self, session: str | None = None) -> AbstractContextManager:
        """Group the state, counter, claim and blob writes made inside the block into one atomic commit.
        Over a `session`: no other transaction over that session (or over the whole store) runs between the block's
        reads and its writes, while transactions over other sessions may run beside it; the block reads and changes
        that session's state, and other sessions' (shared indexes) only through calls atomic on their own: a
        compare-and-set, a create-only put, a claim. Over the whole store (no session): no other transaction at all.
        Nested blocks join the outer one, which must cover them (see joinable)."""

    def close(self) -> None:  # noqa: B027 - nothing to close unless the backend holds something
        pass


def joinable(outer: str | None, inner: str | None) -> None:
    """Raise ValueError unless a transaction over `inner` may join one over `outer` (None: the whole store): the
    outer block's isolation must cover the inner one's."""
    if outer is not None and inner != outer:
        over = "the whole store" if inner is None else f"session {inner!r}"
        raise ValueError(f"a state transaction over {over} cannot join one over session {outer!r}, which does not "
                         "isolate it: open the outer one over the same session or over the whole store")


class Store:
    """One of each interface, opened together and closed together by whoever opened them."""

    def __init__(self, journal: Journal, totals: Totals, sessions: Sessions, state: SessionState,
                 on_close: Callable[[], None] = lambda: None,
                 held: Callable[[], AbstractContextManager] = nullcontext):
        self.journal, self.totals, self.sessions, self.state = journal, totals, sessions, state
        self._on_close = on_close
        self._held = held
        self._closed = False

    def held(self) -> AbstractContextManager:
        """One request's use of the store, on this thread: a backend that connects to a server may keep one
        connection for every call made in the block rather than find one at each."""
        return self._held()

    def idle(self, before: float) -> list[str]:
        """The sessions idle since before `before` (epoch seconds): from their newest exchange, or from their
        creation when they have none."""
        active = self.journal.last_activity()
        idle = {session for session, last in active.items() if last < before}
        idle.update(record.id for record in self.sessions.all() if record.id not in active and record.created_at < before)
        return sorted(idle)

    def forget(self, sessions: Iterable[str]) -> int:
        """Delete everything the sessions hold: exchanges, records, attestations, state. Returns the exchanges
        deleted."""
        sessions = list(sessions)
        exchanges = self.journal.forget(sessions)
        self.sessions.forget(sessions)
        self.state.forget(sessions)
        return exchanges

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.journal.close()
        self.state.close()
        self._on_close()

    @property
    def closed(self) -> bool:
        """True once close() was called: background threads that use the store (e.g. Spine deliveries) stop then."""
        return self._closed


def open_store(url: str, threads: int = 1) -> Store:
    """The store at `url`. `threads`: how many request threads of each process use it at once (a backend with a
    connection pool makes room for all of them)."""
    if url.startswith("sqlite:///"):
        from sandbox.journal.sqlite import open_embedded

        return open_embedded(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from sandbox.journal.postgres import open_postgres

        return open_postgres(url, threads)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path/to/journal.sqlite3 or "
                     "postgresql://user@host/database")
