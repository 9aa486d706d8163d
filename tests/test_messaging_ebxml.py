"""ebXML: every captured message parses (or yields the problems it should), and every builder produces the live
shape and reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.messaging import MessagingError, ebxml, mime
from sandbox.messaging.ebxml import EbxmlError
from sandbox.messaging.mime import Part
from tests.conftest import spec_path
from tests.message_shapes import render_mustache, shape

MHS_MESSAGES = ("spine-messaging-examples", "mhs", "common", "mhs_common", "messages", "tests", "test_messages")
ADAPTOR_MESSAGES = ("spine-messaging-examples", "mhs-adaptor", "mhs", "common", "mhs_common", "messages", "tests",
                    "test_messages")
EXPECTED = ("spine-messaging-examples", "mhs-adaptor", "mhs", "common", "mhs_common", "messages", "tests",
            "expected_messages")
INBOUND = ("spine-messaging-examples", "mhs-adaptor", "mhs", "inbound", "inbound", "request", "tests", "messages")
FAKE_SPINE = ("spine-messaging-examples", "integration-tests", "fake_spine", "fake_spine")


def content_type(start: str = "ebXMLHeader@spine.nhs.uk") -> str:
    return f'multipart/related; boundary="--=_MIME-Boundary"; type="text/xml"; start="<{start}>"'


def captured(path: Path, *, crlf: bool = True) -> bytes:
    """A captured .msg with its {{ebxml}} header filled from the .ebxml beside it, as the adaptor's tests do."""
    raw = path.read_bytes()
    header = path.with_suffix(".ebxml")
    if header.exists():
        raw = raw.replace(b"{{ebxml}}", header.read_bytes())
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") if crlf else raw


def start_of(name: str) -> str:
    return "ContentRoot" if "multibyte" in name else "ebXMLHeader@spine.nhs.uk"


# What each captured message should give: the problem codes (in order), or an error with its codes.
EXPECTED_PROBLEMS = {
    # hl7ebxml namespace spelt ".../ebxml/..." and an attachment the capture left out
    "ebxml_request_multibyte_character": ["ebxml.hl7ebxml-namespace", "ebxml.manifest-unresolved"],
    "ebxml_request_one_attachment_application_xml_content_compressed": ["mime.bad-base64"],
    "ebxml_request_one_attachment_text_plain_content_compressed": ["mime.bad-base64"],
    "ebxml_request_one_external_attachment": ["mime.no-close-delimiter"],
    "ebxml_request_invalid_application_xml_binary_hl7_payload": ["ebxml.payload-not-xml"],
    "ebxml_request_invalid_binary_hl7_payload": ["ebxml.payload-content-type", "ebxml.payload-not-xml"],
    "ebxml_request_no_payload": ["ebxml.manifest-unresolved", "ebxml.no-payload"],
    "ebxml_request_payload_defect": ["mime.part-no-blank-line", "mime.part-header", "ebxml.payload-empty"],
}
EXPECTED_ERRORS = {
    "ebxml_request_no_header": ["mime.no-parts"],
    "ebxml_request_invalid_binary_ebxml_header": ["ebxml.header-content-type", "ebxml.header-not-xml"],
}


def all_captured_msgs() -> list[Path]:
    found = []
    for folder in (MHS_MESSAGES, ADAPTOR_MESSAGES, INBOUND):
        directory = spec_path(*folder)
        found.extend(sorted(p for p in directory.glob("*.msg") if not p.name.startswith("soap_")))
    return found


def test_every_captured_multipart_message_parses_or_gives_its_problems():
    seen = 0
    for path in all_captured_msgs():
        seen += 1
        name = path.stem
        if name in EXPECTED_ERRORS:
            with pytest.raises(MessagingError) as caught:
                ebxml.parse(content_type(start_of(name)), captured(path))
            assert [p.code for p in caught.value.problems] == EXPECTED_ERRORS[name], name
            continue
        message = ebxml.parse(content_type(start_of(name)), captured(path))
        assert [p.code for p in message.problems] == EXPECTED_PROBLEMS.get(name, []), name
        assert message.header.action in ("MCCI_IN010000UK13", "RCMR_IN030000UK06"), name
        assert message.header.message_id and message.header.from_party and message.header.cpa_id, name
    assert seen >= 25


