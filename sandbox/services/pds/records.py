"""Where PDS finds a patient for one session: the published examples, the session's own edits, the population."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

from sandbox.conformance.findings import SpineError
from sandbox.runtime import Sandbox
from sandbox.services.pds import fixtures
from sandbox.services.pds.outcome import fhir_json
from sandbox.synthetic.fhir import patient_resource
from sandbox.synthetic.identifiers import SCENARIO_START, is_valid_nhs_number, patient_index
from sandbox.synthetic.population import Population

NAMESPACE = "pds.patient"  # session state: NHS number -> the session's current version of the resource
# Location-sensitive fields PDS withholds from a restricted record.
RESTRICTED_FIELDS = ("address", "telecom", "generalPractitioner")
SEARCH_EXCLUDED = ("managingOrganization",)
SEARCH_NAME_USES = ("usual", "nickname", "temp")
STANDING_RETRIEVALS_KEPT = 4096  # serialised retrievals kept per process (a few KiB each)


@dataclass
class Record:
    resource: dict  # the whole record; callers trim it for the access mode and the operation
    requested: str  # the NHS number asked for (differs from the id when superseded)
    source: str  # "example" (published, read-only), "session" (edited or created here), "population"
    state_version: int | None = None  # the session state row's version, for compare-and-set on update

    @property
    def nhs_number(self) -> str:
        return self.resource["id"]

    @property
    def version(self) -> int:
        return int(self.resource["meta"]["versionId"])

    @property
    def restricted(self) -> bool:
        return is_restricted(self.resource)

    @property
    def superseded(self) -> bool:
        return self.requested != self.nhs_number


def is_restricted(resource: dict) -> bool:
    return any(s.get("code") == "R" for s in resource.get("meta", {}).get("security", []))


def for_retrieval(resource: dict) -> dict:
    """The record as a retrieval returns it: a restricted patient's location-sensitive fields removed."""
    if not is_restricted(resource):
        return resource
    trimmed = copy.copy(resource)
    for field in RESTRICTED_FIELDS:
        trimmed.pop(field, None)
    return trimmed


def for_search(resource: dict) -> dict:
    """The record as a search returns it: usual, nickname and temporary names, the home address, no pharmacies,
    communication, contact preferences, place of birth or managing organisation; a restricted patient's
    location fields and contacts removed."""
    out = {k: v for k, v in resource.items() if k not in SEARCH_EXCLUDED}
    if "name" in out:
        out["name"] = [n for n in out["name"] if n.get("use") in SEARCH_NAME_USES]
    if "address" in out:
        homes = [a for a in out["address"] if a.get("use") == "home"]
        open_ended = [a for a in homes if not (a.get("period") or {}).get("end")]
        out["address"] = open_ended or homes  # the current home address; previous ones only carry an end date
    if "extension" in out:
        out["extension"] = [e for e in out["extension"] if e.get("url", "").endswith("DeathNotificationStatus")]
    for field in ("name", "address", "extension"):
        if field in out and not out[field]:
            del out[field]
    if is_restricted(resource):
        for field in (*RESTRICTED_FIELDS, "contact"):
            out.pop(field, None)
    return out


def patient_facts(sandbox: Sandbox, number: str) -> dict:
    """What scenarios can trigger on without a lookup: the kind of patient behind an NHS number."""
    if number == fixtures.NOT_FOUND:  # the documented number with no patient: not one of the examples' records
        return {"patient_kind": "not-found"}
    if fixtures.is_fixture(number):
        return {"patient_kind": "published-example"}
    index = patient_index(number)  # the kind, without making the person
    known = index is not None and sandbox.population.contains(index)
    return {"patient_kind": sandbox.population.kind(index) if known else "unknown"}


