"""GET and POST /Coverage: a patient's European Health Insurance Card (EHIC), versioned with the patient record.

The published example 9000000009 holds the documented EHIC; the other published examples hold none (an empty
bundle with the version to update against). A POST replaces the EHIC: for the published examples the answer is
version 3 and nothing is stored, as documented; for synthetic patients the card and a new patient version are
stored for the session. Coverage is for patient access only (access.py refuses the other modes).
"""

from __future__ import annotations

import copy

from sandbox.conformance.checks import RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import Malformed, dig
from sandbox.journal.store import VersionConflict
from sandbox.services.pds.bundles import LIVE_BASE, searchset
from sandbox.services.pds.patch import version_mismatch
from sandbox.services.pds.patch_request import if_match_version
from sandbox.services.pds.problems import Problem, schema_problems
from sandbox.services.pds.records import PatientRecords, Record
from sandbox.synthetic.identifiers import NHS_NUMBER_SYSTEM, is_valid_nhs_number

NAMESPACE = "pds.coverage"  # session state: NHS number -> the patient's EHIC
PARAMETER = "subscriber:identifier"
REQ_SEARCH, REQ_VERSION, REQ_BODY = "PDS-COV-001", "PDS-COV-003", "PDS-COV-004"
FORMAT = ("Invalid search data provided - 'Coverage search request must follow the format "
          "/Coverage?subscriber:identifier=NHS_NUMBER'")
EXAMPLE = {"resourceType": "Coverage", "status": "active",
           "subscriber": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": "9000000009"}},
           "identifier": [{"value": "29401395498043123948", "assigner": {
               "identifier": {"system": "urn:iso:std:iso:3166", "value": "FRA"}, "display": "France"}}],
           "payor": [{"identifier": {"value": "92847ADGJL"}}],
           "beneficiary": {"identifier": {"value": "178705ABC"}},
           "period": {"end": "2030-12-31"}}


def search_problems(req: RequestView) -> list[Problem]:
    numbers = req.query.get(PARAMETER, [])
    if set(req.query) != {PARAMETER} or len(numbers) != 1:
        return [Problem(REQ_SEARCH, SpineError(400, "INVALID_SEARCH_DATA", FORMAT), "Coverage is searched with "
                        f"exactly one parameter, {PARAMETER}=<NHS number>; got {', '.join(req.query) or 'none'}.",
                        "query")]
    if not is_valid_nhs_number(numbers[0]):
        return [Problem(REQ_SEARCH, SpineError(400, "INVALID_RESOURCE_ID"), f"{PARAMETER} {numbers[0][:20]!r} is not "
                        "a valid NHS number.", f"query:{PARAMETER}")]
    return []


def judge_body(req: RequestView) -> list[Finding]:
    if req.content_type not in ("application/json", "application/json-patch+json", "application/fhir+json"):
        return [Finding.failed(REQ_BODY, f"Content-Type {req.content_type or '(none)'!r}: send the Coverage as "
                               "application/json.", "header:Content-Type")]
    problems = body_problems(req)
    return [p.finding() for p in problems] or [Finding.passed(REQ_BODY, "The body is a complete EHIC Coverage.", "body")]


def body_problems(req: RequestView) -> list[Problem]:
    try:
        body = req.json()
    except Malformed as exc:
        return [Problem(REQ_BODY, SpineError(400, "INVALID_UPDATE", f"Invalid update with error - the request body is "
                                             f"not valid JSON ({exc.detail})"), f"The body is not JSON: {exc}.", "body")]
    problems = schema_problems("coverage", body, REQ_BODY, "The Coverage breaks the PDS schema")
    number = subscriber_number(body) or ""
    if not problems and not is_valid_nhs_number(number):
        problems.append(Problem(REQ_BODY, SpineError(400, "INVALID_RESOURCE_ID"), f"subscriber NHS number {number!r} "
                                "fails the Modulus 11 check.", "/subscriber/identifier/value"))
    return problems


def subscriber_number(body) -> str | None:
    """The NHS number a Coverage body names (subscriber.identifier.value), when it is a string."""
    return dig(body, "subscriber", "identifier", "value", kind=str)


def search(records: PatientRecords, number: str) -> tuple[dict, int]:
    record = records.find(number)
    card = _card(records, record)
    return _bundle(record.nhs_number, card, record.version), record.version


def update(records: PatientRecords, body: dict, if_match: str, add_findings) -> tuple[dict, int]:
    record = records.find(subscriber_number(body) or "")  # the checks refused a body without a valid one
    if if_match_version(if_match) != record.version:
        add_findings(Finding.failed(REQ_VERSION, f"If-Match {if_match} is not the current version ({record.version}) "
                                    "of the patient's coverage: get the coverage again and send its ETag.",
                                    "header:If-Match", version_mismatch()))
        raise version_mismatch()
    add_findings(Finding.passed(REQ_VERSION, f"If-Match {if_match} is the current version.", "header:If-Match"))
    card = {**body, "subscriber": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": record.nhs_number}}}
    version = record.version + 1
    if record.source != "example":
        patient = copy.deepcopy(record.resource)
        patient["meta"]["versionId"] = str(version)
        try:
            records.save(record, patient)
        except VersionConflict:
            raise version_mismatch() from None
        records.sandbox.store.state.put(records.session, NAMESPACE, record.nhs_number, card)
    return _bundle(record.nhs_number, card, version), version


def _card(records: PatientRecords, record: Record) -> dict | None:
    if record.source == "example":
        return copy.deepcopy(EXAMPLE) if record.nhs_number == "9000000009" else None
    stored = records.sandbox.store.state.get(records.session, NAMESPACE, record.nhs_number)
    return stored.value if stored else None


def _bundle(number: str, card: dict | None, version: int) -> dict:
    entries = [{"fullUrl": f"{LIVE_BASE}/Coverage?{PARAMETER}={number}", "resource": card}] if card else []
    return searchset(entries, meta={"versionId": str(version)})
