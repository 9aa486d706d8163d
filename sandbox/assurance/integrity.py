"""Integrity of a report: an Ed25519 signature over the JSON report and over a manifest of every rendering, and
verification that says exactly what fails and which key signed.

`report.json` carries the SHA-256 of its canonical form (RFC 8785 JSON Canonicalization Scheme of the report
without its `integrity` member, so indentation does not matter but any change to a value does) and an Ed25519
signature of the same bytes, so a lone JSON file can be checked. `report.manifest.json`, written beside the
renderings, holds the SHA-256 of each file by name and is signed the same way, so an edit to the HTML, JUnit or
Markdown file is caught too. Only the private key (see signing.py) can make a signature the trusted public key
accepts: an edited report re-sealed without it fails. `verify` also re-derives every verdict from the report's own
counts and attestations.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sandbox.assurance.model import FORMAT
from sandbox.assurance.signing import ALGORITHM, SigningKeyError, fingerprint, key_info, load_public_key
from sandbox.assurance.timefmt import iso
from sandbox.assurance.verdicts import requirement_verdict, session_verdict, tally

CANONICALIZATION = "RFC 8785 JSON Canonicalization Scheme of the report without its integrity member"
MANIFEST = "report.manifest.json"
MANIFEST_FORMAT = "spine-sandbox/report-manifest"
MANIFEST_CANONICALIZATION = "RFC 8785 JSON Canonicalization Scheme of the manifest without its signature member"
REPORT_JSON = "report.json"
# Every file name a report is written under (reports.FILES), so a rendering left out of the manifest is noticed.
REPORT_FILES = (REPORT_JSON, "report.html", "junit.xml", "summary.md")
FINGERPRINT = re.compile(r"ed25519:SHA256:[A-Za-z0-9+/]{43}")


def canonical(report: dict) -> bytes:
    return rfc8785.dumps({k: v for k, v in report.items() if k != "integrity"})


def _signature(data: bytes, key: Ed25519PrivateKey) -> dict:
    info = key_info(key.public_key())
    return {"algorithm": ALGORITHM, "key": {"public_key": info["public_key"], "fingerprint": info["fingerprint"]},
            "value": base64.b64encode(key.sign(data)).decode("ascii")}


def seal(report: dict, key: Ed25519PrivateKey | None) -> dict:
    """The report with its integrity member: the digest, and the signature when a key is given (always, outside
    tests: an unsigned report fails `verify` unless --allow-unsigned)."""
    data = canonical(report)
    integrity: dict = {"canonicalization": CANONICALIZATION,
                       "digest": {"algorithm": "SHA-256", "value": hashlib.sha256(data).hexdigest()}}
    if key is not None:
        integrity["signature"] = _signature(data, key)
    return {**{k: v for k, v in report.items() if k != "integrity"}, "integrity": integrity}


def dumps(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def manifest(report: dict, files: dict[str, bytes], key: Ed25519PrivateKey, now: float | None = None) -> dict:
    """The signed list of a report's files and their SHA-256, written beside them as report.manifest.json."""
    meta = report["metadata"]
    body = {
        "format": MANIFEST_FORMAT,
        "format_version": 1,
        "created_at": iso(time.time() if now is None else now),
        "report": {"session": meta["session"], "plan": meta["plan"]["id"], "verdict": report["verdict"],
                   "generated_at": report["generated_at"],
                   "digest": report.get("integrity", {}).get("digest", {}).get("value")},
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for name, data in files.items()},
    }
    return {**body, "signature": _signature(rfc8785.dumps(body), key)}


@dataclass
class Verification:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signed_by: set[str] = field(default_factory=set)  # fingerprints the signatures name (valid or not)

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Trust:
    """What `verify` checks signatures against: the trusted public key (None: there is none) and how it was
    chosen, for the output."""

    key: Ed25519PublicKey | None
    source: str
    allow_unsigned: bool = False


