"""Every captured message file of the shared examples (both trees, mhs/ and mhs-adaptor/, and the fake Spine's
canned answers) is read by the right parser, and gives exactly the problems it should."""

from __future__ import annotations

from pathlib import Path

from sandbox.messaging import ebxml, soap
from tests.conftest import spec_path

MULTIPART = 'multipart/related; boundary="--=_MIME-Boundary"; type="text/xml"; start="<ebXMLHeader@spine.nhs.uk>"'

# file name -> the problem codes it must give (files not listed must give none)
EXPECTED = {
    "ebxml_header_empty.xml": ["ebxml.missing"] * 8,
    "ebxml_response_error_empty.xml": ["ebxml.empty-error-list"],
    "soapfault_response_empty.xml": ["soap.empty-error-list"],
    # a template: its {{{placeholders}}} stand where a UUID and two ASIDs belong
    "sync_message.xml": ["soap.asid", "soap.asid", "soap.message-id"],
}


def read(path: Path) -> list[str]:
    raw = path.read_bytes()
    if raw.startswith(b"----=_MIME-Boundary"):
        message = ebxml.parse(MULTIPART, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        assert message.hl7 and message.header.message_id, path.name
        return [p.code for p in message.problems]
    if b"<SOAP:Fault>" in raw:
        fault = soap.parse_fault(raw)
        assert fault is not None and fault.faultcode == "SOAP:Server", path.name
        return [p.code for p in fault.problems]
    if b"/2004/08/addressing\"" in raw and b"eb:MessageHeader" not in raw:
        request = soap.parse_request(raw)
        assert request.interaction == "QUPA_IN040000UK32" and request.hl7, path.name
        return [p.code for p in request.problems]
    header = ebxml.parse("text/xml", raw).header
    return [p.code for p in header.problems]


def test_every_captured_xml_file():
    root = spec_path("spine-messaging-examples")
    files = sorted(root.rglob("*.xml"))
    assert len(files) >= 30
    for path in files:
        assert read(path) == EXPECTED.get(path.name, []), path.relative_to(root)


def test_every_captured_ebxml_header_file():
    root = spec_path("spine-messaging-examples")
    files = sorted(root.rglob("*.ebxml"))
    assert len(files) >= 20
    for path in files:
        header = ebxml.parse_header(path.read_bytes())
        expected = ["ebxml.hl7ebxml-namespace"] if "multibyte" in path.name else []  # ".../ebxml/..." spelling
        assert [p.code for p in header.problems] == expected, path.relative_to(root)
        assert header.message_id and header.action, path.relative_to(root)


def test_document_ids_and_external_attachments_in_the_expected_messages():
    folder = spec_path("spine-messaging-examples", "mhs-adaptor", "mhs", "common", "mhs_common", "messages",
                       "tests", "expected_messages")
    raw = (folder / "ebxml_request_one_attachment_with_document_id.xml").read_bytes().replace(b"\n", b"\r\n")
    with_id = ebxml.parse(MULTIPART, raw)
    assert [r.id for r in with_id.header.manifest][1] and len(with_id.attachments) == 1
    raw = (folder / "ebxml_request_one_external_attachment.xml").read_bytes().replace(b"\n", b"\r\n")
    external = ebxml.parse(MULTIPART, raw)
    assert [r.href.split(":")[0] for r in external.header.manifest] == ["cid", "mid"]
    assert external.attachments == () and external.problems == ()
