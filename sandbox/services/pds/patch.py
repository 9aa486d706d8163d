"""PATCH /Patient/{id}: apply a JSON Patch (the jsonpatch library) under PDS's rules, version and store it.

Synthetic and session patients get the whole of live PDS: version check, business rules, validation against the
sandbox's own schema, a new version stored for this session only (compare-and-set). The published example
patients behave as the published sandbox documents: the operations are applied and validated, business rules are
not, the answer is version 3, and nothing is stored - so the same documented update succeeds every time.
"""

from __future__ import annotations

import copy
import re
import uuid
from datetime import date

import jsonpatch
from jsonpointer import JsonPointerException

from sandbox.conformance.findings import Finding, SpineError
from sandbox.journal.store import VersionConflict
from sandbox.services.pds import patient_updates
from sandbox.services.pds.patch_request import LIST_FIELDS, if_match_version, invalid_update
from sandbox.services.pds.patch_rules import (
    REQ_VALID,
    change_problems,
    changed_items,
    identity_problems,
    restricted_problem,
)
from sandbox.services.pds.problems import Problem, schema_problems
from sandbox.services.pds.records import PatientRecords, Record

REQ_TESTS, REQ_NEW_IDS = "PDS-UPD-019", "PDS-UPD-008"
NEW_ITEM = re.compile(r"^/([A-Za-z]+)/-$")


def version_mismatch() -> SpineError:
    return SpineError(409, "RESOURCE_VERSION_MISMATCH", "Invalid update with error - This resource has changed since "
                      "you last read. Please re-read and try again with the new version number.")


def update(records: PatientRecords, nhs_number: str, patches: list[dict], if_match: str, add_findings,
           patient_access: bool = False) -> tuple[dict, int]:
    """The updated resource and its version; raises the SpineError live PDS would answer. In patient access only
    the fields a patient may change are updated (patient_updates.py)."""
    record = records.find(nhs_number)
    if if_match_version(if_match) != record.version:
        raise version_mismatch()  # the finding (PDS-UPD-001, latest ETag) comes from the session's history
    if patient_access:
        _stop_at_first(patient_updates.problems(record.resource, patches), add_findings)
        add_findings(Finding.passed(patient_updates.REQUIREMENT, "Every change is to a field patient access may "
                                    "update.", "/patches"))
    if record.source == "example":
        return _update_example(record, patches, add_findings), record.version + 1
    return _update(records, record, patches, add_findings)


def _update_example(record: Record, patches: list[dict], add_findings) -> dict:
    resource = copy.deepcopy(record.resource)
    for i, op in enumerate(patches):
        try:
            _apply(resource, op)
        except jsonpatch.JsonPatchTestFailed as exc:
            add_findings(Finding.warning(REQ_TESTS, f"Operation {i}: test {op['path']} failed ({_reason(exc, op)}); "
                                         "the published sandbox does not enforce tests, but live PDS would reject "
                                         "this update.", f"/patches/{i}"))
        except (jsonpatch.JsonPatchException, JsonPointerException) as exc:
            raise _patch_error(i, op, exc, add_findings) from None
    resource["meta"]["versionId"] = str(record.version + 1)
    return without_empty_lists(resource)


def _update(records: PatientRecords, record: Record, patches: list[dict], add_findings) -> tuple[dict, int]:
    before = record.resource
    if record.restricted:
        problem = restricted_problem(record.nhs_number)
        add_findings(problem.finding())
        raise problem.error
    _stop_at_first(identity_problems(before, patches), add_findings)
    after = copy.deepcopy(before)
    for i, op in enumerate(patches):
        try:
            _apply(after, op)
        except (jsonpatch.JsonPatchException, JsonPointerException) as exc:
            raise _patch_error(i, op, exc, add_findings) from None
    add_findings(Finding.passed(REQ_TESTS, "Every operation applied to the current record.", "/patches"))
    _settle_new_items(before, after, patches, add_findings)
    after = without_empty_lists(after)
    problems = change_problems(before, after, date.today()) + schema_problems(
        "patient", after, REQ_VALID, "The patched patient breaks the PDS schema")
    _stop_at_first(problems, add_findings)
    add_findings(Finding.passed(REQ_VALID, "The patched patient meets PDS's business rules and schema.", "/"))
    version = record.version + 1
    after["meta"] = {**after.get("meta", {}), "versionId": str(version)}
    try:
        records.save(record, after)
    except VersionConflict:
        raise version_mismatch() from None  # another request updated this patient first
    return after, version


def without_empty_lists(value):
    """FHIR JSON never holds an empty array: a list emptied by a patch disappears."""
    if isinstance(value, dict):
        return {k: without_empty_lists(v) for k, v in value.items() if v != []}
    if isinstance(value, list):
        return [without_empty_lists(v) for v in value]
    return value


def _apply(resource: dict, op: dict) -> None:
    """One operation in place; a first addition to a list the patient does not have yet creates the list."""
    item = NEW_ITEM.match(op["path"])
    if op["op"] == "add" and item and item.group(1) in LIST_FIELDS and item.group(1) not in resource:
        resource[item.group(1)] = []
    jsonpatch.JsonPatch([op]).apply(resource, in_place=True)


def _patch_error(i: int, op: dict, exc: Exception, add_findings) -> SpineError:
    reason = _reason(exc, op)
    requirement = REQ_TESTS if isinstance(exc, jsonpatch.JsonPatchTestFailed) else "PDS-UPD-004"
    error = invalid_update(f"Invalid patch - {reason}")
    add_findings(Finding.failed(requirement, f"Operation {i} ({op['op']} {op['path']}) cannot be applied to the "
                                f"current record: {reason}.", f"/patches/{i}", error))
    return error


def _reason(exc: Exception, op: dict) -> str:
    text = re.sub(r" in \{.*$|, .*$", "", str(exc))
    if isinstance(exc, jsonpatch.JsonPatchTestFailed) and "not equal" in text:
        return f"test of '{op['path']}' failed: the current value is not {op.get('value')!r}"
    return text.replace("a non-existent", "non-existent")


def _stop_at_first(problems: list[Problem], add_findings) -> None:
    if problems:
        add_findings(*(p.finding() for p in problems))
        raise problems[0].error


def _settle_new_items(before: dict, after: dict, patches: list[dict], add_findings) -> None:
    """As PDS does: it allocates the object id of a new list item, a new or wholly replaced item without a period
    starts today, and trailing full stops leave titles (Mrs. -> Mrs)."""
    today = date.today().isoformat()
    for field in ("name", "address", "telecom", "contact"):
        known = {item.get("id") for item in before.get(field, []) if isinstance(item, dict) and item.get("id")}
        for _index, item, _old in changed_items(before, after, field):
            if item.get("id") not in known:
                if "id" in item:
                    add_findings(Finding.warning(REQ_NEW_IDS, f"A new {field} item came with id {item['id']!r}: ids "
                                                 "are allocated by PDS, so it was replaced.", f"/{field}"))
                item["id"] = uuid.uuid4().hex[:8].upper()
            item.setdefault("period", {"start": today})
    for item in after.get("name", []):
        if isinstance(item, dict) and isinstance(item.get("prefix"), list):
            item["prefix"] = [p.rstrip(".") if isinstance(p, str) else p for p in item["prefix"]]
