"""What SDS says about the parties of a message, for one session: the supplier's own registration, the routing
records (nhsMhs) of each party for each interaction, and Spine's own identity."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sandbox.messaging.interactions import Interaction
from sandbox.services.sds.directory import directory

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox

log = logging.getLogger(__name__)

class Parties:
    """SDS lookups for one session; every answer is cached for the request."""

    def __init__(self, sandbox: Sandbox, session: str, base_url: str):
        self._directory = directory(sandbox)
        self.session = session
        self.base_url = base_url
        self._entries: dict[str, list] = {}

    def registration(self, party_key: str | None):
        if not party_key or self._directory is None:
            return None
        return self._directory.registration(self.session, party_key)

    def registration_for_asid(self, asid: str | None):
        if not asid or self._directory is None:
            return None
        return next((r for r in self._directory.registrations(self.session) if r.asid == asid), None)

    def entries(self, party_key: str | None) -> list:
        """Every routing record (MhsEntry) SDS holds for the party key, in this session."""
        if not party_key or self._directory is None:
            return []
        if party_key not in self._entries:
            self._entries[party_key] = list(self._directory.endpoints(self.session, base_url=self.base_url,
                                                                      party_key=party_key))
        return self._entries[party_key]

    def entry(self, party_key: str | None, interaction: Interaction | str | None):
        """The routing record of the party for one interaction (by id or service interaction), or None."""
        if interaction is None:
            return None
        wanted = interaction.id if isinstance(interaction, Interaction) else interaction
        full = interaction.service_interaction if isinstance(interaction, Interaction) else None
        entries = self.entries(party_key)
        # The entry for the service that carries it first: a party may receive MCCI_IN010000UK13 under several.
        return next((e for e in entries if e.service_interaction in (wanted, full)),
                    next((e for e in entries if e.interaction == wanted), None))

    def party_of_asid(self, asid: str | None) -> str | None:
        registration = self.registration_for_asid(asid)
        return registration.party_key if registration is not None else None