def test_captured_messages_with_bare_lf_give_exactly_one_more_problem():
    path = spec_path(*MHS_MESSAGES, "ebxml_request.msg")
    message = ebxml.parse(content_type(), captured(path, crlf=False))
    assert [p.code for p in message.problems] == ["mime.bare-lf"]
    assert message.hl7 == b'<hl7:MCCI_IN010000UK13 xmlns:hl7="urn:hl7-org:v3"/>'


def test_the_reference_request_is_read_completely():
    message = ebxml.parse(content_type(), captured(spec_path(*MHS_MESSAGES, "ebxml_request.msg")))
    header = message.header
    assert (header.from_party, header.to_party, header.cpa_id) == ("YES-0000806", "A91424-9199121", "S1001A1630")
    assert (header.conversation_id, header.service, header.interaction) == (
        "10F5A436-1913-43F0-9F18-95EA0E43E61A", "urn:nhs:names:services:psis", "MCCI_IN010000UK13")
    assert (header.message_id, header.timestamp, header.ref_to_message_id) == (
        "C614484E-4B10-499A-9ACD-5D645CFACF61", "2019-05-04T20:55:16Z", "F106022D-758B-49A9-A80A-8FF211C32A43")
    assert header.duplicate_elimination and header.ack_requested and header.sync_reply
    assert header.ack_actor == ebxml.TO_PARTY_MSH
    assert header.manifest == (ebxml.ManifestReference("cid:C614484E-4B10-499A-9ACD-5D645CFACF61@spine.nhs.uk",
                                                       "HL7 payload", True),)
    assert not header.is_acknowledgment and not header.is_message_error and header.errors == ()
    assert message.attachments == () and len(message.parts) == 2
    assert message.hl7_part is message.parts[1]


@pytest.mark.parametrize("name, flag", [("ebxml_request_no_ack_requested", "ack_requested"),
                                        ("ebxml_request_no_duplicate_elimination", "duplicate_elimination"),
                                        ("ebxml_request_no_sync_reply", "sync_reply")])
def test_the_optional_header_elements_are_seen_missing(name, flag):
    message = ebxml.parse(content_type(), captured(spec_path(*MHS_MESSAGES, f"{name}.msg")))
    assert getattr(message.header, flag) is False and message.problems == ()


def test_no_soap_actor_on_ack_requested():
    message = ebxml.parse(content_type(), captured(spec_path(*MHS_MESSAGES, "ebxml_request_no_soap_actor.msg")))
    assert message.header.ack_requested and message.header.ack_actor is None


def test_attachments_of_every_encoding_are_decoded():
    multi = ebxml.parse(content_type(), captured(spec_path(*MHS_MESSAGES, "ebxml_request_multiple_attachments.msg")))
    assert [(a.content_type, a.body[:8]) for a in multi.attachments] == [
        ("text/plain", b"Some pay"), ("image/png", b"\x89PNG\r\n\x1a\n")]
    binary = ebxml.parse(content_type(), captured(spec_path(*ADAPTOR_MESSAGES,
                                                            "ebxml_request_one_binary_attachment.msg")))
    assert binary.attachments[0].transfer_encoding == "binary"
    multibyte = ebxml.parse(content_type("ContentRoot"),
                            captured(spec_path(*ADAPTOR_MESSAGES, "ebxml_request_multibyte_character.msg")))
    text = multibyte.hl7.decode("utf-8")
    assert text.startswith("<xml>") and any(ord(char) > 0xFFFF for char in text)  # 4-byte UTF-8 kept whole
    assert multibyte.header.ack_actor == ebxml.NEXT_MSH


