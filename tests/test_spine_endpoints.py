"""Spine core messaging endpoints through the Flask test client: each pattern answered as the live Spine does,
refusals in Spine's shapes with every problem at once, SDS-based checks, duplicate elimination, scenarios,
sessions by party key, and hostile input answered without a sandbox defect."""

from __future__ import annotations

import pytest
from lxml import etree

from sandbox.app import create_app
from sandbox.runtime import Sandbox, StartupError
from sandbox.services.sds.directory import directory
from sandbox.services.spine import delivery
from tests.conftest import spec_path
from tests.test_spine_messages import (
    OTHER,
    PDS_QUERY,
    SPINE_ASID,
    SPINE_PARTY_KEY,
    SUPPLIER,
    ebxml_request,
    findings,
    multipart,
    new_id,
    outcomes,
    pds_query,
    register,
    soap_request,
    spine_cpa,
    sync_headers,
    wrapper,
)

NS = {"SOAP": "http://schemas.xmlsoap.org/soap/envelope/", "hl7": "urn:hl7-org:v3",
      "eb": "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd",
      "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing", "nasp": "http://national.carerecords.nhs.uk/schema/"}
PSIS = "urn:nhs:names:services:psis"
PDS = "urn:nhs:names:services:pds"
GP2GP = "urn:nhs:names:services:gp2gp"


def xml(response):
    return etree.fromstring(response.data)


def fault_codes(response) -> list[str]:
    return [e.text for e in xml(response).iterfind(".//nasp:errorCode", NS)]


def ebxml_errors(response) -> list[tuple[str, str]]:
    return [(e.get(f"{{{NS['eb']}}}errorCode"), e.findtext("eb:Description", namespaces=NS))
            for e in xml(response).iterfind(".//eb:ErrorList/eb:Error", NS)]


def failed(client, response) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in findings(client, response):
        if f["outcome"] == "fail":
            found.setdefault(f["requirement"], []).append(f["message"])
    return found


@pytest.fixture
def registered(sandbox):
    return register(sandbox, interactions=(f"{PDS_QUERY}:QUPA_IN000011UK02", f"{PSIS}:MCCI_IN010000UK13"))


# --- synchronous -----------------------------------------------------------------------------------------------

def test_sync_pds_retrieval_is_answered_in_the_live_shape(client, registered):
    message_id = new_id()
    response = client.post("/sync-service", data=soap_request(pds_query("9000000009"), message_id=message_id),
                           headers=sync_headers())
    assert response.status_code == 200
    assert response.content_type.startswith("text/xml")
    root = xml(response)
    answer = root.find("SOAP:Body/hl7:retrievalQueryResponse/hl7:QUPA_IN050000UK32", NS)
    assert answer is not None, response.data[:500]
    assert root.findtext("SOAP:Header/wsa:RelatesTo", namespaces=NS) == f"uuid:{message_id}"
    assert root.findtext("SOAP:Header/wsa:Action", namespaces=NS) == f"{PDS_QUERY}/QUPA_IN050000UK32"
    assert answer.find("hl7:communicationFunctionSnd/hl7:device/hl7:id", NS).get("extension") == SPINE_ASID
    assert answer.find("hl7:communicationFunctionRcv/hl7:device/hl7:id", NS).get("extension") == SUPPLIER["asid"]
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    assert exchange["service"] == "spine" and exchange["operation"] == "QUPA_IN040000UK32"
    assert exchange["scenario"] == "spine-sync-pds-retrieval"


def test_a_test_only_handler_answers_its_interaction(client, registered, sandbox):
    """Service.hl7v3 is how every business service answers; a handler registered on the service is dispatched."""
    from sandbox.messaging import hl7
    from sandbox.messaging.business import InteractionReply

    seen = []

    def handler(request):
        seen.append(request.interaction)
        return [InteractionReply(hl7.application_ack(request.wrapper, type_code="AA", sender_asid=SPINE_ASID,
                                                     message_id=new_id()), wrapper="answer")]

    spine = sandbox.services["spine"]
    spine.hl7v3["QUPA_IN000005UK01"] = handler
    pds = sandbox.services["pds"]
    saved = pds.hl7v3.pop("QUPA_IN000005UK01", None)
    try:
        body = soap_request(wrapper("QUPA_IN000005UK01", sender_asid=SUPPLIER["asid"]), interaction="QUPA_IN000005UK01")
        response = client.post("/sync-service", data=body, headers=sync_headers("QUPA_IN000005UK01"))
    finally:
        spine.hl7v3.pop("QUPA_IN000005UK01")
        if saved is not None:
            pds.hl7v3["QUPA_IN000005UK01"] = saved
    assert seen == ["QUPA_IN000005UK01"]
    assert xml(response).find("SOAP:Body/hl7:answer/hl7:MCCI_IN010000UK13", NS) is not None


