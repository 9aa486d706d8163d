"""GP2GP over Spine core messaging, with the sandbox as the sending practice: an EHR request gets the EHR extract
built from the synthetic patient, addressed back to the requester; a large record's attachments follow as
COPC_IN000001UK01 fragments whose ids match the extract's references; what the practice cannot answer gets a
negative acknowledgement with the GP2GP error code; the requester's acknowledgement is recorded. Every reply is held
against the official schemas."""

from __future__ import annotations

import pytest
from lxml import etree

from sandbox.services import gp2gp
from sandbox.services.gp2gp import records
from sandbox.services.gp2gp.acknowledgement import handle_acknowledgement
from sandbox.services.gp2gp.ehr_request import handle_ehr_request
from sandbox.services.gp2gp.practice import PRACTICE_ASID, PRACTICE_ODS
from tests import hl7v3_helpers
from tests.conftest import spec_path
from tests.hl7v3_helpers import assert_valid, handler_sandbox, new_id, outcome

NS = {"hl7": "urn:hl7-org:v3", "frag": "urn:nhs:names:services:gp2gp"}
REQUESTER_ASID = "200000005678"
REQUESTER_ODS = "A12345"
REQUESTER_PARTY = "A12345-0000001"
ODS_ROOT = "1.2.826.0.1285.0.1.10"


def _device(function: str, type_code: str, asid: str) -> str:
    return (f'<{function} typeCode="{type_code}"><device classCode="DEV" determinerCode="INSTANCE">'
            f'<id root="1.2.826.0.1285.0.2.0.107" extension="{asid}"/></device></{function}>')


def _org(element: str, type_code: str, ods: str) -> str:
    return (f'<{element} typeCode="{type_code}"><AgentOrgSDS classCode="AGNT"><agentOrganizationSDS classCode="ORG" '
            f'determinerCode="INSTANCE"><id root="{ODS_ROOT}" extension="{ods}"/></agentOrganizationSDS>'
            f'</AgentOrgSDS></{element}>')


def ehr_request_xml(nhs_number: str, *, sender_ods: str = PRACTICE_ODS, requester_ods: str = REQUESTER_ODS,
                    request_id: str | None = None, message_id: str | None = None,
                    receiver_asid: str = PRACTICE_ASID) -> bytes:
    return f"""<RCMR_IN010000UK05 xmlns="urn:hl7-org:v3">
 <id root="{message_id or new_id()}"/><creationTime value="20260101120000"/><versionCode code="V3NPfIT3.1.10"/>
 <interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="RCMR_IN010000UK05"/>
 <processingCode code="P"/><processingModeCode code="T"/><acceptAckCode code="NE"/>
 {_device("communicationFunctionRcv", "RCV", receiver_asid)}{_device("communicationFunctionSnd", "SND", REQUESTER_ASID)}
 <ControlActEvent classCode="CACT" moodCode="EVN"><author1 typeCode="AUT"><AgentSystemSDS classCode="AGNT">
  <agentSystemSDS classCode="DEV" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107"
  extension="{REQUESTER_ASID}"/></agentSystemSDS></AgentSystemSDS></author1>
  <subject typeCode="SUBJ" contextConductionInd="false"><EhrRequest classCode="EXTRACT" moodCode="RQO">
   <id root="{request_id or new_id()}"/>
   <recordTarget typeCode="RCT"><patient classCode="PAT"><id root="2.16.840.1.113883.2.1.4.1"
    extension="{nhs_number}"/></patient></recordTarget>
   {_org("author", "AUT", requester_ods)}{_org("destination", "DST", sender_ods)}
  </EhrRequest></subject></ControlActEvent>
</RCMR_IN010000UK05>""".encode()


def ack_xml(extract_message_id: str, type_code: str = "AA", code: str | None = None,
            receiver_asid: str = PRACTICE_ASID) -> bytes:
    detail = (f'<acknowledgementDetail typeCode="ER"><code code="{code}" '
              f'codeSystem="2.16.840.1.113883.2.1.3.2.4.17.101"/></acknowledgementDetail>' if code else "")
    return f"""<MCCI_IN010000UK13 xmlns="urn:hl7-org:v3">
 <id root="{new_id()}"/><creationTime value="20260101120500"/><versionCode code="V3NPfIT3.0"/>
 <interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="MCCI_IN010000UK13"/>
 <processingCode code="P"/><processingModeCode code="T"/><acceptAckCode code="NE"/>
 <acknowledgement typeCode="{type_code}">{detail}<messageRef><id root="{extract_message_id}"/></messageRef></acknowledgement>
 {_device("communicationFunctionRcv", "RCV", receiver_asid)}{_device("communicationFunctionSnd", "SND", REQUESTER_ASID)}
 <ControlActEvent classCode="CACT" moodCode="EVN"><author1 typeCode="AUT"><AgentSystemSDS classCode="AGNT">
  <agentSystemSDS classCode="DEV" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107"
  extension="{REQUESTER_ASID}"/></agentSystemSDS></AgentSystemSDS></author1></ControlActEvent>
</MCCI_IN010000UK13>""".encode()


