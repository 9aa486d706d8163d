"""HL7v3 transmission wrapper: what business services build is valid against the official schemas, and what
suppliers send is read with every problem named."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

import pytest
from lxml import etree

from sandbox.messaging import MessagingError, hl7, schemas
from tests.conftest import spec_path

SPINE_ASID = "928942012545"
SUPPLIER_ASID = "918999199111"
H = "{urn:hl7-org:v3}"


def new_id() -> str:
    return str(uuid.uuid4()).upper()


@pytest.fixture(scope="module")
def schema_set():
    return schemas.schema_set(spec_path("spine-hl7v3-xsd", "omvt"))


def pds_query() -> etree._Element:
    message = hl7.new_message("QUPA_IN040000UK32", message_id=new_id(), sender_asid=SUPPLIER_ASID,
                              receiver_asid=SPINE_ASID)
    hl7.control_act(message, author_asid=SUPPLIER_ASID)
    return message


def test_new_message_reads_back_through_parse_wrapper():
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    message = hl7.new_message("QUPA_IN040000UK32", message_id="9CB12D64-19FA-42CD-B403-0CC205BD5B23",
                              sender_asid=SUPPLIER_ASID, receiver_asid=SPINE_ASID, created=created)
    hl7.control_act(message, author_asid=SUPPLIER_ASID)
    wrapper = hl7.parse_wrapper(hl7.to_bytes(message))
    assert wrapper.problems == ()
    assert (wrapper.interaction, wrapper.message_id, wrapper.creation_time) == (
        "QUPA_IN040000UK32", "9CB12D64-19FA-42CD-B403-0CC205BD5B23", "20260102030405")
    assert (wrapper.version_code, wrapper.processing_code, wrapper.processing_mode, wrapper.accept_ack) == (
        "V3NPfIT3.0", "P", "T", "NE")
    assert wrapper.receiver_asids == (SPINE_ASID,) and wrapper.sender_asid == SUPPLIER_ASID
    assert wrapper.author_ids == (SUPPLIER_ASID,) and wrapper.control_act is not None
    assert hl7.to_bytes(message).startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_new_message_validates_against_the_official_schema(schema_set):
    """Wrapper and ControlActEvent built here; the query a PDS business part adds after control_act."""
    message = pds_query()
    query = etree.SubElement(message.find(f"{H}ControlActEvent"), f"{H}query")
    historic = etree.SubElement(query, f"{H}historicDataIndicator")
    etree.SubElement(historic, f"{H}value", code="0", codeSystem="2.16.840.1.113883.2.1.3.2.4.17.36")
    etree.SubElement(historic, f"{H}semanticsText").text = "historicDataIndicator"
    person = etree.SubElement(query, f"{H}person.id")
    etree.SubElement(person, f"{H}value", root="2.16.840.1.113883.2.1.4.1", extension="9000000009")
    etree.SubElement(person, f"{H}semanticsText").text = "person.id"
    etree.SubElement(etree.SubElement(query, f"{H}retrievalItem"), f"{H}semanticsText").text = "person.allData"
    assert schema_set.validate("QUPA_IN040000UK32", message) == []
    assert any(p.code == "hl7.schema" for p in schema_set.validate("QUPA_IN040000UK32", pds_query()))


@pytest.mark.parametrize("type_code, errors", [("AA", []), ("AE", [("0001", "Unknown error")]),
                                               ("AR", [("5000", "Bad"), ("5001", "Worse")])])
def test_application_ack_is_a_valid_mcci_in010000uk13(schema_set, type_code, errors):
    received = hl7.parse_wrapper(hl7.to_bytes(pds_query()))
    ack = hl7.application_ack(received, type_code=type_code, errors=errors, sender_asid=SPINE_ASID,
                              message_id=new_id())
    assert schema_set.validate("MCCI_IN010000UK13", ack) == []
    wrapper = hl7.parse_wrapper(hl7.to_bytes(ack))
    assert wrapper.problems == () and wrapper.interaction == "MCCI_IN010000UK13"
    assert wrapper.version_code == "V3NPfIT4.2.00"
    assert (wrapper.ack_type, wrapper.ack_ref) == (type_code, received.message_id)
    assert wrapper.receiver_asids == (SUPPLIER_ASID,) and wrapper.sender_asid == SPINE_ASID
    codes = [c.get("code") for c in ack.iter(f"{H}code") if c.getparent().tag == f"{H}justifyingDetectedIssueEvent"]
    assert codes == [code for code, _ in errors]
    details = [c.get("displayName") for c in ack.iter(f"{H}code") if c.getparent().tag == f"{H}acknowledgementDetail"]
    assert details == [text for _, text in errors]


def test_application_ack_refuses_an_unknown_type_code():
    received = hl7.parse_wrapper(hl7.to_bytes(pds_query()))
    with pytest.raises(ValueError):
        hl7.application_ack(received, type_code="XX", sender_asid=SPINE_ASID, message_id=new_id())


def test_a_qupa_in050000uk32_skeleton_is_valid(schema_set):
    """The PDS answer: wrapper + AA acknowledgement + ControlActEvent built here, the subject taken from the fake
    Spine's captured response."""
    captured = spec_path("spine-messaging-examples", "integration-tests", "fake_spine", "fake_spine",
                         "vnp_responses", "sync_outbound_response.mustache").read_text()
    captured = captured.replace("{{message_id}}", new_id()).replace("{{ref_to_message_id}}", new_id())
    answer = etree.fromstring(captured.encode()).find(f".//{H}QUPA_IN050000UK32")
    request = hl7.parse_wrapper(hl7.to_bytes(pds_query()))
    message = hl7.new_message("QUPA_IN050000UK32", message_id=new_id(), sender_asid=SPINE_ASID,
                              receiver_asid=request.sender_asid, ack_type="AA", ack_ref=request.message_id)
    event = hl7.control_act(message, author_asid=SPINE_ASID)
    for name in ("subject", "queryAck"):
        event.append(copy.deepcopy(answer.find(f"{H}ControlActEvent/{H}{name}")))
    assert schema_set.validate("QUPA_IN050000UK32", message) == []
    assert hl7.parse_wrapper(hl7.to_bytes(message)).ack_ref == request.message_id