def test_an_unregistered_sender_asid_is_refused_with_a_soap_fault(client):
    response = client.post("/sync-service", data=soap_request(pds_query()), headers=sync_headers())
    assert response.status_code == 500 and response.content_type.startswith("text/xml")
    assert fault_codes(response) == ["201"]
    assert "Unknown sender ASID 200000001234" in response.get_data(as_text=True)
    assert "SPINE-SOAP-005" in failed(client, response)


def test_an_unknown_interaction_is_refused_over_soap_and_ebxml(client, registered, sandbox):
    body = soap_request(wrapper("XXXX_IN000000UK01", sender_asid=SUPPLIER["asid"]), interaction="XXXX_IN000000UK01")
    response = client.post("/sync-service", data=body, headers=sync_headers("XXXX_IN000000UK01"))
    assert response.status_code == 500 and fault_codes(response) == ["201"]
    assert "Unknown interaction" in response.get_data(as_text=True)
    headers, body, _ = ebxml_request("XXXX_IN000000UK01", PSIS, "S0000000", wrapper(
        "XXXX_IN000000UK01", sender_asid=SUPPLIER["asid"]))
    response = client.post("/reliablemessaging/queryrequest", data=body, headers=headers)
    assert response.status_code == 500
    assert ("ValueNotRecognized", "Unknown eb:Action XXXX_IN000000UK01") in ebxml_errors(response)
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    assert exchange["operation"] == "unrecognised-message"


def test_every_problem_of_a_sync_request_is_reported_at_once(client, registered):
    hl7 = pds_query(processing="D", author=False, receiver_asid="000009199092").replace(b'<versionCode code="V3NPfIT3.0"/>',
                                                           b'<versionCode code="2.0"/>')
    body = soap_request(hl7, receiver_asid="000009199092", message_id="not-a-uuid")
    response = client.post("/sync-service", data=body, headers=sync_headers(SOAPAction="wrong"))
    problems = failed(client, response)
    for requirement in ("SPINE-SOAP-002", "SPINE-SOAP-003", "SPINE-SOAP-005", "SPINE-HL7-005", "SPINE-HL7-006",
                        "SPINE-HL7-008", "SPINE-HL7-009"):
        assert requirement in problems, (requirement, problems)


# --- asynchronous: CPA, parties, every refusal at once ----------------------------------------------------------

def test_cpa_from_and_to_mismatches_are_refused_together_with_spines_codes(client, registered, sandbox):
    headers, body, _ = ebxml_request("REPC_IN150016UK05", PSIS, "S1001A1630", wrapper(
        "REPC_IN150016UK05", sender_asid=SUPPLIER["asid"]), reliable=True, to_party="YEA-0000806")
    response = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert response.status_code == 500
    assert ("ValueNotRecognized", "Unknown eb:To PartyId YEA-0000806") in ebxml_errors(response)
    headers, body, message_id = ebxml_request("REPC_IN150016UK05", PSIS, "S1001A1630", wrapper(
        "REPC_IN150016UK05", sender_asid=SUPPLIER["asid"]), reliable=True, from_party="NOPE-000000")
    response = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    errors = ebxml_errors(response)
    assert ("ValueNotRecognized", "501319:Unknown eb:CPAId") in errors
    assert ("ValueNotRecognized", "Unknown eb:From PartyId NOPE-000000") in errors
    root = xml(response)
    assert root.findtext(".//eb:Action", namespaces=NS) == "MessageError"
    assert root.findtext(".//eb:RefToMessageId", namespaces=NS) == message_id
    assert {"SPINE-EBX-002", "SPINE-EBX-004"} <= set(failed(client, response))


def test_a_wrong_sender_asid_in_the_hl7_is_a_finding(client, registered, sandbox):
    cpa = spine_cpa(sandbox, "REPC_IN150016UK05")
    headers, body, _ = ebxml_request("REPC_IN150016UK05", PSIS, cpa, wrapper(
        "REPC_IN150016UK05", sender_asid="999999999999"), reliable=True)
    response = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert any("999999999999" in m for m in failed(client, response)["SPINE-HL7-008"])


# --- asynchronous express and reliable ---------------------------------------------------------------------------

