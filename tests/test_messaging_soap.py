"""Synchronous SOAP: requests read with every problem, responses and faults in the live shape."""

from __future__ import annotations

import pytest
from lxml import etree

from sandbox.messaging import MessagingError, hl7, soap
from sandbox.messaging.soap import SpineErrorDetail
from tests.conftest import spec_path
from tests.message_shapes import shape

MHS_MESSAGES = ("spine-messaging-examples", "mhs", "common", "mhs_common", "messages", "tests", "test_messages")
EXPECTED = ("spine-messaging-examples", "mhs-adaptor", "mhs", "common", "mhs_common", "messages", "tests",
            "expected_messages")
FAKE_SPINE = ("spine-messaging-examples", "integration-tests", "fake_spine", "fake_spine")
REQUEST_ID = "79F49A34-9798-404C-AEC4-FD38DD81C138"


def test_the_expected_soap_request_is_read_completely():
    request = soap.parse_request(spec_path(*EXPECTED, "soap_request.xml").read_bytes())
    assert request.problems == ()
    assert (request.message_id, request.interaction, request.service) == (
        REQUEST_ID, "QUPA_IN040000UK32", "urn:nhs:names:services:pdsquery")
    assert request.to == "https://pds-sync.national.ncrs.nhs.uk/syncservice-pds/pds"
    assert (request.sender_asid, request.receiver_asid) == ("918999199111", "000009199092")
    assert request.from_address is None and request.reply_to is None
    assert request.body_element == "QUPA_IN040000UK32"
    assert etree.QName(etree.fromstring(request.hl7)).namespace == "urn:hl7-org:v3"


def test_the_defective_soap_request_misses_its_message_id():
    request = soap.parse_request(spec_path(*MHS_MESSAGES, "soap_request_with_defect.msg").read_bytes())
    assert [(p.code, p.where) for p in request.problems] == [
        ("soap.missing", "/soap:Envelope/soap:Header/wsa:MessageID")]
    assert request.message_id is None and request.interaction == "QUPA_IN040000UK32"


def test_the_inbound_sync_template_filled_in_is_clean():
    template = spec_path("spine-messaging-examples", "mhs-adaptor", "mhs", "inbound", "inbound", "request", "tests",
                         "messages", "sync_message.xml").read_text()
    body = template.replace("{{{messageGUID}}}", REQUEST_ID).replace("{{{toASID}}}", "928942012545")
    request = soap.parse_request(body.replace("{{{fromASID}}}", "918999199111").encode())
    assert request.problems == () and hl7.parse_wrapper(request.hl7).problems == ()


def envelope(header: str = "", body: str = "<hl7:QUPA_IN040000UK32/>") -> bytes:
    return (f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:hl7="urn:hl7-org:v3">'
            f"<SOAP-ENV:Header>{header}</SOAP-ENV:Header><SOAP-ENV:Body>{body}</SOAP-ENV:Body>"
            f"</SOAP-ENV:Envelope>").encode()


def test_every_request_problem_is_named_with_where():
    header = ("<wsa:MessageID>12345</wsa:MessageID><wsa:Action>urn:nhs:names:services:pdsquery/QUPA_IN000008UK02"
              "</wsa:Action><hl7:communicationFunctionRcv><hl7:device><hl7:id root='1.2.3' extension='YES'/>"
              "</hl7:device></hl7:communicationFunctionRcv>")
    request = soap.parse_request(envelope(header, "<QUPA_IN040000UK32/>"))
    assert [(p.code, p.where.rsplit("/", 1)[-1]) for p in request.problems] == [
        ("soap.asid", "hl7:id"), ("soap.asid", "@root"), ("soap.asid", "@extension"),
        ("soap.message-id", "wsa:MessageID"), ("soap.body-namespace", "QUPA_IN040000UK32"),
        ("soap.action-mismatch", "wsa:Action")]


def test_empty_body_and_missing_header():
    request = soap.parse_request(b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/>'
                                 b"</s:Envelope>")
    codes = [p.code for p in request.problems]
    assert codes[0] == "soap.missing" and "soap.no-body" in codes and request.hl7 is None


