"""Official-schema validation: the published HL7 templates validate (or give the problems the shared specs README
lists), each schema compiles once per process, validation is thread-safe and never reaches the network."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from lxml import etree

from sandbox.messaging import codes, ebxml, schemas, soap
from tests.conftest import spec_path

TEMPLATES = ("spine-messaging-examples", "integration-tests", "integration_tests", "integration_tests", "data",
             "templates")
FAKE_SPINE = ("spine-messaging-examples", "integration-tests", "fake_spine", "fake_spine")
VALUES = {"uuid": "9CB12D64-19FA-42CD-B403-0CC205BD5B23", "timestamp": "20240102030405", "asid": "918999199111",
          "to_asid": "928942012545", "to_party_id": "928942012545", "patient_nhs_number": "9000000009",
          "dissentOverride": "0", "file_upload": "a file"}
MULTIPART = 'multipart/related; boundary="--=_MIME-Boundary"; type="text/xml"; start="<ebXMLHeader@spine.nhs.uk>"'


@pytest.fixture(scope="module")
def schema_set() -> schemas.SchemaSet:
    return schemas.schema_set(spec_path("spine-hl7v3-xsd", "omvt"))


def template_message(name: str) -> etree._Element:
    text = spec_path(*TEMPLATES, f"{name}.mustache").read_text()
    text = re.sub(r"\{\{\{?(\w+)\}?\}\}", lambda m: VALUES[m.group(1)], text)
    if text.startswith("----"):  # a whole ebXML message: validate its HL7 payload
        return etree.fromstring(ebxml.parse(MULTIPART, text.encode()).hl7)
    return etree.fromstring(text.encode())


@pytest.mark.parametrize("name", ["COPC_IN000001UK01", "PRSC_IN080000UK07", "QUPA_IN000008UK05", "QUPA_IN040000UK32",
                                  "QUPC_IN160101UK05", "INBOUND_UNEXPECTED_MESSAGE"])
def test_every_valid_hl7_template_validates(schema_set, name):
    message = template_message(name)
    interaction = etree.QName(message).localname
    assert schema_set.available(interaction)
    assert schema_set.validate(interaction, message) == []


def test_repc_in150016uk05_template_gives_the_problems_the_readme_lists(schema_set):
    problems = schema_set.validate("REPC_IN150016UK05", template_message("REPC_IN150016UK05"))
    assert {p.code for p in problems} == {"hl7.schema"}
    assert any("ITSVersion" in p.message and p.where == "/hl7:REPC_IN150016UK05" for p in problems)
    assert any(p.where == "/hl7:REPC_IN150016UK05/hl7:ControlActEvent/hl7:author" for p in problems)
    assert all(re.match(r"line \d+: ", p.message) for p in problems)


def test_the_deliberately_empty_message_gives_a_missing_child_problem(schema_set):
    problems = schema_set.validate("COPC_IN000001UK01", template_message("INBOUND_UNEXPECTED_INVALID_MESSAGE"))
    assert len(problems) == 1 and "Missing child element" in problems[0].message
    assert problems[0].where == "/hl7:COPC_IN000001UK01" and problems[0].message.startswith("line 1: ")


def test_the_fake_spines_answers_against_the_schemas(schema_set):
    text = spec_path(*FAKE_SPINE, "vnp_responses", "async_express_inbound.mustache").read_text()
    text = text.replace("{{message_id}}", VALUES["uuid"]).replace("{{ref_to_message_id}}", VALUES["uuid"])
    payload = ebxml.parse(MULTIPART, text.encode()).hl7
    assert schema_set.validate("QUPC_IN160102UK05", etree.fromstring(payload)) == []
    # The canned GP Summary acknowledgement carries requestSuccessDetail, which MCCI_IN010000UK13.xsd does not
    # allow: the schema says so, with where.
    text = spec_path(*FAKE_SPINE, "vnp_responses", "async_reliable_inbound.mustache").read_text()
    body = re.sub(r"\{\{\w+\}\}", VALUES["uuid"], text.split("====== BODY =======\n", 1)[1])
    problems = schema_set.validate("MCCI_IN010000UK13", etree.fromstring(ebxml.parse(MULTIPART, body.encode()).hl7))
    assert [p.where for p in problems] == ["/hl7:MCCI_IN010000UK13/hl7:ControlActEvent/hl7:requestSuccessDetail"]


def test_a_validated_message_inside_a_soap_envelope_reports_envelope_lines(schema_set):
    text = spec_path(*FAKE_SPINE, "vnp_responses", "sync_outbound_response.mustache").read_text()
    text = text.replace("{{message_id}}", VALUES["uuid"]).replace("{{ref_to_message_id}}", VALUES["uuid"])
    answer = etree.fromstring(text.encode()).find(".//{urn:hl7-org:v3}QUPA_IN050000UK32")
    assert schema_set.validate("QUPA_IN050000UK32", answer) == []
    answer.find("{urn:hl7-org:v3}creationTime").set("value", "soon")
    problems = schema_set.validate("QUPA_IN050000UK32", answer)
    assert problems[0].where.endswith("hl7:QUPA_IN050000UK32/hl7:creationTime")
    assert problems[0].message.startswith("line 29: ")


def test_one_compiled_schema_per_folder_and_interaction(schema_set):
    folder = spec_path("spine-hl7v3-xsd", "omvt")
    assert schemas.schema_set(folder) is schema_set
    assert schemas.schema_set(str(folder) + "/") is schema_set
    assert schema_set.compiled("MCCI_IN010000UK13") is schema_set.compiled("MCCI_IN010000UK13")
    assert len(schema_set.interactions()) == 19


def test_concurrent_validation_gives_each_caller_its_own_answer(schema_set):
    good = template_message("QUPA_IN040000UK32")
    bad = template_message("REPC_IN150016UK05")
    fresh = schemas.SchemaSet(spec_path("spine-hl7v3-xsd", "omvt"))  # compiles under contention too
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(20):
            counts = (len(fresh.validate("QUPA_IN040000UK32", good)), len(fresh.validate("REPC_IN150016UK05", bad)))
            with lock:
                results.append(counts)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = (0, len(schema_set.validate("REPC_IN150016UK05", bad)))
    assert len(results) == 160 and set(results) == {expected} and expected[1] > 0


def test_without_a_folder_nothing_is_available():
    nothing = schemas.schema_set(None)
    assert not nothing.available("QUPA_IN040000UK32") and nothing.interactions() == []
    problems = nothing.validate("QUPA_IN040000UK32", etree.fromstring(b"<a/>"))
    assert [p.code for p in problems] == ["schema.unavailable"]


@pytest.mark.parametrize("interaction", ["../../etc/passwd", "", "X", "QUPA_IN040000UK32.xsd"])
def test_odd_interaction_names_are_never_looked_up_as_paths(schema_set, interaction):
    assert not schema_set.available(interaction)


def test_schemas_never_reach_the_network_or_expand_entities(tmp_path: Path):
    (tmp_path / "Schemas").mkdir()
    (tmp_path / "Schemas" / "NET_IN000001UK01.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        '<xs:include schemaLocation="http://127.0.0.1:9/remote.xsd"/></xs:schema>')
    (tmp_path / "Schemas" / "ENT_IN000001UK01.xsd").write_text(
        '<!DOCTYPE xs:schema [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="a" fixed="&x;"/></xs:schema>')
    local = schemas.SchemaSet(tmp_path)
    net = local.validate("NET_IN000001UK01", etree.fromstring(b"<a/>"))
    assert [p.code for p in net] == ["schema.unavailable"] and "does not compile" in net[0].message
    compiled = local.compiled("ENT_IN000001UK01")
    if compiled is not None:  # the entity stays unexpanded: /etc/passwd never becomes the fixed value
        assert not compiled.validate(etree.fromstring(b"<a>root:x:0:0</a>"))


def test_the_error_codes_the_examples_show():
    assert codes.SOAP_FAULT_CODES["200"].description == "System failure to process message - default"
    assert codes.ebxml_description(codes.UNKNOWN_CPA_ID) == "501319:Unknown eb:CPAId"
    assert codes.split_ebxml_description("501314:Invalid To Party Type attribute") == (
        "501314", "Invalid To Party Type attribute")
    assert codes.split_ebxml_description("free text") == (None, "free text")
    fault = soap.parse_fault(spec_path(*FAKE_SPINE, "configured_responses", "soap_fault_that_should_be_retried.xml")
                             .read_bytes())
    assert fault.errors[0].code == codes.RETRIABLE_FAILURE and fault.errors[0].code_context == codes.TMS_CODE_CONTEXT
    nack = ebxml.parse("text/xml", spec_path(*FAKE_SPINE, "configured_responses", "ebxml_fault_single_error.xml")
                       .read_bytes())
    assert nack.header.errors[0].code == codes.VALUE_NOT_RECOGNIZED
    assert nack.header.errors[0].code_context == codes.EBXML_CODE_CONTEXT