def test_express_is_accepted_at_once_and_its_answer_queued_for_the_sender(client, registered, sandbox):
    cpa = spine_cpa(sandbox, "QUPA_IN020000UK31")
    headers, body, message_id = ebxml_request("QUPA_IN020000UK31", PDS_QUERY, cpa, wrapper(
        "QUPA_IN020000UK31", sender_asid=SUPPLIER["asid"], accept_ack="AL"))
    response = client.post("/reliablemessaging/queryrequest", data=body, headers=headers)
    assert response.status_code == 202 and response.data == b""
    assert failed(client, response) == {}
    sent = [d for d in delivery.deliveries(sandbox, "default") if d["ref_to_message_id"] == message_id]
    assert [(d["interaction"], d["to_party"]) for d in sent] == [("MCCI_IN010000UK13", SUPPLIER["party_key"])]
    assert "info" in outcomes(client, response, "SPINE-HL7-010")  # no business handler: the default AA


def test_reliable_with_sync_reply_is_acknowledged_in_the_answer_and_duplicates_get_the_same_answer(
        client, registered, sandbox):
    cpa = spine_cpa(sandbox, "PRPA_IN000203UK03")
    hl7 = wrapper("PRPA_IN000203UK03", sender_asid=SUPPLIER["asid"])
    headers, body, message_id = ebxml_request("PRPA_IN000203UK03", PDS, cpa, hl7, reliable=True)
    first = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert first.status_code == 202, first.data[:600]
    root = xml(first)
    assert root.findtext("SOAP:Header/eb:Acknowledgment/eb:RefToMessageId", namespaces=NS) == message_id
    assert root.findtext(".//eb:MessageHeader/eb:From/eb:PartyId", namespaces=NS) == SPINE_PARTY_KEY
    queued = len(delivery.deliveries(sandbox, "default"))
    again = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert again.status_code == 202 and again.data == first.data
    assert len(delivery.deliveries(sandbox, "default")) == queued  # not processed again
    assert "pass" in outcomes(client, again, "SPINE-REL-105")
    assert "pass" in outcomes(client, again, "SPINE-EBX-007")


def test_reliable_without_sync_reply_gets_its_acknowledgement_delivered(client, registered, sandbox):
    cpa = spine_cpa(sandbox, "PRPA_IN000203UK03")
    headers, body, message_id = ebxml_request("PRPA_IN000203UK03", PDS, cpa, wrapper(
        "PRPA_IN000203UK03", sender_asid=SUPPLIER["asid"]), reliable=True, sync_reply=False)
    response = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert response.status_code == 202 and response.data == b""
    acks = [d for d in delivery.deliveries(sandbox, "default")
            if d["interaction"] == "Acknowledgment" and d["ref_to_message_id"] == message_id]
    assert len(acks) == 1 and acks[0]["to_party"] == SUPPLIER["party_key"]
    assert "warning" in outcomes(client, response, "SPINE-EBX-011")  # reliable messages should ask for SyncReply


def test_forward_reliable_to_a_registered_party_is_passed_on_unchanged(client, registered, sandbox):
    register(sandbox, who=OTHER, endpoint="http://127.0.0.1:9/other",
             interactions=(f"{GP2GP}:RCMR_IN010000UK05",))
    cpa = directory(sandbox).endpoints("default", base_url="http://localhost", party_key=OTHER["party_key"],
                                       interaction="RCMR_IN010000UK05")[0].cpa_id
    hl7 = wrapper("RCMR_IN010000UK05", sender_asid=SUPPLIER["asid"], receiver_asid=OTHER["asid"])
    headers, body, message_id = ebxml_request("RCMR_IN010000UK05", GP2GP, cpa, hl7, forward=True,
                                              to_party=OTHER["party_key"])
    response = client.post("/reliablemessaging/intermediary", data=body, headers=headers)
    assert response.status_code == 202, response.data[:800]
    assert failed(client, response) == {}
    forwarded = [d for d in delivery.deliveries(sandbox, "default") if d["message_id"] == message_id]
    assert len(forwarded) == 1 and forwarded[0]["to_party"] == OTHER["party_key"]
    assert forwarded[0]["relay_to_party"] == SUPPLIER["party_key"]
    assert delivery.body_of(sandbox, "default", forwarded[0]["id"]) == body


