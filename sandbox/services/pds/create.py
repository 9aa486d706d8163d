"""POST /Patient: check the request as PDS does, look for the patient, allocate a number.

PDS refuses to create a record it can already find: one match answers 200 SINGLE_MATCH with that NHS number,
several 200 MULTIPLE_MATCHES. The published sandbox's scripted requests answer as it answers them: family
McMatch-Single at postcode BAP 4WG (a single match, 5900054586), McMatch-Multiple at DN19 7UD (multiple matches), and
the specification's create example (Jane Edwards, born 1982-07-10), created as 5182663366 every time and never
stored. Any other request is matched against the population and the session's own patients (family, first given
name, gender and date of birth); a new patient gets the session's next NHS number from the allocation range, is
stored for this session only, and comes back with 201.
"""

from __future__ import annotations

import json
import uuid
from datetime import date

from sandbox.conformance.checks import RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import Malformed
from sandbox.journal.store import ExchangeFilter
from sandbox.services.pds.new_patient import (
    ADDRESS_LINES,
    DATE,
    GENDERS,
    absent,
    at,
    invalid,
    invalid_create,
    missing,
    multiple_matches,
    published_record,
    register,
    shown,
    single_match,
)
from sandbox.services.pds.patch_rules import change_problems
from sandbox.services.pds.problems import Problem, schema_problems
from sandbox.services.pds.records import PatientRecords
from sandbox.services.pds.search import find_matches
from sandbox.services.pds.search_params import DateRange, SearchQuery
from sandbox.synthetic.fhir import SECURITY, nhs_identifier

REQ_TYPE, REQ_BODY, REQ_SEARCH_FIRST = "PDS-CRT-001", "PDS-CRT-002", "PDS-CRT-003"
# Extensions a create persists (the others are accepted and dropped, as the specification says).
PERSISTED = ("https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSCommunication",
             "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ContactPreference")
FIELDS = ("name", "gender", "birthDate", "address", "telecom", "extension")
# The published sandbox's scripted requests: (family, postcode) -> the answer, and the specification's example.
PUBLISHED_MATCHES = {("McMatch-Single", "BAP 4WG"): "single-match",
                     ("McMatch-Multiple", "DN19 7UD"): "multiple-matches"}
PUBLISHED_EXAMPLE = ("edwards", "jane", "1982-07-10")  # family, first given name, date of birth (any case)
PUBLISHED_SINGLE_MATCH = "5900054586"
PUBLISHED_NUMBER = "5182663366"  # the published sandbox creates every patient under this number


def invalid_create_payload() -> SpineError:
    return invalid_create("Invalid payload received - incorrect format")


def judge_content_type(req: RequestView) -> Finding:
    sent = req.content_type
    if sent in ("application/json", "application/fhir+json"):
        return Finding.passed(REQ_TYPE, f"Content-Type is {sent}.", "header:Content-Type")
    return Finding.failed(REQ_TYPE, f"Content-Type {sent or '(none)'!r}: send the new patient as application/json.",
                          "header:Content-Type")


def request_problems(req: RequestView) -> list[Problem]:
    """Why PDS would refuse this body, in the order it looks (the first is the answer); empty when it is valid."""
    try:
        body = req.json()
    except Malformed as exc:
        return [Problem(REQ_BODY, invalid_create_payload(), f"The body is not JSON: {exc}.", "body")]
    if not isinstance(body, dict) or not set(FIELDS) & set(body):
        return [Problem(REQ_BODY, invalid_create_payload(), "The body is not a Patient create request: an object "
                        "with name, gender, birthDate, address and extension (Registering Authority).", "body")]
    first = [Problem(REQ_BODY, error, f"The create request: {error.diagnostics}.", pointer)
             for error, pointer in _first_checks(body)]
    said = {p.error.diagnostics for p in first}
    rest = schema_problems("patientCreate", body, REQ_BODY, "The create request breaks the PDS schema")
    if not first and not rest:
        rest = change_problems({}, _as_resource(body), date.today())
    return first + [p for p in rest if p.error.diagnostics not in said]


