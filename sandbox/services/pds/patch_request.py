"""PATCH /Patient/{id}: what can be judged from the request alone - If-Match, Content-Type, the patch list."""

from __future__ import annotations

import re
from collections.abc import Iterator

from jsonpointer import JsonPointer, JsonPointerException

from sandbox.conformance.checks import RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import Malformed
from sandbox.services.pds.problems import Problem

PATCH_TYPE = "application/json-patch+json"
OPERATIONS = ("add", "replace", "remove", "test")
LIST_FIELDS = ("name", "address", "telecom", "contact", "generalPractitioner", "extension")
UPDATABLE = (*LIST_FIELDS, "gender", "birthDate", "deceasedDateTime", "managingOrganization", "multipleBirthInteger")
IF_MATCH = re.compile(r'^W/"([0-9]{1,18})"$')  # ASCII digits, within what storage holds
ITEM = re.compile(r"^/([A-Za-z]+)/([0-9]+|-)$")  # a base-level list item: /name/0, /address/-
NO_PATCHES = "Invalid update with error - No patches found"
# PDS-UPD-021 judges the If-Match header itself; whether it is the latest ETag (PDS-UPD-001) is judged over the
# session's history (behaviour.py).
REQ_IF_MATCH, REQ_TYPE, REQ_BODY, REQ_OPERATIONS, REQ_TEST_FIRST, REQ_LIST_ITEMS, REQ_FIELDS = (
    "PDS-UPD-021", "PDS-UPD-002", "PDS-UPD-003", "PDS-UPD-004", "PDS-UPD-005", "PDS-UPD-006", "PDS-UPD-016")
BODY_REQUIREMENTS = (REQ_BODY, REQ_OPERATIONS, REQ_TEST_FIRST, REQ_LIST_ITEMS, REQ_FIELDS)


def invalid_update(reason: str) -> SpineError:
    return SpineError(400, "INVALID_UPDATE", f"Invalid update with error - {reason}")


def if_match_version(value: str | None) -> int | None:
    match = IF_MATCH.match(value or "")
    return int(match.group(1)) if match else None


def judge_if_match(value: str | None, requirement: str = REQ_IF_MATCH) -> Finding:
    if value is None:
        return Finding.failed(requirement, "If-Match is missing: send the ETag of your latest retrieval, e.g. "
                              "W/\"2\" (412 PRECONDITION_FAILED).", "header:If-Match", SpineError(
                                  412, "PRECONDITION_FAILED", "Invalid request with error - If-Match header must "
                                  "be supplied to update this resource"))
    if if_match_version(value) is None:
        return Finding.failed(requirement, f"If-Match {value[:40]!r} is not W/\"<version>\" (the ETag header of a "
                              "retrieval, mirrored back unchanged).", "header:If-Match",
                              SpineError(400, "INVALID_VALUE", f"Invalid value - '{value}' in header 'If-Match'"))
    return Finding.passed(requirement, f"If-Match {value} is a weak ETag.", "header:If-Match")


def judge_content_type(req: RequestView) -> Finding:
    sent = req.content_type
    if sent == PATCH_TYPE:
        return Finding.passed(REQ_TYPE, f"Content-Type is {PATCH_TYPE}.", "header:Content-Type")
    if sent == "application/json":
        return Finding.warning(REQ_TYPE, f"Content-Type is application/json: PDS documents {PATCH_TYPE} for a PATCH "
                               "(application/json is tolerated).", "header:Content-Type")
    return Finding.failed(REQ_TYPE, f"Content-Type {sent or '(none)'!r} is not {PATCH_TYPE} (400 UNSUPPORTED_SERVICE).",
                          "header:Content-Type", SpineError(
                              400, "UNSUPPORTED_SERVICE", f"Invalid request with error - Content-Type "
                              f"'{sent or ''}' is not supported; send the patch as {PATCH_TYPE}"))


def patch_list(req: RequestView) -> tuple[list | None, Problem | None]:
    """The patch operations from a {"patches": [...]} body, or the problem that stops PDS reading them."""
    try:
        body = req.json() if req.body.strip() else None
    except Malformed as exc:
        return None, Problem(REQ_BODY, invalid_update(f"the request body is not valid JSON ({exc.detail})"),
                             f"The body is not JSON: {exc}.", "body")
    if isinstance(body, list):
        return None, Problem(REQ_BODY, invalid_update("No patches found"), "The body is a bare JSON Patch array: PDS "
                             "reads the operations from an object, {\"patches\": [ ... ]}, and finds none here.",
                             "body")
    patches = body.get("patches") if isinstance(body, dict) else None
    if not isinstance(patches, list) or not patches:
        seen = "no body" if body is None else "no 'patches' list" if not isinstance(patches, list) else "an empty list"
        return None, Problem(REQ_BODY, SpineError(400, "INVALID_UPDATE", NO_PATCHES),
                             f"Expected {{\"patches\": [ ... ]}} with at least one operation; found {seen}.", "/patches")
    return patches, None


