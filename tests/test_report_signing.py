"""Reports signed with a key pair: every rendering is covered by a signed manifest; `verify` checks it against a
trusted public key (given, or this sandbox's own), names the signing key, and catches any edit without a secret."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sandbox.assurance.integrity import MANIFEST, Trust, dumps, seal, verify_path
from sandbox.assurance.reports import FILES, write_reports
from sandbox.assurance.signing import KEY_FILE, fingerprint, load_public_key
from sandbox.cli import main
from tests.conftest import PdsClient

RENDERINGS = tuple(FILES.values())  # report.json, report.html, junit.xml, summary.md


def cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def session(client) -> str:
    """A plan-bound session whose verdict is fail (an invalid NHS number was sent)."""
    made = client.post("/_sandbox/sessions", json={"plan": "pds-healthcare-worker", "supplier": "Acme",
                                                   "system": "PAS"}).get_json()["session"]
    pds = PdsClient(client, made)
    pds.get("/Patient/9000000009")
    pds.get("/Patient/9000000000")
    return made


@pytest.fixture
def report_dir(session, settings, tmp_path):
    """`spine-sandbox report` of the session: four renderings and the signed manifest."""
    out = tmp_path / "out"
    result = cli("report", session, "--out-dir", str(out), "--data-dir", str(settings.data_dir))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted([*RENDERINGS, MANIFEST])
    return out


@pytest.fixture
def published_key(client, tmp_path):
    """The public key as GET /_sandbox/report-key publishes it, saved to a file an assessor would keep."""
    answer = client.get("/_sandbox/report-key")
    assert answer.status_code == 200
    path = tmp_path / "sandbox-report-key.pem"
    path.write_text(answer.get_json()["public_key"])
    return path, answer.get_json()["fingerprint"]


def verify(path, *extra: str, settings=None):
    data_dir = ["--data-dir", str(settings.data_dir)] if settings is not None else []
    return cli("verify", str(path), *data_dir, *extra)


def test_a_written_report_verifies_with_the_local_key_and_the_published_key(report_dir, settings, published_key):
    key_file, published = published_key
    assert published.startswith("ed25519:SHA256:")
    local = verify(report_dir, settings=settings)
    assert local.exit_code == 0, local.output
    for name in RENDERINGS:
        assert f"ok: {name}: SHA-256 matches the manifest" in local.output
    assert f"ok: {MANIFEST}: signature valid, signed by {published} (this sandbox's key" in local.output
    assert f"ok: report.json: signature valid, signed by {published}" in local.output
    assert f"Signed by: {published}" in local.output and local.output.rstrip().endswith(": valid")
    given = verify(report_dir, "--public-key", str(key_file))
    assert given.exit_code == 0, given.output
    assert f"signed by {published} (the key in {key_file})" in given.output
    assert verify(report_dir / "report.html", "--public-key", str(key_file)).exit_code == 0  # one file of it
    as_json = key_file.with_suffix(".json")  # GET /_sandbox/report-key's answer, saved as it came, serves too
    as_json.write_text(json.dumps({"public_key": key_file.read_text(), "fingerprint": published}))
    assert verify(report_dir, "--public-key", str(as_json)).exit_code == 0
    for name in ("report.html", "junit.xml", "summary.md"):  # every rendering names the signing key
        assert published in (report_dir / name).read_text(encoding="utf-8")


@hypothesis_settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_byte_changed_in_any_file_is_detected(report_dir, published_key, data):
    key_file, _ = published_key
    trust = Trust(load_public_key(key_file.read_bytes(), str(key_file)), "test")
    name = data.draw(st.sampled_from(RENDERINGS))  # the manifest's signature covers its content, not its layout
    path = report_dir / name
    original = path.read_bytes()
    position = data.draw(st.integers(0, len(original) - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]))
    path.write_bytes(original[:position] + bytes([replacement]) + original[position + 1:])
    try:
        assert not verify_path(report_dir, trust).valid
    finally:
        path.write_bytes(original)
    assert verify_path(report_dir, trust).valid


@pytest.mark.parametrize("name", RENDERINGS)
def test_an_edit_to_any_one_file_fails_verify_naming_the_file(report_dir, published_key, name):
    key_file, _ = published_key
    path = report_dir / name
    text = path.read_text(encoding="utf-8")
    assert "fail" in text
    path.write_text(text.replace("fail", "pass", 1), encoding="utf-8")
    for target in (report_dir, path):  # the folder, and the edited file on its own
        result = verify(target, "--public-key", str(key_file))
        assert result.exit_code == 1, result.output
        assert f"FAILED: {name} was changed after the report was signed" in result.output
        assert result.output.rstrip().endswith(": INVALID")
    folder = verify(report_dir, "--public-key", str(key_file)).output
    assert all(f"ok: {n}: SHA-256 matches the manifest" in folder for n in RENDERINGS if n != name)


def test_an_edited_json_resealed_without_the_private_key_fails(report_dir, published_key):
    """What an attacker without the private key can do: edit, recompute the JSON's digest and the manifest's."""
    key_file, published = published_key
    path = report_dir / "report.json"
    report = json.loads(path.read_text())
    report["metadata"]["supplier"] = "Someone Else"
    digest_only = seal(report, None)["integrity"]
    resealed = {**report, "integrity": {**digest_only, "signature": report["integrity"]["signature"]}}
    path.write_text(dumps(resealed))
    result = verify(report_dir, "--public-key", str(key_file))
    assert result.exit_code == 1
    assert "FAILED: report.json was changed after the report was signed" in result.output
    assert "ok: report.json: digest valid" in result.output  # the digest was recomputed…
    assert f"FAILED: report.json: signature mismatch: the content was changed after it was signed by {published}" \
        in result.output  # …but the signature cannot be
    manifest_path = report_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["report.json"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    again = verify(report_dir, "--public-key", str(key_file))
    assert again.exit_code == 1 and "ok: report.json: SHA-256 matches the manifest" in again.output
    assert f"FAILED: {MANIFEST}: signature mismatch" in again.output


def test_a_report_signed_by_another_key_fails_even_if_self_consistent(sandbox, session, settings, tmp_path,
                                                                      published_key):
    from sandbox.assurance.reports import make_report

    key_file, published = published_key
    other = Ed25519PrivateKey.generate()
    forged = tmp_path / "forged"
    write_reports(make_report(sandbox, session, key=other), forged, other)
    stranger = fingerprint(other.public_key())
    for extra in ((), ("--allow-unsigned",)):  # a wrongly signed report is never "unsigned"
        for trusted in (("--public-key", str(key_file)), ("--data-dir", str(settings.data_dir))):
            result = cli("verify", str(forged), *trusted, *extra)
            assert result.exit_code == 1, result.output
            assert f"FAILED: {MANIFEST} is signed by another key, {stranger}, not the trusted key {published}" \
                in result.output
            assert f"FAILED: report.json is signed by another key, {stranger}" in result.output
            assert f"Signed by: {stranger}" in result.output
    trusting_it = tmp_path / "other.pem"
    trusting_it.write_bytes(other.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    assert cli("verify", str(forged), "--public-key", str(trusting_it)).exit_code == 0  # consistent in itself


def test_an_unsigned_report_fails_unless_allowed(sandbox, session, published_key, tmp_path):
    from sandbox.assurance.reports import make_report, render

    key_file, _ = published_key
    unsigned = seal(make_report(sandbox, session), None)  # as made without a signing key
    folder = tmp_path / "unsigned"
    folder.mkdir()
    for fmt, name in FILES.items():
        (folder / name).write_text(render(unsigned, fmt), encoding="utf-8")
    refused = verify(folder, "--public-key", str(key_file))
    assert refused.exit_code == 1
    assert "FAILED: report.json is not signed: nothing shows the sandbox made it" in refused.output
    assert f"FAILED: report.html, junit.xml, summary.md (no {MANIFEST} beside them)" in refused.output
    assert "Signed by: nobody (unsigned)" in refused.output
    allowed = verify(folder, "--public-key", str(key_file), "--allow-unsigned")
    assert allowed.exit_code == 0, allowed.output
    assert "ok: UNSIGNED (let through by --allow-unsigned): report.json is not signed" in allowed.output
    lone = verify(folder / "summary.md", "--public-key", str(key_file))
    assert lone.exit_code == 1 and f"summary.md: no {MANIFEST} beside it" in lone.output


def test_a_rendering_left_out_of_the_manifest_or_missing_fails(report_dir, published_key):
    key_file, _ = published_key
    (report_dir / "junit.xml").unlink()
    missing = verify(report_dir, "--public-key", str(key_file))
    assert missing.exit_code == 1 and f"FAILED: junit.xml is listed in {MANIFEST} but missing" in missing.output
    manifest = json.loads((report_dir / MANIFEST).read_text())
    del manifest["files"]["summary.md"]
    (report_dir / MANIFEST).write_text(json.dumps(manifest))
    result = verify(report_dir / "summary.md", "--public-key", str(key_file))
    assert result.exit_code == 1 and f"summary.md is not listed in {MANIFEST}" in result.output


def test_without_a_trusted_key_a_signed_report_fails_and_says_what_to_give(report_dir, tmp_path):
    empty = tmp_path / "elsewhere"
    result = cli("verify", str(report_dir), "--data-dir", str(empty))
    assert result.exit_code == 1
    assert "there is no trusted public key to check it against (this sandbox has no report signing key" in \
        result.output
    assert "give --public-key FILE" in result.output
    assert not (empty / KEY_FILE).exists()  # verify never makes a key


def test_the_control_api_zip_holds_every_rendering_and_verifies(client, session, published_key, tmp_path):
    key_file, published = published_key
    answer = client.get(f"/_sandbox/sessions/{session}/report?format=zip")
    assert answer.status_code == 200 and answer.content_type == "application/zip"
    assert f'filename="report-{session}.zip"' in answer.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(answer.data)) as archive:
        assert sorted(archive.namelist()) == sorted([*RENDERINGS, MANIFEST])
        archive.extractall(tmp_path / "unzipped")
    result = verify(tmp_path / "unzipped", "--public-key", str(key_file))
    assert result.exit_code == 0 and f"Signed by: {published}" in result.output
    lone_json = client.get(f"/_sandbox/sessions/{session}/report").get_json()
    assert lone_json["integrity"]["signature"]["key"]["fingerprint"] == published


def test_the_public_key_over_http_and_the_cli_agree(client, settings):
    as_json = client.get("/_sandbox/report-key").get_json()
    assert as_json["algorithm"] == "Ed25519" and as_json["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    pem = client.get("/_sandbox/report-key?format=pem")
    assert pem.content_type == "application/x-pem-file" and pem.get_data(as_text=True) == as_json["public_key"]
    bad = client.get("/_sandbox/report-key?format=der")
    assert bad.status_code == 400 and bad.get_json()["error"] == "Bad Request"
    data_dir = str(settings.data_dir)
    assert cli("report-key", "--data-dir", data_dir).output == as_json["public_key"]
    assert cli("report-key", "--fingerprint", "--data-dir", data_dir).output.strip() == as_json["fingerprint"]
    assert json.loads(cli("report-key", "--json", "--data-dir", data_dir).output) == as_json
    key_file = settings.data_dir / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS8 PEM


def test_a_new_data_dir_gets_its_key_on_first_use_once(tmp_path):
    data_dir = tmp_path / "fresh"
    first = cli("report-key", "--fingerprint", "--data-dir", str(data_dir))
    assert first.exit_code == 0 and f"made a new report signing key in {data_dir / KEY_FILE}" in first.output
    second = cli("report-key", "--fingerprint", "--data-dir", str(data_dir))
    assert second.output.strip() == first.output.strip().splitlines()[-1] and "made a new" not in second.output


def test_the_signing_key_from_the_environment_as_text_or_a_path(tmp_path):
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path / "secret.pem"
    path.write_text(pem)
    expected = fingerprint(key.public_key())
    for value in (pem, str(path)):
        result = cli("report-key", "--fingerprint", "--data-dir", str(tmp_path / "d"),
                     env={"SANDBOX_REPORT_SIGNING_KEY": value})
        assert result.exit_code == 0 and result.output.strip() == expected
    assert not (tmp_path / "d" / KEY_FILE).exists()


@pytest.mark.parametrize("value, message", [
    ("/no/such/key.pem", "cannot read the report signing key /no/such/key.pem"),
    ("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----", "is not an unencrypted PEM private key"),
])
def test_a_bad_signing_key_is_a_clear_error(tmp_path, value, message):
    result = cli("report-key", "--data-dir", str(tmp_path), env={"SANDBOX_REPORT_SIGNING_KEY": value})
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_a_bad_signing_key_answers_the_control_api_error_shape(settings, session, client):
    from sandbox.app import create_app

    broken = create_app(settings.replace(report_signing_key="/no/such/key.pem"))
    try:
        answer = broken.test_client().get(f"/_sandbox/sessions/{session}/report")
        assert answer.status_code == 503
        assert answer.get_json()["error"] == "Service Unavailable"
        assert "reports cannot be signed: cannot read the report signing key" in answer.get_json()["message"]
    finally:
        broken.extensions["sandbox"].close()


def test_the_public_key_needs_no_credential_in_hosted_mode(settings):
    from sandbox.app import create_app

    hosted = create_app(settings.replace(hosted=True, admin_key="sbk_admin-for-this-test"))
    try:
        client = hosted.test_client()
        assert client.get("/_sandbox/sessions").status_code == 401  # the control API needs a key…
        answer = client.get("/_sandbox/report-key")  # …the public key does not
        assert answer.status_code == 200 and answer.get_json()["fingerprint"].startswith("ed25519:SHA256:")
    finally:
        hosted.extensions["sandbox"].close()


def test_workers_racing_to_make_the_key_all_get_the_same_one(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from sandbox.assurance.signing import signing_key
    from sandbox.settings import Settings

    settings = Settings.load(environ={}, data_dir=tmp_path / "race")
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: fingerprint(signing_key(settings).public_key()), range(16)))
    assert len(set(keys)) == 1
    assert [p.name for p in (tmp_path / "race").iterdir()] == [KEY_FILE]  # no temporary file left behind