class PatientRecords:
    def __init__(self, sandbox: Sandbox, session: str):
        self.sandbox = sandbox
        self.session = session

    def find(self, number: str, requested: str | None = None) -> Record:
        """The current record for an NHS number, following a merge to the superseding record; raises the
        SpineError PDS answers for an invalid, unknown or invalidated number."""
        requested = requested or number
        if not is_valid_nhs_number(number):
            raise SpineError(400, "INVALID_RESOURCE_ID")
        example = fixtures.fixture(number)
        if example is not None:
            return Record(example, requested, "example")
        stored = self.sandbox.store.state.get(self.session, NAMESPACE, number)
        if stored is not None:
            return Record(stored.value, requested, "session", stored.version)
        record = standing_record(self.sandbox.population, number, requested)
        if record.superseded and number == requested:
            return self.find(record.nhs_number, requested)  # the superseding record as this session has it
        return record

    def retrieval(self, number: str) -> tuple[bytes, int]:
        """What a retrieval answers for an NHS number (the body, as find() and for_retrieval() make it) and the
        record's version. A record this session has not changed is the same for every request and session: it is
        serialised once (`_standing_retrieval`), not for each."""
        if is_valid_nhs_number(number) and (fixtures.is_fixture(number) or
                                            self.sandbox.store.state.get(self.session, NAMESPACE, number) is None):
            standing = _standing_retrieval(self.sandbox.population, number)
            if standing is not None:
                return standing
        record = self.find(number)
        return fhir_json(for_retrieval(record.resource)), record.version

    def session_patients(self) -> dict[str, dict]:
        """Every patient this session edited or created, by NHS number."""
        return {k: item.value for k, item in self.sandbox.store.state.items(self.session, NAMESPACE).items()}

    def save(self, record: Record, resource: dict) -> None:
        """Store the session's new version with compare-and-set, so two concurrent updates cannot both win; raises
        VersionConflict when another request changed the record first."""
        if record.source == "example":
            raise ValueError("the published example patients are read-only")
        store = self.sandbox.store
        if record.source == "session":
            store.state.put(self.session, NAMESPACE, resource["id"], resource, expect_version=record.state_version)
        else:
            store.state.put(self.session, NAMESPACE, resource["id"], resource, create_only=True)


def standing_record(population: Population, number: str, requested: str) -> Record:
    """A record as the sandbox starts with it, the same in every session: a client example, a population patient
    (one that is superseded: its superseding record, as it starts), or a scenario patient. Raises the SpineError PDS
    answers for an unknown or invalidated number."""
    client_example = fixtures.client_example(number, population)
    if client_example is not None:  # the NHS's own Spine clients' example patients: updatable, like the population
        return Record(client_example, requested, "population")
    person = population.by_nhs_number(number)
    if person is None and int(number[:9]) >= SCENARIO_START:
        return _scenario_patient(population, number, requested)
    if person is None:
        raise SpineError(404, "RESOURCE_NOT_FOUND")
    if person.kind == "invalidated":
        raise SpineError(404, "INVALIDATED_RESOURCE")
    if person.superseded_by is not None and number == requested:
        return standing_record(population, population.person(person.superseded_by).nhs_number, requested)
    return Record(patient_resource(person), requested, "population")


@functools.lru_cache(maxsize=STANDING_RETRIEVALS_KEPT)
def _standing_retrieval(population: Population, number: str) -> tuple[bytes, int] | None:
    """The retrieval body and version of a published example or a record as the sandbox starts with it; None for a
    superseded number (its superseding record may be changed in a session). Raises as find() does."""
    example = fixtures.fixture(number)
    record = Record(example, number, "example") if example is not None else standing_record(population, number, number)
    return None if record.superseded else (fhir_json(for_retrieval(record.resource)), record.version)


def _scenario_patient(population: Population, number: str, requested: str) -> Record:
    """A number dedicated to a scenario (429, 503, slow...) is an ordinary patient whenever the scenario does not
    answer, so a supplier's retry succeeds like it would on Spine."""
    index = (int(number[:9]) - SCENARIO_START) % population.size
    while population.kind(index) != "standard":
        index = (index + 1) % population.size
    resource = patient_resource(population.person(index))
    resource["id"] = number
    resource["identifier"][0]["value"] = number
    return Record(resource, requested, "population")