def test_an_acknowledgement_of_nothing_delivered_is_accepted_and_judged(client, registered):
    from tests.test_spine_messages import ebxml_header

    envelope = ebxml_header(from_party=SUPPLIER["party_key"], to_party=SPINE_PARTY_KEY, cpa_id="S1",
                            service="urn:oasis:names:tc:ebxml-msg:service", action="Acknowledgment",
                            message_id=new_id())
    unknown = new_id()
    envelope = envelope.replace("</eb:MessageHeader>", "</eb:MessageHeader><eb:Acknowledgment SOAP:mustUnderstand="
                                f'"1" eb:version="2.0"><eb:RefToMessageId>{unknown}</eb:RefToMessageId>'
                                "</eb:Acknowledgment>")
    response = client.post("/reliablemessaging/reliablerequest", data=envelope,
                           headers={"Content-Type": "text/xml; charset=UTF-8",
                                    "SOAPAction": "urn:oasis:names:tc:ebxml-msg:service/Acknowledgment"})
    assert response.status_code == 202
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    assert exchange["operation"] == "acknowledgment"
    assert "fail" in outcomes(client, response, "SPINE-REL-102")


# --- sessions, size, scenarios -------------------------------------------------------------------------------------

def test_service_traffic_lands_in_the_session_that_registered_its_sender(client, sandbox):
    register(sandbox, "team-a")
    response = client.post("/sync-service", data=soap_request(pds_query()), headers=sync_headers())
    assert response.status_code == 200
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    assert exchange["session"] == "team-a"


def test_a_message_over_five_megabytes_is_refused(client, registered, sandbox):
    cpa = spine_cpa(sandbox, "REPC_IN150016UK05")
    hl7 = wrapper("REPC_IN150016UK05", sender_asid=SUPPLIER["asid"], body="<x>" + "a" * 5_000_000 + "</x>")
    headers, body, _ = ebxml_request("REPC_IN150016UK05", PSIS, cpa, hl7, reliable=True)
    response = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert response.status_code == 500
    assert ebxml_errors(response)[0][0] == "NotSupported"
    assert "SPINE-MIME-005" in failed(client, response)


def test_a_retriable_sync_fault_then_the_retry_with_the_same_message_id(client, registered):
    message_id = new_id()
    body = soap_request(pds_query("9999000118"), message_id=message_id)
    first = client.post("/sync-service", data=body, headers=sync_headers())
    assert first.status_code == 500 and fault_codes(first) == ["206"]
    assert first.headers["X-Sandbox-Scenario"] == "spine-sync-soap-fault-retriable"
    retry = client.post("/sync-service", data=body, headers=sync_headers())
    assert retry.status_code == 200
    assert "pass" in outcomes(client, retry, "SPINE-BEH-003")


def test_a_final_fault_resent_unchanged_is_a_failure(client, registered):
    body = soap_request(pds_query("9999000126"))
    first = client.post("/sync-service", data=body, headers=sync_headers())
    assert first.status_code == 500 and fault_codes(first) == ["300"]
    again = client.post("/sync-service", data=body, headers=sync_headers())
    assert "fail" in outcomes(client, again, "SPINE-BEH-002")


def test_a_retry_with_a_new_message_id_is_a_failure(client, registered):
    hl7 = pds_query("9999000118")
    client.post("/sync-service", data=soap_request(hl7), headers=sync_headers())
    retry = client.post("/sync-service", data=soap_request(hl7), headers=sync_headers())
    assert "fail" in outcomes(client, retry, "SPINE-BEH-001")


def test_a_message_id_reused_for_another_message_is_a_failure(client, registered):
    message_id = new_id()
    client.post("/sync-service", data=soap_request(pds_query(), message_id=message_id), headers=sync_headers())
    other = client.post("/sync-service", data=soap_request(pds_query("9000000017"), message_id=message_id),
                        headers=sync_headers())
    assert "fail" in outcomes(client, other, "SPINE-EBX-007")