def test_parse_wrapper_names_every_problem_with_where():
    xml = (b'<QUPA_IN040000UK32 xmlns="urn:hl7-org:v3"><id root="not-a-uuid"/><creationTime value="yesterday"/>'
           b'<interactionId root="1.2.3" extension="QUPA_IN000008UK02"/>'
           b'<communicationFunctionRcv><device><id root="1.2.826.0.1285.0.2.0.107" extension="YES-0000806"/>'
           b'</device></communicationFunctionRcv></QUPA_IN040000UK32>')
    wrapper = hl7.parse_wrapper(xml)
    found = {(p.code, p.where) for p in wrapper.problems}
    assert ("hl7.id", "/hl7:QUPA_IN040000UK32/hl7:id/@root") in found
    assert ("hl7.creation-time", "/hl7:QUPA_IN040000UK32/hl7:creationTime/@value") in found
    assert ("hl7.version-code", "/hl7:QUPA_IN040000UK32/hl7:versionCode") in found
    assert ("hl7.interaction-id", "/hl7:QUPA_IN040000UK32/hl7:interactionId") in found  # id/element mismatch
    assert ("hl7.interaction-id", "/hl7:QUPA_IN040000UK32/hl7:interactionId/@root") in found
    assert ("hl7.asid", "/hl7:QUPA_IN040000UK32/hl7:communicationFunctionRcv[1]/hl7:device/hl7:id") in found
    assert ("hl7.asid", "/hl7:QUPA_IN040000UK32/hl7:communicationFunctionSnd") in found
    assert {"hl7.processing-code", "hl7.processing-mode", "hl7.accept-ack"} <= {p.code for p in wrapper.problems}
    assert wrapper.interaction == "QUPA_IN000008UK02"


def test_parse_wrapper_reports_a_message_outside_the_hl7_namespace():
    wrapper = hl7.parse_wrapper(b"<QUPA_IN040000UK32><id root='9CB12D64-19FA-42CD-B403-0CC205BD5B23'/>"
                                b"</QUPA_IN040000UK32>")
    assert wrapper.problems[0].code == "hl7.namespace"
    assert wrapper.message_id == "9CB12D64-19FA-42CD-B403-0CC205BD5B23"


@pytest.mark.parametrize("body", [b"", b"not xml", b"<a>", b"\xff\xfe\x00", b"<!DOCTYPE a []><a/>"])
def test_parse_wrapper_raises_messaging_error_for_what_is_not_xml(body):
    with pytest.raises(MessagingError) as caught:
        hl7.parse_wrapper(body)
    assert caught.value.problems and all(p.code.startswith(("hl7.", "xml.")) for p in caught.value.problems)
