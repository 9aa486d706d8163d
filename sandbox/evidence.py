"""What one sandbox session left in the journal, as the in-process mock and the pytest fixtures expose it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.conformance.findings import Finding, Outcome

if TYPE_CHECKING:
    from sandbox.journal.exchange import Exchange
    from sandbox.runtime import Sandbox


class SessionEvidence:
    """Needs `session` and `sandbox`; gives the session's exchanges, findings and failures, oldest first."""

    session: str

    @property
    def sandbox(self) -> Sandbox:
        raise NotImplementedError

    @property
    def exchanges(self) -> list[Exchange]:
        """Every request, response, scenario and finding of the session."""
        return list(self.sandbox.store.iter_exchanges(self.session))

    @property
    def findings(self) -> list[Finding]:
        return [f for ex in self.exchanges for f in ex.findings]

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome == Outcome.FAIL]