def judge_patch_body(req: RequestView) -> Iterator[Finding]:
    """Findings about the patch list: every problem (the first is answered), warnings, and passes that apply."""
    patches, problem = patch_list(req)
    if problem is not None:
        yield problem.finding()
        return
    yield Finding.passed(REQ_BODY, f"The body holds {len(patches)} patch operation(s) under 'patches'.", "/patches")
    problems, warnings = operation_problems(patches)
    yield from (p.finding() for p in problems)
    yield from warnings
    failed = {p.requirement for p in problems} | {w.requirement for w in warnings}
    ops = [(p.get("op"), str(p.get("path", ""))) for p in patches if isinstance(p, dict)]
    for requirement, applies, message in (
            (REQ_OPERATIONS, True, "Every operation is add, replace, remove or test with a JSON pointer path."),
            (REQ_FIELDS, True, "Every operation changes a field PDS lets a supplier update."),
            (REQ_TEST_FIRST, any(op == "remove" and ITEM.match(path) for op, path in ops),
             "Every list item removal directly follows a test of that item."),
            (REQ_LIST_ITEMS, any(op == "add" and ITEM.match(path) for op, path in ops),
             "New list items are added at the index '-'.")):
        if applies and requirement not in failed:
            yield Finding.passed(requirement, message, "/patches")


def operation_problems(patches: list) -> tuple[list[Problem], list[Finding]]:
    """Problems with the operations themselves (the first is answered), and advisory warnings."""
    problems: list[Problem] = []
    warnings: list[Finding] = []
    for i, op in enumerate(patches):
        where = f"/patches/{i}"
        if not isinstance(op, dict):
            problems.append(Problem(REQ_OPERATIONS, _invalid(op, f"{i}"), f"Operation {i} is not an object.", where))
            continue
        name, path = op.get("op"), op.get("path")
        if name not in OPERATIONS:
            problems.append(Problem(REQ_OPERATIONS, _invalid(name, f"{i}/op"), f"Operation {i}: op {name!r} is not "
                                    f"one of {', '.join(OPERATIONS)}.", where + "/op"))
            continue
        if not _pointer(path):
            problems.append(Problem(REQ_OPERATIONS, _invalid(path, f"{i}/path"), f"Operation {i}: path {path!r} is "
                                    "not a JSON pointer into the patient (e.g. /gender, /name/0/given/0).",
                                    where + "/path"))
            continue
        if name in ("add", "replace", "test") and "value" not in op:
            problems.append(Problem(REQ_OPERATIONS, SpineError(400, "MISSING_VALUE", f"Missing value - '{i}/value'"),
                                    f"Operation {i}: {name} needs a value.", where))
            continue
        if name == "remove" and "value" in op:
            warnings.append(Finding.warning(REQ_OPERATIONS, f"Operation {i}: a remove should not carry a value.",
                                            where + "/value"))
        problems.extend(_structure(i, op, patches))
    return problems, warnings


def _invalid(value, field: str) -> SpineError:
    return SpineError(400, "INVALID_VALUE", f"Invalid value - '{value}' in field '{field}'")


def _pointer(path) -> bool:
    if not isinstance(path, str) or not path.startswith("/"):
        return False
    try:
        JsonPointer(path)
    except JsonPointerException:
        return False
    return True


def _structure(i: int, op: dict, patches: list) -> list[Problem]:
    """The documented shape rules: updatable fields only, '-' to add list items, a test before a removal."""
    name, path = op["op"], op["path"]
    where = f"/patches/{i}"
    top = path.split("/")[1]
    if name == "test":
        return []
    if top not in UPDATABLE:
        return [Problem(REQ_FIELDS, invalid_update(f"Update unsupported for resource - '{top}'"),
                        f"Operation {i}: {top!r} is not a field PDS lets a supplier update ({', '.join(UPDATABLE)}).",
                        where + "/path")]
    item = ITEM.match(path)
    if top in LIST_FIELDS and path == f"/{top}" and name != "add":
        return [Problem(REQ_LIST_ITEMS, invalid_update(f"'{path}' is a list: {name} its items one at a time, each "
                                                       "identified by its id or url"),
                        f"Operation {i}: {name} on the whole {top} list; change one item at a time.", where + "/path")]
    if name == "add" and item and item.group(1) in LIST_FIELDS and item.group(2) != "-":
        return [Problem(REQ_LIST_ITEMS, invalid_update(f"additions to '/{top}' must use the index '-' ('/{top}/-'), "
                                                       f"not '{path}'"),
                        f"Operation {i}: add {path}: new {top} items go at '/{top}/-'; PDS decides their order.",
                        where + "/path")]
    if name == "remove" and item and item.group(1) in LIST_FIELDS:
        previous = patches[i - 1] if i else None
        tested = isinstance(previous, dict) and previous.get("op") == "test" and previous.get("path") in (
            path, path + "/id", path + "/url")
        if not tested:
            instead = "the first item" if previous is None else f"'{previous.get('op')} {previous.get('path')}'" if \
                isinstance(previous, dict) else "not an operation"
            return [Problem(REQ_TEST_FIRST, invalid_update(f"removal '{path}' is not immediately preceded by "
                                                           f"equivalent test - instead it is {instead}"),
                            f"Operation {i}: remove {path} must directly follow a test of {path}/id (or /url, or the "
                            "whole item).", where)]
    return []