@pytest.mark.parametrize("body, code", [
    (b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"/>', "soap.not-envelope"),
    (b"<QUPA_IN040000UK32 xmlns='urn:hl7-org:v3'/>", "soap.not-envelope"),
    (b"not xml", "soap.malformed"),
])
def test_what_is_not_a_soap_11_envelope_raises(body, code):
    with pytest.raises(MessagingError) as caught:
        soap.parse_request(body)
    assert caught.value.problems[0].code == code


def fake_spine_response() -> tuple[bytes, etree._Element]:
    text = spec_path(*FAKE_SPINE, "vnp_responses", "sync_outbound_response.mustache").read_text()
    text = text.replace("{{message_id}}", "9CB12D64-19FA-42CD-B403-0CC205BD5B23")
    text = text.replace("{{ref_to_message_id}}", REQUEST_ID).encode()
    return text, etree.fromstring(text).find(".//{urn:hl7-org:v3}QUPA_IN050000UK32")


def test_build_response_has_the_fake_spines_shape():
    expected, answer = fake_spine_response()
    ours = soap.build_response(action="urn:nhs:names:services:pdsquery/QUPA_IN050000UK32",
                               message_id="9CB12D64-19FA-42CD-B403-0CC205BD5B23", relates_to=REQUEST_ID,
                               from_service="urn:nhs:names:services:pdsquery", sender_asid="928942012545",
                               receiver_asid="918999198975", wrapper="retrievalQueryResponse",
                               hl7=etree.tostring(answer))
    assert shape(ours) == shape(expected)
    assert b"<wsa:RelatesTo>uuid:" + REQUEST_ID.encode() in ours


def test_build_response_without_a_wrapper_and_with_prefixed_ids():
    message = hl7.new_message("MCCI_IN010000UK13", message_id="9CB12D64-19FA-42CD-B403-0CC205BD5B23",
                              sender_asid="928942012545", receiver_asid="918999198975", ack_type="AE",
                              ack_ref=REQUEST_ID)
    ours = soap.build_response(action="urn:nhs:names:services:pdsquery/MCCI_IN010000UK13",
                               message_id="uuid:9CB12D64-19FA-42CD-B403-0CC205BD5B23", relates_to=f"uuid:{REQUEST_ID}",
                               from_service="urn:nhs:names:services:pdsquery", sender_asid="928942012545",
                               receiver_asid="918999198975", wrapper=None, hl7=hl7.to_bytes(message))
    body = etree.fromstring(ours).find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    assert body[0].tag == "{urn:hl7-org:v3}MCCI_IN010000UK13"
    assert b"uuid:uuid:" not in ours


@pytest.mark.parametrize("name", ["soapfault_response_single_error.xml", "soapfault_response_multiple_errors.xml",
                                  "soapfault_response_single_error_206.xml", "soapfault_response_single_error_208.xml",
                                  "soapfault_response_single_error_300.xml"])
def test_build_fault_reproduces_every_captured_fault(name):
    expected = spec_path(*MHS_MESSAGES, name).read_bytes()
    fault = soap.parse_fault(expected)
    assert fault.problems == () and fault.faultcode == "SOAP:Server" and fault.errors
    assert shape(soap.build_fault(list(fault.errors))) == shape(expected)


def test_build_fault_matches_the_fake_spine_and_round_trips():
    expected = spec_path(*FAKE_SPINE, "configured_responses", "soap_fault_single_error.xml").read_bytes()
    ours = soap.build_fault([SpineErrorDetail("200", "System failure to process message - default")])
    assert shape(ours) == shape(expected)
    errors = [SpineErrorDetail("201", "a < b & c", severity="Warning", location="/x")]
    assert soap.parse_fault(soap.build_fault(errors)).errors == tuple(errors)


def test_an_empty_fault_is_a_problem_and_a_plain_envelope_is_no_fault():
    empty = soap.parse_fault(spec_path(*MHS_MESSAGES, "soapfault_response_empty.xml").read_bytes())
    assert [p.code for p in empty.problems] == ["soap.empty-error-list"] and empty.errors == ()
    assert shape(soap.build_fault([])) == shape(spec_path(*MHS_MESSAGES, "soapfault_response_empty.xml").read_bytes())
    assert soap.parse_fault(spec_path(*EXPECTED, "soap_request.xml").read_bytes()) is None


def test_build_response_reads_back():
    _, answer = fake_spine_response()
    ours = soap.build_response(action="urn:nhs:names:services:pdsquery/QUPA_IN050000UK32",
                               message_id="9CB12D64-19FA-42CD-B403-0CC205BD5B23", relates_to=REQUEST_ID,
                               from_service="urn:nhs:names:services:pdsquery", sender_asid="928942012545",
                               receiver_asid="918999198975", wrapper="retrievalQueryResponse",
                               hl7=etree.tostring(answer))
    back = soap.parse_request(ours)
    assert (back.message_id, back.interaction, back.from_address) == (
        "9CB12D64-19FA-42CD-B403-0CC205BD5B23", "QUPA_IN050000UK32", "urn:nhs:names:services:pdsquery")
    assert (back.sender_asid, back.receiver_asid, back.body_element) == (
        "928942012545", "918999198975", "retrievalQueryResponse")
    relates_to = etree.fromstring(ours).find(".//{http://schemas.xmlsoap.org/ws/2004/08/addressing}RelatesTo")
    assert relates_to.text == f"uuid:{REQUEST_ID}"
    inner = etree.fromstring(back.hl7)[0]
    assert hl7.parse_wrapper(inner).problems == () and hl7.parse_wrapper(inner).ack_ref == REQUEST_ID
