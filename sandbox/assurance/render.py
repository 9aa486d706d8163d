"""Renderings of one report model: self-contained HTML, JUnit XML and a Markdown summary (JSON is integrity.dumps).

Each takes the sealed report dict and nothing else.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from sandbox.assurance.verdicts import FAIL, MANUAL, NOT_EXERCISED, PASS, command_failed

COLOURS = {PASS: "#1b7f3b", FAIL: "#c62828", NOT_EXERCISED: "#8a8f98", MANUAL: "#a35f00", "incomplete": "#a35f00",
           "warning": "#b88700", "info": "#1565c0"}
_ENV = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True,
                   trim_blocks=True, lstrip_blocks=True)


# --- HTML -----------------------------------------------------------------------------------------------------------
def render_html(report: dict) -> str:
    template = _ENV.get_template("report.html")
    return template.render(r=report, colours=COLOURS, donut=donut_svg(report["summary"]["requirements"]),
                           timeline=timeline_svg(report["timeline"]), highlight=highlight,
                           scenario_label=lambda s: s or "(service logic)", command_failed=command_failed,
                           signed_by=signed_by(report))


def highlight(location: str) -> dict:
    """Where a finding points, for marking it in the excerpt: a header, the path, a query parameter or a pointer."""
    kind, _, name = location.partition(":")
    if kind == "header" and name:
        return {"header": name.lower()}
    if kind == "path":
        return {"path": True}
    if kind == "query" and name:
        return {"query": name}
    if location.startswith("/"):
        return {"pointer": location}
    return {}


def donut_svg(counts: dict[str, int]) -> Markup:
    total = sum(counts.values())
    radius, width, size = 52, 22, 150
    circumference = 2 * math.pi * radius
    parts, offset = [], 0.0
    for verdict, n in counts.items():
        if not n:
            continue
        length = circumference * n / total
        parts.append(f'<circle r="{radius}" cx="75" cy="75" fill="none" stroke="{COLOURS[verdict]}" '
                     f'stroke-width="{width}" stroke-dasharray="{length:.2f} {circumference - length:.2f}" '
                     f'stroke-dashoffset="{-offset:.2f}" transform="rotate(-90 75 75)"><title>{verdict}: {n}'
                     f'</title></circle>')
        offset += length
    if not parts:
        parts.append(f'<circle r="{radius}" cx="75" cy="75" fill="none" stroke="#ddd" stroke-width="{width}"/>')
    label = f'<text x="75" y="72" text-anchor="middle" font-size="26" font-weight="700">{total}</text>' \
            f'<text x="75" y="92" text-anchor="middle" font-size="11">requirements</text>'
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 150 150" '
                  f'role="img" aria-label="requirement verdicts">{"".join(parts)}{label}</svg>')


def timeline_svg(timeline: dict) -> Markup:
    buckets = timeline["buckets"]
    width, height, pad = 600, 120, 20
    if not buckets:
        return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40" role="img" '
                      f'aria-label="no exchanges"><text x="0" y="25" font-size="12">No exchanges yet.</text></svg>')
    count = max(b[0] for b in buckets) + 1
    peak = max(b[1] for b in buckets)
    bar = (width - pad) / count
    bars = []
    for index, total, failed in buckets:
        h_total = (height - pad) * total / peak
        h_failed = (height - pad) * failed / peak
        x = pad + index * bar
        bars.append(f'<rect x="{x:.1f}" y="{height - pad - h_total:.1f}" width="{max(bar - 1, 1):.1f}" '
                    f'height="{h_total:.1f}" fill="{COLOURS[PASS]}"><title>{total} exchanges, {failed} with a '
                    f'failing finding</title></rect>')
        if failed:
            bars.append(f'<rect x="{x:.1f}" y="{height - pad - h_failed:.1f}" width="{max(bar - 1, 1):.1f}" '
                        f'height="{h_failed:.1f}" fill="{COLOURS[FAIL]}"/>')
    axis = (f'<line x1="{pad}" y1="{height - pad}" x2="{width}" y2="{height - pad}" stroke="#444"/>'
            f'<text x="{pad}" y="{height - 4}" font-size="10">{timeline["start"]}</text>'
            f'<text x="{width}" y="{height - 4}" font-size="10" text-anchor="end">each bar '
            f'{_duration(timeline["width_s"])}</text><text x="0" y="12" font-size="10">{peak}</text>')
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                  f'viewBox="0 0 {width} {height}" role="img" aria-label="exchanges over time">{"".join(bars)}'
                  f'{axis}</svg>')


def _duration(seconds: float) -> str:
    """A bar's width in words a reader takes in at a glance: 150 ms, 2.5 s, 4 min, 1.5 h."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.3g} min" if seconds < 7200 else f"{seconds / 3600:.3g} h"


