"""POST /Patient/$process-birth-details: record a birth - a new NHS number for the baby, linked to its mother.

The published sandbox's scripted requests answer as it answers them: a baby of family McMatch-Single at postcode
BAP 4WG is a single match (5900004899), McMatch-Multiple at DN19 7UD multiple matches, and a baby whose mother is one
of the published patients (or the patient the published create answers, 5182663366) is created as 5900010775 every
time and never stored. A baby of a synthetic mother (the population's, or one this session created) is registered
as live PDS registers it: matched first against the population and the session's own patients (200 SINGLE_MATCH or
MULTIPLE_MATCHES), then given the session's next NHS number from the allocation range (the one POST /Patient draws
from), stored for this session with its mother as a related person, and answered 201.
"""

from __future__ import annotations

import uuid
from datetime import date

from sandbox.conformance.checks import RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import Malformed
from sandbox.services.pds import fixtures, related
from sandbox.services.pds.birth_request import DEATH_NOTICE, REQ_REGISTRATION, Birth, read
from sandbox.services.pds.create import PUBLISHED_NUMBER as PUBLISHED_CREATE
from sandbox.services.pds.new_patient import (
    at,
    invalid,
    multiple_matches,
    object_id,
    published_record,
    register,
    single_match,
)
from sandbox.services.pds.problems import schema_problems
from sandbox.services.pds.records import PatientRecords
from sandbox.services.pds.search import find_matches
from sandbox.services.pds.search_params import DateRange, SearchQuery
from sandbox.synthetic.fhir import SECURITY, nhs_identifier

PUBLISHED_NUMBER = "5900010775"  # the published sandbox records every birth under this number
UNALLOCATED = "0000000000"  # stands in for the baby's number while its record is checked, before one is allocated
PUBLISHED_SINGLE_MATCH = "5900004899"
PUBLISHED_NOTIFICATION_ID = "2AE84248-5180-42B6-8BB7-C93C0991B863"  # on every answer of the published sandbox
NOTIFICATION_HEADER = "notification-id"
PUBLISHED_MATCHES = {("McMatch-Single", "BAP 4WG"): "single-match",
                     ("McMatch-Multiple", "DN19 7UD"): "multiple-matches"}
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
PUBLISHED_BIRTH_PLACE = {"url": BIRTH_PLACE, "valueAddress": {"city": "Manchester", "country": "1",
                                                              "district": "Greater Manchester"}}


def published_example(body) -> str | None:
    """Which of the published sandbox's scripted answers this request gets: 'single-match', 'multiple-matches',
    'published' (a published patient's baby), or None (a birth registered for a synthetic mother)."""
    birth, error = read(body)
    if error is not None:
        return None
    family, postcode = at(birth.baby, "name", 0, "family"), at(birth.baby, "address", 0, "postalCode")
    if isinstance(family, str) and isinstance(postcode, str) and (family, postcode) in PUBLISHED_MATCHES:
        return PUBLISHED_MATCHES[(family, postcode)]
    mother = birth.mother_number
    return "published" if isinstance(mother, str) and is_published_mother(mother) else None


def is_published_mother(number: str) -> bool:
    """One of the published patients, or the patient the published create answers with (its own tests create the
    mother first); the published 'not found' number names no mother."""
    return (fixtures.is_fixture(number) and number != fixtures.NOT_FOUND) or number == PUBLISHED_CREATE


def published_path(req: RequestView) -> bool:
    """Whether the published sandbox's answers apply (so live PDS's further registration rules do not)."""
    try:
        return published_example(req.json()) is not None
    except Malformed:
        return False


