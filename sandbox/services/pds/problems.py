"""A problem with what a supplier sent: the finding it records and the error live PDS answers with.

Also the bridge from the sandbox's own JSON Schema (schemas/pds.yaml) to PDS's error codes and wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from jsonpointer import JsonPointerException, resolve_pointer
from jsonschema import Draft202012Validator

from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.schemas import SchemaProblem, definition_validator, problems_in

SCHEMA_FILE = Path(__file__).with_name("schemas") / "pds.yaml"


@dataclass(frozen=True)
class Problem:
    requirement: str
    error: SpineError
    message: str  # for the finding: what was expected, what was seen
    location: str  # header name, query parameter or JSON pointer

    def finding(self, reject: bool = True) -> Finding:
        return Finding.failed(self.requirement, self.message, self.location, self.error if reject else None)


def field_name(pointer: str) -> str:
    """PDS names a body field as a path without the leading slash: 'name/0/given/0'."""
    return pointer.lstrip("/")


def invalid_value(value, pointer: str) -> SpineError:
    return SpineError(400, "INVALID_VALUE", f"Invalid value - '{_text(value)}' in field '{field_name(pointer)}'")


def additional_properties(names: list[str]) -> SpineError:
    listed = ", ".join(f"'{n}'" for n in names)
    verb = "was" if len(names) == 1 else "were"
    return SpineError(400, "ADDITIONAL_PROPERTIES",
                      f"Invalid request with error - Additional properties are not allowed ({listed} {verb} unexpected)")


def _text(value) -> str:
    return value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()


def validator(definition: str) -> Draft202012Validator:
    return definition_validator(SCHEMA_FILE, definition)


def schema_problems(definition: str, document, requirement: str, what: str) -> list[Problem]:
    """Every way the document breaks our schema, each as the error PDS gives for it."""
    found = problems_in(validator(definition), document)
    # "contains" only says a kind of item is absent; a problem inside the item that was meant is more precise.
    found.sort(key=lambda p: p.validator == "contains")
    return [Problem(requirement, _error(p, document), f"{what}: {str(p)[:300]}", p.pointer or "/") for p in found]


def _error(problem: SchemaProblem, document) -> SpineError:
    where = problem.pointer
    try:
        value = resolve_pointer(document, where) if where else document
    except JsonPointerException:
        value = None
    if problem.validator == "additionalProperties":  # the message names them: "unexpected field 'pets'"
        return additional_properties(re.findall(r"'([^']*)'", problem.message))
    if problem.validator == "required":
        missing = problem.message.split("'")[1] if "'" in problem.message else ""
        return SpineError(400, "MISSING_VALUE", f"Missing value - '{field_name(where + '/' + missing)}'")
    if problem.validator in ("maxItems", "maxProperties"):
        return SpineError(400, "TOO_MANY_VALUES_SUBMITTED", f"Too many values submitted - '{field_name(where)}'")
    if problem.validator == "contains":  # a required kind of item is absent, e.g. the Registering Authority
        return SpineError(400, "MISSING_VALUE", f"Missing value - '{field_name(where)}'")
    if problem.validator == "minItems":
        return SpineError(400, "TOO_FEW_VALUES_SUBMITTED", f"Too few values submitted - '{field_name(where)}'")
    return invalid_value(value, where)