def call(handler, sandbox, xml: bytes, session: str = "default"):
    return hl7v3_helpers.call(handler, sandbox, xml, service="gp2gp", from_party=REQUESTER_PARTY, session=session,
                              conversation_id=new_id())


@pytest.fixture
def sandbox(settings):
    yield from handler_sandbox(settings, gp2gp.SERVICE)


@pytest.fixture(scope="module")
def schemas():
    from sandbox.messaging.schemas import schema_set

    return schema_set(spec_path("spine-hl7v3-xsd", "omvt"))


def patient(sandbox, *, large: bool, kind: str = "standard"):
    return next(p for p in sandbox.population.of_kind(kind) if records.is_large_record(p) == large)


def test_the_request_payloads_of_these_tests_are_themselves_schema_valid(schemas):
    for xml in (ehr_request_xml("9000000009"), ack_xml(new_id()), ack_xml(new_id(), "AE", "11")):
        root = etree.fromstring(xml)
        assert not schemas.validate(etree.QName(root).localname, root)


def test_a_large_record_comes_as_the_extract_and_one_fragment_per_referenced_attachment(sandbox, schemas):
    person = patient(sandbox, large=True)
    request_id, message_id = new_id(), new_id()
    replies, findings = call(handle_ehr_request, sandbox,
                             ehr_request_xml(person.nhs_number, request_id=request_id, message_id=message_id))
    extract, *fragments = replies
    assert etree.QName(extract.message).localname == "RCMR_IN030000UK06"
    assert len(fragments) == records.ATTACHMENTS_PER_LARGE_RECORD
    assert all(etree.QName(f.message).localname == "COPC_IN000001UK01" for f in fragments)
    for reply in replies:
        assert reply.to_party == REQUESTER_PARTY
        assert_valid(schemas, reply.message)
        assert reply.message.find("hl7:communicationFunctionRcv/hl7:device/hl7:id", NS).get("extension") == \
            REQUESTER_ASID
        assert reply.message.find("hl7:communicationFunctionSnd/hl7:device/hl7:id", NS).get("extension") == \
            PRACTICE_ASID

    body = extract.message.find("hl7:ControlActEvent/hl7:subject/hl7:EhrExtract", NS)
    assert body.find("hl7:recordTarget/hl7:patient/hl7:id", NS).get("extension") == person.nhs_number
    assert body.find("hl7:inFulfillmentOf/hl7:priorEhrRequest/hl7:id", NS).get("root") == request_id
    assert body.find("hl7:destination//hl7:id", NS).get("extension") == REQUESTER_ODS
    assert body.find("hl7:author//hl7:id", NS).get("extension") == PRACTICE_ODS
    referenced = {(d.find("hl7:id", NS).get("root"), d.find("hl7:text/hl7:reference", NS).get("value"))
                  for d in body.iterfind(".//hl7:referredToExternalDocument", NS)}
    assert len(referenced) == len(fragments)

    sent = set()
    for fragment in fragments:
        payload = fragment.message.find("hl7:ControlActEvent/hl7:subject/hl7:PayloadInformation", NS)
        document = payload.find("hl7:pertinentInformation/hl7:pertinentPayloadBody", NS)
        sent.add((document.find("hl7:id", NS).get("root"), document.find("hl7:value/hl7:reference", NS).get("value")))
        message_id_of_fragment = fragment.message.find("hl7:id", NS).get("root")
        assert payload.find("hl7:value/frag:Gp2gpfragment/frag:message-id", NS).text == message_id_of_fragment
        [part] = fragment.attachments
        assert part.content_type == "text/plain" and len(part.body) == records.ATTACHMENT_BYTES
        filename = document.find("hl7:value/hl7:reference", NS).get("value").removeprefix("file://localhost/")
        assert f'Filename="{filename}"' in part.header("Content-Description")
        assert person.nhs_number.encode() in part.body
    assert sent == referenced

    for requirement in ("GP2GP-REQ-001", "GP2GP-REQ-002", "GP2GP-REQ-003", "GP2GP-REQ-004", "GP2GP-REQ-005"):
        assert outcome(findings, requirement) == {"pass"}, requirement


def test_an_ordinary_record_is_the_extract_alone_and_the_same_patient_gets_the_same_record(sandbox, schemas):
    person = patient(sandbox, large=False)
    first, _ = call(handle_ehr_request, sandbox, ehr_request_xml(person.nhs_number))
    again, _ = call(handle_ehr_request, sandbox, ehr_request_xml(person.nhs_number))
    assert len(first) == 1 and len(again) == 1
    assert_valid(schemas, first[0].message)
    texts = [[t.text for t in r[0].message.iterfind(".//hl7:NarrativeStatement/hl7:text", NS)] for r in (first, again)]
    assert texts[0] == texts[1] and texts[0]
    assert first[0].message.find(".//hl7:referredToExternalDocument", NS) is None


def test_the_request_may_name_the_patients_own_practice_for_which_the_sandbox_stands_in(sandbox, schemas):
    person = patient(sandbox, large=False)
    replies, findings = call(handle_ehr_request, sandbox, ehr_request_xml(person.nhs_number, sender_ods=person.gp))
    assert etree.QName(replies[0].message).localname == "RCMR_IN030000UK06"
    assert outcome(findings, "GP2GP-REQ-003") == {"pass"}


