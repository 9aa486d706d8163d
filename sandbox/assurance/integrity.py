"""Integrity of a report: a SHA-256 digest of its canonical form, an HMAC-SHA256 signature when a key is set,
and verification that says exactly what fails.

The canonical form is RFC 8785 (JSON Canonicalization Scheme) of the report without its `integrity` member, so
the file's own indentation does not matter but any change to a value does. The digest alone catches accidental
or naive edits; only the signature (SANDBOX_REPORT_KEY) stops someone who recomputes the digest. `verify` also
re-derives every verdict from the report's own counts and attestations, which catches a flipped verdict even in
an unsigned report.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field

import rfc8785

from sandbox.assurance.model import FORMAT
from sandbox.assurance.verdicts import requirement_verdict, session_verdict, tally

CANONICALIZATION = "RFC 8785 JSON Canonicalization Scheme of the report without its integrity member"


def canonical(report: dict) -> bytes:
    return rfc8785.dumps({k: v for k, v in report.items() if k != "integrity"})


def key_hint(key: str) -> str:
    """Names a key without revealing it, so a mismatch can say 'signed with a different key'."""
    return hashlib.sha256(b"spine-sandbox report key:" + key.encode("utf-8")).hexdigest()[:12]


def _sign(data: bytes, key: str) -> str:
    return hmac.new(key.encode("utf-8"), data, hashlib.sha256).hexdigest()


def seal(report: dict, key: str | None) -> dict:
    """The report with its integrity member: digest always, signature when a key is given."""
    data = canonical(report)
    integrity: dict = {"canonicalization": CANONICALIZATION,
                       "digest": {"algorithm": "SHA-256", "value": hashlib.sha256(data).hexdigest()}}
    if key:
        integrity["signature"] = {"algorithm": "HMAC-SHA256", "value": _sign(data, key), "key_hint": key_hint(key)}
    return {**{k: v for k, v in report.items() if k != "integrity"}, "integrity": integrity}


def dumps(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


@dataclass
class Verification:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def verify_bytes(raw: bytes, key: str | None) -> Verification:
    result = Verification()
    try:
        report = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        result.problems.append(f"the file is not UTF-8 text (byte {exc.start})")
        return result
    except ValueError as exc:
        result.problems.append(f"the file is not a JSON document: {exc}")
        return result
    if not isinstance(report, dict) or report.get("format") != FORMAT:
        result.problems.append(f"the file is not a Spine Sandbox assurance report (expected format {FORMAT!r})")
        return result
    integrity = report.get("integrity")
    if not isinstance(integrity, dict) or not isinstance(integrity.get("digest"), dict):
        result.problems.append("the report has no integrity member: it was never sealed, or the seal was removed")
        return result
    data = canonical(report)
    actual = hashlib.sha256(data).hexdigest()
    recorded = str(integrity["digest"].get("value", ""))
    if integrity["digest"].get("algorithm") != "SHA-256":
        result.problems.append(f"digest algorithm {integrity['digest'].get('algorithm')!r} is not SHA-256")
    elif not hmac.compare_digest(recorded, actual):
        result.problems.append(f"digest mismatch: the content was changed after the report was generated "
                               f"(recorded SHA-256 {recorded[:16]}…, the content hashes to {actual[:16]}…)")
    else:
        result.notes.append(f"digest valid (SHA-256 {actual[:16]}…)")
    _check_signature(integrity.get("signature"), data, key, result)
    _check_verdicts(report, result)
    return result


def _check_signature(signature, data: bytes, key: str | None, result: Verification) -> None:
    if signature is None:
        if key:
            result.problems.append("the report is not signed, but SANDBOX_REPORT_KEY is set: reports made with this "
                                   "key are signed, so this one was made without it or re-sealed after an edit")
        else:
            result.notes.append("not signed (no SANDBOX_REPORT_KEY when it was made): the digest catches accidental "
                                "changes, not deliberate ones")
        return
    if not isinstance(signature, dict) or signature.get("algorithm") != "HMAC-SHA256":
        result.problems.append("the signature is not an HMAC-SHA256 signature")
        return
    if not key:
        result.notes.append("signed, but SANDBOX_REPORT_KEY is not set here: the signature was NOT checked")
        return
    if hmac.compare_digest(str(signature.get("value", "")), _sign(data, key)):
        result.notes.append("signature valid (HMAC-SHA256)")
    elif signature.get("key_hint") != key_hint(key):
        result.problems.append(f"signature made with a different key (key hint {signature.get('key_hint')}, this "
                               f"SANDBOX_REPORT_KEY is {key_hint(key)})")
    else:
        result.problems.append("signature mismatch: the report was changed after it was signed")


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
    except (KeyError, TypeError, AttributeError) as exc:
        result.problems.append(f"the report's structure is damaged: missing or malformed {exc}")


def _no_duplicates(pairs):
    seen = set()
    for k, _ in pairs:
        if k in seen:
            raise ValueError(f"duplicate member {k!r} (a reader might see either value)")
        seen.add(k)
    return dict(pairs)
