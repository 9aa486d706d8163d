"""Assurance plans: the scenarios a supplier must run and the requirements that must have evidence.

Plans are YAML files under a scenario folder's `plans/` directory, validated on load against our own schema and
against the catalogues: a bad file is a startup error that names the file and the field.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from sandbox.conformance.requirements import RequirementCatalogue
from sandbox.conformance.schemas import read_yaml, validate_document
from sandbox.scripting.scenarios import ScenarioCatalogue
from sandbox.settings import Settings

SCHEMA = yaml.safe_load(Path(__file__).with_name("plan.schema.yaml").read_text(encoding="utf-8"))
PLANS_FOLDER = "plans"
PLAN_FILE_FOLDER = "plan-file"  # inside the data directory: the scenario folder a plan given by path is copied to


class PlanError(ValueError):
    """A plan file cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class PlanStep:
    scenario: str
    title: str
    note: str = ""


@dataclass(frozen=True)
class Plan:
    id: str
    title: str
    services: tuple[str, ...]
    steps: tuple[PlanStep, ...]
    requirements: tuple[str, ...]  # must have passing evidence and no failures
    manual: tuple[str, ...] = ()  # verified by an assessor's attestation
    version: str = ""
    description: str = ""
    source: str = ""
    access_mode: str = ""  # application, healthcare-worker or patient (sandbox.web.access); "" if unspecified

    @property
    def all_requirements(self) -> tuple[str, ...]:
        return self.requirements + self.manual

    @property
    def scenario_ids(self) -> tuple[str, ...]:
        return tuple(step.scenario for step in self.steps)

    def verification(self, requirement: str) -> str | None:
        if requirement in self.manual:
            return "manual"
        return "automatic" if requirement in self.requirements else None

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "version": self.version, "description": self.description,
                "services": list(self.services),
                "scenarios": [{"id": s.scenario, "title": s.title, "note": s.note} for s in self.steps],
                "requirements": list(self.requirements), "manual": list(self.manual),
                "access_mode": self.access_mode or None, "source": self.source}


class PlanCatalogue:
    def __init__(self, plans: Iterable[Plan] = ()):
        self._by_id: dict[str, Plan] = {}
        for plan in plans:
            if plan.id in self._by_id:
                raise PlanError(f"{plan.source}: field 'id': plan {plan.id!r} is already defined in "
                                f"{self._by_id[plan.id].source}")
            self._by_id[plan.id] = plan

    def __iter__(self) -> Iterator[Plan]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, plan_id: str) -> Plan | None:
        return self._by_id.get(plan_id)

    def ids(self) -> list[str]:
        return list(self._by_id)

    @classmethod
    def load(cls, folders: Iterable[Path], services: Iterable[str], scenarios: ScenarioCatalogue,
             requirements: RequirementCatalogue) -> PlanCatalogue:
        """Every *.yaml under each folder's plans/ directory, checked against the known services, scenarios and
        requirements."""
        services = set(services)
        plans = []
        for folder in folders:
            for path in sorted(Path(folder).rglob("*.yaml")):
                if PLANS_FOLDER in path.relative_to(folder).parts:
                    plans.append(load_file(path, services, scenarios, requirements))
        return cls(plans)


def load_file(path: Path, services: set[str], scenarios: ScenarioCatalogue,
              requirements: RequirementCatalogue) -> Plan:
    data = read_yaml(path, PlanError)
    problems = validate_document(SCHEMA, data)
    if problems:
        raise PlanError(f"{path}: " + "; ".join(problems[:5]))

    def fail(field: str, message: str):
        raise PlanError(f"{path}: field '{field}': {message}")

    for n, name in enumerate(data["services"]):
        if name not in services:
            fail(f"services[{n}]", f"unknown service {name!r} (known: {', '.join(sorted(services))})")
    steps = []
    for n, item in enumerate(data["scenarios"]):
        scenario_id, note = (item, "") if isinstance(item, str) else (item["id"], item.get("note", ""))
        scenario = scenarios.get(scenario_id)
        if scenario is None:
            fail(f"scenarios[{n}]", f"unknown scenario {scenario_id!r} (`spine-sandbox scenarios` lists them)")
        if scenario.service not in data["services"]:
            fail(f"scenarios[{n}]", f"scenario {scenario_id!r} is a {scenario.service} scenario, but the plan's "
                 f"services are {', '.join(data['services'])}")
        steps.append(PlanStep(scenario_id, scenario.title, note.strip()))
    if len(set(s.scenario for s in steps)) != len(steps):
        fail("scenarios", "a scenario is listed twice")
    for field in ("requirements", "manual"):
        for n, req_id in enumerate(data.get(field, ())):
            requirement = requirements.get(req_id)
            if requirement is None:
                fail(f"{field}[{n}]", f"unknown requirement {req_id!r} (`spine-sandbox requirements` lists them)")
            if requirement.service not in data["services"]:
                fail(f"{field}[{n}]", f"requirement {req_id} belongs to {requirement.service}, which is not one of "
                     f"the plan's services")
    both = set(data["requirements"]) & set(data.get("manual", ()))
    if both:
        fail("manual", f"{', '.join(sorted(both))} cannot be both automatic (requirements) and manual")
    return Plan(data["id"], data["title"], tuple(data["services"]), tuple(steps), tuple(data["requirements"]),
                tuple(data.get("manual", ())), str(data.get("version", "")), (data.get("description") or "").strip(),
                str(path), data.get("access_mode", ""))


def is_plan_file(plan: str) -> bool:
    """A plan named by its file (a .yaml/.yml name, or a path with a folder) rather than by its id."""
    return plan.endswith((".yaml", ".yml")) or "/" in plan or os.sep in plan


@dataclass(frozen=True)
class PlanFile:
    """A plan kept anywhere (`--spine-plan my-plan.yaml`), loaded through the catalogue like any other: a copy goes
    under plans/ of a scenario folder of its own in the data directory, and the settings gain that folder, so a
    server started with the same settings knows the plan too."""

    source: Path
    copy: Path

    @classmethod
    def install(cls, path: str | Path, settings: Settings) -> tuple[PlanFile, Settings]:
        source = Path(path)
        if not source.is_file():
            raise PlanError(f"{path}: no such plan file (give a plan's id, or the path of a plan YAML file)")
        folder = Path(settings.data_dir) / PLAN_FILE_FOLDER
        shutil.rmtree(folder, ignore_errors=True)  # one plan file per configuration: never a stale one beside it
        copy = folder / PLANS_FOLDER / f"{source.stem}.yaml"
        copy.parent.mkdir(parents=True)
        shutil.copyfile(source, copy)
        return cls(source, copy), settings.replace(scenarios=(*settings.scenarios, folder))

    def plan(self, plans: PlanCatalogue) -> Plan:
        return next(plan for plan in plans if Path(plan.source) == self.copy)

    def explain(self, message: str) -> str:
        """A loading error about the copy, told about the file the user wrote."""
        return message.replace(str(self.copy), str(self.source))