def test_external_attachment_references_are_not_parts():
    message = ebxml.parse(content_type(), captured(spec_path(*ADAPTOR_MESSAGES,
                                                             "ebxml_request_one_external_attachment.msg")))
    external = [r for r in message.header.manifest if r.href.startswith("mid:")]
    assert len(external) == 1 and external[0].id == "8681AF4F-E577-4C8D-A2CE-43CABE3D5FB4"
    assert "ebxml.manifest-unresolved" not in [p.code for p in message.problems]


@pytest.mark.parametrize("relative", [
    (*FAKE_SPINE, "configured_responses", "ebxml_fault_single_error.xml"),
    (*MHS_MESSAGES, "ebxml_response_error_single.xml"),
    (*MHS_MESSAGES, "ebxml_response_error_multiple.xml"),
    ("spine-messaging-examples", "mhs", "common", "mhs_common", "errors", "tests", "test_messages",
     "ebxml_response_error_multiple.xml"),
    (*INBOUND, "ebxml_nack.xml"),
])
def test_message_errors_are_read(relative):
    message = ebxml.parse("text/xml", spec_path(*relative).read_bytes())
    assert message.header.is_message_error and message.header.errors and message.problems == ()
    first = message.header.errors[0]
    assert first.code == "ValueNotRecognized" and first.severity == "Error"
    assert first.description.split(":")[0] in ("501319", "501314")


def test_an_empty_error_list_is_a_problem():
    message = ebxml.parse("text/xml", spec_path(*MHS_MESSAGES, "ebxml_response_error_empty.xml").read_bytes())
    assert [p.code for p in message.problems] == ["ebxml.empty-error-list"]
    assert message.header.is_message_error and message.header.errors == ()


def test_an_acknowledgment_is_read():
    message = ebxml.parse("text/xml; charset=utf-8", spec_path(*INBOUND, "ebxml_ack.xml").read_bytes())
    assert message.header.is_acknowledgment and message.problems == ()
    assert message.header.acknowledgment_of == message.header.ref_to_message_id


def test_an_empty_message_header_names_every_missing_element():
    header = ebxml.parse_header(spec_path(*MHS_MESSAGES, "ebxml_header_empty.xml").read_bytes())
    missing = [p.where for p in header.problems if p.code == "ebxml.missing"]
    base = "/soap:Envelope/soap:Header/eb:MessageHeader/"
    assert missing == [base + path for path in (
        "eb:From/eb:PartyId", "eb:To/eb:PartyId", "eb:CPAId", "eb:ConversationId", "eb:Service", "eb:Action",
        "eb:MessageData/eb:MessageId", "eb:MessageData/eb:Timestamp")]


def test_a_sync_soap_message_on_an_async_path_has_no_message_header():
    body = spec_path(*INBOUND, "sync_message.xml").read_bytes().replace(b"{{{messageGUID}}}", b"X")
    message = ebxml.parse("text/xml", body)
    assert [(p.code, p.where) for p in message.problems] == [
        ("ebxml.missing", "/soap:Envelope/soap:Header/eb:MessageHeader")]


# ------------------------------------------------------------------------------------------ structural defects

def build(**overrides) -> tuple[str, bytes]:
    fields = dict(from_party="A91424-9199121", to_party="YES-0000806", cpa_id="S1001A1630",
                  conversation_id="10F5A436-1913-43F0-9F18-95EA0E43E61A", service="urn:nhs:names:services:psis",
                  action="REPC_IN150016UK05", message_id="C614484E-4B10-499A-9ACD-5D645CFACF61",
                  hl7=b'<REPC_IN150016UK05 xmlns="urn:hl7-org:v3"/>', timestamp="2019-05-04T20:55:16Z",
                  duplicate_elimination=True, ack_requested=True, sync_reply=True, style="mhs")
    fields.update(overrides)
    return ebxml.build_message(**fields)


