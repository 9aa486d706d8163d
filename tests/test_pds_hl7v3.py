"""PDS over Spine core messaging (HL7v3): retrieval, traces and update, answered from the same records as PDS FHIR.

The handlers are called as the spine service calls them (an InteractionRequest built from the message), and every
answer is held against the official MIM schemas (../shared/specs/spine-hl7v3-xsd, skipped when absent)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from lxml import etree

from sandbox.messaging.business import InteractionRequest
from sandbox.messaging.hl7 import parse_wrapper, to_bytes
from sandbox.messaging.schemas import schema_set
from sandbox.services.pds import SERVICE
from sandbox.web.pipeline import ExchangeContext
from tests.conftest import PdsClient, spec_path
from tests.message_shapes import render_mustache

HL7 = {"hl7": "urn:hl7-org:v3"}
SPINE_ASID, OUR_ASID = "928942012545", "918999198975"
MOLLOY = "9691813343"  # the MHS adaptor's fake Spine answers its PDS retrieval with this patient
TEMPLATES = ("spine-messaging-examples", "integration-tests", "integration_tests", "integration_tests", "data",
             "templates")


# --- building requests and reading answers ----------------------------------------------------------------------
def new_id() -> str:
    return str(uuid.uuid4()).upper()


def ask(sandbox, xml: bytes, session: str = "default", from_party: str | None = None):
    """Call the handler the spine service would call; commit its deferred writes as the pipeline does."""
    wrapper = parse_wrapper(xml)
    exchange = ExchangeContext(new_id(), time.time(), time.perf_counter(), None, session=session)
    request = InteractionRequest(wrapper.interaction, wrapper, session, sandbox, exchange, from_party=from_party)
    replies = SERVICE.hl7v3[wrapper.interaction](request)
    with sandbox.store.state.transaction():
        for write in exchange.writes:
            write()
    return replies, exchange.findings


def retrieval_message(number: str) -> bytes:
    """The MHS adaptor's own QUPA_IN040000UK32 template, rendered with its example values."""
    template = spec_path(*TEMPLATES, "QUPA_IN040000UK32.mustache").read_text()
    return render_mustache(template, {"uuid": new_id(), "timestamp": "20240101120000", "to_asid": SPINE_ASID,
                                      "asid": OUR_ASID, "patient_nhs_number": number}).encode()


WRAPPER = """<{interaction} xmlns="urn:hl7-org:v3">
  <id root="{id}"/><creationTime value="20240101120000"/><versionCode code="V3NPfIT3.0"/>
  <interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="{interaction}"/>
  <processingCode code="P"/><processingModeCode code="T"/><acceptAckCode code="NE"/>
  <communicationFunctionRcv typeCode="RCV"><device classCode="DEV" determinerCode="INSTANCE">
    <id root="1.2.826.0.1285.0.2.0.107" extension="928942012545"/></device></communicationFunctionRcv>
  <communicationFunctionSnd typeCode="SND"><device classCode="DEV" determinerCode="INSTANCE">
    <id root="1.2.826.0.1285.0.2.0.107" extension="918999198975"/></device></communicationFunctionSnd>
  <ControlActEvent classCode="CACT" moodCode="EVN">
    <author1 typeCode="AUT"><AgentSystemSDS classCode="AGNT"><agentSystemSDS classCode="DEV" determinerCode="INSTANCE">
      <id root="1.2.826.0.1285.0.2.0.107" extension="918999198975"/></agentSystemSDS></AgentSystemSDS></author1>
    {body}
  </ControlActEvent>
</{interaction}>"""


def message(interaction: str, body: str) -> bytes:
    return WRAPPER.format(interaction=interaction, id=new_id(), body=body).encode()


def param(name: str, value: str) -> str:
    return f"<{name}><semanticsText>{name[0].upper() + name[1:]}</semanticsText>{value}</{name}>"


def simple_trace(family: str, gender: str, birth: str, given: str = "") -> bytes:
    name = f'<value use="L">{f"<given>{given}</given>" if given else ""}<family>{family}</family></value>'
    return message("QUPA_IN000005UK01", "<query>" + param("person.administrativeGenderCode",
                                                          f'<value code="{gender}"/>')
                   + param("person.birthTime", f'<value value="{birth}"/>') + param("person.name", name)
                   + "</query>")


