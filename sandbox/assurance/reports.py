"""Make a session's report and write it in every format: the model once, signed, then each rendering from it, and
a signed manifest of the files beside them."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sandbox.assurance.integrity import MANIFEST, dumps, manifest, seal
from sandbox.assurance.model import EVIDENCE_PER_END, Progress, build_report
from sandbox.assurance.render import render_html, render_junit, render_markdown
from sandbox.assurance.sessions import session_and_plan
from sandbox.assurance.signing import signing_key
from sandbox.assurance.verdicts import assess

FILES = {"json": "report.json", "html": "report.html", "junit": "junit.xml", "markdown": "summary.md"}


def make_report(sandbox, session_id: str, plan_id: str | None = None, *, evidence: int = EVIDENCE_PER_END,
                progress: Progress | None = None, command: dict | None = None,
                key: Ed25519PrivateKey | None = None) -> dict:
    """The sealed report (digest and Ed25519 signature, by `key` or else the sandbox's own signing key) for a
    session; in CI mode with the record of the test command (`command`), whose failure fails the run."""
    record, plan = session_and_plan(sandbox.store, sandbox.plans, session_id, plan_id)
    if progress:
        progress("judging the session", 0, 1)
    assessment = assess(sandbox.store, plan, record, command)
    specifications = {name: service.specification for name, service in sandbox.services.items()}
    model = build_report(sandbox.store, sandbox.requirements, specifications, assessment, evidence=evidence,
                         progress=progress)
    return seal(model, key or signing_key(sandbox.settings))


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


def report_files(report: dict, key: Ed25519PrivateKey, formats=tuple(FILES), progress: Progress | None = None
                 ) -> dict[str, bytes]:
    """Each rendering's bytes by file name, and the signed manifest of them (MANIFEST), last."""
    files = {}
    links = {FILES[f]: FILES[f] for f in formats if f != "markdown"}  # the summary links its sibling files
    for n, fmt in enumerate(formats):
        if progress:
            progress(f"writing {FILES[fmt]}", n, len(formats))
        files[FILES[fmt]] = render(report, fmt, links).encode("utf-8")
    files[MANIFEST] = dumps(manifest(report, files, key)).encode("utf-8")
    return files


def write_reports(report: dict, out_dir: Path, key: Ed25519PrivateKey, formats=tuple(FILES),
                  progress: Progress | None = None) -> dict[str, Path]:
    """The renderings and their signed manifest, written to out_dir; by format name ("manifest" for the manifest).
    A manifest left from an earlier report is removed first, so a half-written folder never verifies."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    names = {name: fmt for fmt, name in FILES.items()}
    written = {}
    for name, data in report_files(report, key, formats, progress).items():
        path = out_dir / name
        path.write_bytes(data)
        written[names.get(name, "manifest")] = path
    return written


def report_zip(report: dict, key: Ed25519PrivateKey) -> bytes:
    """Every rendering and the signed manifest in one zip, for the control API: unzipped, it verifies as written."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in report_files(report, key).items():
            archive.writestr(name, data)
    return buffer.getvalue()