def test_header_not_first_and_start_naming_nothing():
    header, raw = build()
    parts = mime.parse_multipart(header, raw)
    swapped_type, swapped = mime.build_multipart([parts[1], parts[0]], start="ebXMLHeader@spine.nhs.uk")
    message = ebxml.parse(swapped_type, swapped)
    assert [(p.code, p.where) for p in message.problems] == [("ebxml.header-not-first", "MIME part 2")]
    assert message.header.action == "REPC_IN150016UK05" and message.hl7.startswith(b"<REPC_IN150016UK05")
    wrong_start = ebxml.parse(header.replace("ebXMLHeader@spine.nhs.uk", "nothing@x"), raw)
    assert [p.code for p in wrong_start.problems] == ["ebxml.start-missing"]
    no_start = ebxml.parse('multipart/related; boundary="--=_MIME-Boundary"; type="text/xml"', raw)
    assert [p.code for p in no_start.problems] == ["mime.no-start"]


def test_parts_the_manifest_does_not_name():
    header, raw = build()
    parts = mime.parse_multipart(header, raw)
    extra_type, extra = mime.build_multipart([*parts, Part("text/plain", "stray@x", b"stray")])
    message = ebxml.parse(extra_type, extra)
    assert [(p.code, p.where) for p in message.problems] == [("ebxml.unreferenced-part", "MIME part 3")]
    assert message.attachments[0].content_id == "stray@x"


def test_manifest_without_an_hl7_payload_marker_and_with_a_bad_href():
    header, raw = build()
    raw = raw.replace(b'<hl7ebxml:Payload style="HL7" encoding="XML" version="3.0"/>', b"")
    raw = raw.replace(b"\t</eb:Manifest>", b'\t\t<eb:Reference xlink:href="http://example.com/x"/>\r\n\t</eb:Manifest>')
    message = ebxml.parse(header, raw)
    assert [p.code for p in message.problems] == ["ebxml.manifest-href", "ebxml.manifest-payload"]
    assert message.hl7 is not None


def test_header_checks_party_type_version_must_understand_ids_and_timestamp():
    header, raw = build(message_id="not-a-uuid", timestamp="yesterday")
    raw = raw.replace(b'eb:type="urn:nhs:names:partyType:ocs+serviceInstance">YES', b'eb:type="other">YES')
    raw = raw.replace(b'<eb:MessageHeader SOAP:mustUnderstand="1" eb:version="2.0">', b"<eb:MessageHeader>")
    header = header.replace("not-a-uuid@spine.nhs.uk", "not-a-uuid@spine.nhs.uk")
    message = ebxml.parse(header, raw)
    assert [(p.code, p.where.rsplit("/", 1)[-1]) for p in message.problems] == [
        ("ebxml.party-type", "@eb:type"), ("ebxml.message-id", "eb:MessageId"),
        ("ebxml.timestamp", "eb:Timestamp"), ("ebxml.version", "@eb:version"),
        ("ebxml.must-understand", "@soap:mustUnderstand")]


def test_no_manifest_and_a_header_that_is_not_soap():
    header, raw = build()
    start = raw.index(b"\t<eb:Manifest")
    end = raw.index(b"</eb:Manifest>") + len(b"</eb:Manifest>")
    message = ebxml.parse(header, raw[:start] + raw[end:])
    assert "ebxml.no-manifest" in [p.code for p in message.problems]
    not_soap_type, not_soap = mime.build_multipart([Part("text/xml", "ebXMLHeader@spine.nhs.uk", b"<a/>")])
    with pytest.raises(MessagingError) as caught:
        ebxml.parse(not_soap_type, not_soap)
    assert [p.code for p in caught.value.problems] == ["ebxml.not-soap"]


# --------------------------------------------------------------------------------------------------- builders