def advanced_trace(family: str, gender: str, birth: str) -> bytes:
    return message("QUPA_IN000006UK02", "<query>" + param(
        "historicDataIndicator", '<value code="0" codeSystem="2.16.840.1.113883.2.1.3.2.4.17.36"/>')
        + param("person.administrativeGenderCode", f'<value code="{gender}"/>')
        + param("person.birthTime", f'<value><low value="{birth}"/><high value="{birth}"/></value>')
        + param("person.name", f'<value use="L"><family>{family}</family></value>')
        + param("searchParameter", '<value code="1" codeSystem="2.16.840.1.113883.2.1.3.2.4.17.39"/>')
        + "</query>")


def update_message(number: str, scn: str, before_id: str = "", after_id: str = "", update_type: str = "1") -> bytes:
    """PRPA_IN000203UK03: changes to addresses go before patientRole/id, telecoms and the person after it."""
    return message("PRPA_IN000203UK03", f"""<subject typeCode="SUBJ" contextConductionInd="false">
      <PdsUpdateRequest classCode="REG" moodCode="RQO">
        <code code="{update_type}" codeSystem="2.16.840.1.113883.2.1.3.2.4.17.40"/>
        <pertinentInformation typeCode="PERT"><pertinentSerialChangeNumber classCode="OBS" moodCode="EVN">
          <code code="2" codeSystem="2.16.840.1.113883.2.1.3.2.4.17.35"/><value value="{scn}"/>
        </pertinentSerialChangeNumber></pertinentInformation>
        <subject typeCode="SBJ"><patientRole classCode="PAT">{before_id}
          <id root="2.16.840.1.113883.2.1.4.1" extension="{number}"/>{after_id}</patientRole></subject>
      </PdsUpdateRequest></subject>""")


NEW_ADDRESS = ('<addr use="H" updateMode="altered"><streetAddressLine>1 NEW ROAD</streetAddressLine>'
               '<streetAddressLine>LEEDS</streetAddressLine><postalCode>LS1 1AA</postalCode>'
               '<id root="2.16.840.1.113883.2.1.3.2.4.18.1" extension="WYTKJ"/></addr>')
NEW_NAME = ('<telecom value="tel:01632960123" use="H" updateMode="added"/>'
            '<patientPerson classCode="PSN" determinerCode="INSTANCE"><name use="L" updateMode="altered">'
            '<prefix>MR</prefix><given>Duncan</given><family>MOLLOY-SMITH</family>'
            '<id root="2.16.840.1.113883.2.1.3.2.4.18.1" extension="EYSTY"/></name></patientPerson>')


def name_of(root: etree._Element) -> str:
    return etree.QName(root).localname


def texts(root: etree._Element, path: str) -> list[str]:
    return [str(v) for v in root.xpath(path, namespaces=HL7)]


def detected_issues(root: etree._Element) -> list[str]:
    return texts(root, "//hl7:ControlActEvent/hl7:reason/hl7:justifyingDetectedIssueEvent/hl7:code/@code")


def fails(findings) -> dict[str, str]:
    return {f.requirement: f.location for f in findings if str(f.outcome) == "fail"}


# --- schema validation --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def omvt() -> Path:
    return spec_path("spine-hl7v3-xsd", "omvt")


