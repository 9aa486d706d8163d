"""Make a session's report and write it in every format: the model once, sealed, then each rendering from it."""

from __future__ import annotations

from pathlib import Path

from sandbox.assurance.integrity import dumps, seal
from sandbox.assurance.model import EVIDENCE_PER_END, Progress, build_report
from sandbox.assurance.render import render_html, render_junit, render_markdown
from sandbox.assurance.sessions import session_and_plan
from sandbox.assurance.verdicts import assess

FILES = {"json": "report.json", "html": "report.html", "junit": "junit.xml", "markdown": "summary.md"}


def make_report(sandbox, session_id: str, plan_id: str | None = None, *, evidence: int = EVIDENCE_PER_END,
                progress: Progress | None = None, command: dict | None = None) -> dict:
    """The sealed report (digest, and signature when SANDBOX_REPORT_KEY is set) for a session; in CI mode with the
    record of the test command (`command`), whose failure fails the run."""
    record, plan = session_and_plan(sandbox.store, sandbox.plans, session_id, plan_id)
    if progress:
        progress("judging the session", 0, 1)
    assessment = assess(sandbox.store, plan, record, command)
    specifications = {name: service.specification for name, service in sandbox.services.items()}
    model = build_report(sandbox.store, sandbox.requirements, specifications, assessment, evidence=evidence,
                         progress=progress)
    return seal(model, sandbox.settings.report_key or None)


def render(report: dict, fmt: str, files: dict[str, str] | None = None) -> str:
    if fmt == "json":
        return dumps(report)
    if fmt == "html":
        return render_html(report)
    if fmt == "junit":
        return render_junit(report)
    if fmt == "markdown":
        return render_markdown(report, files)
    raise ValueError(f"unknown report format {fmt!r}: use one of {', '.join(FILES)}")


def write_reports(report: dict, out_dir: Path, formats=tuple(FILES), progress: Progress | None = None
                  ) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    links = {FILES[f]: FILES[f] for f in formats if f != "markdown"}  # the summary links its sibling files
    for n, fmt in enumerate(formats):
        if progress:
            progress(f"writing {FILES[fmt]}", n, len(formats))
        path = out_dir / FILES[fmt]
        path.write_text(render(report, fmt, links), encoding="utf-8")
        written[fmt] = path
    return written
