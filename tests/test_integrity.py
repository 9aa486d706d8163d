"""Report integrity: a digest always, a signature with SANDBOX_REPORT_KEY; `verify` says valid or what fails."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sandbox.assurance.integrity import dumps, seal, verify_bytes
from sandbox.assurance.reports import make_report
from sandbox.cli import main
from tests.conftest import PdsClient

KEY = "assurance-team-secret"


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


def verify_file(tmp_path, text: str, key: str | None = None):
    path = tmp_path / "report.json"
    path.write_text(text, encoding="utf-8")
    env = {"SANDBOX_REPORT_KEY": key or ""}
    return CliRunner().invoke(main, ["verify", str(path)], env=env)


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
    result = verify_file(tmp_path, dumps(sealed), KEY)
    assert result.exit_code == 0 and "ok: signature valid (HMAC-SHA256)" in result.output
    assert result.output.rstrip().endswith(": valid")
    compact = json.dumps(sealed, separators=(",", ":"), sort_keys=True)  # same content, other layout
    assert verify_file(tmp_path, compact, KEY).exit_code == 0


def test_one_byte_changed_is_detected(failing_report, tmp_path):
    text = dumps(seal(failing_report, None))
    position = text.index("fails the Modulus 11 check")
    tampered = text[:position] + "F" + text[position + 1:]
    result = verify_file(tmp_path, tampered)
    assert result.exit_code == 1 and "FAILED: digest mismatch: the content was changed" in result.output
    assert result.output.rstrip().endswith(": INVALID")


def test_a_flipped_verdict_is_detected_even_without_a_key(failing_report, tmp_path):
    text = dumps(seal(failing_report, None)).replace('"verdict": "fail"', '"verdict": "pass"', 1)
    result = verify_file(tmp_path, text)
    assert result.exit_code == 1
    assert "digest mismatch" in result.output
    assert "the session verdict says 'pass', but its requirements and steps give 'fail'" in result.output


def test_a_verdict_flipped_and_the_digest_recomputed_without_the_key_fails(failing_report, tmp_path):
    signed = seal(failing_report, KEY)
    forged = seal(flip_to_pass(signed), None)  # consistent, digest valid, but no key to sign with
    assert verify_bytes(dumps(forged).encode(), None).valid  # the digest alone cannot tell
    dropped = verify_file(tmp_path, dumps(forged), KEY)
    assert dropped.exit_code == 1 and "not signed, but SANDBOX_REPORT_KEY is set" in dropped.output
    kept = {**forged, "integrity": {**forged["integrity"], "signature": signed["integrity"]["signature"]}}
    result = verify_file(tmp_path, dumps(kept), KEY)
    assert result.exit_code == 1 and "FAILED: signature mismatch: the report was changed after it was signed" in \
        result.output
    assert "ok: digest valid" in result.output  # says exactly which part fails


def test_a_single_requirement_verdict_edit_is_named(failing_report, tmp_path):
    edited = json.loads(json.dumps(failing_report))
    row = next(r for r in edited["requirements"] if r["verdict"] == "fail")
    row["verdict"] = "pass"
    result = verify_file(tmp_path, dumps(seal(edited, None)))
    assert result.exit_code == 1
    assert f"requirement {row['id']} says 'pass', but its findings and attestations give 'fail'" in result.output


def test_keys_and_signatures(failing_report, tmp_path):
    signed = dumps(seal(failing_report, KEY))
    other = verify_file(tmp_path, signed, "another-key")
    assert other.exit_code == 1 and "signature made with a different key" in other.output
    unchecked = verify_file(tmp_path, signed, None)
    assert unchecked.exit_code == 0 and "signature was NOT checked" in unchecked.output


@pytest.mark.parametrize("text, message", [
    ("{not json", "the file is not a JSON document"),
    ('{"format": "x"}', "not a Spine Sandbox assurance report"),
    ('{"format": "spine-sandbox/assurance-report"}', "has no integrity member"),
    ('{"format": "spine-sandbox/assurance-report", "format": "y"}', "duplicate member 'format'"),
])
def test_damaged_files_say_what_is_wrong(tmp_path, text, message):
    result = verify_file(tmp_path, text)
    assert result.exit_code == 1 and message in result.output


def test_reports_are_signed_when_the_key_is_configured(settings, sandbox, client):
    from sandbox.app import create_app

    keyed = create_app(settings.replace(report_key=KEY))
    session = keyed.test_client().post("/_sandbox/sessions", json={"plan": "pds-healthcare-worker",
                                                                   "supplier": "A", "system": "B"}).get_json()
    report = keyed.test_client().get(f"/_sandbox/sessions/{session['session']}/report").get_json()
    assert report["integrity"]["signature"]["algorithm"] == "HMAC-SHA256"
    assert verify_bytes(json.dumps(report).encode(), KEY).valid