# QUQI_IN010000UK14 (query act failed) is not in the schema folder; its parts are: our own small schema puts them
# together as QUPA_IN050000UK32.xsd does (MCCI_MT020101UK12 wrapper, QUQI_MT030101UK03 control act).
QUERY_ACT_FAILED_XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:hl7-org:v3"
  elementFormDefault="qualified" xmlns="urn:hl7-org:v3">
  {includes}
  <xs:element name="QUQI_IN010000UK14"><xs:complexType><xs:sequence>
    <xs:element name="id" type="II"/><xs:element name="creationTime" type="TS"/><xs:element name="versionCode" type="CS"/>
    <xs:element name="interactionId" type="II"/><xs:element name="processingCode" type="CS"/>
    <xs:element name="processingModeCode" type="CS"/><xs:element name="acceptAckCode" type="CS"/>
    <xs:element name="acknowledgement" type="MCCI_MT020101UK12.Acknowledgement"/>
    <xs:element name="communicationFunctionRcv" type="MCCI_MT020101UK12.CommunicationFunctionRcv" maxOccurs="unbounded"/>
    <xs:element name="communicationFunctionSnd" type="MCCI_MT020101UK12.CommunicationFunctionSnd"/>
    <xs:element name="ControlActEvent" type="QUQI_MT030101UK03.ControlActEvent"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"""


@pytest.fixture(scope="module")
def query_act_failed_schemas(omvt, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("quqi")
    (folder / "Schemas").mkdir()
    parts = ["../dt/datatypes_6202.xsd", "../voc/voc_6202.xsd", "UKCT_MT120501UK03_6202.xsd",
             "UKCT_MT120301UK02_6202.xsd", "UKCT_MT120901UK01_6202.xsd", "UKCT_MT121001UK01_6202.xsd",
             "MCCI_MT020101UK12_6202.xsd", "QUQI_MT030101UK03_6202.xsd"]
    includes = "".join(f'<xs:include schemaLocation="{(omvt / "Schemas" / p).resolve().as_uri()}"/>' for p in parts)
    (folder / "Schemas" / "QUQI_IN010000UK14.xsd").write_text(QUERY_ACT_FAILED_XSD.format(includes=includes))
    return folder


@pytest.fixture
def valid(omvt, query_act_failed_schemas):
    """Assert a reply is valid against its official schema, as it goes on the wire."""
    def check(root: etree._Element) -> etree._Element:
        wire = etree.fromstring(to_bytes(root))
        interaction = name_of(wire)
        folder = query_act_failed_schemas if interaction == "QUQI_IN010000UK14" else omvt
        assert schema_set(folder).available(interaction), interaction
        problems = schema_set(folder).validate(interaction, wire)
        assert not problems, [str(p) for p in problems]
        return wire
    return check


def population_number(sandbox, kind: str) -> str:
    return next(p.nhs_number for p in sandbox.population.of_kind(kind))


# --- retrieval ----------------------------------------------------------------------------------------------------
def test_the_mhs_adaptor_retrieval_template_is_answered_as_its_fake_spine_answers(sandbox, valid):
    replies, findings = ask(sandbox, retrieval_message(MOLLOY))
    assert len(replies) == 1 and replies[0].wrapper == "retrievalQueryResponse"
    answer = valid(replies[0].message)
    assert name_of(answer) == "QUPA_IN050000UK32"
    assert texts(answer, "hl7:acknowledgement/@typeCode") == ["AA"]
    role = "//hl7:PdsSuccessfulRetrieval/hl7:subject/hl7:patientRole"
    assert texts(answer, f"{role}/hl7:id/@extension") == [MOLLOY]
    assert texts(answer, f"{role}/hl7:patientPerson/hl7:name/hl7:family/text()") == ["MOLLOY"]
    assert texts(answer, f"{role}/hl7:patientPerson/hl7:name/hl7:given/text()") == ["Duncan", "Jack"]
    assert texts(answer, f"{role}/hl7:patientPerson/hl7:birthTime/@value") == ["19390120"]
    assert texts(answer, f"{role}/hl7:patientPerson/hl7:administrativeGenderCode/@code") == ["1"]
    assert texts(answer, f"{role}/hl7:addr/hl7:postalCode/text()") == ["NE28 7QU"]
    assert texts(answer, "//hl7:healthCareProvider/hl7:id/@extension") == ["A87016"]
    assert texts(answer, "//hl7:pertinentSerialChangeNumber/hl7:value/@value") == ["1"]
    assert texts(answer, "//hl7:queryAck/hl7:queryResponseCode/@code") == ["OK"]
    assert not fails(findings) and {"PDS-HL7-001", "PDS-HL7-002", "PDS-HL7-003"} <= {f.requirement for f in findings}


@pytest.mark.parametrize("number", ["9689174606", "9691035456", "9689177923", "9446245796", "9449304130",
                                    "9453740578"])
def test_every_nhs_number_the_nhs_spine_clients_publish_is_a_real_patient(sandbox, valid, pds, number):
    replies, _ = ask(sandbox, retrieval_message(number))
    answer = valid(replies[0].message)
    assert texts(answer, "//hl7:patientRole/hl7:id/@extension") == [number]
    assert pds.get(f"/Patient/{number}").get_json()["id"] == number  # the same patient over FHIR


def test_a_deceased_patient_has_the_date_and_notification_of_death(sandbox, valid):
    number = population_number(sandbox, "deceased")
    answer = valid(ask(sandbox, retrieval_message(number))[0][0].message)
    assert texts(answer, "//hl7:patientPerson/hl7:deceasedTime/@value")[0].isdigit()
    assert texts(answer, "//hl7:deathNotification/hl7:value/@code") == ["2"]


def test_a_patient_with_a_nominated_pharmacy_has_it_as_a_care_provision(sandbox, valid):
    number = next(p.nhs_number for p in sandbox.population.of_kind("standard") if p.pharmacy and p.gp)
    answer = valid(ask(sandbox, retrieval_message(number))[0][0].message)
    assert sorted(texts(answer, "//hl7:patientCareProvision/hl7:code/@code")) == ["1", "P1"]


def test_a_restricted_patient_has_location_data_withheld(sandbox, valid):
    number = population_number(sandbox, "restricted")
    replies, findings = ask(sandbox, retrieval_message(number))
    answer = valid(replies[0].message)
    role = "//hl7:patientRole"
    assert texts(answer, f"{role}/hl7:confidentialityCode/@code") == ["S"]
    assert not texts(answer, f"{role}/hl7:addr") and not texts(answer, f"{role}/hl7:telecom")
    assert not texts(answer, "//hl7:patientCareProvision[hl7:code/@code='1']")
    assert texts(answer, f"{role}/hl7:patientPerson/hl7:name/hl7:family/text()")  # the name still comes back
    assert detected_issues(answer) == ["9"]
    assert any(f.requirement == "PDS-HL7-006" for f in findings)


def test_a_superseded_number_is_answered_with_the_superseding_record(sandbox, valid):
    person = next(sandbox.population.of_kind("superseded"))
    survivor = sandbox.population.person(person.superseded_by).nhs_number
    replies, findings = ask(sandbox, retrieval_message(person.nhs_number))
    answer = valid(replies[0].message)
    assert texts(answer, "//hl7:patientRole/hl7:id/@extension") == [survivor]
    assert texts(answer, "//hl7:replacementOf/hl7:oldVersion/hl7:id/@extension") == [person.nhs_number]
    assert detected_issues(answer) == ["24"]
    assert any(f.requirement == "PDS-HL7-005" for f in findings)


@pytest.mark.parametrize("kind", ["unknown", "invalidated", "invalid"])
def test_no_live_record_is_answered_query_act_failed(sandbox, valid, kind):
    number = {"unknown": "9111231130", "invalidated": population_number(sandbox, "invalidated"),
              "invalid": "9691813344"}[kind]
    replies, findings = ask(sandbox, retrieval_message(number))
    assert replies[0].wrapper == "retrievalQueryResponse"
    answer = valid(replies[0].message)
    assert name_of(answer) == "QUQI_IN010000UK14"
    assert texts(answer, "hl7:acknowledgement/@typeCode") == ["AE"]
    assert texts(answer, "hl7:acknowledgement/hl7:messageRef/hl7:id/@root")  # refers to the query
    assert detected_issues(answer) == ["1", "RT003"]
    assert texts(answer, "//hl7:queryAck/hl7:queryResponseCode/@code") == ["ID"]
    if kind == "invalid":
        assert fails(findings) == {"PDS-HL7-002": "/hl7:QUPA_IN040000UK32/hl7:ControlActEvent/hl7:query/"
                                                  "hl7:person.id/hl7:value"}


def test_every_problem_in_a_query_is_reported_at_once_with_its_xpath(sandbox):
    xml = message("QUPA_IN040000UK32", """<query>
        <historicDataIndicator><value code="7" codeSystem="1.2.3"/><semanticsText>historicDataIndicator</semanticsText>
        </historicDataIndicator>
        <person.id><value root="1.2.3" extension="1234567890"/></person.id></query>""")
    replies, findings = ask(sandbox, xml)
    query = "/hl7:QUPA_IN040000UK32/hl7:ControlActEvent/hl7:query"
    assert fails(findings) == {"PDS-HL7-003": f"{query}/hl7:historicDataIndicator/hl7:value",
                               "PDS-HL7-002": f"{query}/hl7:person.id/hl7:value"}
    assert [(f.requirement, f.location) for f in findings if str(f.outcome) == "warning"] == [
        ("PDS-HL7-004", f"{query}/hl7:person.id/hl7:semanticsText")]  # a SHOULD: a warning
    nhs = next(f for f in findings if f.requirement == "PDS-HL7-002")
    assert "1.2.3" in nhs.message and "Modulus 11" in nhs.message  # what was expected and what was seen
    assert name_of(replies[0].message) == "QUQI_IN010000UK14"


def test_the_later_release_retrieval_template_gets_a_pds_response(sandbox, valid):
    template = spec_path(*TEMPLATES, "QUPA_IN000008UK05.mustache").read_text()
    xml = render_mustache(template, {"uuid": new_id(), "timestamp": "20240101120000", "to_party_id": SPINE_ASID,
                                     "asid": OUR_ASID, "patient_nhs_number": MOLLOY}).encode()
    replies, _ = ask(sandbox, xml)
    answer = valid(replies[0].message)
    assert name_of(answer) == "QUPA_IN000009UK03" and replies[0].wrapper == "retrievalQueryResponse"
    assert texts(answer, "//hl7:PDSResponse//hl7:partPerson/hl7:name/hl7:family/text()") == ["MOLLOY"]
    assert texts(answer, "//hl7:PDSResponse//hl7:assignedEntity/hl7:id/@extension") == ["A87016"]


# --- traces -------------------------------------------------------------------------------------------------------
GENDERS = {"male": "1", "female": "2", "other": "9", "unknown": "0"}


def test_a_simple_trace_finds_the_one_matching_patient(sandbox, valid):
    person = next(p for p in sandbox.population.of_kind("standard"))
    xml = simple_trace(person.family, GENDERS[person.gender], person.birth_date.strftime("%Y%m%d"), person.given[0])
    replies, findings = ask(sandbox, xml)
    answer = valid(replies[0].message)
    assert name_of(answer) == "QUPA_IN000007UK01" and replies[0].wrapper == "traceQueryResponse"
    assert texts(answer, "//hl7:PdsTraceMatch//hl7:patientRole/hl7:id/@extension") == [person.nhs_number]
    assert not fails(findings)


def test_a_trace_of_a_restricted_patient_withholds_the_location_data(sandbox, valid):
    person = next(sandbox.population.of_kind("restricted"))
    xml = simple_trace(person.family, GENDERS[person.gender], person.birth_date.strftime("%Y%m%d"), person.given[0])
    answer = valid(ask(sandbox, xml)[0][0].message)
    assert texts(answer, "//hl7:patientRole/hl7:id/@extension") == [person.nhs_number]
    assert texts(answer, "//hl7:patientRole/hl7:confidentialityCode/@code") == ["S"]
    assert not texts(answer, "//hl7:patientRole/hl7:addr") and not texts(answer, "//hl7:assignedOrganization")
    assert detected_issues(answer) == ["5"]


def test_a_trace_with_no_match_or_several_equal_matches_is_query_act_failed(sandbox, valid):
    nobody = valid(ask(sandbox, simple_trace("Nobodyhere", "2", "19000101"))[0][0].message)
    assert name_of(nobody) == "QUQI_IN010000UK14" and detected_issues(nobody) == ["1"]
    # the fake Spine's patient is published under two NHS numbers: a trace cannot tell them apart
    twins = valid(ask(sandbox, simple_trace("MOLLOY", "1", "19390120", "Duncan"))[0][0].message)
    assert detected_issues(twins) == ["2"]


def test_a_trace_with_bad_parameters_reports_each_problem(sandbox):
    replies, findings = ask(sandbox, simple_trace("", "5", "19991399"))
    query = "/hl7:QUPA_IN000005UK01/hl7:ControlActEvent/hl7:query"
    failed = [(f.requirement, f.location) for f in findings if str(f.outcome) == "fail"]
    assert ("PDS-HL7-010", f"{query}/hl7:person.name/hl7:value") in failed
    assert ("PDS-HL7-010", f"{query}/hl7:person.administrativeGenderCode/hl7:value/@code") in failed
    assert ("PDS-HL7-011", f"{query}/hl7:person.birthTime/hl7:value/@value") in failed
    assert name_of(replies[0].message) == "QUQI_IN010000UK14"


def test_an_advanced_trace_answers_every_match_to_the_requester(sandbox, valid):
    person = next(p for p in sandbox.population.of_kind("standard"))
    replies, _ = ask(sandbox, advanced_trace(person.family, GENDERS[person.gender],
                                             person.birth_date.strftime("%Y%m%d")), from_party="A91424-9199121")
    assert replies[0].to_party == "A91424-9199121" and replies[0].wrapper is None
    answer = valid(replies[0].message)
    assert name_of(answer) == "QUPA_IN000011UK02"
    assert person.nhs_number in texts(answer, "//hl7:PdsTraceMatch/hl7:subject/hl7:patientRole/hl7:id/@extension")
    assert texts(answer, "//hl7:matchingLevel/hl7:value/@value")


# --- update ---------------------------------------------------------------------------------------------------------
def test_an_hl7_update_is_seen_by_fhir_and_by_the_next_retrieval(sandbox, client, valid):
    xml = update_message(MOLLOY, "1", NEW_ADDRESS, NEW_NAME)
    valid(etree.fromstring(xml))  # our request is itself a valid PRPA_IN000203UK03
    replies, findings = ask(sandbox, xml, from_party="A91424-9199121")
    ack = valid(replies[0].message)
    assert name_of(ack) == "MCCI_IN010000UK13" and texts(ack, "hl7:acknowledgement/@typeCode") == ["AA"]
    assert replies[0].to_party == "A91424-9199121" and not fails(findings)
    patient = PdsClient(client).get(f"/Patient/{MOLLOY}")
    assert patient.headers["ETag"] == 'W/"2"'
    body = patient.get_json()
    assert body["name"][0]["family"] == "MOLLOY-SMITH" and body["name"][0]["prefix"] == ["Mr"]
    assert body["address"][0]["line"] == ["1 NEW ROAD", "LEEDS"] and body["address"][0]["id"] == "WYTKJ"
    assert any(t["value"] == "01632960123" for t in body["telecom"])
    again = valid(ask(sandbox, retrieval_message(MOLLOY))[0][0].message)
    assert texts(again, "//hl7:pertinentSerialChangeNumber/hl7:value/@value") == ["2"]
    assert texts(again, "//hl7:patientPerson/hl7:name/hl7:family/text()") == ["MOLLOY-SMITH"]


def test_a_fhir_patch_is_seen_by_an_hl7_retrieval(sandbox, client, valid):
    number = population_number(sandbox, "standard")
    pds = PdsClient(client)
    version = pds.get(f"/Patient/{number}").headers["ETag"]
    patched = pds.patch(f"/Patient/{number}", json={"patches": [{"op": "replace", "path": "/gender",
                                                                 "value": "unknown"}]}, headers={"If-Match": version})
    assert patched.status_code == 200, patched.get_json()
    answer = valid(ask(sandbox, retrieval_message(number))[0][0].message)
    assert texts(answer, "//hl7:administrativeGenderCode/@code") == ["0"]
    assert texts(answer, "//hl7:pertinentSerialChangeNumber/hl7:value/@value") == [
        patched.headers["ETag"].split('"')[1]]


def test_an_update_against_an_old_serial_change_number_is_refused(sandbox, valid):
    ask(sandbox, update_message(MOLLOY, "1", NEW_ADDRESS))
    replies, findings = ask(sandbox, update_message(MOLLOY, "1", "", NEW_NAME))
    ack = valid(replies[0].message)
    assert texts(ack, "hl7:acknowledgement/@typeCode") == ["AE"]
    assert detected_issues(ack) == ["15"]
    assert "serial change number is 1, but the record is at 2" in texts(
        ack, "//hl7:justifyingDetectedIssueEvent/hl7:code/@displayName")[0]
    assert "PDS-HL7-021" in fails(findings)


def test_a_bad_update_reports_every_problem_and_changes_nothing(sandbox, client, valid):
    bad = ('<addr use="H" updateMode="altered"><streetAddressLine>1 ROAD</streetAddressLine>'
           '<id root="2.16.840.1.113883.2.1.3.2.4.18.1" extension="NOSUCH"/></addr>')
    person = ('<patientPerson classCode="PSN" determinerCode="INSTANCE"><administrativeGenderCode code="7"/>'
              '<birthTime value="19391340"/></patientPerson>')
    replies, findings = ask(sandbox, update_message(MOLLOY, "1", bad, person, update_type="3"))
    ack = valid(replies[0].message)
    assert texts(ack, "hl7:acknowledgement/@typeCode") == ["AE"] and detected_issues(ack) == ["15"]
    role = "/hl7:PRPA_IN000203UK03/hl7:ControlActEvent/hl7:subject/hl7:PdsUpdateRequest/hl7:subject/hl7:patientRole"
    failed = [(f.requirement, f.location) for f in findings if str(f.outcome) == "fail"]
    assert ("PDS-HL7-020", "/hl7:PRPA_IN000203UK03/hl7:ControlActEvent/hl7:subject/hl7:PdsUpdateRequest/hl7:code"
            ) in failed
    assert ("PDS-HL7-022", f"{role}/hl7:addr[1]/hl7:id") in failed
    assert ("PDS-HL7-022", f"{role}/hl7:patientPerson/hl7:administrativeGenderCode/@code") in failed
    assert ("PDS-HL7-022", f"{role}/hl7:patientPerson/hl7:birthTime/@value") in failed
    assert PdsClient(client).get(f"/Patient/{MOLLOY}").headers["ETag"] == 'W/"1"'


def test_updates_to_unknown_or_restricted_patients_are_refused(sandbox, valid):
    unknown = valid(ask(sandbox, update_message("9111231130", "1", NEW_ADDRESS))[0][0].message)
    assert texts(unknown, "hl7:acknowledgement/@typeCode") == ["AE"] and detected_issues(unknown) == ["1"]
    number = population_number(sandbox, "restricted")
    replies, findings = ask(sandbox, update_message(number, "1", "", NEW_NAME))
    assert texts(valid(replies[0].message), "hl7:acknowledgement/@typeCode") == ["AE"]
    assert "PDS-HL7-024" in fails(findings)


def test_a_published_example_accepts_an_update_and_keeps_nothing(sandbox, client, valid):
    name = ('<patientPerson classCode="PSN" determinerCode="INSTANCE"><administrativeGenderCode code="2"/>'
            '</patientPerson>')
    replies, _ = ask(sandbox, update_message("9000000009", "2", "", name))
    assert texts(valid(replies[0].message), "hl7:acknowledgement/@typeCode") == ["AA"]
    assert PdsClient(client).get("/Patient/9000000009").headers["ETag"] == 'W/"2"'


def test_sessions_do_not_see_each_others_updates(sandbox, valid):
    ask(sandbox, update_message(MOLLOY, "1", NEW_ADDRESS), session="alice")
    theirs = valid(ask(sandbox, retrieval_message(MOLLOY), session="bob")[0][0].message)
    assert texts(theirs, "//hl7:addr/hl7:postalCode/text()") == ["NE28 7QU"]


# --- through Spine's own endpoint ---------------------------------------------------------------------------------
def soap_request(interaction: str, hl7: bytes) -> bytes:
    """The MHS adaptor's own synchronous SOAP request template around an HL7 message."""
    template = spec_path("spine-messaging-examples", "mhs", "common", "data", "templates",
                         "soap_request.mustache").read_text()
    return render_mustache(template, {"message_id": new_id(), "action": f"urn:nhs:names:services:pdsquery/{interaction}",
                                      "service": "urn:nhs:names:services:pdsquery", "to_asid": SPINE_ASID,
                                      "from_asid": OUR_ASID, "hl7_message": hl7.decode()}).encode()