def verify_path(path: Path, trust: Trust) -> Verification:
    """A report directory, or one file of it: the manifest beside it when there is one, then the JSON report."""
    result = Verification()
    directory, target = (path, None) if path.is_dir() else (path.parent, path.name)
    if target == MANIFEST:
        target = None
    manifest_file = directory / MANIFEST
    if manifest_file.is_file():
        listed = _check_manifest(manifest_file, trust, result)
        if listed is None:
            return result
        names = list(listed) if target is None else [target]
        if target is not None and target not in listed:
            result.problems.append(f"{target} is not listed in {MANIFEST}: it is not part of the signed report")
            names = []
        for name in names:
            _check_file(directory, name, listed[name], result)
        if target is None:
            for name in REPORT_FILES:
                if name not in listed and (directory / name).is_file():
                    result.problems.append(f"{name} is not listed in {MANIFEST}: it is not part of the signed "
                                           "report")
        if REPORT_JSON in names and (directory / REPORT_JSON).is_file():
            _check_report((directory / REPORT_JSON).read_bytes(), trust, result, REPORT_JSON)
        return result
    json_file = directory / (target or REPORT_JSON)
    if target is None and not json_file.is_file():
        result.problems.append(f"{directory} holds neither {MANIFEST} nor {REPORT_JSON}: it is not a report "
                               "folder")
        return result
    if target is None or target.endswith(".json"):
        others = [n for n in REPORT_FILES if target is None and n != json_file.name and (directory / n).is_file()]
        if others:
            _unsigned(f"{', '.join(others)} (no {MANIFEST} beside them)", trust, result)
        _check_report(json_file.read_bytes(), trust, result, json_file.name)
    else:
        _unsigned(f"{target}: no {MANIFEST} beside it, so nothing shows who made it", trust, result)
    return result


def verify_bytes(raw: bytes, trust: Trust) -> Verification:
    """A JSON report on its own: digest, embedded signature and verdicts."""
    result = Verification()
    _check_report(raw, trust, result, REPORT_JSON)
    return result


def _check_manifest(path: Path, trust: Trust, result: Verification) -> dict | None:
    """The manifest's signature; its `files` when it is well formed (even if its signature fails, so every file's
    state is reported too), else None."""
    manifest_doc = _load(path.read_bytes(), MANIFEST, result)
    if manifest_doc is None:
        return None
    files = manifest_doc.get("files")
    if manifest_doc.get("format") != MANIFEST_FORMAT or not isinstance(files, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values()):
        result.problems.append(f"{MANIFEST} is not a Spine Sandbox report manifest (expected format "
                               f"{MANIFEST_FORMAT!r} with files and their sha256)")
        return None
    unknown = [n for n in files if n not in REPORT_FILES]
    if unknown:
        listed = _printable(", ".join(unknown), 200)
        result.problems.append(f"{MANIFEST} lists files a report does not have: {listed}")
        return None
    body = {k: v for k, v in manifest_doc.items() if k != "signature"}
    data = _canonical_or_problem(body, MANIFEST, result)
    if data is not None:
        _check_signature(MANIFEST, manifest_doc.get("signature"), data, trust, result)
    return files


def _check_file(directory: Path, name: str, entry: dict, result: Verification) -> None:
    path = directory / name
    if not path.is_file():
        result.problems.append(f"{name} is listed in {MANIFEST} but missing")
        return
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    recorded = entry["sha256"]
    if hmac.compare_digest(recorded.lower().encode("utf-8"), actual.encode("ascii")):
        result.notes.append(f"{name}: SHA-256 matches the manifest")
    else:
        result.problems.append(f"{name} was changed after the report was signed (the manifest records SHA-256 "
                               f"{_printable(recorded)}…, the file hashes to {actual[:16]}…)")


def _check_report(raw: bytes, trust: Trust, result: Verification, name: str) -> None:
    report = _load(raw, name, result)
    if report is None:
        return
    if report.get("format") != FORMAT:
        result.problems.append(f"{name} is not a Spine Sandbox assurance report (expected format {FORMAT!r})")
        return
    integrity = report.get("integrity")
    if not isinstance(integrity, dict) or not isinstance(integrity.get("digest"), dict):
        result.problems.append(f"{name} has no integrity member: it was never sealed, or the seal was removed")
        return
    data = _canonical_or_problem({k: v for k, v in report.items() if k != "integrity"}, name, result)
    if data is None:
        return
    actual = hashlib.sha256(data).hexdigest()
    recorded = str(integrity["digest"].get("value", ""))
    if integrity["digest"].get("algorithm") != "SHA-256":
        result.problems.append(f"{name}: digest algorithm {integrity['digest'].get('algorithm')!r} is not SHA-256")
    elif not hmac.compare_digest(recorded.encode("utf-8"), actual.encode("ascii")):
        result.problems.append(f"{name}: digest mismatch: the content was changed after the report was generated "
                               f"(recorded SHA-256 {_printable(recorded)}…, the content hashes to {actual[:16]}…)")
    else:
        result.notes.append(f"{name}: digest valid (SHA-256 {actual[:16]}…)")
    _check_signature(name, integrity.get("signature"), data, trust, result)
    _check_verdicts(report, result)


