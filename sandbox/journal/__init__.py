"""The journal keeps the evidence: every exchange, its findings, and each session's state."""

from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.journal.store import Store, VersionConflict, open_store

__all__ = ["Exchange", "RecordedRequest", "RecordedResponse", "Store", "VersionConflict", "new_exchange_id",
           "open_store"]