def _first_checks(body: dict) -> list[tuple[SpineError, str]]:
    """What PDS checks before the schema, in its order: the required fields, the first address's form and period,
    the given names, the gender and the date of birth."""
    found = [(missing(field), f"/{field}") for field in ("name", "address", "gender", "birthDate")
             if absent(body.get(field))]
    address = at(body, "address", 0)
    if isinstance(address, list):
        found.append((invalid(_quoted(address), "address/0"), "/address/0"))
    elif address is not None and absent(at(address, "period")):
        found.append((missing("address/0/period"), "/address/0/period"))
    if isinstance(address, dict) and address.get("line") is None:
        found.append((invalid_create(ADDRESS_LINES), "/address/0/line"))
    given = at(body, "name", 0, "given")
    if isinstance(at(body, "name", 0), dict) and given is not None and not isinstance(given, list):
        found.append((invalid(shown(given), "name/0/given"), "/name/0/given"))
    gender, born = body.get("gender"), body.get("birthDate")
    if not absent(gender) and gender not in GENDERS:
        found.append((invalid(shown(gender), "gender"), "/gender"))
    if not absent(born) and not (isinstance(born, str) and DATE.match(born)):
        found.append((invalid(shown(born), "birthDate"), "/birthDate"))
    return found


def _quoted(value) -> str:
    """A list quoted back as PDS quotes it: ['another', 'array']."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace('"', "'").replace("','", "', '")


def create(records: PatientRecords, req: RequestView, add_findings) -> tuple[dict, int]:
    """(body, status): the new patient with 201; raises the 200 OperationOutcome for a match."""
    body = req.json()
    _searched_first(records, add_findings)
    example = published_example(body)
    if example == "single-match":
        raise single_match(PUBLISHED_SINGLE_MATCH)
    if example == "multiple-matches":
        raise multiple_matches()
    if example == "allocate":  # as published: the same number every time, nothing stored
        return published_record(PUBLISHED_NUMBER, body["name"][0], body["address"][0], body["gender"],
                                body["birthDate"], 6), 201
    _, resource = register(records, _matches(records, body), lambda number: _new_patient(number, body))
    return resource, 201


def _matches(records: PatientRecords, body: dict) -> list[str]:
    name = body["name"][0]
    born = date.fromisoformat(body["birthDate"])
    query = SearchQuery(family=name["family"], given=tuple(name.get("given", ())[:1]), gender=body["gender"],
                        birthdate=DateRange(born, born), history=True)
    return [m.nhs_number for m in find_matches(records, query, records.session_patients())]


def published_example(body) -> str | None:
    """Which of the published sandbox's scripted requests this is ('single-match', 'multiple-matches', 'allocate')."""
    family, postcode = at(body, "name", 0, "family"), at(body, "address", 0, "postalCode")
    if isinstance(family, str) and isinstance(postcode, str) and (family, postcode) in PUBLISHED_MATCHES:
        return PUBLISHED_MATCHES[(family, postcode)]
    given, born = at(body, "name", 0, "given", 0), at(body, "birthDate")
    if all(isinstance(v, str) for v in (family, given, born)) and (
            family.lower(), given.lower(), born) == PUBLISHED_EXAMPLE:
        return "allocate"
    return None


def _searched_first(records: PatientRecords, add_findings) -> None:
    searches = records.sandbox.store.journal.count_exchanges(ExchangeFilter(session=records.session, service="pds",
                                                                    operation="search-patients"))
    if searches:
        add_findings(Finding.passed(REQ_SEARCH_FIRST, f"The session searched PDS ({searches} searches) before "
                                    "creating a patient.", "journal"))
    else:
        add_findings(Finding.warning(REQ_SEARCH_FIRST, "No patient search in this session before this create: search "
                                     "PDS first and create a record only when no NHS number can be found.", "journal"))


def _as_resource(body: dict) -> dict:
    return {"resourceType": "Patient", **{k: v for k, v in body.items() if k in FIELDS}}


def _new_patient(number: str, body: dict) -> dict:
    today = date.today().isoformat()
    resource = {"resourceType": "Patient", "id": number, "identifier": [nhs_identifier(number)],
                "meta": {"versionId": "1", "security": [dict(SECURITY["U"])]}}
    for field in ("name", "gender", "birthDate", "address", "telecom"):
        if field in body:
            resource[field] = body[field]
    for field in ("name", "address", "telecom"):
        for item in resource.get(field, []):
            item["id"] = uuid.uuid4().hex[:8].upper()
            item.setdefault("period", {"start": today})
    kept = [e for e in body.get("extension", []) if e.get("url") in PERSISTED]
    if kept:
        resource["extension"] = kept
    return resource