def record(records: PatientRecords, body: dict, add_findings) -> tuple[dict, str]:
    """(the new record, its notification id); raises the 200 OperationOutcome for a match, or the error for a mother
    PDS cannot find. The request checks have refused any notification without its parts."""
    birth, _ = read(body)
    example = published_example(body)
    if example == "single-match":
        raise single_match(PUBLISHED_SINGLE_MATCH)
    if example == "multiple-matches":
        raise multiple_matches()
    baby = birth.baby
    if example == "published":  # as published: the same number every time, nothing stored
        created = published_record(PUBLISHED_NUMBER, baby["name"][0], baby["address"][0], baby["gender"],
                                   baby["birthDate"], 8)
        return {**created, "multipleBirthInteger": 1, "extension": [dict(PUBLISHED_BIRTH_PLACE)]}, \
            PUBLISHED_NOTIFICATION_ID
    problems = schema_problems("patient", _newborn(UNALLOCATED, baby), REQ_REGISTRATION,
                               "The baby's record (from entry/0/resource) breaks the PDS schema")
    if problems:
        add_findings(*(p.finding() for p in problems))
        raise problems[0].error
    mother = _mother(records, birth, add_findings)
    number, resource = register(records, _matches(records, baby), lambda number: _newborn(number, baby))
    related.link_mother(records, number, mother, baby["birthDate"])
    add_findings(Finding.passed(REQ_REGISTRATION, f"Birth registered: NHS number {number}, mother {mother}.", "body"))
    return resource, str(uuid.uuid4()).upper()


def _mother(records: PatientRecords, birth: Birth, add_findings) -> str:
    """The mother's current NHS number (a merged record's survivor); a number PDS cannot find is refused."""
    number = birth.mother_number
    try:
        return records.find(number).nhs_number
    except SpineError as exc:
        refusal = invalid(number, birth.mother_field)
        add_findings(Finding.failed(REQ_REGISTRATION, f"The mother's NHS number {number} names no patient PDS can "
                                    f"link the baby to ({exc.code}): send the mother's current NHS number.",
                                    "/" + birth.mother_field, refusal))
        raise refusal from None


def _matches(records: PatientRecords, baby: dict) -> list[str]:
    born = date.fromisoformat(baby["birthDate"])
    given = at(baby, "name", 0, "given", 0)
    query = SearchQuery(family=baby["name"][0].get("family"), given=(given,) if isinstance(given, str) else (),
                        gender=baby["gender"], birthdate=DateRange(born, born))
    return [m.nhs_number for m in find_matches(records, query, records.session_patients())]


def _newborn(number: str, baby: dict) -> dict:
    """The baby's record as PDS keeps it: the usual name and addresses with new ids (from the date of birth), the
    birth details, the place of birth and a stillbirth's death notification (the ethnic category is required but,
    as for a create, not kept on the record)."""
    born = baby["birthDate"]
    name = {**baby["name"][0], "id": object_id(8)}
    name.setdefault("period", {"start": born})
    addresses = []
    for address in baby["address"]:
        if isinstance(address, dict):
            lines = [line for line in address.get("line") or [] if line != ""]
            addresses.append({**address, "line": lines, "id": object_id(8), "period": address.get("period")
                              or {"start": born}})
    resource = {"resourceType": "Patient", "id": number, "identifier": [nhs_identifier(number)],
                "meta": {"versionId": "1", "security": [dict(SECURITY["U"])]}, "name": [name],
                "gender": baby["gender"], "birthDate": born, "multipleBirthInteger": baby["multipleBirthInteger"],
                "address": addresses}
    if baby.get("deceasedDateTime"):
        resource["deceasedDateTime"] = baby["deceasedDateTime"]
    extensions = _extensions(baby.get("extension") or [])
    if extensions:
        resource["extension"] = extensions
    return resource


def _extensions(sent: list) -> list[dict]:
    kept = []
    for extension in (e for e in sent if isinstance(e, dict)):
        url = extension.get("url")
        if url == BIRTH_PLACE and isinstance(extension.get("valueAddress"), dict):
            place = {k: v for k, v in extension["valueAddress"].items() if k in ("city", "country", "district")}
            kept.append({"url": BIRTH_PLACE, "valueAddress": place})
        elif url == DEATH_NOTICE:
            kept.append(extension)
    return kept