def test_the_mhs_adaptor_retrieval_through_the_sync_service(sandbox, client, valid):
    if "spine" not in sandbox.services:
        pytest.skip("the spine service (POST /sync-service) is not there yet")
    from sandbox.services.sds.directory import Registration, directory

    directory(sandbox).register("default", Registration(  # our system, as a supplier registers it in the session
        ods="A91424", asid=OUR_ASID, party_key="A91424-9199121", endpoint="https://mhs.example.invalid/",
        interactions=("urn:nhs:names:services:pdsquery:QUPA_IN050000UK32",)))
    response = client.post("/sync-service", data=soap_request("QUPA_IN040000UK32", retrieval_message(MOLLOY)),
                           headers={"Content-Type": "text/xml; charset=UTF-8",
                                    "SOAPAction": "urn:nhs:names:services:pdsquery/QUPA_IN040000UK32"})
    assert response.status_code == 200, response.get_data(as_text=True)
    envelope = etree.fromstring(response.get_data())
    answer = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body/hl7:retrievalQueryResponse/"
                           "hl7:QUPA_IN050000UK32", HL7)
    assert answer is not None, response.get_data(as_text=True)
    valid(answer)
    assert texts(answer, "//hl7:patientRole/hl7:id/@extension") == [MOLLOY]
    assert texts(answer, "//hl7:patientPerson/hl7:name/hl7:family/text()") == ["MOLLOY"]


