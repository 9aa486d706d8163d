"""Scenario files: loaded, validated (a bad file names the file and the field), and matched against requests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonpointer import JsonPointerException, resolve_pointer

from sandbox.conformance.checks import RequestView
from sandbox.conformance.parsing import Malformed
from sandbox.conformance.schemas import read_yaml, validate_document
from sandbox.services import unknown_operation

SCHEMA = yaml.safe_load((Path(__file__).with_name("scenario.schema.yaml")).read_text(encoding="utf-8"))
ANY = "*"


class ScenarioError(ValueError):
    """A scenario file cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Trigger:
    operations: tuple[str, ...]
    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    forced_only: bool = False

    @property
    def specificity(self) -> int:
        return len(self.params) + len(self.query) + len(self.headers) + len(self.body) + len(self.facts)

    def matches(self, operation: str, request: RequestView, facts: dict[str, Any]) -> bool:
        if self.forced_only or operation not in self.operations:
            return False
        return (all(_same(request.params.get(k), v) for k, v in self.params.items())
                and all(_same_any(request.query.get(k), v) for k, v in self.query.items())
                and all(_same(request.header(k), v) for k, v in self.headers.items())
                and all(_same(facts.get(k), v) for k, v in self.facts.items())
                and all(_same(_pointer(request, p), v) for p, v in self.body.items()))

    def describe(self) -> str:
        """The trigger in words for the catalogue: which values a supplier sends to get this behaviour."""
        parts = [" or ".join(self.operations)]
        for label, values in (("", self.params), ("query ", self.query), ("header ", self.headers),
                              ("body ", self.body), ("", self.facts)):
            for k, v in values.items():
                parts.append(f"{label}{k} present" if v == ANY else f"{label}{k}={v}")
        if self.forced_only:
            parts.append("only when chosen with X-Sandbox-Scenario")
        return ", ".join(parts)


def _same(actual, expected) -> bool:
    if actual is None:
        return False
    return expected == ANY or str(actual).casefold() == str(expected).casefold()


def _same_any(actual: list[str] | None, expected) -> bool:
    return bool(actual) and any(_same(a, expected) for a in actual)


def _pointer(request: RequestView, pointer: str):
    try:
        return resolve_pointer(request.json(), pointer)
    except (Malformed, JsonPointerException, TypeError):
        return None


@dataclass(frozen=True)
class Scenario:
    id: str
    service: str
    title: str
    trigger: Trigger
    description: str = ""
    tags: tuple[str, ...] = ()
    response: dict = field(default_factory=dict)
    requirements: tuple[str, ...] = ()
    expect: dict = field(default_factory=dict)
    source: str = ""  # the file it came from

    @property
    def scripted(self) -> bool:
        """True when the scenario answers a fixed shape itself; False when the service's logic answers."""
        return "error" in self.response or "body" in self.response or "status" in self.response

    def to_dict(self) -> dict:
        return {"id": self.id, "service": self.service, "title": self.title, "description": self.description,
                "trigger": self.trigger.describe(), "operations": list(self.trigger.operations),
                "tags": list(self.tags), "requirements": list(self.requirements),
                "response": self.response, "expect": self.expect, "source": self.source}


class ScenarioCatalogue:
    def __init__(self, scenarios: Iterable[Scenario] = ()):
        self._by_id: dict[str, Scenario] = {}
        self._by_service: dict[str, list[Scenario]] = {}
        self._by_operation: dict[tuple[str, str], list[Scenario]] = {}  # what select() looks through, per request
        for scenario in scenarios:
            self.add(scenario)

    def add(self, scenario: Scenario) -> None:
        if scenario.id in self._by_id:
            raise ScenarioError(f"{scenario.source}: field 'id': scenario {scenario.id!r} is already defined in "
                                f"{self._by_id[scenario.id].source}")
        self._by_id[scenario.id] = scenario
        self._by_service.setdefault(scenario.service, []).append(scenario)
        for operation in scenario.trigger.operations:
            self._by_operation.setdefault((scenario.service, operation), []).append(scenario)

    def __iter__(self) -> Iterator[Scenario]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, scenario_id: str) -> Scenario | None:
        return self._by_id.get(scenario_id)

    def for_service(self, service: str) -> list[Scenario]:
        return list(self._by_service.get(service, ()))

    def select(self, service: str, operation: str, request: RequestView, facts: dict[str, Any]) -> Scenario | None:
        """The most specific matching scenario; ties go to the one loaded first."""
        best: Scenario | None = None
        for scenario in self._by_operation.get((service, operation), ()):
            if scenario.trigger.matches(operation, request, facts) and (
                    best is None or scenario.trigger.specificity > best.trigger.specificity):
                best = scenario
        return best

    # --- loading -----------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, folders: Iterable[Path], known: dict[str, set[str]], requirements=None) -> ScenarioCatalogue:
        """Every *.yaml under the folders. `known` maps service -> its operations; unknown ones are errors."""
        catalogue = cls()
        for folder in folders:
            for path in sorted(Path(folder).rglob("*.yaml")):
                if "plans" in path.relative_to(folder).parts:
                    continue  # assurance plans live beside scenarios but are not scenarios
                for scenario in load_file(path, known, requirements):
                    catalogue.add(scenario)
        return catalogue


def load_file(path: Path, known: dict[str, set[str]], requirements=None) -> list[Scenario]:
    data = read_yaml(path, ScenarioError)
    # Validate against the one-scenario or list form directly, so every problem is reported, not one branch's.
    form = {"$ref": "#/$defs/scenario"} if not isinstance(data, list) else {"type": "array",
                                                                             "items": {"$ref": "#/$defs/scenario"}}
    problems = validate_document({"$defs": SCHEMA["$defs"], **form}, data)
    if problems:
        raise ScenarioError(f"{path}: " + "; ".join(problems[:5]))
    items = data if isinstance(data, list) else [data]
    scenarios = []
    for n, item in enumerate(items):
        where = f"{path}" + (f" (scenario {n + 1}, {item['id']!r})" if isinstance(data, list) else "")
        scenarios.append(_scenario(item, where, known, requirements))
    return scenarios


def _scenario(item: dict, where: str, known: dict[str, set[str]], requirements) -> Scenario:
    service = item["service"]
    if service not in known:
        raise ScenarioError(f"{where}: field 'service': unknown service {service!r} (known: {', '.join(sorted(known))})")
    trig = item["trigger"]
    operations = (trig["operation"],) if isinstance(trig["operation"], str) else tuple(trig["operation"])
    for op in operations:
        if op not in known[service]:
            raise ScenarioError(f"{where}: field 'trigger.operation': {unknown_operation(op, service, known[service])}")
    for req in item.get("requirements", ()):
        if requirements is not None and req not in requirements:
            raise ScenarioError(f"{where}: field 'requirements': unknown requirement {req!r}")
    as_text = lambda m: {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in (m or {}).items()}  # noqa: E731
    trigger = Trigger(operations, as_text(trig.get("params")), as_text(trig.get("query")),
                      as_text(trig.get("headers")), as_text(trig.get("body")), as_text(trig.get("facts")),
                      bool(trig.get("forced_only")))
    return Scenario(item["id"], service, item["title"], trigger, item.get("description", "").strip(),
                    tuple(item.get("tags", ())), item.get("response") or {}, tuple(item.get("requirements", ())),
                    item.get("expect") or {}, str(where))
