"""`spine-sandbox eps …`: a supplier issues a certificate from the sandbox's test CA, signs the digest $prepare gave
and sends the signed prescription — accepted with a valid certificate, refused as live with the others; errors are
one actionable line."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import NameOID

from sandbox.app import create_app
from sandbox.cli import main
from sandbox.services.eps import signatures
from sandbox.services.eps.prescription_ids import new_short_form
from tests.eps_helpers import PRESCRIBER, PRESCRIBING, Tokens, eps_headers, example_json


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    return result.output


def order_body() -> dict:
    text = json.dumps(example_json("primary-care", "acute", "nominated-pharmacy", "medical-prescriber",
                                   "1-Prepare-Request-200_OK.json"))
    return json.loads(text.replace("24F5DA-A83008-7EFE6Z", new_short_form("A83008")))


def issue(settings, tmp_path, *extra: str) -> tuple[str, str]:
    output = run("eps", "certificate", "--user", PRESCRIBER.user_id, "--out", str(tmp_path / "certs"),
                 "--data-dir", str(settings.data_dir), *extra)
    certificate = output.split("certificate: ")[1].split()[0]
    key = output.split("private key: ")[1].split()[0]
    return certificate, key


def test_certificate_writes_the_pair_and_says_what_it_wrote(settings, tmp_path):
    certificate_path, key_path = issue(settings, tmp_path)
    assert certificate_path.endswith("priya-shah.crt.pem") and key_path.endswith("priya-shah.key.pem")
    certificate = x509.load_pem_x509_certificate(Path(certificate_path).read_bytes())
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "555021935107_PRIYA_SHAH"
    assert Path(key_path).read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(Path(key_path).stat().st_mode) == 0o600  # a private key is the user's alone
    ca = x509.load_pem_x509_certificate(run("eps", "ca", "--data-dir", str(settings.data_dir)).encode())
    assert certificate.issuer == ca.subject
    certificate.verify_directly_issued_by(ca)


def test_each_kind_is_named_in_its_files(settings, tmp_path):
    for kind in ("expired", "not-yet-valid", "revoked", "untrusted"):
        certificate_path, _ = issue(settings, tmp_path, "--kind", kind)
        assert certificate_path.endswith(f"priya-shah-{kind}.crt.pem")


@pytest.mark.parametrize("kind,status,problem", [
    ("valid", 200, None),
    ("untrusted", 400, "Certificate not trusted"),
    ("expired", 400, "Certificate expired when signed"),
    ("revoked", 400, "Certificate is revoked"),
])
def test_issue_prepare_sign_and_send(settings, tmp_path, kind, status, problem):
    """The supplier's loop end to end: a certificate from the CLI, the digest from $prepare, the signature from the
    CLI, the order over HTTP (the CA the CLI made is the one the server trusts)."""
    certificate_path, key_path = issue(settings, tmp_path, "--kind", kind)
    app = create_app(settings)
    try:
        client = app.test_client()
        token = Tokens(client).worker(PRESCRIBER)
        body = order_body()
        prepared = client.post(PRESCRIBING + "/$prepare", json=body, headers=eps_headers(token, PRESCRIBER))
        assert prepared.status_code == 200, prepared.get_json()
        values = {item["name"]: item["valueString"] for item in prepared.get_json()["parameter"]}
        data = run("eps", "sign", "--digest", values["digest"], "--key", key_path,
                   "--certificate", certificate_path).strip()
        assert base64.b64decode(data).startswith(b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">')
        sent = client.post(PRESCRIBING + "/$process-message", json=signatures.signed(body, data, values["timestamp"]),
                           headers=eps_headers(token, PRESCRIBER))
        assert sent.status_code == status, sent.get_json()
        if problem:
            assert sent.get_json()["issue"][0]["diagnostics"] == problem
    finally:
        app.extensions["sandbox"].close()


def test_sign_errors_are_one_actionable_line(settings, tmp_path):
    certificate_path, key_path = issue(settings, tmp_path)
    output = fails("eps", "sign", "--digest", "not-base64!", "--key", key_path, "--certificate", certificate_path)
    assert output.strip().splitlines() == ["Error: the digest is not the base64 SignedInfo $prepare returns: "
                                           + output.split("returns: ")[1].strip()]
    output = fails("eps", "sign", "--digest", "AAAA", "--key", str(tmp_path / "missing.pem"),
                   "--certificate", certificate_path)
    assert "cannot read the private key" in output and "No such file" in output
    signed_info = base64.b64encode(signatures.signed_info("AAAA")).decode()
    output = fails("eps", "sign", "--digest", signed_info, "--key", certificate_path, "--certificate", certificate_path)
    assert "not an unencrypted PEM key" in output


def test_certificate_errors_are_clear(settings, tmp_path):
    assert "--kind" in fails("eps", "certificate", "--user", "Priya Shah", "--kind", "stolen",
                             "--data-dir", str(settings.data_dir))
    assert "give a CIS2 user id" in fails("eps", "certificate", "--user", "<script>", "--out", str(tmp_path),
                                          "--data-dir", str(settings.data_dir))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert "cannot write to" in fails("eps", "certificate", "--user", "Priya Shah", "--out", str(blocker / "certs"),
                                      "--data-dir", str(settings.data_dir))


def test_any_name_or_user_id_can_hold_a_certificate(settings, tmp_path):
    output = run("eps", "certificate", "--user", "Dr Ada Lovelace", "--out", str(tmp_path),
                 "--data-dir", str(settings.data_dir))
    assert "dr-ada-lovelace.crt.pem" in output
    output = run("eps", "certificate", "--user", "123456789012", "--out", str(tmp_path),
                 "--data-dir", str(settings.data_dir))
    assert "for Prescriber 123456789012" in output


def test_revoke_puts_a_certificate_on_the_revocation_list(settings, tmp_path):
    certificate_path, key_path = issue(settings, tmp_path)
    assert "revoked: serial" in run("eps", "revoke", "--certificate", certificate_path,
                                    "--data-dir", str(settings.data_dir))
    app = create_app(settings)
    try:
        client = app.test_client()
        token = Tokens(client).worker(PRESCRIBER)
        body = order_body()
        prepared = client.post(PRESCRIBING + "/$prepare", json=body, headers=eps_headers(token, PRESCRIBER))
        values = {item["name"]: item["valueString"] for item in prepared.get_json()["parameter"]}
        data = run("eps", "sign", "--digest", values["digest"], "--key", key_path,
                   "--certificate", certificate_path).strip()
        sent = client.post(PRESCRIBING + "/$process-message", json=signatures.signed(body, data, values["timestamp"]),
                           headers=eps_headers(token, PRESCRIBER))
        assert sent.status_code == 400 and sent.get_json()["issue"][0]["diagnostics"] == "Certificate is revoked"
    finally:
        app.extensions["sandbox"].close()
    assert "is not one of" in fails("eps", "revoke", "--certificate", certificate_path, "--reason", "boredom",
                                    "--data-dir", str(settings.data_dir))
    assert "not a PEM certificate" in fails("eps", "revoke", "--certificate", key_path,
                                            "--data-dir", str(settings.data_dir))