def nack_of(reply) -> tuple[str, list[str]]:
    message = reply.message
    assert etree.QName(message).localname == "MCCI_IN010000UK13"
    return (message.find("hl7:acknowledgement", NS).get("typeCode"),
            [c.get("code") for c in message.findall("hl7:acknowledgement/hl7:acknowledgementDetail/hl7:code", NS)])


@pytest.mark.parametrize("case, code, requirement", [
    ("invalid-nhs-number", "18", "GP2GP-REQ-001"),
    ("unknown-patient", "06", "GP2GP-REQ-001"),
    ("no-registered-practice", "06", "GP2GP-REQ-003"),
    ("another-practice", "06", "GP2GP-REQ-003"),
    ("request-to-itself", "18", "GP2GP-REQ-002"),
    ("no-request-id", "18", "GP2GP-REQ-004"),
])
def test_what_the_practice_cannot_answer_gets_a_negative_acknowledgement_with_the_gp2gp_code(
        sandbox, schemas, case, code, requirement):
    ordinary = patient(sandbox, large=False).nhs_number
    xml = {
        "invalid-nhs-number": lambda: ehr_request_xml("9000000008"),
        "unknown-patient": lambda: ehr_request_xml("9998500001"),
        "no-registered-practice": lambda: ehr_request_xml(patient(sandbox, large=False, kind="no-gp").nhs_number),
        "another-practice": lambda: ehr_request_xml(ordinary, sender_ods="B99999"),
        "request-to-itself": lambda: ehr_request_xml(ordinary, requester_ods=PRACTICE_ODS),
        "no-request-id": lambda: ehr_request_xml(ordinary, request_id="not-a-uuid"),
    }[case]()
    replies, findings = call(handle_ehr_request, sandbox, xml, session=f"nack-{case}")
    assert len(replies) == 1 and replies[0].to_party == REQUESTER_PARTY
    assert nack_of(replies[0]) == ("AE", [code])
    assert_valid(schemas, replies[0].message)
    assert "fail" in outcome(findings, requirement)
    assert sandbox.store.state.items(f"nack-{case}", "gp2gp.extracts") == {}


def test_a_request_to_the_wrong_asid_or_with_a_reused_id_is_answered_but_found_wanting(sandbox):
    person = patient(sandbox, large=False)
    request_id = new_id()
    _, findings = call(handle_ehr_request, sandbox, ehr_request_xml(person.nhs_number, request_id=request_id,
                                                                     receiver_asid="123456789012"), session="reuse")
    assert outcome(findings, "GP2GP-REQ-005") == {"fail"}
    replies, findings = call(handle_ehr_request, sandbox, ehr_request_xml(person.nhs_number, request_id=request_id),
                             session="reuse")
    assert etree.QName(replies[0].message).localname == "RCMR_IN030000UK06"
    assert outcome(findings, "GP2GP-REQ-004") == {"fail"}


def test_the_requesters_acknowledgement_of_the_extract_is_checked_and_recorded(sandbox):
    person = patient(sandbox, large=True)
    replies, _ = call(handle_ehr_request, sandbox, ehr_request_xml(person.nhs_number), session="acks")
    extract_id = replies[0].message.find("hl7:id", NS).get("root")
    answer, findings = call(handle_acknowledgement, sandbox, ack_xml(extract_id), session="acks")
    assert answer == []
    assert outcome(findings, "GP2GP-ACK-001") == {"pass"} and outcome(findings, "GP2GP-ACK-002") == {"pass"}
    stored = sandbox.store.state.get("acks", "gp2gp.extracts", extract_id).value
    assert stored["acknowledgement"]["type"] == "AA" and len(stored["fragments"]) == len(replies) - 1

    _, findings = call(handle_acknowledgement, sandbox, ack_xml(extract_id, "AE", "11"), session="acks")
    assert outcome(findings, "GP2GP-ACK-002") == {"pass"}
    _, findings = call(handle_acknowledgement, sandbox, ack_xml(extract_id, "AE", "77"), session="acks")
    assert outcome(findings, "GP2GP-ACK-002") == {"fail"}
    _, findings = call(handle_acknowledgement, sandbox, ack_xml(new_id()), session="acks")
    assert outcome(findings, "GP2GP-ACK-001") == {"fail"}


def test_an_acknowledgement_for_another_service_is_not_judged_as_gp2gp(sandbox):
    answer, findings = call(handle_acknowledgement, sandbox, ack_xml(new_id(), receiver_asid="928942012545"),
                            session="not-gp2gp")
    assert answer == [] and [str(f.outcome) for f in findings] == ["info"]
    assert "not judged as GP2GP" in findings[0].message


def test_every_finding_names_a_requirement_of_the_gp2gp_catalogue(sandbox):
    _, findings = call(handle_ehr_request, sandbox, ehr_request_xml("9000000008", requester_ods="?"))
    assert findings and all(f.requirement in sandbox.services["gp2gp"].requirements for f in findings)