def test_scripted_business_error_and_never_sent_answers_for_reliable_messages(client, registered, sandbox):
    cpa = spine_cpa(sandbox, "PRPA_IN000203UK03")
    number = '<subject><x root="2.16.840.1.113883.2.1.4.1" extension="{}"/></subject>'
    headers, body, message_id = ebxml_request("PRPA_IN000203UK03", PDS, cpa, wrapper(
        "PRPA_IN000203UK03", sender_asid=SUPPLIER["asid"], body=number.format("9999000223")), reliable=True)
    response = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert response.status_code == 202 and response.headers["X-Sandbox-Scenario"] == "spine-reliable-business-error"
    answer = [d for d in delivery.deliveries(sandbox, "default") if d["ref_to_message_id"] == message_id
              and d["interaction"] == "MCCI_IN010000UK13"]
    assert len(answer) == 1
    assert b'typeCode="AE"' in delivery.body_of(sandbox, "default", answer[0]["id"])
    headers, body, message_id = ebxml_request("PRPA_IN000203UK03", PDS, cpa, wrapper(
        "PRPA_IN000203UK03", sender_asid=SUPPLIER["asid"], body=number.format("9999000231")), reliable=True)
    response = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert response.status_code == 202 and xml(response).find(".//eb:Acknowledgment", NS) is not None
    assert not [d for d in delivery.deliveries(sandbox, "default") if d["ref_to_message_id"] == message_id
                and d["interaction"] != "Acknowledgment"]


def test_scripted_message_error_and_503(client, registered, sandbox):
    cpa = spine_cpa(sandbox, "PRPA_IN000203UK03")
    number = '<subject><x root="2.16.840.1.113883.2.1.4.1" extension="{}"/></subject>'
    headers, body, _ = ebxml_request("PRPA_IN000203UK03", PDS, cpa, wrapper(
        "PRPA_IN000203UK03", sender_asid=SUPPLIER["asid"], body=number.format("9999000215")), reliable=True)
    refused = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert refused.status_code == 500 and ebxml_errors(refused) == [("ValueNotRecognized", "501319:Unknown eb:CPAId")]
    headers, body, _ = ebxml_request("PRPA_IN000203UK03", PDS, cpa, wrapper(
        "PRPA_IN000203UK03", sender_asid=SUPPLIER["asid"], body=number.format("9999000258")), reliable=True)
    busy = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert busy.status_code == 503 and busy.data == b""
    again = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert again.status_code == 202
    assert "pass" in outcomes(client, again, "SPINE-BEH-003")


def test_a_bad_scripted_hl7_answer_is_a_startup_error_naming_file_and_field(settings, tmp_path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "bad.yaml").write_text("id: my-spine\nservice: spine\ntitle: Bad answer\n"
                                     "trigger: {operation: QUPA_IN040000UK32}\nresponse: {hl7: {ack: XX}}\n")
    with pytest.raises(StartupError) as error:
        Sandbox.build(settings.replace(scenarios=(folder,)))
    assert "bad.yaml" in str(error.value) and "hl7.ack" in str(error.value)


def test_a_scripted_template_answers_a_sync_request(settings, tmp_path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "mine.yaml").write_text("""
id: my-template
service: spine
title: A scripted answer from a template
trigger: {operation: QUPA_IN040000UK32, facts: {nhs_number: "9000000017"}}
response:
  hl7:
    wrapper: retrievalQueryResponse
    template: >-
      <QUPA_IN050000UK32 xmlns="urn:hl7-org:v3"><id root="{{ message_id }}"/>
      <subject extension="{{ nhs_number }}" ref="{{ request_id }}"/></QUPA_IN050000UK32>
""")
    app = create_app(settings.replace(scenarios=(folder,)))
    register(app.extensions["sandbox"])
    client = app.test_client()
    response = client.post("/sync-service", data=soap_request(pds_query("9000000017")), headers=sync_headers())
    answer = xml(response).find("SOAP:Body/hl7:retrievalQueryResponse/hl7:QUPA_IN050000UK32", NS)
    assert answer.find("hl7:subject", NS).get("extension") == "9000000017"


# --- schemas -------------------------------------------------------------------------------------------------------

def test_the_payload_is_validated_against_the_official_schema(settings):
    folder = spec_path("spine-hl7v3-xsd", "omvt")
    app = create_app(settings.replace(hl7v3_schemas=str(folder)))
    register(app.extensions["sandbox"])
    client = app.test_client()
    good = client.post("/sync-service", data=soap_request(pds_query()), headers=sync_headers())
    assert outcomes(client, good, "SPINE-SCH-001") == {"pass"}
    bad_hl7 = pds_query().replace(b"<query>", b"<query><unexpected/>")
    bad = client.post("/sync-service", data=soap_request(bad_hl7), headers=sync_headers())
    schema_failures = [f for f in findings(client, bad) if f["requirement"] == "SPINE-SCH-001"]
    assert schema_failures and all(f["outcome"] == "fail" for f in schema_failures)
    assert any("unexpected" in f["message"] for f in schema_failures)


