"""One sandbox session as the in-process mock and the pytest fixtures expose it: the credentials that put traffic in
it, and what it left in the journal."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by the pytest plugin, which costs a suite that never uses it nothing
    from sandbox.conformance.findings import Finding
    from sandbox.journal.exchange import Exchange
    from sandbox.journal.store import Store
    from sandbox.runtime import Sandbox

SESSION_HEADER = "X-Sandbox-Session"  # as sandbox.web.sessions reads it (a test keeps the two equal)
DEFAULT_SUPPLIER = "Unnamed supplier"  # what a report names when the test run did not say
DEFAULT_SYSTEM = "Unnamed system"
PAGE = 500


def latest_seq(store: Store, session: str) -> int:
    """The journal position of the session's newest exchange (0 when it has none)."""
    from sandbox.journal.store import ExchangeFilter

    newest = store.journal.exchanges(ExchangeFilter(session=session), limit=1)
    return newest[0]["seq"] if newest else 0


class SessionEvidence:
    """Needs `session` and `sandbox`. `since` (a journal seq) starts the view part-way through a session that other
    tests share, so each test sees its own exchanges; `token` is the session token, when there is one."""

    session: str
    token: str | None = None
    since: int = 0

    @property
    def sandbox(self) -> Sandbox:
        raise NotImplementedError

    @property
    def headers(self) -> dict[str, str]:
        """Puts a request in this session."""
        return {SESSION_HEADER: self.session}

    @property
    def auth_headers(self) -> dict[str, str]:
        """`Authorization: Bearer <session token>`: puts a request in this session and stands in for a valid access
        token (of the mode chosen with access=, else the plan's access mode, else application-restricted). Empty
        without a token."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def exchanges(self) -> list[Exchange]:
        """Every request, response, scenario and finding in view, oldest first."""
        store = self.sandbox.store
        if not self.since:
            return list(store.journal.iter_exchanges(self.session))
        from sandbox.journal.store import ExchangeFilter

        # Newest first, back to `since` only: a test late in a long plan-bound run does not re-read the whole run.
        seqs: list[int] = []
        before = None
        while True:
            page = store.journal.exchanges(ExchangeFilter(session=self.session), limit=PAGE, before=before)
            newer = [row["seq"] for row in page if row["seq"] > self.since]
            seqs += newer
            if len(newer) < PAGE:
                return store.journal.exchanges_by_seq(seqs)
            before = newer[-1]

    @property
    def findings(self) -> list[Finding]:
        return [f for ex in self.exchanges for f in ex.findings]

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome == "fail"]
