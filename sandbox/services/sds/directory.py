"""The directory every Spine messaging pattern routes by: who runs which message handler (MHS) for which service
interaction, and which accredited systems (AS) exist. Per session it is three layers:

1. the published SDS sandbox's records (published.yaml);
2. Spine's own entries: an MHS entry of party YES-0000806 for every interaction of the messaging catalogue, at this
   sandbox's address, and Spine's AS entry listing them (left out with SANDBOX_SDS_ADDRESSES=published, when the
   published records answer verbatim; a published record wins over Spine's own entry for the same interaction);
3. each supplier's own registrations (session state), with a global index party key / ASID -> session, so the
   spine service can find a caller's session from its credentials.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import yaml

from sandbox.hosting import outbound
from sandbox.hosting.outbound import AllowList
from sandbox.journal.store import Store, VersionConflict
from sandbox.messaging import SPINE_ASID, SPINE_ODS, SPINE_PARTY_KEY
from sandbox.messaging.interactions import Interaction, catalogue, find
from sandbox.retention import forget_entries

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox

SPINE_MANUFACTURER = "X09001"  # the published Spine AS record's manufacturer

PUBLISHED, SPINE, REGISTERED = "published", "spine", "registered"
ACTOR_TO_PARTY_MSH = "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"
# Where each messaging pattern reaches Spine (the live paths).
PATTERN_PATHS = {"sync": "/sync-service", "async-express": "/reliablemessaging/queryrequest",
                 "async-reliable": "/reliablemessaging/reliablerequest",
                 "forward-reliable": "/reliablemessaging/intermediary",
                 "forward-express": "/reliablemessaging/intermediary"}

# Session state: registrations per session; the global index lives in a session of its own ('_' never starts a
# tenant's session id).
REGISTRATIONS = "sds.registration"
INDEX_SESSION = "_sds"
BY_PARTY_KEY = "sds.party-key"
BY_ASID = "sds.asid"

ODS_PATTERN = re.compile(r"^[A-Z0-9]{3,10}$")
ASID_PATTERN = re.compile(r"^\d{12}$")
DURATION_PATTERN = re.compile(r"^P(?=\d|T\d)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_DATA_FILE = Path(__file__).with_name("published.yaml")


@dataclass(frozen=True)
class MhsEntry:
    """One routing record (an nhsMhs entry): one party's MHS for one service interaction. `endpoint` is the party's
    own address; the FHIR /Endpoint answer replaces it with Spine's intermediary for forwarded interactions."""

    ods: str
    party_key: str
    service_interaction: str
    service: str
    interaction: str
    cpa_id: str
    endpoint: str
    fqdn: str
    ack_requested: str | None
    duplicate_elimination: str | None
    sync_reply_mode: str | None
    persist_duration: str | None
    retries: int | None
    retry_interval: str | None
    actor: str | None
    unique_identifier: str
    source: str  # "published" | "spine" | "registered"


@dataclass(frozen=True)
class AccreditedSystem:
    """An nhsAs entry: a system accredited to send and receive the listed service interactions."""

    ods: str
    asid: str
    party_key: str
    manufacturer: str | None
    client_ods: str
    interactions: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Registration:
    """A supplier's own system, per session: where its MHS listens and which interactions it receives."""

    ods: str
    asid: str
    party_key: str
    endpoint: str
    interactions: tuple[str, ...]  # full service interaction ids (normalised through the catalogue)
    retries: int = 2
    retry_interval: str = "PT1M"
    persist_duration: str = "PT5M"
    ca_file: str | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["interactions"] = list(self.interactions)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Registration:
        return cls(**{**data, "interactions": tuple(data.get("interactions", ()))})


class RegistrationError(ValueError):
    """A registration cannot be accepted; `field` names what is wrong, the message says why."""

    def __init__(self, field_name: str, message: str, status: int = 400):
        super().__init__(message)
        self.field = field_name
        self.status = status


def split_service_interaction(value: str) -> tuple[str, str]:
    """'urn:nhs:names:services:psis:REPC_IN150016UK05' -> ('urn:nhs:names:services:psis', 'REPC_IN150016UK05')."""
    service, _, interaction = value.rpartition(":")
    return service, interaction


# --- the published records -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublishedData:
    systems: tuple[AccreditedSystem, ...]
    handlers: tuple[MhsEntry, ...]


