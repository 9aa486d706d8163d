"""Verdicts: per requirement pass / fail / not exercised / manual, and for the session pass / fail / incomplete.

The rules are pure functions of counts and attestations, so `verify` can re-derive a report's verdicts from the
report itself and catch an edited verdict even when the digest was recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.assurance.plans import Plan
from sandbox.assurance.timefmt import iso
from sandbox.journal.store import Attestation, SessionRecord, SessionSpan, Store

PASS, FAIL, INCOMPLETE = "pass", "fail", "incomplete"
NOT_EXERCISED, MANUAL = "not exercised", "manual"
# How a CI run's test command ended (the report's command.outcome).
EXITED, KILLED, NOT_STARTED, STOPPED = "exited", "killed by a signal", "not started", "stopped"
REQUIREMENT_VERDICTS = (PASS, FAIL, NOT_EXERCISED, MANUAL)
OUTCOMES = ("fail", "warning", "info", "pass")  # the order evidence is shown in


def requirement_verdict(verification: str, counts: dict[str, int], attestation: dict | None) -> tuple[str, str]:
    """(verdict, why) for one plan requirement. Automatic: any failing finding fails it; otherwise a passing one
    passes it; otherwise it is not exercised yet. Manual: the latest attestation, or `manual` until attested."""
    if verification == "manual":
        if attestation is None:
            return MANUAL, "awaits an assessor's attestation (spine-sandbox attest)"
        return attestation["verdict"], f"attested {attestation['verdict']} by {attestation['by']}"
    if counts.get("fail"):
        return FAIL, f"{counts['fail']} failing finding{'s' if counts['fail'] != 1 else ''}"
    if counts.get("pass"):
        return PASS, f"{counts['pass']} passing finding{'s' if counts['pass'] != 1 else ''}, none failing"
    others = [f"{counts[o]} {o}" for o in ("warning", "info") if counts.get(o)]
    return NOT_EXERCISED, "no passing evidence yet" + (f" (only {', '.join(others)})" if others else "")


def command_failed(command: dict | None) -> bool:
    """A CI run's test command (the report's `command`) failed unless it ran and exited with status 0: a non-zero
    exit, a signal, a time-out and a command that could not be started are all failures."""
    return command is not None and not (command.get("outcome") == EXITED and command.get("exit_status") == 0)


def session_verdict(requirements: list[dict], steps: list[dict], command: dict | None = None
                    ) -> tuple[str, list[str]]:
    """(verdict, reasons): fail when a plan requirement failed or the CI run's test command failed (a failing test
    command is a failed run, whatever evidence it left); incomplete while evidence, an attestation or a step is
    missing; pass otherwise. `requirements` items have id and verdict; `steps` items scenario and exercised;
    `command` is the report's record of the test command, in CI mode only."""
    failed = [r["id"] for r in requirements if r["verdict"] == FAIL]
    missing = [r["id"] for r in requirements if r["verdict"] == NOT_EXERCISED]
    unattested = [r["id"] for r in requirements if r["verdict"] == MANUAL]
    unexercised = [s["scenario"] for s in steps if not s["exercised"]]
    reasons = []
    if command_failed(command):
        reasons.append(f"test command failed: {command['summary']}")
    if failed:
        reasons.append(f"failed: {', '.join(failed)}")
    if missing:
        reasons.append(f"no passing evidence yet: {', '.join(missing)}")
    if unattested:
        reasons.append(f"awaiting attestation: {', '.join(unattested)}")
    if unexercised:
        reasons.append(f"steps not exercised: {', '.join(unexercised)}")
    if failed or command_failed(command):
        return FAIL, reasons
    if reasons:
        return INCOMPLETE, reasons
    return PASS, ["every plan requirement has passing evidence or a passing attestation, and every step ran"]


def tally(items: list[dict], key: str = "verdict", values=REQUIREMENT_VERDICTS) -> dict[str, int]:
    counts = dict.fromkeys(values, 0)
    for item in items:
        counts[item[key]] = counts.get(item[key], 0) + 1
    return counts


@dataclass
class Assessment:
    """A session judged against a plan: what the report, progress and CI mode are built on."""

    session: SessionRecord
    plan: Plan
    requirements: list[dict]  # id, verification, verdict, reason, counts, attestation, attestations
    steps: list[dict]  # scenario, title, note, exchanges, exercised
    verdict: str
    reasons: list[str]
    span: SessionSpan
    other: list[dict] = field(default_factory=list)  # requirements outside the plan that have findings
    scenario_counts: dict = field(default_factory=dict)
    command: dict | None = None  # CI mode: how the test command ended (see ci.CommandResult.to_report)


def assess(store: Store, plan: Plan, session: SessionRecord, command: dict | None = None) -> Assessment:
    totals: dict[str, dict[str, int]] = {}
    for t in store.totals.findings(session.id):
        totals.setdefault(t.requirement, dict.fromkeys(OUTCOMES, 0))[t.outcome] = t.count
    latest: dict[str, Attestation] = {}
    history: dict[str, list[dict]] = {}
    for a in store.sessions.attestations(session.id):
        latest[a.requirement] = a
        history.setdefault(a.requirement, []).append(attestation_dict(a))
    requirements = []
    for req_id in plan.all_requirements:
        verification = plan.verification(req_id)
        counts = totals.get(req_id, dict.fromkeys(OUTCOMES, 0))
        attested = attestation_dict(latest[req_id]) if req_id in latest else None
        verdict, reason = requirement_verdict(verification, counts, attested)
        requirements.append({"id": req_id, "verification": verification, "verdict": verdict, "reason": reason,
                             "counts": counts, "attestation": attested, "attestations": history.get(req_id, [])})
    scenario_counts = store.totals.scenarios(session.id)
    steps = [{"scenario": s.scenario, "title": s.title, "note": s.note, "exchanges": scenario_counts.get(s.scenario, 0),
              "exercised": scenario_counts.get(s.scenario, 0) > 0} for s in plan.steps]
    verdict, reasons = session_verdict(requirements, steps, command)
    other = [{"id": req_id, "counts": counts} for req_id, counts in sorted(totals.items())
             if req_id not in plan.all_requirements]
    return Assessment(session, plan, requirements, steps, verdict, reasons, store.totals.span(session.id), other,
                      scenario_counts, command)


def attestation_dict(a: Attestation) -> dict:
    return {"verdict": a.verdict, "by": a.by, "note": a.note, "at": iso(a.at)}
