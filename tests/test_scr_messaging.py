"""The Summary Care Record over Spine core messaging: the GP summary upload (REPC_IN150016UK05) is checked, stored
per session and acknowledged as PSIS does; the event list query (QUPC_IN160101UK05) answers QUPC_IN160102UK05 with
the session's latest summary. Handlers are called as the spine service calls them; every reply is held against the
official schemas."""

from __future__ import annotations

import pytest
from lxml import etree

from sandbox.services import scr
from sandbox.services.scr.query import handle_query
from sandbox.services.scr.upload import handle_upload
from tests import hl7v3_helpers
from tests.conftest import spec_path
from tests.hl7v3_helpers import assert_valid, handler_sandbox, new_id, outcome

NS = {"hl7": "urn:hl7-org:v3"}
SUPPLIER_ASID = "200000001234"
SPINE_ASID = "928942012545"
KNOWN = "9000000009"  # a published PDS example patient
UNKNOWN_VALID = "9998500001"  # valid Modulus 11, in the create-patient range and never allocated here


def _wrapper(interaction: str, message_id: str, control_act: str) -> str:
    return f"""<{interaction} xmlns="urn:hl7-org:v3">
 <id root="{message_id}"/><creationTime value="20260101120000"/><versionCode code="3NPfIT7.2.02"/>
 <interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="{interaction}"/>
 <processingCode code="P"/><processingModeCode code="T"/><acceptAckCode code="NE"/>
 <communicationFunctionRcv typeCode="RCV"><device classCode="DEV" determinerCode="INSTANCE">
  <id root="1.2.826.0.1285.0.2.0.107" extension="{SPINE_ASID}"/></device></communicationFunctionRcv>
 <communicationFunctionSnd typeCode="SND"><device classCode="DEV" determinerCode="INSTANCE">
  <id root="1.2.826.0.1285.0.2.0.107" extension="{SUPPLIER_ASID}"/></device></communicationFunctionSnd>
 <ControlActEvent classCode="CACT" moodCode="EVN">{control_act}</ControlActEvent>
</{interaction}>"""


SYSTEM_AUTHOR = f"""<author1 typeCode="AUT"><AgentSystemSDS classCode="AGNT"><agentSystemSDS classCode="DEV"
 determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107" extension="{SUPPLIER_ASID}"/></agentSystemSDS>
 </AgentSystemSDS></author1>"""
USER_AUTHOR = """<author typeCode="AUT"><AgentPersonSDS classCode="AGNT">
 <id root="1.2.826.0.1285.0.2.0.67" extension="100000000001"/>
 <agentPersonSDS classCode="PSN" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.65" extension="200000000001"/>
 </agentPersonSDS><part typeCode="PART"><partSDSRole classCode="ROL"><id root="1.2.826.0.1285.0.2.1.104"
 extension="R0260"/></partSDSRole></part></AgentPersonSDS></author>"""
ALLERGY = """<component typeCode="COMP" contextConductionInd="true">
 <templateId root="2.16.840.1.113883.2.1.3.2.4.18.2" extension="CSAB_RM-NPfITUK10.component"/><seperatableInd value="false"/>
 <UKCT_MT144053UK02.Allergy classCode="OBS" moodCode="EVN"><id root="{id}"/>
  <code code="218291007" codeSystem="2.16.840.1.113883.2.1.3.2.4.15" displayName="Adverse reaction to erythromycin"/>
  <statusCode code="completed"/><effectiveTime><low value="20100615"/></effectiveTime></UKCT_MT144053UK02.Allergy>
</component>"""
REFUSAL = """<component typeCode="COMP" contextConductionInd="true">
 <templateId root="2.16.840.1.113883.2.1.3.2.4.18.2" extension="CSAB_RM-NPfITUK10.component"/><seperatableInd value="false"/>
 <UKCT_MT144056UK01.Refusal classCode="OBS" moodCode="EVN"><id root="{id}"/>
  <code code="416308001" codeSystem="2.16.840.1.113883.2.1.3.2.4.15"
   displayName="refused consent for upload to national shared electronic record"/>
  <effectiveTime value="20260101"/></UKCT_MT144056UK01.Refusal>
</component>"""