@functools.cache
def published() -> PublishedData:
    data = yaml.safe_load(_DATA_FILE.read_text(encoding="utf-8"))
    systems = tuple(
        AccreditedSystem(ods=s["ods"], asid=s["asid"], party_key=s["party_key"], manufacturer=s.get("manufacturer"),
                         client_ods=s["client_ods"], source=PUBLISHED,
                         interactions=tuple(sorted(f"{svc}:{i}" for svc, ids in s["interactions"].items()
                                                   for i in ids)))
        for s in data["accredited_systems"])
    handlers = []
    for h in data["message_handlers"]:
        rel = h.get("reliability") or {}
        for svc_ia in h["service_interactions"]:
            service, interaction = split_service_interaction(svc_ia)
            handlers.append(MhsEntry(
                ods=h["ods"], party_key=h["party_key"], service_interaction=svc_ia, service=service,
                interaction=interaction, cpa_id=h.get("cpa_id", ""), endpoint=h["endpoint"], fqdn=h.get("fqdn", ""),
                ack_requested=rel.get("ack_requested"), duplicate_elimination=rel.get("duplicate_elimination"),
                sync_reply_mode=rel.get("sync_reply_mode"), persist_duration=rel.get("persist_duration"),
                retries=rel.get("retries"), retry_interval=rel.get("retry_interval"), actor=rel.get("actor"),
                unique_identifier=h["mhs_id"], source=PUBLISHED))
    return PublishedData(systems, tuple(handlers))


def _catalogue() -> dict[str, Interaction]:
    return catalogue()


def find_interaction(value: str) -> Interaction | None:

    return find(value)


def made_up_cpa_id(key: str, taken: frozenset[str] = frozenset()) -> str:
    """A stable CPA id of the published form (S20001A000182) for an entry that has none of its own."""
    digest = int(hashlib.sha256(key.encode()).hexdigest(), 16)
    while True:
        candidate = f"S{90000 + digest % 10000:05d}A{(digest // 10000) % 1_000_000:06d}"
        if candidate not in taken:
            return candidate
        digest += 1


def pattern_reliability(pattern: str, *, retries: int = 2, retry_interval: str = "PT1M",
                        persist_duration: str = "PT5M", receiver: bool = False) -> dict:
    """The reliability settings of a messaging pattern, as the published records carry them. A party that
    receives a forward reliable message (a GP practice's MHS) acknowledges it, as the published X26 records of
    COPC_IN000001UK01 say; Spine's own intermediary entries do not."""
    if pattern == "async-reliable" or (receiver and pattern == "forward-reliable"):
        return dict(ack_requested="always", duplicate_elimination="always", sync_reply_mode="MSHSignalsOnly",
                    persist_duration=persist_duration, retries=retries, retry_interval=retry_interval,
                    actor=ACTOR_TO_PARTY_MSH)
    if pattern == "async-express":
        return dict(ack_requested="never", duplicate_elimination="never", sync_reply_mode="MSHSignalsOnly",
                    persist_duration=None, retries=None, retry_interval=None, actor=ACTOR_TO_PARTY_MSH)
    if pattern == "sync":
        return dict(ack_requested="never", duplicate_elimination="never", sync_reply_mode="None",
                    persist_duration=None, retries=None, retry_interval=None, actor=ACTOR_TO_PARTY_MSH)
    # forward reliable / express: as Spine's published intermediary records
    return dict(ack_requested="never", duplicate_elimination="never", sync_reply_mode="None",
                persist_duration=None, retries=None, retry_interval=None, actor=None)


@functools.cache
def _spine_templates() -> tuple[MhsEntry, ...]:
    """Spine's own MHS entries, with a placeholder address: one per catalogue interaction not already published."""
    published_keys = {(e.party_key, e.service_interaction) for e in published().handlers}
    taken = {e.cpa_id for e in published().handlers}
    by_interaction = {e.service_interaction: e for e in published().handlers if e.party_key == SPINE_PARTY_KEY}
    entries = []
    for interaction in sorted(_catalogue().values(), key=lambda i: i.id):
        svc_ia = interaction.service_interaction
        if (SPINE_PARTY_KEY, svc_ia) in published_keys or interaction.answer_to:
            continue  # the published record wins; an answer only Spine sends is never sent to Spine
        known = by_interaction.get(svc_ia)
        cpa_id = known.cpa_id if known else made_up_cpa_id(f"{SPINE_PARTY_KEY}:{svc_ia}", frozenset(taken))
        taken.add(cpa_id)
        entries.append(MhsEntry(
            ods=SPINE_ODS, party_key=SPINE_PARTY_KEY, service_interaction=svc_ia, service=interaction.service,
            interaction=interaction.id, cpa_id=cpa_id, endpoint=PATTERN_PATHS[interaction.pattern], fqdn="",
            unique_identifier=cpa_id, source=SPINE, **pattern_reliability(interaction.pattern)))
    return tuple(entries)


