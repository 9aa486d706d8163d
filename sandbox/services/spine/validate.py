"""Validate Spine messages without a server: the same checks the spine service runs, over files.

A file may be an ebXML message with its MIME headers (.msg: header lines, a blank line, the body), an ebXML body
alone (its Content-Type given, or sniffed from the first MIME boundary), a bare ebXML acknowledgement or
MessageError, a synchronous SOAP request, a bare HL7v3 message, or a captured exchange (the JSON of
/_sandbox/exchanges/<id>). A folder is read recursively. Checks that need SDS (parties, CPA, registered ASIDs)
record an info finding: they depend on a session's registrations."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.conformance.checks import CheckContext, RequestView
from sandbox.conformance.findings import Finding, Outcome
from sandbox.services.spine import inbound as inbound_message
from sandbox.services.spine.checks import checks
from sandbox.services.spine.inbound import Inbound

MAX_FILE_BYTES = 20 * 1024 * 1024
SUFFIXES = {".msg", ".ebxml", ".xml", ".json", ".eml", ".mime", ".txt", ".soap", ".hl7"}
_HEADER_LINE = re.compile(rb"[A-Za-z][A-Za-z0-9-]*:[^\r\n]*\r?\n")
_BOUNDARY_LINE = re.compile(rb"^\s*--([^\r\n]{1,200}?)\s*\r?\n")


@dataclass
class FileReport:
    path: str
    kind: str  # ebxml, soap, hl7, exchange, unreadable
    interaction: str | None = None
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.outcome == Outcome.FAIL for f in self.findings)

    def counts(self) -> dict[str, int]:
        counts = {str(o): 0 for o in Outcome}
        for finding in self.findings:
            counts[str(finding.outcome)] += 1
        return counts

    def to_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "interaction": self.interaction, "counts": self.counts(),
                "notes": self.notes, "findings": [f.to_dict() for f in self.findings]}


def files_of(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Each file named, and every message-like file under each folder named (sorted)."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            yield path


def validate_files(paths: Iterable[str | Path], *, content_type: str | None = None,
                   schemas: str | None = None) -> list[FileReport]:
    return [validate_file(p, content_type=content_type, schemas=schemas) for p in files_of(paths)]


def validate_file(path: Path, *, content_type: str | None = None, schemas: str | None = None) -> FileReport:
    try:
        data = path.read_bytes()[:MAX_FILE_BYTES + 1]
    except OSError as exc:
        report = FileReport(str(path), "unreadable")
        report.findings.append(Finding.failed("SPINE-MIME-001", f"The file cannot be read: {exc.strerror}."))
        return report
    if len(data) > MAX_FILE_BYTES:
        report = FileReport(str(path), "unreadable")
        report.findings.append(Finding.failed("SPINE-MIME-005", f"The file is larger than {MAX_FILE_BYTES} bytes."))
        return report
    return validate_bytes(data, name=str(path), content_type=content_type, schemas=schemas)


def validate_bytes(data: bytes, *, name: str = "-", content_type: str | None = None, schemas: str | None = None,
                   headers: list[tuple[str, str]] | None = None, path: str = "") -> FileReport:
    notes: list[str] = []
    if headers is None and data.lstrip()[:1] == b"{":
        return _exchange(data, name, schemas)
    headers = list(headers or [])
    body = data
    if not headers:
        headers, body = _split_headers(data)
    if content_type is not None:
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"] + [("Content-Type", content_type)]
    given = next((v for k, v in headers if k.lower() == "content-type"), None)
    if given is None:
        match = _BOUNDARY_LINE.match(body)
        if match:
            boundary = match.group(1).decode("latin-1")
            given = f'multipart/related; boundary="{boundary}"; type="text/xml"'
            notes.append(f"No Content-Type was given: read as {given} (the boundary of the first line); give "
                         "--content-type to check the header itself.")
        else:
            given = "text/xml; charset=UTF-8"
        headers.append(("Content-Type", given))
    message = _parse(path, headers, body)
    kind = message.transport if message.readable or message.transport != "hl7" else "unreadable"
    report = FileReport(name, kind, message.interaction_id, notes=notes)
    report.findings = run_checks(message, headers, body, schemas=schemas, path=path)
    return report


def _parse(path: str, headers: list[tuple[str, str]], body: bytes) -> Inbound:
    text = body.lstrip()[:4000]
    if (b"Envelope" not in text and b"--" not in text[:200] and b"urn:hl7-org:v3" in text
            and not any(k.lower() == "content-type" and "multipart" in v.lower() for k, v in headers)):
        return inbound_message.parse_hl7(body)
    return inbound_message.parse(path, headers, body)


def run_checks(message: Inbound, headers: list[tuple[str, str]], body: bytes, *, schemas: str | None = None,
               path: str = "") -> list[Finding]:
    """Every request check of the spine service over one message, with no SDS (offline)."""
    view = RequestView("POST", path, {}, headers, body)
    facts = {"message": message, "parties": None, "hl7v3_schemas": schemas}
    return checks.run(view, CheckContext(message.operation, "offline", facts))


def _split_headers(data: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """MIME header lines at the top of a file (a .msg capture), then a blank line, then the body."""
    headers: list[tuple[str, str]] = []
    position = 0
    while True:
        match = _HEADER_LINE.match(data, position)
        if not match:
            break
        line = match.group(0).decode("latin-1").strip()
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
        position = match.end()
    rest = data[position:]
    if headers and rest.startswith(b"\r\n"):
        return headers, rest[2:]
    if headers and rest.startswith(b"\n"):
        return headers, rest[1:]
    return [], data


def _exchange(data: bytes, name: str, schemas: str | None) -> FileReport:
    try:
        captured = json.loads(data)
        request = captured["request"]
        headers = [(str(k), str(v)) for k, v in request.get("headers", [])]
        raw = request.get("body", "")
        body = base64.b64decode(raw) if request.get("body_encoding") == "base64" else raw.encode("utf-8")
        path = str(request.get("path", ""))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        report = FileReport(name, "unreadable")
        report.findings.append(Finding.failed("SPINE-MIME-001", f"The JSON is not a captured exchange "
                                              f"(/_sandbox/exchanges/<id>): {exc}."))
        return report
    report = validate_bytes(body, name=name, schemas=schemas, headers=headers, path=path)
    report.notes.insert(0, f"Captured exchange {captured.get('id', '?')}: {request.get('method', 'POST')} {path}.")
    if captured.get("request", {}).get("body_truncated"):
        report.notes.append("The captured body is truncated: findings are about the part captured.")
    return report


def render_text(reports: list[FileReport], *, show_passes: bool = False) -> str:
    lines: list[str] = []
    for report in reports:
        counts = report.counts()
        what = f"{report.kind}" + (f", {report.interaction}" if report.interaction else "")
        verdict = "FAIL" if report.failed else "ok"
        lines.append(f"{report.path} ({what}): {verdict} - {counts['fail']} failed, {counts['warning']} warnings, "
                     f"{counts['pass']} passed, {counts['info']} info")
        lines.extend(f"  note: {note}" for note in report.notes)
        for finding in sorted(report.findings, key=_order):
            if finding.outcome == Outcome.PASS and not show_passes:
                continue
            where = f" [{finding.location}]" if finding.location else ""
            refused = (f" (Spine refuses: {finding.reject.code} {finding.reject.diagnostics})"
                       if finding.reject is not None else "")
            lines.append(f"  {str(finding.outcome).upper():7} {finding.requirement}{where} {finding.message}"
                         f"{refused}")
    failed = sum(1 for r in reports if r.failed)
    lines.append(f"{len(reports)} file(s), {failed} with failures.")
    return "\n".join(lines)


def render_json(reports: list[FileReport]) -> str:
    return json.dumps({"files": [r.to_dict() for r in reports],
                       "failed": sum(1 for r in reports if r.failed)}, indent=2)


def _order(finding: Finding) -> tuple[int, str]:
    rank = {Outcome.FAIL: 0, Outcome.WARNING: 1, Outcome.INFO: 2, Outcome.PASS: 3}
    return rank[finding.outcome], finding.requirement
