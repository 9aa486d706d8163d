"""GET and POST /Coverage: a patient's European Health Insurance Card (EHIC), versioned with the patient record.

The published sandbox's patients answer as it answers them: 9000000009 holds its EHIC (version 2), 9000000033 none
(version 1), the other published patients none (version 2, the version an update is checked against); an update of
any of them needs If-Match W/"2", answers version 3 - the published card with the request's values - and stores
nothing. For synthetic patients the card and a new patient version are stored for the session. Coverage is for
patient access only (access.py refuses the other modes).
"""

from __future__ import annotations

import copy

from sandbox.conformance.checks import RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.journal.store import VersionConflict
from sandbox.services.pds import published_data
from sandbox.services.pds.bundles import LIVE_BASE, searchset
from sandbox.services.pds.coverage_request import subscriber_number
from sandbox.services.pds.new_patient import at
from sandbox.services.pds.patch_request import if_match_version
from sandbox.services.pds.problems import Problem
from sandbox.services.pds.records import PatientRecords, Record
from sandbox.synthetic.identifiers import NHS_NUMBER_SYSTEM, is_valid_nhs_number

NAMESPACE = "pds.coverage"  # session state: NHS number -> the patient's EHIC
PARAMETER = "subscriber:identifier"
REQ_SEARCH, REQ_VERSION = "PDS-COV-001", "PDS-COV-003"
PUBLISHED_VERSION = 2  # the coverage version the published sandbox checks every update against
FORMAT = ("Invalid search data provided - 'Coverage search request must follow the format "
          "/Coverage?subscriber:identifier=NHS_NUMBER'")


def version_mismatch() -> SpineError:
    return SpineError(409, "RESOURCE_VERSION_MISMATCH")


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


def search(records: PatientRecords, number: str) -> tuple[dict, int]:
    record = records.find(number)
    if record.source == "example":
        published = published_data.coverage(record.nhs_number) or {"version": str(PUBLISHED_VERSION), "cards": []}
        version = int(published["version"])
        return searchset(published["cards"], meta={"versionId": str(version)}), version
    card = _stored_card(records, record)
    return _bundle(record.nhs_number, card, record.version), record.version


def update(records: PatientRecords, body: dict, if_match: str, add_findings) -> tuple[dict, int]:
    record = records.find(subscriber_number(body) or "")  # the checks refused a body without a valid one
    current = PUBLISHED_VERSION if record.source == "example" else record.version
    if if_match_version(if_match) != current:
        add_findings(Finding.failed(REQ_VERSION, f"If-Match {if_match} is not the current version ({current}) "
                                    "of the patient's coverage: get the coverage again and send its ETag.",
                                    "header:If-Match", version_mismatch()))
        raise version_mismatch()
    add_findings(Finding.passed(REQ_VERSION, f"If-Match {if_match} is the current version.", "header:If-Match"))
    if record.source == "example":
        return published_update(body), current + 1
    card = {**body, "subscriber": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": record.nhs_number}}}
    version = record.version + 1
    patient = copy.deepcopy(record.resource)
    patient["meta"]["versionId"] = str(version)
    try:
        records.save(record, patient)
    except VersionConflict:
        raise version_mismatch() from None
    records.sandbox.store.state.put(records.session, NAMESPACE, record.nhs_number, card)
    return _bundle(record.nhs_number, card, version), version


def published_update(body: dict) -> dict:
    """What the published sandbox answers an update with: its card for 9000000009 carrying the request's numbers,
    version 3, and the card's own timestamp (nothing is stored)."""
    entry = published_data.coverage("9000000009")["cards"][0]
    card, fixed = entry["resource"], published_data.coverage_update()
    card["beneficiary"]["identifier"]["value"] = at(body, "beneficiary", "identifier", "value")
    card["identifier"][0]["assigner"]["identifier"]["value"] = at(body, "identifier", 0, "assigner", "identifier",
                                                                  "value")
    card["identifier"][0]["value"] = at(body, "identifier", 0, "value")
    card["payor"][0]["identifier"]["value"] = at(body, "payor", 0, "identifier", "value")
    card["period"]["end"] = at(body, "period", "end")
    card["subscriber"]["identifier"]["value"] = at(body, "subscriber", "identifier", "value")
    return {"entry": [entry], "meta": {"versionId": fixed["version"]}, "resourceType": "Bundle",
            "timestamp": fixed["timestamp"], "total": 1, "type": "searchset"}


def _stored_card(records: PatientRecords, record: Record) -> dict | None:
    stored = records.sandbox.store.state.get(records.session, NAMESPACE, record.nhs_number)
    return stored.value if stored else None


def _bundle(number: str, card: dict | None, version: int) -> dict:
    entries = [{"fullUrl": f"{LIVE_BASE}/Coverage?{PARAMETER}={number}", "resource": card}] if card else []
    return searchset(entries, meta={"versionId": str(version)})