def _at(entry: MhsEntry, base_url: str) -> MhsEntry:
    """The entry pointing at this sandbox: the same path as live, on the sandbox's scheme, host and port."""
    path = urlsplit(entry.endpoint).path if "://" in entry.endpoint else entry.endpoint
    return replace(entry, endpoint=base_url + path, fqdn=urlsplit(base_url).hostname or entry.fqdn)


@dataclass(frozen=True)
class SandboxParty:
    """A system the sandbox itself plays besides Spine (e.g. the GP2GP sending practice): its AS entry and an MHS
    entry per interaction, at this sandbox's address (`path`), in the sandbox mode only."""

    system: AccreditedSystem
    cpa_id: str
    path: str
    pattern: str  # whose reliability settings its MHS entries carry


@functools.cache
def sandbox_parties() -> tuple[SandboxParty, ...]:
    """The parties every service declares it plays (Service.parties)."""
    from sandbox.services import discover

    return tuple(SandboxParty(
        AccreditedSystem(ods=p.ods, asid=p.asid, party_key=p.party_key, manufacturer=p.manufacturer, client_ods=p.ods,
                         interactions=tuple(f"{p.service}:{i}" for i in p.interactions), source=SPINE),
        p.cpa_id, PATTERN_PATHS["forward-reliable"], "async-reliable")
        for service in discover() for p in service.parties)


def _party_entries(party: SandboxParty) -> list[MhsEntry]:
    entries = []
    for svc_ia in party.system.interactions:
        service, interaction = split_service_interaction(svc_ia)
        entries.append(MhsEntry(
            ods=party.system.ods, party_key=party.system.party_key, service_interaction=svc_ia, service=service,
            interaction=interaction, cpa_id=party.cpa_id, endpoint=party.path, fqdn="",
            unique_identifier=party.cpa_id, source=SPINE, **pattern_reliability(party.pattern)))
    return entries


@functools.lru_cache(maxsize=32)
def _spine_view(base_url: str) -> tuple[MhsEntry, ...]:
    """Published records (Spine's pointed at `base_url`), Spine's own entries and the sandbox's other parties, for
    the sandbox mode."""
    moved = tuple(_at(e, base_url) if e.party_key == SPINE_PARTY_KEY else e for e in published().handlers)
    parties = tuple(_at(e, base_url) for party in sandbox_parties() for e in _party_entries(party))
    return moved + tuple(_at(e, base_url) for e in _spine_templates()) + parties


@functools.cache
def _spine_systems() -> tuple[AccreditedSystem, ...]:
    """Published AS records, Spine's own widened by every catalogue interaction it does not list yet."""
    extra = [i.service_interaction for i in sorted(_catalogue().values(), key=lambda i: i.id) if not i.answer_to]
    systems = []
    for system in published().systems:
        if system.party_key == SPINE_PARTY_KEY:
            listed = set(system.interactions)
            system = replace(system, interactions=system.interactions + tuple(x for x in extra if x not in listed))
        systems.append(system)
    if not any(s.party_key == SPINE_PARTY_KEY for s in systems):
        systems.append(AccreditedSystem(SPINE_ODS, SPINE_ASID, SPINE_PARTY_KEY, SPINE_MANUFACTURER, SPINE_ODS,
                                        tuple(extra), SPINE))
    return tuple(systems) + tuple(p.system for p in sandbox_parties())