def upload_xml(nhs_number: str, *, document_id: str | None = None, user_author: bool = True,
               content: str = ALLERGY, message_id: str | None = None) -> bytes:
    document_id = document_id or new_id()
    summary = f"""<subject typeCode="SUBJ" contextConductionInd="false"><GPSummary classCode="COMPOSITION" moodCode="EVN">
 <id root="{document_id}"/>
 <code code="196981000000101" codeSystem="2.16.840.1.113883.2.1.3.2.4.15" displayName="General Practice Summary"/>
 <effectiveTime value="20260101115500"/><statusCode code="active"/>
 <author typeCode="AUT" contextControlCode="OP"><time value="20260101115500"/>
  <UKCT_MT160018UK01.AgentPersonSDS classCode="AGNT"><id root="1.2.826.0.1285.0.2.0.67" extension="100000000001"/>
   <agentPersonSDS classCode="PSN" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.65" extension="200000000001"/>
   <name><family>Sandbox</family></name></agentPersonSDS></UKCT_MT160018UK01.AgentPersonSDS></author>
 <excerptFrom typeCode="XCRPT" inversionInd="false" contextConductionInd="true" negationInd="false">
  <templateId root="2.16.840.1.113883.2.1.3.2.4.18.2" extension="CSAT_RM-NPfITUK10.excerptFrom"/><seperatableInd value="false"/>
  <UKCT_MT144051UK01.CareProfessionalDocumentationCRE classCode="CATEGORY" moodCode="EVN">
   <code code="163171000000105" codeSystem="2.16.840.1.113883.2.1.3.2.4.15" displayName="Care Professional Documentation"/>
   <component typeCode="COMP" inversionInd="false" negationInd="false">
    <templateId root="2.16.840.1.113883.2.1.3.2.4.18.2" extension="CSAB_RM-NPfITUK10.component"/><seperatableInd value="false"/>
    <presentationText classCode="OBS" moodCode="EVN"><value mediaType="text/html"><html xmlns="xhtml:NPfIT:PresentationText"><body><p>Summary</p></body></html></value>
     <id root="{new_id()}"/><code code="PresentationText" codeSystem="2.16.840.1.113883.2.1.3.2.4.17.126" displayName="Presentation Text"/>
     <statusCode code="completed"/><effectiveTime value="20260101115500"/></presentationText>
   </component></UKCT_MT144051UK01.CareProfessionalDocumentationCRE></excerptFrom>
 <pertinentInformation1 typeCode="PERT" inversionInd="false" contextConductionInd="true" negationInd="false">
  <templateId root="2.16.840.1.113883.2.1.3.2.4.18.2" extension="CSAB_RM-NPfITUK10.pertinentInformation1"/><seperatableInd value="true"/>
  <pertinentRootCREType classCode="CATEGORY" moodCode="EVN"><code code="163171000000105"
   codeSystem="2.16.840.1.113883.2.1.3.2.4.15" displayName="Care Professional Documentation"/></pertinentRootCREType>
 </pertinentInformation1>
 <pertinentInformation2 typeCode="PERT" inversionInd="false" contextConductionInd="true" negationInd="false">
  <templateId root="2.16.840.1.113883.2.1.3.2.4.18.2" extension="CSAB_RM-NPfITUK10.pertinentInformation1"/><seperatableInd value="true"/>
  <pertinentCREType classCode="CATEGORY" moodCode="EVN"><code code="163221000000102"
   codeSystem="2.16.840.1.113883.2.1.3.2.4.15" displayName="Allergies and Adverse Reactions"/>
   {content.format(id=new_id())}</pertinentCREType>
 </pertinentInformation2>
 <recordTarget typeCode="RCT"><patient classCode="PAT"><id root="2.16.840.1.113883.2.1.4.1" extension="{nhs_number}"/>
 </patient></recordTarget></GPSummary></subject>"""
    control = (USER_AUTHOR if user_author else "") + SYSTEM_AUTHOR + summary
    return _wrapper("REPC_IN150016UK05", message_id or new_id(), control).encode()