def expected_parts(name: str) -> tuple[str, bytes]:
    return content_type(), captured(spec_path(*EXPECTED, name))


@pytest.mark.parametrize("name", ["ebxml_request.xml", "ebxml_request_one_attachment.xml",
                                  "ebxml_request_multiple_attachments.xml"])
def test_build_message_reproduces_the_expected_messages(name):
    header_value, raw = expected_parts(name)
    expected = ebxml.parse(header_value, raw)
    assert expected.problems == ()
    h = expected.header
    attachments = [Part(a.content_type, a.content_id, a.body, (("Content-Description", ref.description),),
                        transfer_encoding=a.transfer_encoding)
                   for a, ref in zip(expected.attachments, h.manifest[1:], strict=True)]
    built_type, built = ebxml.build_message(
        from_party=h.from_party, to_party=h.to_party, cpa_id=h.cpa_id, conversation_id=h.conversation_id,
        service=h.service, action=h.action, message_id=h.message_id, hl7=expected.hl7, attachments=attachments,
        duplicate_elimination=h.duplicate_elimination, ack_requested=h.ack_requested, sync_reply=h.sync_reply,
        timestamp=h.timestamp, style="mhs")
    ours = mime.read_multipart(built_type, built)
    theirs = mime.read_multipart(header_value, raw)
    assert ours.problems == ()
    assert [(p.content_type, p.content_id, p.charset, p.transfer_encoding) for p in ours.parts] == [
        (p.content_type, p.content_id, p.charset, p.transfer_encoding) for p in theirs.parts]
    assert [[n for n, _ in p.headers] for p in ours.parts] == [[n for n, _ in p.headers] for p in theirs.parts]
    assert shape(ours.parts[0].body) == shape(theirs.parts[0].body)
    assert [p.body for p in ours.parts[1:]] == [p.body for p in theirs.parts[1:]]
    assert ebxml.parse(built_type, built).header == expected.header


def test_build_message_matches_the_mustache_template():
    template = spec_path("spine-messaging-examples", "mhs-adaptor", "mhs", "common", "data", "templates",
                         "ebxml_request.mustache").read_text()
    values = dict(from_party_id="A91424-9199121", to_party_id="YES-0000806", cpa_id="S1001A1630",
                  conversation_id="10F5A436-1913-43F0-9F18-95EA0E43E61A", service="urn:nhs:names:services:psis",
                  action="REPC_IN150016UK05", message_id="C614484E-4B10-499A-9ACD-5D645CFACF61",
                  timestamp="2019-05-04T20:55:16Z", duplicate_elimination=True, ack_requested=True,
                  ack_soap_actor=ebxml.TO_PARTY_MSH, sync_reply=True,
                  hl7_message='<REPC_IN150016UK05 xmlns="urn:hl7-org:v3"/>',
                  attachments=[dict(content_id="A1@spine.nhs.uk", content_type="text/plain",
                                    content_transfer_encoding="8bit", description="notes", payload="hello")])
    rendered = render_mustache(template, values).replace("\n", "\r\n").encode()
    theirs = mime.read_multipart(content_type(), rendered)
    built_type, built = build(attachments=[Part("text/plain", "A1@spine.nhs.uk", b"hello",
                                                (("Content-Description", "notes"),))])
    ours = mime.read_multipart(built_type, built)
    assert shape(ours.parts[0].body) == shape(theirs.parts[0].body)
    assert [(p.content_id, p.content_type, p.body) for p in ours.parts[1:]] == [
        (p.content_id, p.content_type, p.body.strip()) for p in theirs.parts[1:]]


