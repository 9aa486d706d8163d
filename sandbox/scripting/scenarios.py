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

    @property
    def discriminator(self) -> tuple[str, str, str] | None:
        """One condition that needs an exact value of a single-valued part of the request (a path parameter, a header,
        a fact): (part, name, value casefolded), or None when there is none. Scenarios are looked up by it."""
        for part, values in (("params", self.params), ("headers", self.headers), ("facts", self.facts)):
            for name, value in values.items():
                if value != ANY:
                    return part, name, str(value).casefold()
        return None

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


class _OperationScenarios:
    """The scenarios one operation can select, filed by their trigger's discriminator, so that a request is matched
    against the few whose exact value it carries (and those without one), not against every scenario."""

    def __init__(self):
        self.order: dict[str, int] = {}  # scenario id -> its place in loading order, which breaks ties
        self.filed: dict[tuple[str, str], dict[str, list[Scenario]]] = {}  # (part, name) -> value -> scenarios
        self.always: list[Scenario] = []  # no discriminator: matched against every request

    def add(self, scenario: Scenario) -> None:
        self.order[scenario.id] = len(self.order)
        found = scenario.trigger.discriminator
        if found is None:
            self.always.append(scenario)
        else:
            part, name, value = found
            self.filed.setdefault((part, name), {}).setdefault(value, []).append(scenario)

    def candidates(self, request: RequestView, facts: dict[str, Any]) -> Iterator[Scenario]:
        for (part, name), by_value in self.filed.items():
            actual = (request.params.get(name) if part == "params" else request.header(name) if part == "headers"
                      else facts.get(name))
            if actual is not None:
                yield from by_value.get(str(actual).casefold(), ())
        yield from self.always


class ScenarioCatalogue:
    def __init__(self, scenarios: Iterable[Scenario] = ()):
        self._by_id: dict[str, Scenario] = {}
        self._by_service: dict[str, list[Scenario]] = {}
        self._by_operation: dict[tuple[str, str], _OperationScenarios] = {}  # what select() looks through
        for scenario in scenarios:
            self.add(scenario)

    def add(self, scenario: Scenario) -> None:
        if scenario.id in self._by_id:
            raise ScenarioError(f"{scenario.source}: field 'id': scenario {scenario.id!r} is already defined in "
                                f"{self._by_id[scenario.id].source}")
        self._by_id[scenario.id] = scenario
        self._by_service.setdefault(scenario.service, []).append(scenario)
        if scenario.trigger.forced_only:
            return  # never selected: chosen only by name (X-Sandbox-Scenario)
        for operation in scenario.trigger.operations:
            self._by_operation.setdefault((scenario.service, operation), _OperationScenarios()).add(scenario)

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
        scenarios = self._by_operation.get((service, operation))
        if scenarios is None:
            return None
        best: Scenario | None = None
        for scenario in scenarios.candidates(request, facts):
            if scenario.trigger.matches(operation, request, facts) and (best is None or _before(scenario, best, scenarios)):
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


def _before(scenario: Scenario, other: Scenario, scenarios: _OperationScenarios) -> bool:
    """Whether `scenario` wins over `other`: more specific, or as specific and loaded first."""
    mine, theirs = scenario.trigger.specificity, other.trigger.specificity
    return mine > theirs or (mine == theirs and scenarios.order[scenario.id] < scenarios.order[other.id])


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
