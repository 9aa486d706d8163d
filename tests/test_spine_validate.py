"""`spine-sandbox validate FILE…`: the spine service's checks over files, without a server — MIME files with their
headers, body-only ebXML (Content-Type given or sniffed), SOAP, bare HL7v3, captured exchanges and folders; the
findings grouped per file, --json, and the exit code (1 when any check fails)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sandbox.cli import main
from tests.conftest import spec_path
from tests.test_spine_messages import (
    SUPPLIER,
    ebxml_request,
    pds_query,
    register,
    soap_request,
    spine_cpa,
    sync_headers,
    wrapper,
)

PDS = "urn:nhs:names:services:pds"


def run(*args: str):
    return CliRunner().invoke(main, ["validate", *args], catch_exceptions=False)


def msg_file(path, headers: dict, body: bytes):
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    path.write_bytes(lines.encode() + b"\r\n" + body)
    return path


def reliable(cpa: str = "S1234567890", **changes):
    return ebxml_request("PRPA_IN000203UK03", PDS, cpa, wrapper("PRPA_IN000203UK03", sender_asid=SUPPLIER["asid"]),
                         reliable=True, **changes)


def test_a_good_sync_request_with_its_headers_passes(tmp_path):
    path = msg_file(tmp_path / "query.msg", sync_headers(), soap_request(pds_query()))
    result = run(str(path))
    assert result.exit_code == 0, result.output
    assert "query.msg (soap, QUPA_IN040000UK32): ok - 0 failed" in result.output
    assert "INFO    SPINE-SOAP-005" in result.output  # needs a session's SDS registrations


def test_a_bad_ebxml_message_fails_with_requirement_location_and_refusal(tmp_path):
    headers, body, _ = reliable()
    body = body.replace(b'xlink:href="cid:', b'xlink:href="cid:x').replace(b'<processingCode code="P"/>',
                                                                          b'<processingCode code="D"/>')
    result = run(str(msg_file(tmp_path / "bad.msg", headers, body)))
    assert result.exit_code == 1
    assert "bad.msg (ebxml, PRPA_IN000203UK03): FAIL" in result.output
    assert "FAIL    SPINE-EBX-010 [/soap:Envelope/soap:Body/eb:Manifest/eb:Reference[1]/@xlink:href]" in result.output
    assert "(Spine refuses: MimeProblem" in result.output


def test_every_problem_of_the_hl7_payload_is_listed(tmp_path):
    headers, body, _ = reliable()
    body = body.replace(b'<processingCode code="P"/>', b'<processingCode code="D"/>').replace(
        b'<acceptAckCode code="NE"/>', b'<acceptAckCode code="XX"/>')
    result = run(str(msg_file(tmp_path / "two.msg", headers, body)))
    assert "SPINE-HL7-006" in result.output and "SPINE-HL7-007" in result.output


def test_a_body_only_file_is_read_by_its_boundary_or_the_given_content_type(tmp_path):
    headers, body, _ = reliable()
    path = tmp_path / "body.ebxml"
    path.write_bytes(body)
    sniffed = run(str(path))
    assert "No Content-Type was given" in sniffed.output and "(ebxml, PRPA_IN000203UK03)" in sniffed.output
    given = run("--content-type", headers["Content-Type"], str(path))
    assert "No Content-Type was given" not in given.output
    assert "SPINE-MIME-002" not in given.output.split("ok -")[0]


def test_a_folder_is_validated_recursively_and_json_is_available(tmp_path):
    (tmp_path / "deep" / "er").mkdir(parents=True)
    msg_file(tmp_path / "deep" / "good.msg", sync_headers(), soap_request(pds_query()))
    headers, body, _ = reliable()
    msg_file(tmp_path / "deep" / "er" / "bad.msg", headers, body.replace(b"<eb:CPAId>", b""))
    (tmp_path / "notes.md").write_text("not a message")
    result = run("--json", str(tmp_path))
    assert result.exit_code == 1
    data = json.loads(result.output)
    names = sorted(f["path"].rsplit("/", 1)[-1] for f in data["files"])
    assert names == ["bad.msg", "good.msg"] and data["failed"] == 1
    bad = next(f for f in data["files"] if f["path"].endswith("bad.msg"))
    assert bad["counts"]["fail"] >= 1
    assert any(f["requirement"] == "SPINE-EBX-001" and f.get("rejected_with") for f in bad["findings"])


def test_a_bare_hl7_message_is_checked_and_validated_against_the_schema(tmp_path):
    path = tmp_path / "query.xml"
    path.write_bytes(pds_query())
    result = run("--all", "--hl7v3-schemas", str(spec_path("spine-hl7v3-xsd", "omvt")), str(path))
    assert result.exit_code == 0, result.output
    assert "(hl7, QUPA_IN040000UK32)" in result.output
    assert "PASS    SPINE-SCH-001" in result.output
    path.write_bytes(pds_query().replace(b"<query>", b"<query><unexpected/>"))
    failing = run("--hl7v3-schemas", str(spec_path("spine-hl7v3-xsd", "omvt")), str(path))
    assert failing.exit_code == 1 and "FAIL    SPINE-SCH-001" in failing.output


def test_a_captured_exchange_is_validated_as_sent(client, sandbox, tmp_path):
    register(sandbox)
    headers, body, _ = ebxml_request("PRPA_IN000203UK03", PDS, spine_cpa(sandbox, "PRPA_IN000203UK03"),
                                     wrapper("PRPA_IN000203UK03", sender_asid=SUPPLIER["asid"],
                                             processing="D"), reliable=True)
    response = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    path = tmp_path / "exchange.json"
    path.write_text(json.dumps(exchange))
    result = run(str(path))
    assert result.exit_code == 1
    assert f"Captured exchange {exchange['id']}" in result.output
    assert "FAIL    SPINE-HL7-006" in result.output


def test_unreadable_files_fail_cleanly(tmp_path):
    (tmp_path / "garbage.xml").write_bytes(b"\x00\xff<<<<")
    (tmp_path / "broken.json").write_text("{not json")
    result = run(str(tmp_path / "garbage.xml"), str(tmp_path / "broken.json"))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "broken.json (unreadable): FAIL" in result.output


def test_the_published_examples_folder_validates_without_errors_of_the_sandbox(tmp_path):
    folder = spec_path("spine-messaging-examples", "mhs", "common", "mhs_common", "messages", "tests")
    result = run("--json", str(folder))
    data = json.loads(result.output)
    assert result.exit_code == 1 and len(data["files"]) > 30
    assert not any(f["requirement"] == "sandbox-defect" for r in data["files"] for f in r["findings"])


def test_the_interaction_catalogue_command_names_endpoints_and_who_answers():
    result = CliRunner().invoke(main, ["spine", "interactions", "--json"], catch_exceptions=False)
    rows = {r["id"]: r for r in json.loads(result.output)}
    assert rows["QUPA_IN040000UK32"]["endpoint"] == "/sync-service"
    assert rows["QUPA_IN040000UK32"]["answered_by"] == "pds"
    assert rows["REPC_IN150016UK05"]["endpoint"] == "/reliablemessaging/reliablerequest"
    assert rows["RCMR_IN010000UK05"]["endpoint"] == "/reliablemessaging/intermediary"
    table = CliRunner().invoke(main, ["spine", "interactions", "--pattern", "async-express"])
    assert "QUPC_IN160101UK05" in table.output and "REPC_IN150016UK05" not in table.output