@pytest.mark.parametrize("name", ["async_reliable_inbound.mustache", "async_express_inbound.mustache"])
def test_build_message_in_spine_style_reproduces_what_spine_sent(name):
    """The fake Spine's captured VPN traffic: what Spine itself sends to a supplier's MHS."""
    text = spec_path(*FAKE_SPINE, "vnp_responses", name).read_text()
    http_content_type = None
    if "====== BODY" in text:  # a captured HTTP request: headers, then the body
        head, text = text.split("====== BODY =======\n", 1)
        http_content_type = next(line.split(": ", 1)[1] for line in head.splitlines()
                                 if line.startswith("Content-Type"))
    values = {"message_id": "9CB12D64-19FA-42CD-B403-0CC205BD5B23", "to_party_id": "A91424-9199121",
              "conversation_id": "10F5A436-1913-43F0-9F18-95EA0E43E61A",
              "ref_to_message_id": "F106022D-758B-49A9-A80A-8FF211C32A43"}
    raw = render_mustache(text, values).replace("\n", "\r\n").encode()
    theirs = mime.read_multipart(content_type(), raw)
    captured_message = ebxml.parse(content_type(), raw)
    assert captured_message.problems == ()
    h = captured_message.header
    built_type, built = ebxml.build_message(
        from_party=h.from_party, to_party=h.to_party, cpa_id=h.cpa_id, conversation_id=h.conversation_id,
        service=h.service, action=h.action, message_id=h.message_id, hl7=captured_message.hl7,
        ref_to_message_id=h.ref_to_message_id, duplicate_elimination=h.duplicate_elimination,
        ack_requested=h.ack_requested, sync_reply=h.sync_reply, timestamp=h.timestamp)
    ours = mime.read_multipart(built_type, built)
    if http_content_type:
        assert mime.parse_content_type(built_type).params == mime.parse_content_type(http_content_type).params
    assert [(p.content_type, p.content_id, p.charset, p.transfer_encoding) for p in ours.parts] == [
        (p.content_type, p.content_id, p.charset, p.transfer_encoding) for p in theirs.parts]
    description = "{http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd}Description"
    ignore_case = shape(theirs.parts[0].body.replace(b"HL7 Payload", b"HL7 payload"))  # Spine writes both
    assert shape(ours.parts[0].body) == ignore_case, description
    assert ours.parts[1].body == theirs.parts[1].body.rstrip(b"\r\n")
    back = ebxml.parse(built_type, built).header
    assert back.problems == () and [r.href for r in back.manifest] == [r.href for r in h.manifest]
    assert {k: v for k, v in back.__dict__.items() if k != "manifest"} == {
        k: v for k, v in h.__dict__.items() if k != "manifest"}


def received_header() -> ebxml.EbxmlHeader:
    return ebxml.parse(*expected_parts("ebxml_request.xml")).header


def test_build_acknowledgment_reproduces_the_expected_ack():
    expected = spec_path(*EXPECTED, "ebxml_ack.xml").read_bytes()
    wanted = ebxml.parse("text/xml", expected).header
    received = received_header()
    received = type(received)(**{**received.__dict__, "message_id": wanted.ref_to_message_id,
                                 "from_party": wanted.to_party})
    ours = ebxml.build_acknowledgment(received, from_party=wanted.from_party, message_id=wanted.message_id,
                                      timestamp=wanted.timestamp)
    assert shape(ours) == shape(expected)
    back = ebxml.parse("text/xml", ours).header
    assert back.is_acknowledgment and back.acknowledgment_of == received.message_id and back.problems == ()
    assert back.to_party == received.from_party and back.cpa_id == received.cpa_id


def test_build_message_error_reproduces_spines_message_error():
    expected = spec_path(*FAKE_SPINE, "configured_responses", "ebxml_fault_single_error.xml").read_bytes()
    wanted = ebxml.parse("text/xml", expected).header
    received = received_header()
    received = type(received)(**{**received.__dict__, "message_id": wanted.ref_to_message_id,
                                 "from_party": wanted.to_party, "cpa_id": wanted.cpa_id,
                                 "conversation_id": wanted.conversation_id})
    ours = ebxml.build_message_error(received, list(wanted.errors), from_party=wanted.from_party,
                                     message_id=wanted.message_id, timestamp=wanted.timestamp)
    assert shape(ours) == shape(expected)
    multiple = spec_path(*MHS_MESSAGES, "ebxml_response_error_multiple.xml").read_bytes()
    errors = ebxml.parse("text/xml", multiple).header.errors
    assert shape(ebxml.build_message_error(received, list(errors), from_party=wanted.from_party,
                                           message_id=wanted.message_id, timestamp=wanted.timestamp)) == shape(multiple)


