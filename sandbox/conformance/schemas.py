"""JSON Schema validation with every problem reported, each with a JSON pointer; compiled schemas are cached."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from sandbox.conformance.findings import Finding


@dataclass(frozen=True)
class SchemaProblem:
    pointer: str  # JSON pointer into the document, "" for the root
    message: str
    validator: str  # the JSON Schema keyword that failed: required, type, enum, additionalProperties...

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


def pointer_of(path) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


@functools.lru_cache(maxsize=256)
def _validator_for_file(path: str) -> Draft202012Validator:
    text = Path(path).read_text(encoding="utf-8")
    schema = yaml.safe_load(text) if path.endswith((".yaml", ".yml")) else json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@functools.lru_cache(maxsize=16)
def _defs_of(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["$defs"]


@functools.lru_cache(maxsize=256)
def definition_validator(path: Path, definition: str) -> Draft202012Validator:
    """A validator for one definition of a service's schema file (its `$defs`, e.g. schemas/requests.yaml), compiled
    once per process."""
    return Draft202012Validator({"$defs": _defs_of(path), "$ref": f"#/$defs/{definition}"},
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def validator_for(schema: dict | Path | str | Draft202012Validator) -> Draft202012Validator:
    if isinstance(schema, Draft202012Validator):
        return schema
    if isinstance(schema, dict):
        return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return _validator_for_file(str(schema))


def problems_in(schema: dict | Path | str | Draft202012Validator, document) -> list[SchemaProblem]:
    """Every way the document breaks the schema, most specific first, in document order."""
    found: list[SchemaProblem] = []
    for error in sorted(validator_for(schema).iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        found.extend(_leaf_problems(error))
    return found


MAX_REPORTED = 20  # problems reported one by one for a body; the rest are counted in one more finding
# A client sends the same small body again and again (a poll, a nominated release, a retry): services keep its
# verdict rather than validate it again, for bodies up to this size (so their caches stay small).
REMEMBERED_BODY_BYTES = 16 * 1024


def schema_findings(problems: Sequence[SchemaProblem], requirement: str, definition: str) -> Iterator[Finding]:
    """A request profile's verdict on a body as findings: each problem (up to MAX_REPORTED), else one pass."""
    for problem in problems[:MAX_REPORTED]:
        yield Finding.failed(requirement, f"{problem.message} ({definition}).", problem.pointer or "/")
    if len(problems) > MAX_REPORTED:
        yield Finding.failed(requirement, f"… and {len(problems) - MAX_REPORTED} more problems with the body.", "/")
    if not problems:
        yield Finding.passed(requirement, f"The body conforms to {definition}.", "body")


def _leaf_problems(error: ValidationError) -> list[SchemaProblem]:
    # anyOf/oneOf errors are vague on their own; their best-matching branch says what is actually wrong.
    if error.context:
        best = min(error.context, key=lambda e: (len(e.context), -len(e.absolute_path)))
        return _leaf_problems(best)
    return [SchemaProblem(pointer_of(error.absolute_path), _say(error), str(error.validator))]


def _say(error: ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return "unexpected field" + ("s " if len(extra) > 1 else " ") + ", ".join(repr(e) for e in extra)
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(map(repr, error.validator_value))}"
    return error.message


def validate_document(schema: dict, document) -> list[str]:
    """For our own YAML files (scenarios, plans, catalogues): problems as 'at <pointer>: message' lines."""
    return [f"at {p.pointer or '/'}: {p.message}" for p in problems_in(schema, document)]


def read_yaml(path: Path, error: type[Exception] = ValueError):
    """A YAML file's content; unreadable or malformed YAML raises `error` naming the file (and the line)."""
    try:
        # libyaml when PyYAML has it: the same safe loader, several times faster (every start reads ~100 files)
        return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise error(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise error(f"{path}: not valid YAML" + (f" at line {mark.line + 1}" if mark else "")
                    + f": {getattr(exc, 'problem', None) or exc}") from None