def test_without_the_schema_folder_the_schema_check_says_how_to_turn_it_on(client, registered):
    response = client.post("/sync-service", data=soap_request(pds_query()), headers=sync_headers())
    info = [f for f in findings(client, response) if f["requirement"] == "SPINE-SCH-001"]
    assert [f["outcome"] for f in info] == ["info"] and "SANDBOX_HL7V3_SCHEMAS" in info[0]["message"]


# --- hostile input ---------------------------------------------------------------------------------------------------

BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<lolz>&lol2;</lolz>")
HOSTILE = {
    "empty": (b"", "text/xml"),
    "garbage": (b"\x00\xff\xfe not xml at all", "text/xml"),
    "entity bomb": (BOMB, "text/xml"),
    "deep nesting": (b"<a>" * 5000 + b"</a>" * 5000, "text/xml"),
    "multipart without boundary": (b"--x\r\n\r\n--x--", "multipart/related"),
    "multipart with a bad boundary": (b"nothing here", 'multipart/related; boundary="zz"; type="text/xml"'),
    "json": (b'{"resourceType": "Patient"}', "application/json"),
    "soap 1.2": (b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>',
                 "application/soap+xml"),
    "empty soap": (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>', "text/xml"),
    "header only ebxml": (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:eb="http://www'
                          b'.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"><s:Header><eb:MessageH'
                          b'eader/></s:Header></s:Envelope>', "text/xml"),
}


@pytest.mark.parametrize("path", ["/sync-service", "/reliablemessaging/queryrequest",
                                  "/reliablemessaging/reliablerequest", "/reliablemessaging/intermediary"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_gets_a_spine_refusal_never_a_sandbox_defect(client, path, name):
    body, content_type = HOSTILE[name]
    response = client.post(path, data=body, headers={"Content-Type": content_type})
    text = response.get_data(as_text=True)
    assert "sandbox defect" not in text
    assert response.status_code == 500 and response.content_type.startswith("text/xml"), (response.status_code, text)
    root = xml(response)
    assert root.find(".//SOAP:Fault", NS) is not None or root.find(".//eb:ErrorList", NS) is not None
    assert not any(f["requirement"] == "sandbox-defect" for f in findings(client, response))


def test_unknown_paths_and_methods_answer_in_spines_shape(client):
    missing = client.post("/reliablemessaging/nowhere", data=b"<x/>", headers={"Content-Type": "text/xml"})
    assert missing.status_code == 404 and xml(missing).find(".//eb:ErrorList", NS) is not None
    wrong = client.get("/sync-service")
    assert wrong.status_code == 405 and xml(wrong).find(".//SOAP:Fault", NS) is not None


def test_a_malformed_multipart_reports_where(client, registered, sandbox):
    cpa = spine_cpa(sandbox, "REPC_IN150016UK05")
    headers, body, _ = ebxml_request("REPC_IN150016UK05", PSIS, cpa, wrapper(
        "REPC_IN150016UK05", sender_asid=SUPPLIER["asid"]), reliable=True,
        manifest_href="cid:nothing@spine.nhs.uk")
    response = client.post("/reliablemessaging/reliablerequest", data=body, headers=headers)
    assert response.status_code == 500
    problems = [f for f in findings(client, response) if f["requirement"] == "SPINE-EBX-010" and f["outcome"] == "fail"]
    assert problems and any("eb:Manifest/eb:Reference[1]" in f["location"] for f in problems)
    assert multipart  # the helper builds the package the tests above send


def test_an_operation_is_named_by_a_fixed_name_or_resolved_from_the_request():
    from sandbox.web.pipeline import operation

    with pytest.raises(TypeError):
        operation()
    with pytest.raises(TypeError):
        operation("fixed", resolve=lambda view: "resolved")
    assert callable(operation("fixed")) and callable(operation(resolve=lambda view: "resolved"))


def test_a_business_refusal_resent_unchanged_is_a_failure(client, registered):
    body = soap_request(pds_query("9999000134"))  # scripted: an application acknowledgement AE
    first = client.post("/sync-service", data=body, headers=sync_headers())
    assert first.status_code == 200 and b'typeCode="AE"' in first.data
    again = client.post("/sync-service", data=body, headers=sync_headers())
    assert "fail" in outcomes(client, again, "SPINE-BEH-002")


def test_a_schema_folder_that_is_not_the_mims_stops_the_start_naming_the_setting(settings, tmp_path):
    with pytest.raises(StartupError, match=r"SANDBOX_HL7V3_SCHEMAS / --hl7v3-schemas .*not the MIM's schema folder"):
        create_app(settings.replace(hl7v3_schemas=str(tmp_path)))