def query_xml(nhs_number: str, message_id: str | None = None) -> bytes:
    control = SYSTEM_AUTHOR + f"""<query><dissentOverride><semanticsText>DissentOverride</semanticsText>
 <value code="0" codeSystem="2.16.840.1.113883.2.1.3.2.4.17.60"/></dissentOverride>
 <filterParameters><date><semanticsText>Date</semanticsText><value><low value="20100101000000"/>
 <high value="20260101120000"/></value></date></filterParameters>
 <nHSNumber><semanticsText>NHSNumber</semanticsText><value root="2.16.840.1.113883.2.1.4.1" extension="{nhs_number}"/>
 </nHSNumber></query>"""
    return _wrapper("QUPC_IN160101UK05", message_id or new_id(), control).encode()


def call(handler, sandbox, xml: bytes, session: str = "default"):
    return hl7v3_helpers.call(handler, sandbox, xml, service="scr", from_party="SUPPLIER-0000001", session=session,
                              conversation_id=None)


@pytest.fixture
def sandbox(settings):
    yield from handler_sandbox(settings, scr.SERVICE)


@pytest.fixture(scope="module")
def schemas():
    from sandbox.messaging.schemas import schema_set

    return schema_set(spec_path("spine-hl7v3-xsd", "omvt"))


def ack_of(reply):
    message = reply.message
    return (message.find("hl7:acknowledgement", NS).get("typeCode"),
            [c.get("code") for c in message.findall("hl7:ControlActEvent/hl7:reason/"
                                                    "hl7:justifyingDetectedIssueEvent/hl7:code", NS)])


def test_the_request_payloads_of_these_tests_are_themselves_schema_valid(schemas):
    for xml in (upload_xml(KNOWN), upload_xml(KNOWN, content=REFUSAL), query_xml(KNOWN)):
        root = etree.fromstring(xml)
        assert not schemas.validate(etree.QName(root).localname, root)


def test_an_upload_is_acknowledged_aa_and_the_query_lists_it_in_that_session_only(sandbox, schemas):
    document = new_id()
    upload_id = new_id()
    replies, findings = call(handle_upload, sandbox, upload_xml(KNOWN, document_id=document, message_id=upload_id),
                             session="practice-a")
    assert len(replies) == 1
    assert ack_of(replies[0]) == ("AA", [])
    ack = replies[0].message
    assert ack.find("hl7:acknowledgement/hl7:messageRef/hl7:id", NS).get("root") == upload_id
    assert ack.find("hl7:communicationFunctionRcv/hl7:device/hl7:id", NS).get("extension") == SUPPLIER_ASID
    assert replies[0].to_party is None  # back to the sender
    assert_valid(schemas, ack)
    for requirement in ("SCR-UPL-001", "SCR-UPL-002", "SCR-UPL-003", "SCR-UPL-004", "SCR-UPL-005"):
        assert outcome(findings, requirement) == {"pass"}, requirement

    query_id = new_id()
    answers, findings = call(handle_query, sandbox, query_xml(KNOWN, query_id), session="practice-a")
    answer = answers[0].message
    assert etree.QName(answer).localname == "QUPC_IN160102UK05"
    assert_valid(schemas, answer)
    assert answer.find("hl7:acknowledgement", NS).get("typeCode") == "AA"
    assert answer.find("hl7:acknowledgement/hl7:messageRef/hl7:id", NS).get("root") == query_id
    listed = answer.findall(".//hl7:pSISDocMetaData/hl7:id", NS)
    assert [e.get("root") for e in listed] == [document]
    assert answer.find(".//hl7:queryAck/hl7:queryResponseCode", NS).get("code") == "OK"
    assert answer.find(".//hl7:DocumentCollection/hl7:recordTarget/hl7:patient/hl7:id", NS).get("extension") == KNOWN
    assert outcome(findings, "SCR-QRY-001") == {"pass"}

    elsewhere, _ = call(handle_query, sandbox, query_xml(KNOWN), session="practice-b")
    none = elsewhere[0].message
    assert_valid(schemas, none)
    assert none.find(".//hl7:pSISDocMetaData", NS) is None
    assert none.find(".//hl7:queryAck/hl7:queryResponseCode", NS).get("code") == "ID"
    assert ack_of(elsewhere[0]) == ("AE", ["210", "30312"])


