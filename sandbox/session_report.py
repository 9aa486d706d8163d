"""The seam between delivery (mock_spine, the pytest plugin) and assurance: sessions' evidence -> a report.

mock_spine().report() and the pytest plugin's --spine-plan / --spine-report call exactly two functions:

    build_report(sandbox, sessions, plan=None) -> dict      the canonical (JSON) report over those sessions
    write_report(report, out_dir) -> list[Path]             its files, written into out_dir

sandbox.assurance (report model, plans, verdicts, renderers) is to provide both. Until it does, this module gives
an interim report: the sessions' findings per requirement with a verdict, as one JSON file. It reads a plan as the
requirements and scenarios it lists; the assurance package owns the plan format.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import yaml

import scenarios as builtin_scenarios
from sandbox import __version__
from sandbox.conformance.findings import Outcome
from sandbox.runtime import Sandbox

REPORT_FILE = "spine-sandbox-report.json"


class PlanError(ValueError):
    """The plan cannot be found or read; the message says which and why."""


def build_report(sandbox: Sandbox, sessions: Sequence[str], plan: str | None = None) -> dict:
    chosen = load_plan(sandbox, plan) if plan else None
    tally: dict[str, Counter] = {}
    scenarios_run: Counter = Counter()
    failures = []
    exchanges = 0
    for session in sessions:
        for ex in sandbox.store.iter_exchanges(session):
            exchanges += 1
            if ex.scenario:
                scenarios_run[ex.scenario] += 1
            for f in ex.findings:
                tally.setdefault(f.requirement, Counter())[str(f.outcome)] += 1
                if f.outcome == Outcome.FAIL:
                    failures.append({"requirement": f.requirement, "message": f.message, "location": f.location,
                                     "session": session, "exchange": ex.id,
                                     "request": f"{ex.request.method} {ex.request.path}",
                                     "status": ex.response.status})
    required = set(chosen["requirements"]) if chosen else set()
    rows = []
    for req in sandbox.requirements:
        counts = tally.get(req.id, Counter())
        if counts or req.id in required:
            rows.append({**req.to_dict(), "status": _status(counts, req.verified),
                         "required": req.id in required,
                         "counts": {str(o): counts.get(str(o), 0) for o in Outcome}})
    unknown = sorted(set(tally) - {r.id for r in sandbox.requirements})
    scenario_rows = [{"id": s, "exchanges": scenarios_run.get(s, 0), "required": bool(chosen and s in chosen["scenarios"])}
                     for s in sorted(set(scenarios_run) | set(chosen["scenarios"] if chosen else ()))]
    return {
        "report": "spine-sandbox session evidence (interim: per-requirement summary)",
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sandbox_version": __version__,
        "sessions": list(sessions),
        "plan": {"id": chosen["id"], "path": chosen["path"]} if chosen else None,
        "verdict": _verdict(exchanges, failures, rows, scenario_rows, chosen is not None),
        "totals": {"exchanges": exchanges, **{str(o): sum(c.get(str(o), 0) for c in tally.values()) for o in Outcome}},
        "requirements": rows,
        "unknown_requirements": unknown,
        "scenarios": scenario_rows,
        "failures": failures,
    }


def write_report(report: dict, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_FILE
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return [path]


def load_plan(sandbox: Sandbox, plan: str) -> dict:
    """A plan by file path, or by name from a `plans/` folder of the built-in or configured scenario folders."""
    folders = [Path(builtin_scenarios.__file__).parent, *sandbox.settings.scenarios]
    candidates = [Path(plan)] + [folder / "plans" / f"{plan}.yaml" for folder in folders]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        known = sorted(p.stem for folder in folders for p in (folder / "plans").glob("*.yaml"))
        raise PlanError(f"no assurance plan {plan!r}: give a plan file's path, or one of: {', '.join(known) or 'none'}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PlanError(f"{path}: cannot read the plan: {exc}") from None
    if not isinstance(data, dict):
        raise PlanError(f"{path}: a plan is a mapping with 'requirements' and/or 'scenarios' lists")
    lists = {}
    for key in ("requirements", "scenarios"):
        value = data.get(key) or []
        ids = [item if isinstance(item, str) else (item or {}).get("id") for item in value] if isinstance(value, list) else None
        if ids is None or not all(isinstance(i, str) for i in ids):
            raise PlanError(f"{path}: '{key}' must be a list of ids (or of mappings with an 'id')")
        lists[key] = ids
    unknown = [r for r in lists["requirements"] if r not in sandbox.requirements]
    unknown += [s for s in lists["scenarios"] if sandbox.scenarios.get(s) is None]
    if unknown:
        raise PlanError(f"{path}: names ids this sandbox does not know: {', '.join(unknown)}")
    return {"id": str(data.get("id") or path.stem), "path": str(path), **lists}


def _status(counts: Counter, verified: str) -> str:
    if counts.get("fail"):
        return "fail"
    if verified == "manual":
        return "manual"
    return "pass" if counts.get("pass") else "not exercised"


def _verdict(exchanges: int, failures: list, rows: list[dict], scenario_rows: list[dict], planned: bool) -> str:
    if failures:
        return "fail"
    if exchanges == 0:
        return "incomplete"
    if planned and (any(r["required"] and r["status"] != "pass" for r in rows)
                    or any(s["required"] and not s["exchanges"] for s in scenario_rows)):
        return "incomplete"
    return "pass"
