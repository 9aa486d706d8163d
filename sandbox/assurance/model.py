"""The report model: one JSON-able dict, built from SQL aggregates and a bounded sample of evidence.

Every rendering (JSON, HTML, JUnit XML, Markdown) is made from this dict and nothing else, so they cannot
disagree. A session of any size gives a report of bounded size: per requirement and outcome, the first and last
few findings carry request/response excerpts; every other exchange stays reachable by id at
/_sandbox/exchanges/<id> and `spine-sandbox exchanges show <id>`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable

from sandbox import __version__
from sandbox.assurance.timefmt import iso
from sandbox.assurance.verdicts import OUTCOMES, Assessment, tally
from sandbox.conformance.requirements import RequirementCatalogue
from sandbox.journal.exchange import Exchange
from sandbox.journal.store import Store

FORMAT = "spine-sandbox/assurance-report"
FORMAT_VERSION = 1
EVIDENCE_PER_END = 3  # per requirement and outcome: the first and the last N findings carry excerpts
BODY_EXCERPT_CHARS = 1200
HEADER_VALUE_CHARS = 300
PRETTY_LIMIT = 64 * 1024  # larger JSON bodies are cut as sent rather than parsed
TIMELINE_BUCKETS = 60
EXCHANGE_URL = "/_sandbox/exchanges/{id}"
SERVICE_LOGIC = None  # the coverage column for exchanges no scenario answered

Progress = Callable[[str, int, int], None]


def build_report(store: Store, catalogue: RequirementCatalogue, specifications: dict[str, dict[str, str]],
                 assessment: Assessment, *, evidence: int = EVIDENCE_PER_END, progress: Progress | None = None,
                 now: float | None = None) -> dict:
    """The canonical report for a judged session (without its integrity member; see integrity.seal)."""
    say = progress or (lambda step, done, total: None)
    session, plan = assessment.session, assessment.plan
    rows = [_requirement_row(catalogue, r) for r in assessment.requirements]
    others = [_requirement_row(catalogue, {**r, "verification": "outside plan", "verdict": None, "reason": ""})
              for r in assessment.other]
    say("collecting evidence", 0, len(rows) + len(others))
    _attach_evidence(store, session.id, rows, others, evidence, say)
    say("aggregating coverage", 0, 1)
    coverage = _coverage(store, session.id, [r["id"] for r in rows + others], plan.scenario_ids)
    span = assessment.span
    findings = {o: sum(r["counts"][o] for r in rows + others) for o in OUTCOMES}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generated_at": iso(time.time() if now is None else now),
        "metadata": {
            "supplier": session.supplier, "system": session.system, "session": session.id,
            "session_created_at": iso(session.created_at),
            "plan": {"id": plan.id, "title": plan.title, "version": plan.version, "description": plan.description},
            "sandbox_version": __version__,
            "specifications": [{"service": name, "name": spec_name, "version": version}
                               for name in plan.services for spec_name, version in specifications.get(name, {}).items()],
            "span": {"first": iso(span.first), "last": iso(span.last), "exchanges": span.exchanges,
                     "failed_exchanges": span.failed_exchanges},
            "exchange_url": EXCHANGE_URL,
        },
        "verdict": assessment.verdict,
        "verdict_reasons": assessment.reasons,
        "summary": {
            "requirements": tally(rows),
            "steps": {"exercised": sum(s["exercised"] for s in assessment.steps), "total": len(assessment.steps)},
            "findings": findings,
        },
        "steps": assessment.steps,
        "requirements": rows,
        "other_findings": others,
        "coverage": coverage,
        "timeline": _timeline(store, session.id, span.first, span.last),
        "operations": [{"service": s, "operation": o, "status": st, "exchanges": n}
                       for s, o, st, n in store.totals.operations(session.id)],
        # CI mode only (`spine-sandbox run`): the test command, and how it ended.
        **({"command": assessment.command} if assessment.command is not None else {}),
    }


def _requirement_row(catalogue: RequirementCatalogue, r: dict) -> dict:
    known = catalogue.get(r["id"])
    return {
        "id": r["id"], "service": known.service if known else "", "level": known.level if known else "",
        "area": known.area if known else "", "text": known.text if known else "(not in the catalogue)",
        "source": known.source if known else "", "verification": r["verification"], "verdict": r["verdict"],
        "reason": r["reason"], "counts": r["counts"], "attestation": r.get("attestation"),
        "attestations": r.get("attestations", []), "evidence": [], "evidence_omitted": 0,
    }


def _attach_evidence(store: Store, session: str, rows: list[dict], others: list[dict], per_end: int,
                     say: Progress) -> None:
    """Sample the first and last findings per requirement and outcome, then load those exchanges in one go."""
    sampled: list[tuple[dict, int, object]] = []
    # Outside the plan, only problems are worth excerpts.
    everything = [(row, OUTCOMES) for row in rows] + [(row, ("fail", "warning")) for row in others]
    for n, (row, outcomes) in enumerate(everything):
        shown = 0
        for outcome in outcomes:
            if row["counts"][outcome]:
                for seq, finding in store.totals.samples(session, row["id"], outcome, per_end, per_end):
                    sampled.append((row, seq, finding))
                    shown += 1
        row["evidence_omitted"] = sum(row["counts"][o] for o in outcomes) - shown
        say("collecting evidence", n + 1, len(everything))
    exchanges = {ex.seq: ex for ex in store.journal.exchanges_by_seq({seq for _, seq, _ in sampled})}
    for row, seq, finding in sampled:
        ex = exchanges.get(seq)
        if ex is not None:
            row["evidence"].append(evidence_item(ex, finding))


def evidence_item(ex: Exchange, finding) -> dict:
    return {
        "exchange": ex.id, "at": iso(ex.started_at), "outcome": str(finding.outcome), "message": finding.message,
        "location": finding.location, "operation": ex.operation, "scenario": ex.scenario,
        "request": {"method": ex.request.method, "path": ex.request.path, "query": ex.request.query_string,
                    "headers": _headers(ex.request.headers), **_body(ex.request.body)},
        "response": {"status": ex.response.status, "headers": _headers(ex.response.headers),
                     **_body(ex.response.body)},
    }


def _headers(headers) -> list[list[str]]:
    shown = []
    for name, value in headers:
        if len(value) > HEADER_VALUE_CHARS:  # secrets are already redacted: the journal never holds them
            value = value[:HEADER_VALUE_CHARS] + "…"
        shown.append([name, value])
    return shown


def _body(body: bytes) -> dict:
    """An excerpt a person can read: JSON pretty-printed, long bodies cut, binary summarised."""
    if not body:
        return {"body": "", "body_size": 0, "body_truncated": False}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        head = base64.b64encode(body[:90]).decode("ascii")
        return {"body": f"(binary, base64) {head}…", "body_size": len(body), "body_truncated": True}
    if len(text) <= PRETTY_LIMIT:
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=1, ensure_ascii=False)
    cut = len(text) > BODY_EXCERPT_CHARS
    return {"body": text[:BODY_EXCERPT_CHARS] + ("…" if cut else ""), "body_size": len(body), "body_truncated": cut}


def _coverage(store: Store, session: str, requirement_ids: list[str], plan_scenarios: tuple[str, ...]) -> dict:
    cells: dict[tuple[str, str | None], dict[str, int]] = {}
    seen: set[str | None] = set()
    for cell in store.totals.coverage(session):
        cells.setdefault((cell.requirement, cell.scenario), dict.fromkeys(OUTCOMES, 0))[cell.outcome] = cell.count
        seen.add(cell.scenario)
    columns: list[str | None] = list(plan_scenarios)
    columns += sorted(s for s in seen if s is not None and s not in plan_scenarios)
    if SERVICE_LOGIC in seen:
        columns.append(SERVICE_LOGIC)
    return {"scenarios": columns,
            "rows": [{"requirement": req, "cells": [cells.get((req, s)) for s in columns]} for req in requirement_ids]}


def _timeline(store: Store, session: str, first: float | None, last: float | None) -> dict:
    if first is None:
        return {"start": None, "width_s": 0, "buckets": []}
    width = max((last - first) / TIMELINE_BUCKETS, 0.001) * 1.0001  # the last exchange falls inside the last bucket
    return {"start": iso(first), "width_s": round(width, 6),
            "buckets": [list(b) for b in store.totals.timeline(session, first, width)]}