def _check_signature(name: str, signature, data: bytes, trust: Trust, result: Verification) -> None:
    if signature is None:
        _unsigned(f"{name} is not signed", trust, result)
        return
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
        result.problems.append(f"{name}: the signature is not an {ALGORITHM} signature")
        return
    signer = _signer(signature)
    result.signed_by.add(signer)
    try:
        value = base64.b64decode(str(signature.get("value", "")), validate=True)
    except (binascii.Error, ValueError):
        result.problems.append(f"{name}: the signature value is not base64")
        return
    if trust.key is None:
        result.problems.append(f"{name} is signed by {signer}, but there is no trusted public key to check it "
                               f"against ({trust.source}): give --public-key FILE, the key of the sandbox that made "
                               f"the report (GET /_sandbox/report-key or `spine-sandbox report-key` there)")
        return
    trusted = fingerprint(trust.key)
    try:
        trust.key.verify(value, data)
    except InvalidSignature:
        if signer != trusted:
            result.problems.append(f"{name} is signed by another key, {signer}, not the trusted key {trusted} "
                                   f"({trust.source})")
        else:
            result.problems.append(f"{name}: signature mismatch: the content was changed after it was signed by "
                                   f"{trusted}")
        return
    result.notes.append(f"{name}: signature valid, signed by {trusted} ({trust.source})")


def _signer(signature: dict) -> str:
    """The fingerprint of the key a signature names: from its public key when that reads, else as recorded."""
    key = signature.get("key") if isinstance(signature.get("key"), dict) else {}
    try:
        return fingerprint(load_public_key(str(key.get("public_key", "")).encode("utf-8"), "the signature"))
    except SigningKeyError:
        recorded = str(key.get("fingerprint") or "")
        return recorded if FINGERPRINT.fullmatch(recorded) else "an unreadable key"


def _unsigned(what: str, trust: Trust, result: Verification) -> None:
    if trust.allow_unsigned:
        result.notes.append(f"UNSIGNED (let through by --allow-unsigned): {what}")
    else:
        result.problems.append(f"{what}: nothing shows the sandbox made it (made without a signing key, or its "
                               f"signature was removed); --allow-unsigned accepts an unsigned report knowingly")


def _check_verdicts(report: dict, result: Verification) -> None:
    """Re-derive the verdicts from the report's own counts and attestations."""
    try:
        requirements = report["requirements"]
        for r in requirements:
            expected, _ = requirement_verdict(r["verification"], r["counts"], r.get("attestation"))
            if r["verdict"] != expected:
                result.problems.append(f"requirement {r['id']} says {r['verdict']!r}, but its findings and "
                                       f"attestations give {expected!r}")
        for s in report["steps"]:
            if s["exercised"] != (s["exchanges"] > 0):
                result.problems.append(f"step {s['scenario']} says exercised={s['exercised']} with "
                                       f"{s['exchanges']} exchanges")
        expected, _ = session_verdict(requirements, report["steps"], report.get("command"))
        if report["verdict"] != expected:
            result.problems.append(f"the session verdict says {report['verdict']!r}, but its requirements and steps "
                                   f"give {expected!r}")
        if report["summary"]["requirements"] != tally(requirements):
            result.problems.append("the summary's requirement counts do not match the requirements listed")
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        result.problems.append(f"the report's structure is damaged: missing or malformed {exc}")


def _load(raw: bytes, name: str, result: Verification) -> dict | None:
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        result.problems.append(f"{name} is not UTF-8 text (byte {exc.start})")
        return None
    except RecursionError:
        result.problems.append(f"{name} is not a JSON document: it is nested too deeply")
        return None
    except ValueError as exc:
        result.problems.append(f"{name} is not a JSON document: {exc}")
        return None
    if not isinstance(value, dict):
        result.problems.append(f"{name} is not a JSON object")
        return None
    return value


def _canonical_or_problem(document: dict, name: str, result: Verification) -> bytes | None:
    try:
        return rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, RecursionError) as exc:
        result.problems.append(f"{name} cannot be canonicalised (RFC 8785): {exc}")
        return None


def _printable(text: str, length: int = 16) -> str:
    """A value from the file, cut and safe to print: no control characters reach the terminal."""
    return "".join(c if c.isprintable() else "?" for c in text[:length])


def _no_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def _no_duplicates(pairs):
    seen = set()
    for k, _ in pairs:
        if k in seen:
            raise ValueError(f"duplicate member {k!r} (a reader might see either value)")
        seen.add(k)
    return dict(pairs)