def test_an_update_through_the_reliable_request_endpoint_is_seen_by_fhir(sandbox, client):
    if "spine" not in sandbox.services:
        pytest.skip("the spine service (POST /reliablemessaging/reliablerequest) is not there yet")
    from sandbox.services.sds.directory import Registration, directory

    spine = directory(sandbox)
    spine.register("default", Registration(ods="A91424", asid=OUR_ASID, party_key="A91424-9199121",
                                           endpoint="https://mhs.example.invalid/",
                                           interactions=("urn:nhs:names:services:pds:MCCI_IN010000UK13",)))
    route = spine.endpoints("default", base_url="http://localhost",
                            interaction="urn:nhs:names:services:pds:PRPA_IN000203UK03")[0]
    hl7 = update_message(MOLLOY, "1", "", '<patientPerson classCode="PSN" determinerCode="INSTANCE">'
                                          '<administrativeGenderCode code="2"/></patientPerson>')
    message_id = parse_wrapper(hl7).message_id
    template = spec_path("spine-messaging-examples", "mhs", "common", "data", "templates",
                         "ebxml_request.mustache").read_text()
    body = render_mustache(template, {
        "from_party_id": "A91424-9199121", "to_party_id": route.party_key, "cpa_id": route.cpa_id,
        "conversation_id": message_id, "service": "urn:nhs:names:services:pds", "action": "PRPA_IN000203UK03",
        "message_id": message_id, "timestamp": "2024-01-01T12:00:00Z", "duplicate_elimination": True,
        "ack_requested": True, "ack_soap_actor": "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH", "sync_reply": True,
        "hl7_message": hl7.decode()})
    response = client.post("/reliablemessaging/reliablerequest", data=body.replace("\n", "\r\n").encode(), headers={
        "Content-Type": 'multipart/related; boundary="--=_MIME-Boundary"; type="text/xml"; '
                        'start="<ebXMLHeader@spine.nhs.uk>"',
        "SOAPAction": "urn:nhs:names:services:pds/PRPA_IN000203UK03"})
    assert response.status_code == 202, response.get_data(as_text=True)
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    assert {"PDS-HL7-020", "PDS-HL7-021"} <= {f["requirement"] for f in exchange["findings"]}
    patient = PdsClient(client).get(f"/Patient/{MOLLOY}")
    assert patient.headers["ETag"] == 'W/"2"' and patient.get_json()["gender"] == "female"
