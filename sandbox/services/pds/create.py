"""POST /Patient: validate the request against the sandbox's own schema, look for the patient, allocate a number.

PDS refuses to create a record it can already find: one match answers 200 SINGLE_MATCH with that NHS number,
several 200 MULTIPLE_MATCHES. The published example requests behave as documented (family McMatch-Single and
McMatch-Multiple); any other request is matched against the population and the session's own patients
(family, first given name, gender and date of birth). A new patient gets the session's next NHS number from the
allocation range, is stored for this session only, and comes back with 201.
"""

from __future__ import annotations

import uuid
from datetime import date

from sandbox.conformance.checks import RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import Malformed
from sandbox.journal.store import ExchangeFilter
from sandbox.services.pds.patch_rules import change_problems
from sandbox.services.pds.problems import Problem, schema_problems
from sandbox.services.pds.records import NAMESPACE, PatientRecords
from sandbox.services.pds.search import find_matches
from sandbox.services.pds.search_params import DateRange, SearchQuery
from sandbox.synthetic.fhir import SECURITY, nhs_identifier
from sandbox.synthetic.identifiers import ALLOCATION_START, nth_valid_number

REQ_TYPE, REQ_BODY, REQ_SEARCH_FIRST = "PDS-CRT-001", "PDS-CRT-002", "PDS-CRT-003"
ALLOCATION_COUNTER = "pds.allocated-nhs-number"
# Extensions a create persists (the others are accepted and dropped, as the specification says).
PERSISTED = ("https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSCommunication",
             "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ContactPreference")
# The published example requests (by family name, Jane Edwards also by given name and birth date) and what they get.
PUBLISHED = {("mcmatch-single",): "single-match", ("mcmatch-multiple",): "multiple-matches",
             ("edwards", "jane", "1982-07-10"): "allocate"}
PUBLISHED_MATCHES = {"single-match": ["9000000009"], "multiple-matches": ["9000000009", "9000000017"], "allocate": []}
FIELDS = ("name", "gender", "birthDate", "address", "telecom", "extension")


def invalid_create() -> SpineError:
    return SpineError(400, "INVALID_CREATE", "Invalid patient create data provided - 'Invalid payload received - "
                      "incorrect format'")


def judge_content_type(req: RequestView) -> Finding:
    sent = req.content_type
    if sent in ("application/json", "application/fhir+json"):
        return Finding.passed(REQ_TYPE, f"Content-Type is {sent}.", "header:Content-Type")
    return Finding.failed(REQ_TYPE, f"Content-Type {sent or '(none)'!r}: send the new patient as application/json.",
                          "header:Content-Type")


def request_problems(req: RequestView) -> list[Problem]:
    """Why PDS would refuse this body, most fundamental first; empty when it is a valid create request."""
    try:
        body = req.json()
    except Malformed as exc:
        return [Problem(REQ_BODY, invalid_create(), f"The body is not JSON: {exc}.", "body")]
    if not isinstance(body, dict) or not set(FIELDS) & set(body):
        return [Problem(REQ_BODY, invalid_create(), "The body is not a Patient create request: an object with name, "
                        "gender, birthDate, address and extension (Registering Authority).", "body")]
    problems = schema_problems("patientCreate", body, REQ_BODY, "The create request breaks the PDS schema")
    return problems or change_problems({}, _as_resource(body), date.today())


def create(records: PatientRecords, req: RequestView, add_findings) -> tuple[dict, int]:
    """(body, status): the new patient with 201, or the 200 OperationOutcome for a match."""
    body = req.json()
    _searched_first(records, add_findings)
    matches = _matches(records, body)
    if len(matches) == 1:
        raise SpineError(200, "SINGLE_MATCH", f"Unable to create new patient. NHS number {matches[0]} found for "
                         "supplied demographic data.")
    if matches:
        raise SpineError(200, "MULTIPLE_MATCHES", "Unable to create new patient. Multiple matches found for supplied "
                         "demographic data.")
    store = records.sandbox.store
    number = nth_valid_number(ALLOCATION_START, store.state.next_counter(records.session, ALLOCATION_COUNTER))
    resource = _new_patient(number, body)
    store.state.put(records.session, NAMESPACE, number, resource, create_only=True)
    return resource, 201


def _matches(records: PatientRecords, body: dict) -> list[str]:
    example = published_example(body)
    if example:
        return PUBLISHED_MATCHES[example]
    name = body["name"][0]
    born = date.fromisoformat(body["birthDate"])
    query = SearchQuery(family=name["family"], given=tuple(name.get("given", ())[:1]), gender=body["gender"],
                        birthdate=DateRange(born, born), history=True)
    return [m.nhs_number for m in find_matches(records, query, records.session_patients())]


def published_example(body) -> str | None:
    """Which published example request this is ('single-match', 'multiple-matches', 'allocate'), if any."""
    try:
        name = body["name"][0]
        family, given = str(name["family"]).lower(), str((name.get("given") or [""])[0]).lower()
        return PUBLISHED.get((family,)) or PUBLISHED.get((family, given, str(body.get("birthDate"))))
    except (KeyError, IndexError, TypeError, AttributeError):
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