# --- JUnit XML --------------------------------------------------------------------------------------------------------
def render_junit(report: dict) -> str:
    """One test case per plan requirement: a failure carries the findings; not exercised and manual are skipped."""
    meta = report["metadata"]
    rows = report["requirements"]
    counts = report["summary"]["requirements"]
    command = report.get("command")  # CI mode: the test command is a test case of its own, first
    tests = len(rows) + (command is not None)
    failures = counts[FAIL] + command_failed(command)
    suites = ET.Element("testsuites", name=f"Spine Sandbox assurance: {meta['plan']['id']}",
                        tests=str(tests), failures=str(failures), errors="0",
                        skipped=str(counts[NOT_EXERCISED] + counts[MANUAL]))
    suite = ET.SubElement(suites, "testsuite", name=meta["plan"]["id"], tests=str(tests),
                          failures=str(failures), errors="0", skipped=str(counts[NOT_EXERCISED] + counts[MANUAL]),
                          timestamp=report["generated_at"], time="0")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("supplier", meta["supplier"]), ("system", meta["system"]), ("session", meta["session"]),
                        ("plan", f"{meta['plan']['id']} {meta['plan']['version']}".strip()),
                        ("verdict", report["verdict"]), ("sandbox_version", meta["sandbox_version"]),
                        ("digest", report.get("integrity", {}).get("digest", {}).get("value", "")),
                        ("signed_by", signed_by(report) or "not signed")):
        ET.SubElement(properties, "property", name=name, value=str(value))
    if command is not None:
        ET.SubElement(properties, "property", name="command", value=command["summary"])
        case = ET.SubElement(suite, "testcase", classname=f"{meta['plan']['id']}.command",
                             name=f"test command: {' '.join(command['argv'])}", time="0")
        if command_failed(command):
            failure = ET.SubElement(case, "failure", message=command["summary"], type="test command failed")
            failure.text = _command_text(command)
        ET.SubElement(case, "system-out").text = _command_text(command)
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=f"{meta['plan']['id']}.{r['area'] or r['service']}",
                             name=f"{r['id']} {r['text']}", time="0")
        failing = [e for e in r["evidence"] if e["outcome"] == "fail"]
        if r["verdict"] == FAIL:
            first = failing[0]["message"] if failing else r["reason"]
            failure = ET.SubElement(case, "failure", message=first, type="requirement failed")
            failure.text = "\n".join([r["reason"]] + [_evidence_line(e, meta) for e in failing] + _attested(r))
        elif r["verdict"] in (NOT_EXERCISED, MANUAL):
            ET.SubElement(case, "skipped", message=f"{r['verdict']}: {r['reason']}")
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join([f"{r['level']} {r['id']}: {r['text']} ({r['source']})", f"verdict: {r['verdict']} — "
                              f"{r['reason']}"] + [_evidence_line(e, meta) for e in r["evidence"]] + _attested(r))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _command_text(command: dict) -> str:
    return "\n".join([command["summary"], f"outcome: {command['outcome']}"]
                     + [f"{key.replace('_', ' ')}: {command[key]}" for key in ("exit_status", "signal", "error")
                        if command.get(key) is not None])


def _evidence_line(e: dict, meta: dict) -> str:
    where = f" @ {e['location']}" if e["location"] else ""
    return (f"[{e['outcome']}] {e['message']}{where} — {e['request']['method']} {e['request']['path']} -> "
            f"{e['response']['status']}, exchange {meta['exchange_url'].format(id=e['exchange'])}")


