"""The interaction catalogue: which Spine service carries an interaction, by which messaging pattern, and what
answers it. Loaded once from interactions.yaml (our own data, written from the published interaction table)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

PATTERNS = ("sync", "async-express", "async-reliable", "forward-reliable", "forward-express")
ANY_SERVICE = "any"  # `services: any` in the catalogue: valid under every Spine service the catalogue names
_CATALOGUE_FILE = Path(__file__).with_name("interactions.yaml")


@dataclass(frozen=True)
class Interaction:
    id: str  # e.g. "QUPA_IN040000UK32"
    service: str  # e.g. "urn:nhs:names:services:pdsquery"
    pattern: str  # one of PATTERNS
    sync_async: bool
    title: str
    response: str | None = None  # the interaction id of the business answer, where known
    schema: bool = False  # the official MIM schema folder holds this interaction's schema
    # Other services that carry it (ANY_SERVICE: every Spine service), such as the application acknowledgement
    # MCCI_IN010000UK13, which travels in the service of the message it answers; and its pattern under them.
    also_under: tuple[str, ...] = ()
    pattern_elsewhere: str | None = None
    answer_to: str | None = None  # an answer only Spine sends: the interaction it answers

    def carried_by(self, service: str | None) -> bool:
        """Whether `service` may carry this interaction: its own, or one it is also valid under."""
        if not service or service == self.service:
            return bool(service)
        if ANY_SERVICE in self.also_under:
            return service in services()
        return service in self.also_under

    def under(self, service: str) -> Interaction | None:
        """This interaction as `service` carries it (its service and pattern there), or None when it may not."""
        if service == self.service:
            return self
        if not self.carried_by(service):
            return None
        return replace(self, service=service, pattern=self.pattern_elsewhere or self.pattern)

    @property
    def services_text(self) -> str:
        """Where it is valid, for people: its service, and "any Spine service" or the others."""
        if ANY_SERVICE in self.also_under:
            return f"{self.service} (and any Spine service)"
        return ", ".join((self.service, *self.also_under))

    @property
    def service_interaction(self) -> str:
        """The SDS service-interaction name, e.g. "urn:nhs:names:services:pdsquery:QUPA_IN040000UK32"."""
        return f"{self.service}:{self.id}"

    @property
    def soap_action(self) -> str:
        """The SOAPAction / wsa:Action Spine uses: service and interaction joined by a slash."""
        return f"{self.service}/{self.id}"

    @property
    def reliable(self) -> bool:
        return self.pattern in ("async-reliable", "forward-reliable")


@functools.cache
def catalogue() -> dict[str, Interaction]:
    """Every interaction Spine core messaging knows, by id. A bad catalogue file is a start-up error."""
    data = yaml.safe_load(_CATALOGUE_FILE.read_text(encoding="utf-8"))
    entries: dict[str, Interaction] = {}
    for iid, fields in data["interactions"].items():
        if fields["pattern"] not in PATTERNS:
            raise ValueError(f"{_CATALOGUE_FILE.name}: {iid}: unknown pattern {fields['pattern']!r}")
        also = fields.get("services") or ()
        also = (also,) if isinstance(also, str) else tuple(also)
        elsewhere = fields.get("pattern_elsewhere")
        if elsewhere is not None and elsewhere not in PATTERNS:
            raise ValueError(f"{_CATALOGUE_FILE.name}: {iid}: unknown pattern_elsewhere {elsewhere!r}")
        entries[iid] = Interaction(
            id=iid, service=fields["service"], pattern=fields["pattern"], sync_async=bool(fields["sync_async"]),
            title=fields["title"], response=fields.get("response"), schema=bool(fields.get("schema", False)),
            also_under=also, pattern_elsewhere=elsewhere, answer_to=fields.get("answer_to"))
    return entries


@functools.cache
def services() -> frozenset[str]:
    """Every Spine service the catalogue names (what `services: any` means)."""
    return frozenset(i.service for i in catalogue().values())


def find(interaction_or_service_interaction: str | None) -> Interaction | None:
    """Look up by bare id ("QUPA_IN040000UK32"), service interaction ("urn:...:pdsquery:QUPA_IN040000UK32") or
    SOAP action ("urn:...:pdsquery/QUPA_IN040000UK32"). For the last two the service must carry it; an interaction
    valid under several services comes back as that service carries it (its service and pattern there)."""
    if not interaction_or_service_interaction:
        return None
    text = interaction_or_service_interaction.strip().strip('"')
    entries = catalogue()
    if text in entries:
        return entries[text]
    for separator in ("/", ":"):
        service, _, iid = text.rpartition(separator)
        entry = entries.get(iid)
        if entry is not None and entry.carried_by(service):
            return entry.under(service)
    return None
