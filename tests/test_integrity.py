"""Integrity of a lone report.json: a digest and an Ed25519 signature; `verify` says valid or exactly what fails."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sandbox.assurance.integrity import Trust, dumps, seal, verify_bytes
from sandbox.assurance.reports import make_report
from sandbox.assurance.signing import fingerprint, public_pem
from sandbox.cli import main
from tests.conftest import PdsClient

KEY = Ed25519PrivateKey.generate()
FINGERPRINT = fingerprint(KEY.public_key())


@pytest.fixture
def failing_report(client, sandbox) -> dict:
    """An unsealed report model whose verdict is fail (an invalid NHS number was sent)."""
    session = client.post("/_sandbox/sessions", json={"plan": "pds-healthcare-worker", "supplier": "Acme",
                                                      "system": "PAS"}).get_json()["session"]
    pds = PdsClient(client, session)
    pds.get("/Patient/9000000009")
    pds.get("/Patient/9000000000")
    report = make_report(sandbox, session)
    assert report["verdict"] == "fail"
    return {k: v for k, v in report.items() if k != "integrity"}


def verify_file(tmp_path, text: str, *extra: str):
    """`spine-sandbox verify report.json --public-key <KEY's public half>` (plus extra options)."""
    path = tmp_path / "report.json"
    path.write_text(text, encoding="utf-8")
    key_file = tmp_path / "trusted.pem"
    key_file.write_text(public_pem(KEY.public_key()))
    return CliRunner().invoke(main, ["verify", str(path), "--public-key", str(key_file), *extra])


def flip_to_pass(report: dict) -> dict:
    """What someone editing the file by hand would do: make it say pass, consistently."""
    edited = json.loads(json.dumps(report))
    edited.pop("integrity", None)
    edited["verdict"] = "pass"
    edited["verdict_reasons"] = []
    for r in edited["requirements"]:
        r["verdict"], r["counts"]["fail"] = "pass", 0
        r["counts"]["pass"] = max(1, r["counts"]["pass"])
        r["verification"], r["attestation"] = "automatic", None
    for s in edited["steps"]:
        s["exercised"], s["exchanges"] = True, max(1, s["exchanges"])
    edited["summary"]["requirements"] = {"pass": len(edited["requirements"]), "fail": 0, "not exercised": 0,
                                         "manual": 0}
    return edited


def test_a_signed_report_verifies_and_survives_reformatting(failing_report, tmp_path):
    sealed = seal(failing_report, KEY)
    assert sealed["integrity"]["signature"]["algorithm"] == "Ed25519"
    result = verify_file(tmp_path, dumps(sealed))
    assert result.exit_code == 0, result.output
    assert f"ok: report.json: signature valid, signed by {FINGERPRINT}" in result.output
    assert f"Signed by: {FINGERPRINT}" in result.output and result.output.rstrip().endswith(": valid")
    compact = json.dumps(sealed, separators=(",", ":"), sort_keys=True)  # same content, other layout
    assert verify_file(tmp_path, compact).exit_code == 0


def test_one_byte_changed_is_detected(failing_report, tmp_path):
    text = dumps(seal(failing_report, KEY))
    position = text.index("fails the Modulus 11 check")
    tampered = text[:position] + "F" + text[position + 1:]
    result = verify_file(tmp_path, tampered)
    assert result.exit_code == 1 and "FAILED: report.json: digest mismatch: the content was changed" in result.output
    assert "FAILED: report.json: signature mismatch" in result.output
    assert result.output.rstrip().endswith(": INVALID")


def test_a_flipped_verdict_is_detected_even_in_an_unsigned_report(failing_report, tmp_path):
    text = dumps(seal(failing_report, None)).replace('"verdict": "fail"', '"verdict": "pass"', 1)
    result = verify_file(tmp_path, text, "--allow-unsigned")
    assert result.exit_code == 1
    assert "digest mismatch" in result.output and "UNSIGNED (let through by --allow-unsigned)" in result.output
    assert "the session verdict says 'pass', but its requirements and steps give 'fail'" in result.output


def test_a_verdict_flipped_and_resealed_without_the_private_key_fails(failing_report, tmp_path):
    signed = seal(failing_report, KEY)
    forged = seal(flip_to_pass(signed), None)  # consistent, digest valid, but no private key to sign with
    assert verify_bytes(dumps(forged).encode(), Trust(KEY.public_key(), "test", allow_unsigned=True)).valid
    dropped = verify_file(tmp_path, dumps(forged))
    assert dropped.exit_code == 1 and "FAILED: report.json is not signed: nothing shows the sandbox made it" in \
        dropped.output
    kept = {**forged, "integrity": {**forged["integrity"], "signature": signed["integrity"]["signature"]}}
    result = verify_file(tmp_path, dumps(kept))
    assert result.exit_code == 1
    assert f"FAILED: report.json: signature mismatch: the content was changed after it was signed by {FINGERPRINT}" \
        in result.output
    assert "ok: report.json: digest valid" in result.output  # says exactly which part fails
    assert verify_file(tmp_path, dumps(kept), "--allow-unsigned").exit_code == 1  # a bad signature is not "unsigned"


def test_a_single_requirement_verdict_edit_is_named(failing_report, tmp_path):
    edited = json.loads(json.dumps(failing_report))
    row = next(r for r in edited["requirements"] if r["verdict"] == "fail")
    row["verdict"] = "pass"
    result = verify_file(tmp_path, dumps(seal(edited, KEY)))
    assert result.exit_code == 1
    assert f"requirement {row['id']} says 'pass', but its findings and attestations give 'fail'" in result.output


def test_a_report_signed_by_another_key_fails_and_names_both_keys(failing_report, tmp_path):
    other = Ed25519PrivateKey.generate()
    result = verify_file(tmp_path, dumps(seal(flip_to_pass(failing_report), other)), "--allow-unsigned")
    assert result.exit_code == 1
    assert f"report.json is signed by another key, {fingerprint(other.public_key())}, not the trusted key " \
           f"{FINGERPRINT}" in result.output
    assert f"Signed by: {fingerprint(other.public_key())}" in result.output


@pytest.mark.parametrize("text, message", [
    ("{not json", "report.json is not a JSON document"),
    ('{"format": "x"}', "not a Spine Sandbox assurance report"),
    ('{"format": "spine-sandbox/assurance-report"}', "has no integrity member"),
    ('{"format": "spine-sandbox/assurance-report", "format": "y"}', "duplicate member 'format'"),
    ('{"format": "spine-sandbox/assurance-report", "n": NaN}', "NaN is not allowed"),
    ("[" * 100_000, "nested too deeply"),
    ('{"format": "spine-sandbox/assurance-report", "integrity": {"digest": {}}, "n": 1e400}', "cannot be canonicalised"),
])
def test_damaged_files_say_what_is_wrong(tmp_path, text, message):
    result = verify_file(tmp_path, text)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_reports_from_the_control_api_are_signed_with_the_sandbox_key(client, sandbox):
    from sandbox.assurance.signing import local_public_key

    session = client.post("/_sandbox/sessions", json={"plan": "pds-healthcare-worker", "supplier": "A",
                                                      "system": "B"}).get_json()
    report = client.get(f"/_sandbox/sessions/{session['session']}/report").get_json()
    published = client.get("/_sandbox/report-key").get_json()
    assert report["integrity"]["signature"]["key"]["fingerprint"] == published["fingerprint"]
    trust = Trust(local_public_key(sandbox.settings), "the sandbox's key")
    assert verify_bytes(json.dumps(report).encode(), trust).valid