def _attested(r: dict) -> list[str]:
    return [f"attested {a['verdict']} by {a['by']} at {a['at']}: {a['note']}" for a in r["attestations"]]


# --- Markdown ---------------------------------------------------------------------------------------------------------
VERDICT_MARK = {PASS: "✅ PASS", FAIL: "❌ FAIL", "incomplete": "⚠️ INCOMPLETE"}


def render_markdown(report: dict, files: dict[str, str] | None = None) -> str:
    meta = report["metadata"]
    counts = report["summary"]["requirements"]
    steps = report["summary"]["steps"]
    lines = [f"## Spine Sandbox assurance: {VERDICT_MARK[report['verdict']]}", "",
             f"**{_md(meta['plan']['title'])}** (`{meta['plan']['id']}`"
             + (f" v{meta['plan']['version']}" if meta["plan"]["version"] else "") + ")  ",
             f"Supplier **{_md(meta['supplier'])}**, system **{_md(meta['system'])}**, session `{meta['session']}`  ",
             f"{meta['span']['exchanges']} exchanges, {meta['span']['first'] or '-'} to {meta['span']['last'] or '-'}",
             *_command_lines(report.get("command")),
             "", "| requirements | pass | fail | not exercised | manual | steps exercised |",
             "|---|---|---|---|---|---|",
             f"| {sum(counts.values())} | {counts[PASS]} | {counts[FAIL]} | {counts[NOT_EXERCISED]} | {counts[MANUAL]} "
             f"| {steps['exercised']} / {steps['total']} |", ""]
    failed = [r for r in report["requirements"] if r["verdict"] == FAIL]
    if failed:
        lines += ["### Failed", "", "| requirement | finding | exchange |", "|---|---|---|"]
        for r in failed:
            first = next((e for e in r["evidence"] if e["outcome"] == "fail"), None)
            message = first["message"] if first else r["reason"]
            lines.append(f"| `{r['id']}` {_md(r['text'])} | {_md(message)} | "
                         f"{'`' + first['exchange'] + '`' if first else '-'} |")
        lines.append("")
    for title, verdict in (("Without passing evidence yet", NOT_EXERCISED), ("Awaiting attestation", MANUAL)):
        waiting = [r for r in report["requirements"] if r["verdict"] == verdict]
        if waiting:
            lines += [f"### {title}", ""] + [f"- `{r['id']}` {_md(r['text'])} — {_md(r['reason'])}" for r in waiting]
            lines.append("")
    attested = [(r, a) for r in report["requirements"] for a in r.get("attestations", [])]
    if attested:  # who certified what: the assessor's name comes from their key in hosted mode, never the body
        lines += ["### Attestations", ""] + [f"- `{r['id']}` {a['verdict']} by **{_md(a['by'])}** at {a['at']}: "
                                             f"{_md(a['note'])}" for r, a in attested] + [""]
    missing = [s for s in report["steps"] if not s["exercised"]]
    if missing:
        lines += ["### Steps not exercised", ""] + [f"- `{s['scenario']}` {_md(s['title'])}" for s in missing] + [""]
    if files:
        lines.append("Reports: " + ", ".join(f"[{name}]({path})" for name, path in files.items()))
    digest = report.get("integrity", {}).get("digest", {}).get("value")
    if digest:
        signer = signed_by(report)
        lines.append(f"SHA-256 `{digest}`" + (f", signed by `{signer}`" if signer else ", not signed")
                     + " (`spine-sandbox verify` checks every file against report.manifest.json)")
    return "\n".join(lines).rstrip() + "\n"


def signed_by(report: dict) -> str | None:
    """The fingerprint of the key that signed the report, as the report says (verify checks it)."""
    signature = report.get("integrity", {}).get("signature")
    return signature.get("key", {}).get("fingerprint") if isinstance(signature, dict) else None


def _command_lines(command: dict | None) -> list[str]:
    if command is None:
        return []
    mark = "❌" if command_failed(command) else "✅"
    return ["", f"{mark} Test command: {_md(command['summary'])}"]


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