def test_message_error_round_trip_with_spine_codes():
    received = received_header()
    errors = [EbxmlError("ValueNotRecognized", "Error", "501319:Unknown eb:CPAId", ebxml.ERROR_CODE_CONTEXT),
              EbxmlError("Inconsistent", "Warning", "a & b < c")]
    back = ebxml.parse("text/xml", ebxml.build_message_error(received, errors, from_party="YES-0000806",
                                                             message_id="97111C1C-48B8-B2FA-DE13-B64B2ADEB391"))
    assert back.problems == () and back.header.is_message_error
    assert back.header.errors == (errors[0], EbxmlError("Inconsistent", "Warning", "a & b < c",
                                                        ebxml.ERROR_CODE_CONTEXT))
    assert back.header.ref_to_message_id == received.message_id and back.header.to_party == received.from_party


@pytest.mark.parametrize("style", ebxml.STYLES)
def test_build_message_round_trip_with_attachments(style):
    attachments = [Part("application/pdf", "doc@spine.nhs.uk", b"%PDF\x00\xff", transfer_encoding="base64"),
                   Part("text/plain", "note@spine.nhs.uk", "caf\u00e9".encode(), charset="utf-8")]
    header, raw = build(attachments=attachments, ref_to_message_id="F106022D-758B-49A9-A80A-8FF211C32A43",
                        duplicate_elimination=False, ack_requested=False, sync_reply=False, style=style)
    message = ebxml.parse(header, raw)
    assert message.problems == ()
    assert [(a.content_id, a.body) for a in message.attachments] == [(a.content_id, a.body) for a in attachments]
    assert message.header.ref_to_message_id == "F106022D-758B-49A9-A80A-8FF211C32A43"
    assert not (message.header.duplicate_elimination or message.header.ack_requested or message.header.sync_reply)
    assert message.header.manifest[1].description.startswith('Filename="doc" ContentType=application/pdf')


def test_a_payload_in_another_charset_is_read_and_handed_on_as_utf8():
    header, raw = build()
    parts = mime.parse_multipart(header, raw)
    latin = '<REPC_IN150016UK05 xmlns="urn:hl7-org:v3"><title>caf\u00e9</title></REPC_IN150016UK05>'.encode("latin-1")
    payload = Part("text/xml", parts[1].content_id, latin, charset="iso-8859-1")
    message = ebxml.parse(*mime.build_multipart([parts[0], payload]))
    assert message.problems == () and "caf\u00e9".encode() in message.hl7
    assert message.hl7_part.body == latin  # the part itself keeps its bytes
    declared = b'<?xml version="1.0" encoding="UTF-8"?>' + latin
    mismatch = ebxml.parse(*mime.build_multipart([parts[0], Part("text/xml", parts[1].content_id, declared,
                                                                 charset="iso-8859-1")]))
    assert [p.code for p in mismatch.problems] == ["mime.charset-mismatch", "ebxml.payload-not-xml"]
    wrong = ebxml.parse(*mime.build_multipart([parts[0], Part("text/xml", parts[1].content_id,
                                                              "<a>\u20ac</a>".encode(), charset="ascii")]))
    assert [p.code for p in wrong.problems] == ["mime.charset-mismatch"]  # still read, as UTF-8
    assert wrong.hl7 == "<a>\u20ac</a>".encode()


def test_an_unknown_style_is_refused():
    with pytest.raises(ValueError):
        build(style="ebms3")