def test_the_query_lists_the_latest_of_several_uploads(sandbox, schemas):
    first_doc, second_doc = new_id(), new_id()
    call(handle_upload, sandbox, upload_xml(KNOWN, document_id=first_doc), session="latest")
    call(handle_upload, sandbox, upload_xml(KNOWN, document_id=second_doc), session="latest")
    answers, _ = call(handle_query, sandbox, query_xml(KNOWN), session="latest")
    assert [e.get("root") for e in answers[0].message.findall(".//hl7:pSISDocMetaData/hl7:id", NS)] == [second_doc]


def test_a_reused_document_id_is_refused_with_psis_30134(sandbox, schemas):
    document = new_id()
    call(handle_upload, sandbox, upload_xml(KNOWN, document_id=document), session="dup")
    replies, findings = call(handle_upload, sandbox, upload_xml(KNOWN, document_id=document), session="dup")
    assert ack_of(replies[0]) == ("AE", ["400", "30134"])
    assert_valid(schemas, replies[0].message)
    assert outcome(findings, "SCR-UPL-005") == {"fail"}
    detail = replies[0].message.find("hl7:acknowledgement/hl7:acknowledgementDetail/hl7:code[@code='30134']", NS)
    assert document in detail.get("displayName") and KNOWN in detail.get("displayName")
    # another session has its own documents
    other, _ = call(handle_upload, sandbox, upload_xml(KNOWN, document_id=document), session="dup-elsewhere")
    assert ack_of(other[0]) == ("AA", [])


@pytest.mark.parametrize("nhs_number, requirement", [
    ("9000000008", "SCR-UPL-001"),  # fails Modulus 11
    ("12345", "SCR-UPL-001"),
    (UNKNOWN_VALID, "SCR-UPL-002"),
])
def test_an_invalid_or_unknown_nhs_number_is_refused_with_psis_35160_and_nothing_is_stored(
        sandbox, schemas, nhs_number, requirement):
    replies, findings = call(handle_upload, sandbox, upload_xml(nhs_number), session="bad-number")
    assert ack_of(replies[0]) == ("AE", ["400", "35160"])
    assert_valid(schemas, replies[0].message)
    failed = [f for f in findings if f.requirement == requirement and str(f.outcome) == "fail"]
    assert failed and "recordTarget/hl7:patient/hl7:id" in failed[0].location
    assert sandbox.store.state.items("bad-number", "scr.summaries") == {}


def test_a_missing_uploading_user_is_refused_and_named(sandbox, schemas):
    replies, findings = call(handle_upload, sandbox, upload_xml(KNOWN, user_author=False), session="no-author")
    assert ack_of(replies[0]) == ("AE", ["400"])
    assert_valid(schemas, replies[0].message)
    [failure] = [f for f in findings if f.requirement == "SCR-UPL-003"]
    assert str(failure.outcome) == "fail" and "SDS user id" in failure.message and "role profile" in failure.message


def test_a_refusal_of_consent_is_stored_alone_but_refused_beside_clinical_content(sandbox, schemas):
    alone, findings = call(handle_upload, sandbox, upload_xml(KNOWN, content=REFUSAL), session="consent")
    assert ack_of(alone[0]) == ("AA", [])
    assert outcome(findings, "SCR-UPL-004") == {"pass"}
    mixed, findings = call(handle_upload, sandbox, upload_xml(KNOWN, content=REFUSAL + ALLERGY), session="consent")
    assert ack_of(mixed[0]) == ("AE", ["420", "30418"])
    assert_valid(schemas, mixed[0].message)
    assert outcome(findings, "SCR-UPL-004") == {"fail"}


def test_a_query_for_an_invalid_nhs_number_is_answered_ae(sandbox, schemas):
    answers, findings = call(handle_query, sandbox, query_xml("9000000008"))
    assert_valid(schemas, answers[0].message)
    assert ack_of(answers[0]) == ("AE", ["400", "35160"])
    assert answers[0].message.find(".//hl7:queryAck/hl7:queryResponseCode", NS).get("code") == "QE"
    assert outcome(findings, "SCR-QRY-001") == {"fail"}


def test_every_finding_names_a_requirement_of_the_scr_catalogue(sandbox):
    _, findings = call(handle_upload, sandbox, upload_xml("9000000008", user_author=False), session="catalogue")
    assert findings and all(f.requirement in sandbox.services["scr"].requirements for f in findings)
