"""The EPS specification's response schemas, for tests: does a body the sandbox answered meet the schema the
specification documents for that operation and status?

    from tests.eps_spec import assert_valid
    response = client.post(...)
    assert_valid("release", response.status_code, response.get_json())

`assert_valid(operation_id, status, body)` validates against every one of the three OpenAPI documents
(electronic-prescription-service-api.yaml, fhir-prescribing.yaml, fhir-dispensing.yaml) that documents a JSON schema
for that operation (context's operation ids are the specification's) and status (the exact code, else its class,
e.g. "4XX"); it fails when none documents one, so a test cannot pass by validating nothing. `documented(operation_id,
status)` says whether one does. The schemas are OpenAPI 3.0 YAML with relative `$ref`s across
packages/specification/schemas/**, resolved with jsonschema's `referencing`. The specification is an outside
reference: absent, the calling test skips.

The specification's schemas are wrong in places for answers that are plainly right (its own examples fail them).
Those places are corrected by the named rules in ADJUSTMENTS, applied to every schema as it is loaded, never
silently; three more rules (relaxes=False) only read OpenAPI 3.0 as OpenAPI means it (keywords beside $ref ignored,
a oneOf of resource kinds chosen by resourceType, overlapping oneOf as anyOf). tests/test_eps_spec_schemas.py
proves every response example of the specification validates under these rules, that each correction is needed
(without it some example fails; the short-form id's ODS group: an id live makes for practice Y12345), and that
wrong answers still fail.

Adjustments (name: what it corrects): single-value-enum-ids, failed-prescription-entries, prepare-algorithms,
js-regex-delimiters, ods-in-prescription-ids, codes-are-strings, open-extension-lists, other-systems, resource-ids,
telecom-arrays, expression-lists, examples-omit (NOT_REQUIRED); see each function's docstring."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import spec_path

SPEC_FILES = ("electronic-prescription-service-api.yaml", "fhir-prescribing.yaml", "fhir-dispensing.yaml")
JSON_MEDIA = ("application/fhir+json", "application/json")


# ---- the named adjustments --------------------------------------------------------------------------------------

def _no_single_value_enum_on_ids(schema: dict, key: str | None, where: Path) -> None:
    """`id` (and identifier `value`) properties written as a one-value `enum` of the example's UUID: an example, not
    a constraint (every live answer has its own ids)."""
    for name in ("id", "value", "fullUrl", "reference", "identifier"):
        prop = schema.get("properties", {}).get(name) if isinstance(schema.get("properties"), dict) else None
        if isinstance(prop, dict) and isinstance(prop.get("enum"), list) and len(prop["enum"]) == 1 \
                and prop.get("type") == "string":
            prop["example"] = prop.pop("enum")[0]


def _openapi_ref_siblings(schema: dict, key: str | None, where: Path) -> None:
    """OpenAPI 3.0 ignores every keyword beside a `$ref` (the referenced schema replaces the object); JSON Schema
    2020-12 applies them too. Keep only the `$ref`, as OpenAPI reads it."""
    if "$ref" in schema and len(schema) > 1:
        for name in [name for name in schema if name != "$ref"]:
            del schema[name]


def _one_of_as_any_of(schema: dict, key: str | None, where: Path) -> None:
    """`oneOf` over resource kinds whose schemas do not exclude each other (a Patient entry also meets the loose
    Organization schema): OpenAPI authors mean "any of these kinds", and JSON Schema's oneOf then fails every
    entry that two kinds accept. Read it as anyOf."""
    if "oneOf" in schema:
        schema["anyOf"] = schema.pop("oneOf")


def _prepare_algorithms(schema: dict, key: str | None, where: Path) -> None:
    """$prepare's `algorithm` is written as only "RS1"; the specification's own examples answer "RS256" too (the
    SHA-256 signature live EPS asks for)."""
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    name, value = props.get("name"), props.get("valueString")
    if isinstance(name, dict) and name.get("enum") == ["algorithm"] and isinstance(value, dict) \
            and value.get("enum") == ["RS1"]:
        value["enum"] = ["RS1", "RS256"]


def _js_regex_delimiters(schema: dict, key: str | None, where: Path) -> None:
    """Patterns written as JavaScript regex literals ('/^…$/', the short-form prescription id's even without its
    closing slash): the slashes are delimiters, not characters."""
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern.startswith("/^"):
        schema["pattern"] = pattern[1:-1] if pattern.endswith("/") else pattern[1:]


def _ods_in_prescription_ids(schema: dict, key: str | None, where: Path) -> None:
    """The short-form prescription id's pattern asks for hex in its middle group, which is the prescriber's ODS
    code, zero-padded: ODS codes use every letter (Y12345, FH542), so live ids such as 0A1B2C-Y12345-00001? exist.
    The middle group is read as any 6 letters and digits; the other groups stay hex."""
    pattern = schema.get("pattern")
    hex_middle = "[0-9a-fA-F]{6}-[0-9a-fA-F]{6}-[0-9a-fA-F]{5}"
    if isinstance(pattern, str) and hex_middle in pattern:
        schema["pattern"] = pattern.replace(hex_middle, "[0-9a-fA-F]{6}-[0-9a-zA-Z]{6}-[0-9a-fA-F]{5}")


def _codes_are_strings(schema: dict, key: str | None, where: Path) -> None:
    """A Quantity's SNOMED `code` typed integer: FHIR codes are strings (the specification's own answers send
    "428673006")."""
    code = schema.get("properties", {}).get("code") if isinstance(schema.get("properties"), dict) else None
    if isinstance(code, dict) and code.get("type") == "integer":
        code["type"] = "string"


def _open_extension_lists(schema: dict, key: str | None, where: Path) -> None:
    """A resource's `extension` array is written as a closed list of the extensions the example carries; FHIR lets a
    resource carry others (the specification's own answers carry the status history and dispensing information).
    Known extensions still meet their schema; an extension of any other url is accepted as an Extension."""
    if key != "extension" or schema.get("type") != "array" or not isinstance(schema.get("items"), dict):
        return
    items = schema["items"]
    branches = items.get("anyOf") or items.get("oneOf") or [items]
    urls = [url for branch in branches for url in _url_enum(branch, where)]
    if not urls or items.get("x-open-extensions"):
        return
    other = {"type": "object", "required": ["url"], "properties": {"url": {"type": "string", "not": {"enum": urls}}}}
    schema["items"] = {"anyOf": [*branches, other], "x-open-extensions": True}


def _url_enum(branch: Any, where: Path) -> list[str]:
    """The fixed url(s) of an extension schema."""
    return _fixed(branch, where, "url")


def _fixed(branch: Any, where: Path, name: str) -> list[str]:
    """The enum (or default) of property `name` of a schema, following $refs."""
    branch, where = _deref(branch, where)
    prop = ((branch.get("properties") or {}).get(name) or {}) if isinstance(branch, dict) else {}
    if not isinstance(prop, dict):
        return []
    return list(prop.get("enum") or ([prop["default"]] if isinstance(prop.get("default"), str) else []))


def _deref(branch: Any, where: Path) -> tuple[Any, Path]:
    """A schema with its $refs followed (to other files, and into an OpenAPI document's components)."""
    for _ in range(6):
        if not (isinstance(branch, dict) and isinstance(branch.get("$ref"), str)):
            break
        file_part, _, pointer = branch["$ref"].partition("#")
        if file_part:
            where = (where.parent / file_part).resolve()
        branch = _load(str(where)) if where.is_file() else {}
        for part in [p for p in pointer.split("/") if p]:
            branch = branch.get(part, {}) if isinstance(branch, dict) else {}
    return branch, where


def _resource_kind(branch: Any, where: Path) -> tuple[str, bool] | None:
    """(resourceType, wrapped) of a resource schema, or of a Bundle entry schema whose `resource` is one."""
    types = _fixed(branch, where, "resourceType")
    if len(types) == 1:
        return types[0], False
    target, target_where = _deref(branch, where)
    resource = (target.get("properties") or {}).get("resource") if isinstance(target, dict) else None
    types = _fixed(resource, target_where, "resourceType") if resource is not None else []
    return (types[0], True) if len(types) == 1 else None


def _resources_by_type(schema: dict, key: str | None, where: Path) -> None:
    """A Bundle entry's `resource` written as oneOf the kinds of resource it may be: OpenAPI's intent is a choice by
    resourceType (a discriminator), not "exactly one schema matches". Choose the branch by the resource's type, so a
    Patient is checked as a Patient (and its faults are reported as a Patient's)."""
    branches = schema.get("oneOf") or schema.get("anyOf")
    if not isinstance(branches, list) or len(branches) < 2 or key not in ("resource", None, "items"):
        return
    kinds: dict[str, list] = {}
    found = [_resource_kind(branch, where) for branch in branches]
    if any(kind is None for kind in found) or len({wrapped for _, wrapped in found}) != 1:
        return
    wrapped = found[0][1]
    for branch, (kind, _) in zip(branches, found, strict=True):
        kinds.setdefault(kind, []).append(branch)
    schema.pop("oneOf", None)
    schema.pop("anyOf", None)
    kind_rule = {"required": ["resourceType"], "properties": {"resourceType": {"enum": sorted(kinds)}}}
    schema["allOf"] = [*schema.get("allOf", []), _inside(kind_rule, wrapped), *(
        {"if": _inside({"properties": {"resourceType": {"const": kind}}}, wrapped), "then": {"anyOf": group}}
        for kind, group in kinds.items())]


def _inside(rule: dict, wrapped: bool) -> dict:
    return {"properties": {"resource": rule}} if wrapped else rule


def _other_systems(schema: dict, key: str | None, where: Path) -> None:
    """A `coding` or `identifier` array written as items of one system only; FHIR lets a concept carry the same code
    in other systems and a resource carry other identifiers (the specification's own answers add the UK Core job
    role name, a practitioner's GMC number). Items of the written system(s) still meet the schema; items of other
    systems need only a system."""
    if key not in ("coding", "identifier") or schema.get("type") != "array" or not isinstance(schema.get("items"), dict):
        return
    items = schema["items"]
    if items.get("x-other-systems"):
        return
    branches = items.get("anyOf") or items.get("oneOf") or [items]
    systems = [system for branch in branches for system in _fixed(branch, where, "system")]
    if systems:
        other = {"type": "object", "required": ["system"],
                 "properties": {"system": {"type": "string", "not": {"enum": systems}}}}
        schema["items"] = {"anyOf": [*branches, other], "x-other-systems": True}


def _resource_ids(schema: dict, key: str | None, where: Path) -> None:
    """A closed resource schema (additionalProperties: false) without `id`: every FHIR resource may carry its id
    (the specification's own R-0002 … R-0010 answers do)."""
    props = schema.get("properties")
    if schema.get("additionalProperties") is False and isinstance(props, dict) and "resourceType" in props:
        props.setdefault("id", {"type": "string"})


def _telecom_arrays(schema: dict, key: str | None, where: Path) -> None:
    """`telecom` typed as one object: FHIR's telecom is a list of ContactPoints (as the specification's own answers
    send it). Accept the list of them."""
    telecom = schema.get("properties", {}).get("telecom") if isinstance(schema.get("properties"), dict) else None
    if isinstance(telecom, dict) and _deref(telecom, where)[0].get("type") == "object":
        schema["properties"]["telecom"] = {"type": "array", "items": telecom}


def _failed_prescription_entries(schema: dict, key: str | None, where: Path) -> None:
    """failedPrescriptions' `entry` items are written as the resources themselves (an OperationOutcome, a Bundle);
    a searchset Bundle's entries carry them in `resource`, as the specification's own release answers do."""
    if where.name == "failedPrescriptions.yaml" and key == "entry" and schema.get("type") == "array" \
            and isinstance(schema.get("items"), dict) and "oneOf" in schema["items"]:
        schema["items"] = {"type": "object", "properties": {"resource": schema["items"]}}
    # … and the failed prescription's own Bundle carries its Provenance (the prescriber's signature) too.
    branches = schema.get("oneOf")
    if where.name == "failedPrescriptions.yaml" and key == "resource" and isinstance(branches, list) \
            and any("PractitionerRole" in str(branch.get("$ref")) for branch in branches if isinstance(branch, dict)):
        branches.append({"$ref": "../../components/Provenance/Provenance.yaml"})


def _expression_lists(schema: dict, key: str | None, where: Path) -> None:
    """An issue's `expression` typed as one string: FHIR's is a list of FHIRPath strings (as the specification's own
    release answer sends it)."""
    expression = schema.get("properties", {}).get("expression") if isinstance(schema.get("properties"), dict) else None
    if isinstance(expression, dict) and expression.get("type") == "string":
        schema["properties"]["expression"] = {"type": "array", "items": expression}


# Properties the specification's schemas require that its own examples of the same answer leave out.
NOT_REQUIRED = {
    # The cancellation refusals (R-0002 … R-0010) answer a MedicationRequest without these.
    "CancelResponseMedicationRequest.yaml": ("category", "courseOfTherapyType", "dosageInstruction",
                                             "dispenseRequest", "substitution"),
    # … and the prescriber's Organization without the organisation it is part of.
    "Organization.yaml": ("partOf", "telecom"),
}


def _examples_omit(schema: dict, key: str | None, where: Path) -> None:
    """Required properties the specification's own examples of that answer omit (NOT_REQUIRED, per file)."""
    omitted = NOT_REQUIRED.get(where.name)
    if omitted and key is None and isinstance(schema.get("required"), list):
        schema["required"] = [name for name in schema["required"] if name not in omitted]


@dataclass(frozen=True)
class Adjustment:
    name: str
    why: str
    apply: Callable[[dict, str | None, Path], None]
    relaxes: bool = True  # False: a reading of OpenAPI's own semantics, not a correction of the specification


ADJUSTMENTS: tuple[Adjustment, ...] = (
    Adjustment("openapi-ref-siblings", "OpenAPI 3.0 ignores keywords beside $ref", _openapi_ref_siblings, False),
    Adjustment("single-value-enum-ids", "a one-value enum on an id is the example's id, not a rule",
               _no_single_value_enum_on_ids),
    Adjustment("failed-prescription-entries", "failedPrescriptions' entries carry their resource in `resource`",
               _failed_prescription_entries),
    Adjustment("resources-by-type", "a oneOf of resource kinds is a choice by resourceType", _resources_by_type,
               False),
    Adjustment("one-of-as-any-of", "oneOf over resource kinds that overlap means anyOf", _one_of_as_any_of, False),
    Adjustment("prepare-algorithms", "$prepare answers RS256 as well as RS1", _prepare_algorithms),
    Adjustment("js-regex-delimiters", "'/…/' patterns are JavaScript literals", _js_regex_delimiters),
    Adjustment("ods-in-prescription-ids", "a short-form id's middle group is an ODS code, not hex",
               _ods_in_prescription_ids),
    Adjustment("codes-are-strings", "FHIR codes are strings, never integers", _codes_are_strings),
    Adjustment("open-extension-lists", "FHIR resources may carry extensions beyond the listed ones",
               _open_extension_lists),
    Adjustment("other-systems", "codings and identifiers of other systems beside the written one",
               _other_systems),
    Adjustment("resource-ids", "every FHIR resource may carry its id", _resource_ids),
    Adjustment("telecom-arrays", "telecom is a list of ContactPoints", _telecom_arrays),
    Adjustment("expression-lists", "an issue's expression is a list of FHIRPaths", _expression_lists),
    Adjustment("examples-omit", "required properties the specification's own answers omit", _examples_omit),
)


def _adjusted(document: Any, adjustments: tuple[Adjustment, ...], where: Path) -> Any:
    """A copy of a schema document (from the file `where`) with the adjustments applied to every object in it."""
    document = copy.deepcopy(document)

    def walk(node: Any, key: str | None) -> None:
        if isinstance(node, dict):
            for adjustment in adjustments:
                adjustment.apply(node, key, where)
            for child_key, child in node.items():
                walk(child, child_key)
        elif isinstance(node, list):
            for child in node:
                walk(child, key)

    walk(document, None)
    return document


# ---- loading --------------------------------------------------------------------------------------------------

def spec_folder() -> Path:
    return spec_path("eps-fhir", "packages", "specification")


@cache
def _load(path: str) -> Any:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def _operations(spec_file: str) -> Iterator[tuple[str, str, dict]]:
    """(operationId, path, operation) of one OpenAPI document."""
    for path, methods in (_load(str(spec_folder() / spec_file)).get("paths") or {}).items():
        for operation in methods.values():
            if isinstance(operation, dict) and "operationId" in operation:
                yield operation["operationId"], path, operation


def _response(operation: dict, status: int) -> dict | None:
    responses = operation.get("responses") or {}
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return responses[key]
    return None


def _json_content(response: dict) -> dict | None:
    content = response.get("content") or {}
    key = next((k for k in content if k.split(";")[0].strip() in JSON_MEDIA), None)
    return content[key] if key is not None and "schema" in content[key] else None


def _localised(schema: Any, spec_file: str) -> Any:
    """A schema taken out of its OpenAPI document, its local refs ('#/components/…') pointed back at the document."""
    if isinstance(schema, dict):
        return {key: (spec_file + value if key == "$ref" and isinstance(value, str) and value.startswith("#")
                      else _localised(value, spec_file)) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_localised(item, spec_file) for item in schema]
    return schema


@cache
def _resource(uri: str, adjustments: tuple[Adjustment, ...]) -> Resource:
    """One schema file, adjusted (once: the registry asks again on every validation)."""
    path = uri.removeprefix("file://")
    return Resource.from_contents(_adjusted(_load(path), adjustments, Path(path)), default_specification=DRAFT202012)


@cache
def _registry(adjustments: tuple[Adjustment, ...]) -> Registry:
    return Registry(retrieve=lambda uri: _resource(uri, adjustments))


@cache
def validators(operation_id: str, status: int,
               adjustments: tuple[Adjustment, ...] = ADJUSTMENTS) -> tuple[tuple[str, Draft202012Validator], ...]:
    """(spec file, validator) for every document that gives this operation a JSON schema at this status."""
    found = []
    for spec_file in SPEC_FILES:
        for op_id, _, operation in _operations(spec_file):
            response = _response(operation, status) if op_id == operation_id else None
            content = _json_content(response) if response is not None else None
            if content is None:
                continue
            schema = _adjusted(_localised(content["schema"], spec_file), adjustments, spec_folder() / spec_file)
            # Registered beside the OpenAPI document, so its relative refs resolve from the same folder.
            where = (spec_folder() / f"_response.{operation_id}.{status}.yaml").as_uri()
            registry = _registry(adjustments).with_resource(
                where, Resource.from_contents(schema, default_specification=DRAFT202012))
            found.append((spec_file, Draft202012Validator({"$ref": where}, registry=registry)))
    return tuple(found)


def documented(operation_id: str, status: int) -> bool:
    return bool(validators(operation_id, status))


def _leaf(error):
    """oneOf errors are vague on their own; the branch that came closest says what is actually wrong."""
    leaves = list(_leaves(error))
    return max(leaves, key=lambda e: len(e.absolute_path))


def _leaves(error):
    if not error.context:
        yield error
    for child in error.context:
        yield from _leaves(child)


def problems(operation_id: str, status: int, body: Any,
             adjustments: tuple[Adjustment, ...] = ADJUSTMENTS) -> list[str]:
    """What is wrong with `body` as the answer of `status` to `operation_id`, per document ([] when valid)."""
    found = []
    for spec_file, validator in validators(operation_id, status, adjustments):
        for error in validator.iter_errors(body):
            leaf = _leaf(error)
            found.append(f"{spec_file}: /{'/'.join(map(str, leaf.absolute_path))}: {leaf.message[:200]}")
    return found


def assert_valid(operation_id: str, status: int, body: Any) -> None:
    """Fails unless the specification documents a JSON answer for (operation, status) and `body` meets it."""
    assert documented(operation_id, status), f"the specification documents no JSON {status} answer for {operation_id}"
    found = problems(operation_id, status, body)
    assert not found, f"{operation_id} {status} answer does not meet the specification:\n" + "\n".join(found[:12])


# ---- the specification's own examples ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SpecExample:
    spec_file: str
    operation_id: str
    key: str  # the example's key under requestBody or the response
    status: str  # "request", or the response's status key ("200", "4XX")
    file: str  # below eps-fhir/, e.g. examples/spec/dispensing/release/acute-primary-example-req.json


def spec_examples() -> list[SpecExample]:
    """Every example the three documents reference, requests and responses."""
    found = []
    for spec_file in SPEC_FILES:
        for op_id, _, operation in _operations(spec_file):
            request = ((operation.get("requestBody") or {}).get("content") or {})
            for content in request.values():
                for key, item in (content.get("examples") or {}).items():
                    found.append(SpecExample(spec_file, op_id, key, "request", item["value"]["$ref"]))
            for status, response in (operation.get("responses") or {}).items():
                for content in (response.get("content") or {}).values():
                    for key, item in (content.get("examples") or {}).items():
                        found.append(SpecExample(spec_file, op_id, key, str(status), item["value"]["$ref"]))
    return found


def status_of(status_key: str, body: Any) -> int:
    """The HTTP status a response example stands for: its key, or for a class key ('4XX') 400, the only 4xx the
    specification's error tables give for these bodies."""
    return int(status_key) if status_key.isdigit() else int(status_key[0]) * 100
