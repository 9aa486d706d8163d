"""Behavioural checks over a session's history: did the supplier retry, back off, re-use the latest ETag…?

A service registers *history checks* (each tied to requirement ids) and *key functions*. Every exchange is
indexed in the journal under the keys its service gives it (a request id, a patient, a retry target); a history
check judges the exchange being recorded by looking up the session's earlier exchanges under those keys. They
run at record time, so their findings appear on the exchange itself (and in its X-Sandbox-Findings header).

A key function registered `newest_only` names keys whose checks ask only for the newest earlier exchange (was this
request id used before?). Such keys are new on almost every exchange, and a journal indexes them only as far as that
question needs: the embedded journal keeps them out of its table of every exchange under each key, where a key never
seen before cost a page write of its own (a fifth of importing a PDS retrieval).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from sandbox.conformance.findings import Finding, defect, is_defect

if TYPE_CHECKING:
    from sandbox.journal.exchange import Exchange
    from sandbox.journal.store import Store

log = logging.getLogger(__name__)


class History:
    """One session's earlier exchanges with one service, as history checks ask for them. The newest exchange under
    each of `expected` keys (and the newest of all) is read once, on the first question, in one read; other questions
    go to the journal as they come."""

    def __init__(self, store: Store, session: str, service: str, expected: Iterable[str] = (),
                 newest_only: Iterable[str] = ()):
        self.store = store
        self.session = session
        self.service = service
        self._expected = set(expected)
        self._newest_only = set(newest_only)
        self._newest: tuple[dict[str, Exchange], Exchange | None] | None = None

    def _read_newest(self) -> tuple[dict[str, Exchange], Exchange | None]:
        if self._newest is None:
            self._newest = self.store.journal.newest(self.session, self.service, sorted(self._expected))
        return self._newest

    def related(self, key: str, limit: int = 1) -> list[Exchange]:
        """Earlier exchanges recorded under `key` (as the service's key functions name it), newest first."""
        key = f"{self.service}:{key}"
        if limit > 1 and key in self._newest_only:
            raise ValueError(f"history key {key!r} is registered newest_only: the journal keeps only the newest "
                             "exchange under it")
        if limit == 1 and key in self._expected:
            found = self._read_newest()[0].get(key)
            return [found] if found else []
        return self.store.journal.related(self.session, key, limit)

    def latest(self, limit: int = 1) -> list[Exchange]:
        """The session's newest earlier exchanges with this service, newest first."""
        if limit == 1 and self._expected:
            latest = self._read_newest()[1]
            return [latest] if latest else []
        return self.store.journal.latest(self.session, self.service, limit)


HistoryFunction = Callable[["Exchange", History], Iterable[Finding]]
KeyFunction = Callable[["Exchange"], Iterable[str]]


class HistoryKeys(NamedTuple):
    """The keys an exchange is recorded under: every exchange under a `deep` key can be asked for, only the newest
    under a `newest_only` one."""

    deep: AbstractSet[str]
    newest_only: AbstractSet[str]


NO_KEYS = HistoryKeys(frozenset(), frozenset())


@dataclass(frozen=True)
class HistoryCheck:
    func: HistoryFunction
    requirements: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.func.__name__


class HistoryCheckSet:
    """A service's behavioural checks and the keys its exchanges are indexed under."""

    def __init__(self, service: str):
        self.service = service
        self._checks: list[HistoryCheck] = []
        self._keys: list[KeyFunction] = []
        self._newest_keys: list[KeyFunction] = []
        self._asks: list[KeyFunction] = []

    def register(self, *requirements: str):
        def decorate(func: HistoryFunction) -> HistoryFunction:
            self._checks.append(HistoryCheck(func, requirements))
            return func

        return decorate

    def key(self, func: KeyFunction | None = None, *, newest_only: bool = False):
        """Register a key function (`@history.key`, or `@history.key(newest_only=True)` for keys whose checks ask
        only for the newest earlier exchange: see the module's docstring)."""
        def register(func: KeyFunction) -> KeyFunction:
            (self._newest_keys if newest_only else self._keys).append(func)
            return func

        return register if func is None else register(func)

    def asks(self, func: KeyFunction) -> KeyFunction:
        """Keys (besides the exchange's own) the checks will look up for an exchange: read with the rest at once."""
        self._asks.append(func)
        return func

    def __iter__(self):
        return iter(self._checks)

    def requirement_ids(self) -> set[str]:
        return {r for c in self._checks for r in c.requirements}

    def keys_of(self, exchange: Exchange) -> HistoryKeys:
        """The keys the exchange is recorded under."""
        return HistoryKeys(self._named(exchange, self._keys), self._named(exchange, self._newest_keys))

    def asked_of(self, exchange: Exchange) -> set[str]:
        """The other keys the checks will look up for the exchange (`asks`)."""
        return self._named(exchange, self._asks)

    def _named(self, exchange: Exchange, functions: list[KeyFunction]) -> set[str]:
        keys: set[str] = set()
        for func in functions:
            try:
                keys.update(f"{self.service}:{k}" for k in func(exchange))
            except Exception:  # a broken key function must not cost the supplier an answer
                log.exception("history key %s failed on exchange %s", func.__name__, exchange.id)
        return keys

    def run(self, exchange: Exchange, history: History) -> list[Finding]:
        findings: list[Finding] = []
        for check in self._checks:
            try:
                findings.extend(check.func(exchange, history))
            except Exception as exc:  # fail closed: the pipeline answers a 500 instead (see judge)
                log.exception("history check %s failed on exchange %s", check.name, exchange.id)
                findings.append(defect("behavioural check", check.name, exc))
        return findings


def judge(checks: HistoryCheckSet | None, store: Store, exchange: Exchange) -> HistoryKeys:
    """Run the history checks on an exchange about to be recorded (adding their findings to it); return the keys
    to record it under. A check that crashed leaves a failing sandbox-defect finding (`crashed` finds it): the
    pipeline then answers the service's 500 instead and makes none of the exchange's deferred writes."""
    if checks is None:
        return NO_KEYS
    keys = checks.keys_of(exchange)
    # Read together: one round trip, or one read of the index.
    expected = keys.deep | keys.newest_only | checks.asked_of(exchange)
    exchange.findings.extend(checks.run(exchange, History(store, exchange.session, checks.service, expected,
                                                          keys.newest_only)))
    return keys


def crashed(findings: Iterable[Finding]) -> Finding | None:
    """The first finding that says a check crashed, if any."""
    return next((f for f in findings if is_defect(f)), None)