def normalised(interactions: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Full service interaction ids, once each, in order (an id the catalogue does not know is kept as given)."""
    found: list[str] = []
    for item in interactions:
        known = find_interaction(item)
        full = known.service_interaction if known else item
        if full not in found:
            found.append(full)
    return tuple(found)


def registration_entries(registration: Registration) -> list[MhsEntry]:
    entries = []
    for svc_ia in registration.interactions:
        service, interaction = split_service_interaction(svc_ia)
        known = find_interaction(svc_ia)
        reliability = pattern_reliability(known.pattern if known else "async-reliable", retries=registration.retries,
                                          retry_interval=registration.retry_interval,
                                          persist_duration=registration.persist_duration, receiver=True)
        cpa_id = made_up_cpa_id(f"{registration.party_key}:{svc_ia}")
        entries.append(MhsEntry(
            ods=registration.ods, party_key=registration.party_key, service_interaction=svc_ia, service=service,
            interaction=interaction, cpa_id=cpa_id, endpoint=registration.endpoint,
            fqdn=urlsplit(registration.endpoint).hostname or "", unique_identifier=cpa_id, source=REGISTERED,
            **reliability))
    return entries


def registration_system(registration: Registration) -> AccreditedSystem:
    return AccreditedSystem(ods=registration.ods, asid=registration.asid, party_key=registration.party_key,
                            manufacturer=None, client_ods=registration.ods, interactions=registration.interactions,
                            source=REGISTERED)


def interaction_matches(entry_value: str, wanted: str, *, strict: bool) -> bool:
    """Strict (the FHIR API, as live SDS): the whole service interaction. Otherwise a bare id ("REPC_IN150016UK05")
    also matches the interaction part, for callers inside the sandbox."""
    if entry_value == wanted:
        return True
    return not strict and ":" not in wanted and split_service_interaction(entry_value)[1] == wanted


def select(entries: list[MhsEntry], *, ods: str | None = None, interaction: str | None = None,
           party_key: str | None = None, strict: bool = False) -> list[MhsEntry]:
    return [e for e in entries
            if (ods is None or e.ods == ods) and (party_key is None or e.party_key == party_key)
            and (interaction is None or interaction_matches(e.service_interaction, interaction, strict=strict))]


# --- validation -------------------------------------------------------------------------------------------------------
def validate(data: dict) -> Registration:
    """A Registration from loosely typed input (JSON, CLI), or RegistrationError naming the first bad field."""
    if not isinstance(data, dict):
        raise RegistrationError("body", "a registration is a JSON object")
    known = {f for f in Registration.__dataclass_fields__}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RegistrationError(unknown[0], f"unknown field {unknown[0]!r}; a registration has "
                                f"{', '.join(sorted(known))}")
    ods = _text(data, "ods")
    if not ODS_PATTERN.match(ods):
        raise RegistrationError("ods", f"ods {ods[:40]!r} is not an ODS code (3-10 upper-case letters and digits, "
                                "e.g. A20047)")
    asid = _text(data, "asid")
    if not ASID_PATTERN.match(asid):
        raise RegistrationError("asid", f"asid {asid[:40]!r} is not an ASID (12 digits, e.g. 200000001234)")
    party_key = _text(data, "party_key")
    if not re.fullmatch(re.escape(ods) + r"-\d+", party_key):
        raise RegistrationError("party_key", f"party_key {party_key[:40]!r} is not a party key of {ods}: it is the "
                                f"ODS code, a hyphen and digits (e.g. {ods}-0000001)")
    if party_key == SPINE_PARTY_KEY or asid == SPINE_ASID:
        raise RegistrationError("party_key" if party_key == SPINE_PARTY_KEY else "asid",
                                "that is Spine's own identity in the directory; register your own system")
    for party in sandbox_parties():
        if party_key == party.system.party_key or asid == party.system.asid:
            raise RegistrationError("party_key" if party_key == party.system.party_key else "asid",
                                    f"that is the sandbox's own {party.system.party_key} in the directory; register "
                                    "your own system")
    for system in published().systems:
        if asid == system.asid:
            raise RegistrationError("asid", f"asid {asid} belongs to the published system {system.party_key}; "
                                    "use your own")
    if any(e.party_key == party_key for e in published().handlers) or any(
            s.party_key == party_key for s in published().systems):
        raise RegistrationError("party_key", f"party_key {party_key} is a published directory record; use your own")
    endpoint = _text(data, "endpoint")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed or invalid [IPv6] host
        parts, host = urlsplit(""), None
    if parts.scheme not in ("http", "https") or not host:
        raise RegistrationError("endpoint", f"endpoint {endpoint[:80]!r} is not an http(s) URL of your MHS "
                                "(e.g. https://mhs.example.nhs.uk/inbound)")
    raw = data.get("interactions")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list | tuple) or not raw:
        raise RegistrationError("interactions", "interactions lists the interactions your MHS receives (at least one;"
                                " e.g. REPC_IN150016UK05 or urn:nhs:names:services:psis:REPC_IN150016UK05)")
    interactions = []
    for item in raw:
        found = find_interaction(str(item)) if isinstance(item, str) else None
        if found is None:
            raise RegistrationError("interactions", f"interaction {str(item)[:80]!r} is not in the Spine interaction "
                                    "catalogue (a bare id such as REPC_IN150016UK05, or a full service interaction "
                                    "such as urn:nhs:names:services:psis:REPC_IN150016UK05); "
                                    "see `spine-sandbox spine interactions` or /_sandbox/spine/interactions")
        if found.service_interaction not in interactions:
            interactions.append(found.service_interaction)
    retries = data.get("retries", 2)
    if isinstance(retries, str) and re.fullmatch(r"[0-9]{1,3}", retries.strip()):  # ASCII digits: not '²'
        retries = int(retries)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 20:
        raise RegistrationError("retries", f"retries {retries!r} is not a whole number from 0 to 20")
    durations = {}
    for name, default in (("retry_interval", "PT1M"), ("persist_duration", "PT5M")):
        value = data.get(name) or default
        if not isinstance(value, str) or not DURATION_PATTERN.match(value):
            raise RegistrationError(name, f"{name} {value!r} is not an ISO 8601 duration such as PT30S, PT1M or PT5M")
        durations[name] = value
    ca_file = data.get("ca_file") or None
    if ca_file is not None:
        if parts.scheme != "https":
            raise RegistrationError("ca_file", "ca_file is for https endpoints (the CA that signed your MHS's "
                                    "certificate); this endpoint is http")
        if not isinstance(ca_file, str) or not _is_file(ca_file):
            raise RegistrationError("ca_file", f"ca_file {str(ca_file)[:120]!r} is not a file the sandbox can read")
    return Registration(ods=ods, asid=asid, party_key=party_key, endpoint=endpoint, interactions=tuple(interactions),
                        retries=retries, ca_file=ca_file, **durations)


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except OSError:  # a name too long for the file system
        return False


def _text(data: dict, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise RegistrationError(name, f"{name} is required")
    return str(value).strip()


# --- the directory ----------------------------------------------------------------------------------------------------
@dataclass
class Directory:
    store: Store
    sds_addresses: str = "sandbox"  # Settings.sds_addresses
    # Hosted mode: what endpoints may be registered (sandbox.hosting.outbound); None outside hosted mode.
    delivery_allow: AllowList | None = None

    # Reading --------------------------------------------------------------------------------------------------------
    def entries(self, session: str, *, base_url: str) -> list[MhsEntry]:
        """Every MHS entry the session sees, in order: published, Spine's own, registered."""
        if self.sds_addresses == PUBLISHED:
            base = list(published().handlers)
        else:
            base = list(_spine_view(base_url.rstrip("/")))
        for registration in self.registrations(session):
            base.extend(registration_entries(registration))
        return base

    def systems(self, session: str) -> list[AccreditedSystem]:
        base = list(published().systems if self.sds_addresses == PUBLISHED else _spine_systems())
        return base + [registration_system(r) for r in self.registrations(session)]

    def endpoints(self, session: str, *, base_url: str, ods: str | None = None, interaction: str | None = None,
                  party_key: str | None = None, strict: bool = False) -> list[MhsEntry]:
        """MHS entries matching every criterion given (ODS and party key exactly; `interaction` the whole service
        interaction, or a bare interaction id unless strict). Addresses are each party's own."""
        return select(self.entries(session, base_url=base_url), ods=ods, interaction=interaction,
                      party_key=party_key, strict=strict)

    def devices(self, session: str, *, ods: str, interaction: str, party_key: str | None = None,
                manufacturer: str | None = None, strict: bool = False) -> list[AccreditedSystem]:
        """Accredited systems of the ODS code that list the interaction (whole, or a bare id unless strict)."""
        return [s for s in self.systems(session)
                if s.ods == ods and any(interaction_matches(i, interaction, strict=strict) for i in s.interactions)
                and (party_key is None or s.party_key == party_key)
                and (manufacturer is None or s.manufacturer == manufacturer)]

    def registration(self, session: str, party_key: str) -> Registration | None:
        item = self.store.state.get(session, REGISTRATIONS, party_key)
        return Registration.from_dict(item.value) if item else None

    def registrations(self, session: str) -> list[Registration]:
        items = self.store.state.items(session, REGISTRATIONS)
        return [Registration.from_dict(item.value) for _, item in sorted(items.items(), key=lambda kv: kv[0])]

    def session_for_party_key(self, party_key: str) -> str | None:
        item = self.store.state.get(INDEX_SESSION, BY_PARTY_KEY, party_key) if party_key else None
        return item.value["session"] if item else None

    def session_for_asid(self, asid: str) -> str | None:
        item = self.store.state.get(INDEX_SESSION, BY_ASID, asid) if asid else None
        return item.value["session"] if item else None

    # Writing --------------------------------------------------------------------------------------------------------
    def register(self, session: str, registration: Registration) -> Registration:
        """Add or replace (same party key) the session's registration; the party key and ASID must not belong to
        another session's registration. Bare interaction ids are stored as full service interactions."""
        registration = replace(registration, interactions=normalised(registration.interactions))
        if self.delivery_allow is not None:
            self._check_hosted(registration)
        for namespace, key, name in ((BY_PARTY_KEY, registration.party_key, "party_key"),
                                     (BY_ASID, registration.asid, "asid")):
            owner = self.store.state.get(INDEX_SESSION, namespace, key)
            if owner is not None and owner.value["session"] != session:
                raise RegistrationError(name, f"{name} {key} is registered in session {owner.value['session']!r}; "
                                        "remove it there first (each party key and ASID belongs to one session)", 409)
            if namespace == BY_ASID and owner is not None and owner.value["party_key"] != registration.party_key:
                raise RegistrationError("asid", f"asid {key} is registered for party key {owner.value['party_key']} "
                                        "in this session; one ASID belongs to one system", 409)
        previous = self.registration(session, registration.party_key)
        with self.store.state.transaction(session):
            if previous is not None and previous.asid != registration.asid:
                self.store.state.delete(INDEX_SESSION, BY_ASID, previous.asid)
            self._claim(BY_PARTY_KEY, registration.party_key, session, registration)
            self._claim(BY_ASID, registration.asid, session, registration)
            self.store.state.put(session, REGISTRATIONS, registration.party_key, registration.to_dict())
        return registration

    def _check_hosted(self, registration: Registration) -> None:
        """Hosted mode: the endpoint must not be on the host's own network (outbound.destination names the rule), and
        ca_file, a path on the sandbox's host, is not one a tenant may name."""
        if registration.ca_file:
            raise RegistrationError("ca_file", "ca_file names a file on the sandbox's host, which a hosted sandbox "
                                    "does not let tenants choose; leave it out (your MHS's certificate must then "
                                    "chain to a public CA)")
        parts = urlsplit(registration.endpoint)
        try:
            outbound.destination(parts.hostname or "", outbound.port_of(parts), self.delivery_allow,
                                 unresolved_ok=True)
        except outbound.Refused as exc:
            raise RegistrationError("endpoint", f"endpoint {registration.endpoint[:80]!r} is refused: {exc}") from None

    def _claim(self, namespace: str, key: str, session: str, registration: Registration) -> None:
        value = {"session": session, "party_key": registration.party_key, "asid": registration.asid}
        current = self.store.state.get(INDEX_SESSION, namespace, key)
        try:
            if current is None:
                self.store.state.put(INDEX_SESSION, namespace, key, value, create_only=True)
            else:
                self.store.state.put(INDEX_SESSION, namespace, key, value, expect_version=current.version)
        except VersionConflict:
            raise RegistrationError("party_key" if namespace == BY_PARTY_KEY else "asid",
                                    f"{key} was registered by another session at the same moment", 409) from None

    def remove(self, session: str, party_key: str) -> bool:
        registration = self.registration(session, party_key)
        if registration is None:
            return False
        with self.store.state.transaction(session):
            self.store.state.delete(session, REGISTRATIONS, party_key)
            for namespace, key in ((BY_PARTY_KEY, party_key), (BY_ASID, registration.asid)):
                owner = self.store.state.get(INDEX_SESSION, namespace, key)
                if owner is not None and owner.value["session"] == session:
                    self.store.state.delete(INDEX_SESSION, namespace, key)
        return True


def forget(sandbox: Sandbox, sessions: list[str]) -> None:
    """Retention: the purged sessions' party keys and ASIDs are free again."""
    for namespace in (BY_PARTY_KEY, BY_ASID):
        forget_entries(sandbox.store, INDEX_SESSION, namespace, sessions, lambda key, owner: owner["session"])


EXTENSION = "sds"


def directory(sandbox: Sandbox) -> Directory:
    found = sandbox.extensions.get(EXTENSION)
    if found is None:
        settings = sandbox.settings
        allow = outbound.allow_list(settings.delivery_allow) if settings.hosted else None
        found = sandbox.extensions[EXTENSION] = Directory(sandbox.store, settings.sds_addresses, allow)
    return found
