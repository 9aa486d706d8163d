"""The session's GP summaries (session state): every upload per NHS number, newest last, and the document ids
already used, so a re-used id is refused like PSIS refuses it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sandbox.runtime import Sandbox

SUMMARIES = "scr.summaries"  # NHS number -> list of stored uploads (dicts), oldest first
DOCUMENTS = "scr.documents"  # document id (GPSummary/id/@root, upper case) -> NHS number


@dataclass(frozen=True)
class StoredSummary:
    document_id: str
    nhs_number: str
    message_id: str
    received: str  # HL7 TS the sandbox accepted it
    effective_time: str  # GPSummary/effectiveTime
    author_sds_user: str | None
    author_role_profile: str | None
    author_name: str | None
    size: int  # bytes of the GP summary as sent
    refused_consent: bool

    def to_dict(self) -> dict:
        return asdict(self)


class Summaries:
    def __init__(self, sandbox: Sandbox, session: str):
        self.store = sandbox.store
        self.session = session

    def latest(self, nhs_number: str) -> StoredSummary | None:
        item = self.store.state.get(self.session, SUMMARIES, nhs_number)
        return StoredSummary(**item.value[-1]) if item and item.value else None

    def document_used(self, document_id: str) -> str | None:
        """The NHS number an earlier upload of this document id was for, if any."""
        item = self.store.state.get(self.session, DOCUMENTS, document_id.upper())
        return item.value if item else None

    def add(self, summary: StoredSummary) -> None:
        """Store the upload; called at record time, in one transaction with the exchange's journal entry."""
        current = self.store.state.get(self.session, SUMMARIES, summary.nhs_number)
        history = list(current.value) if current else []
        self.store.state.put(self.session, DOCUMENTS, summary.document_id.upper(), summary.nhs_number,
                             create_only=True)
        self.store.state.put(self.session, SUMMARIES, summary.nhs_number, [*history, summary.to_dict()],
                             expect_version=current.version if current else None,
                             create_only=current is None)
