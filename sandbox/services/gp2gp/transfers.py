"""The session's GP2GP transfers (session state): each EHR request answered, the extract and fragments sent for it,
and the requester's acknowledgement when it comes."""

from __future__ import annotations

from sandbox.runtime import Sandbox

REQUESTS = "gp2gp.requests"  # EHR request id (upper case) -> extract message id
EXTRACTS = "gp2gp.extracts"  # extract message id -> the transfer (dict)


class Transfers:
    def __init__(self, sandbox: Sandbox, session: str):
        self.store = sandbox.store
        self.session = session

    def answered(self, request_id: str) -> str | None:
        """The extract message id an earlier request with this id was answered with, if any."""
        item = self.store.state.get(self.session, REQUESTS, request_id.upper())
        return item.value if item else None

    def extract(self, message_id: str) -> dict | None:
        item = self.store.state.get(self.session, EXTRACTS, message_id.upper())
        return item.value if item else None

    def record(self, request_id: str, extract_message_id: str, transfer: dict) -> None:
        self.store.state.put(self.session, REQUESTS, request_id.upper(), extract_message_id)
        self.store.state.put(self.session, EXTRACTS, extract_message_id.upper(), transfer)

    def acknowledge(self, extract_message_id: str, ack: dict) -> None:
        item = self.store.state.get(self.session, EXTRACTS, extract_message_id.upper())
        if item is not None:
            self.store.state.put(self.session, EXTRACTS, extract_message_id.upper(),
                                 {**item.value, "acknowledgement": ack}, expect_version=item.version)
