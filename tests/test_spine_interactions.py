"""Interactions carried by several services (the application acknowledgement MCCI_IN010000UK13), the catalogue as
users see it (GET /_sandbox/spine/interactions and `spine-sandbox spine interactions`), and answers the sandbox
sends as a party other than Spine (the GP2GP sending practice), with their HL7 ids as ebXML MessageIds."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from lxml import etree

from sandbox.cli import main
from sandbox.messaging import interactions
from sandbox.services.gp2gp import records
from sandbox.services.gp2gp.practice import PRACTICE_ODS, PRACTICE_PARTY_KEY
from sandbox.services.sds.directory import Registration, directory
from sandbox.services.spine import dispatch
from tests.mhs_client import ebxml_envelope, multipart
from tests.test_gp2gp_end_to_end import (
    NS,
    REQUESTER_ODS,
    REQUESTER_PARTY,
    SERVICE,
    delivered,
    findings_of,
    send,
)
from tests.test_gp2gp_messaging import REQUESTER_ASID, ack_xml, ehr_request_xml

MCCI = "MCCI_IN010000UK13"
PSIS = "urn:nhs:names:services:psis"
PDS = "urn:nhs:names:services:pds"


@pytest.fixture
def spine(sandbox):
    """The directory, with the requesting practice's MHS registered for GP2GP's answers and psis acknowledgements."""
    sds = directory(sandbox)
    sds.register("default", Registration(
        ods=REQUESTER_ODS, asid=REQUESTER_ASID, party_key=REQUESTER_PARTY, endpoint="https://mhs.example.invalid/",
        interactions=(f"{SERVICE}:RCMR_IN030000UK06", f"{SERVICE}:COPC_IN000001UK01", f"{SERVICE}:{MCCI}",
                      f"{PSIS}:{MCCI}")))
    return sds


# --- the catalogue ----------------------------------------------------------------------------------------------
def test_the_application_acknowledgement_is_valid_under_any_spine_service():
    under_pds = interactions.find(f"{PDS}:{MCCI}")
    assert (under_pds.service, under_pds.pattern) == (PDS, "async-reliable")  # reliable from Spine, not forwarded
    assert under_pds.service_interaction == f"{PDS}:{MCCI}" and under_pds.soap_action == f"{PDS}/{MCCI}"
    assert interactions.find(f"{PSIS}/{MCCI}").service == PSIS
    assert interactions.find(MCCI).service == SERVICE and interactions.find(MCCI).pattern == "forward-reliable"
    assert interactions.find(f"urn:nhs:names:services:no-such-service:{MCCI}") is None
    assert interactions.find(f"{PDS}:RCMR_IN010000UK05") is None  # one service only: GP2GP's


def test_sds_registers_the_acknowledgement_under_any_spine_service(client):
    body = {"ods": "B82617", "asid": "200000001234", "party_key": "B82617-9100001",
            "endpoint": "https://mhs.example.invalid/inbound", "interactions": [f"{PDS}:{MCCI}", f"{PSIS}:{MCCI}"]}
    made = client.post("/_sandbox/sds/registrations", json=body)
    assert made.status_code == 201, made.get_data(as_text=True)
    assert set(made.get_json()["interactions"]) == {f"{PDS}:{MCCI}", f"{PSIS}:{MCCI}"}

    wrong = client.post("/_sandbox/sds/registrations", json={
        **body, "interactions": [f"urn:nhs:names:services:no-such-service:{MCCI}"]})
    assert wrong.status_code == 400
    assert "/_sandbox/spine/interactions" in wrong.get_json()["message"]


def test_only_a_gp2gp_acknowledgement_goes_to_the_gp2gp_handler(sandbox):
    gp2gp = dispatch.handler_for(sandbox, MCCI, SERVICE)
    assert gp2gp is not None and gp2gp.__module__.startswith("sandbox.services.gp2gp")
    assert dispatch.handler_for(sandbox, MCCI, PSIS) is None
    assert dispatch.handler_for(sandbox, MCCI, PDS) is None
    assert dispatch.owner_of(sandbox, MCCI, SERVICE) == "gp2gp" and dispatch.owner_of(sandbox, MCCI, PSIS) is None


def test_an_acknowledgement_under_psis_is_acknowledged_without_the_gp2gp_handler(client, sandbox, spine):
    [spine_entry] = spine.endpoints("default", base_url="http://localhost", party_key="YES-0000806",
                                    interaction=MCCI)[:1]
    hl7 = ack_xml(str(uuid.uuid4()).upper())
    message_id = etree.fromstring(hl7).find("hl7:id", NS).get("root")
    envelope = ebxml_envelope(from_party=REQUESTER_PARTY, to_party="YES-0000806", cpa_id=spine_entry.cpa_id,
                              conversation_id=message_id, service=PSIS, action=MCCI, message_id=message_id,
                              duplicate_elimination=True, ack_requested=True, sync_reply=True)
    content_type, body = multipart(envelope, message_id, hl7)

    answer = client.post("/reliablemessaging/reliablerequest", data=body,
                         headers={"Content-Type": content_type, "SOAPAction": f"{PSIS}/{MCCI}"})

    assert answer.status_code == 202, answer.get_data(as_text=True)
    acknowledgement = etree.fromstring(answer.data)
    assert acknowledgement.findtext(".//eb:Acknowledgment/eb:RefToMessageId", namespaces=NS) == message_id
    found = findings_of(client, answer)
    assert found.get("SPINE-EBX-009") == {"pass"} and found.get("SPINE-EBX-014") == {"pass"}, found
    assert not [r for r in found if r.startswith("GP2GP-")], found  # the GP2GP handler did not see it


# --- the catalogue as users see it -------------------------------------------------------------------------------
def test_the_interactions_endpoint_and_the_command_show_the_same_catalogue(client):
    answer = client.get("/_sandbox/spine/interactions")
    assert answer.status_code == 200
    rows = {r["id"]: r for r in answer.get_json()["interactions"]}
    mcci = rows[MCCI]
    assert (mcci["service"], mcci["also_under"], mcci["pattern_elsewhere"]) == (SERVICE, "any Spine service",
                                                                                 "async-reliable")
    assert mcci["answered_by"] == "gp2gp" and mcci["answered_under"] == [SERVICE]
    assert rows["QUPA_IN040000UK32"]["reliability"] == "synchronous" and rows["QUPA_IN040000UK32"]["schema"] is True
    assert rows["MCCI_IN200001UK02"]["answered_by"] == "scripted/acknowledged only"
    assert "gp2gp-extract" in {s["id"] for s in rows["RCMR_IN010000UK05"]["scenarios"]}
    only = client.get("/_sandbox/spine/interactions?pattern=sync").get_json()["interactions"]
    assert only and {r["pattern"] for r in only} == {"sync"}
    assert client.get("/_sandbox/spine/interactions?pattern=carrier-pigeon").status_code == 400

    printed = CliRunner().invoke(main, ["spine", "interactions", "--json"], catch_exceptions=False)
    assert json.loads(printed.output) == list(rows.values())


# --- answers from a party other than Spine ------------------------------------------------------------------------
def test_gp2gp_answers_come_from_the_sandbox_practice_with_their_hl7_ids(client, sandbox, spine):
    person = next(p for p in sandbox.population.of_kind("standard") if records.is_large_record(p))
    [route] = spine.endpoints("default", base_url="http://localhost", ods=PRACTICE_ODS,
                              interaction=f"{SERVICE}:RCMR_IN010000UK05")
    response = send(client, route, "RCMR_IN010000UK05", ehr_request_xml(person.nhs_number,
                                                                         requester_ods=REQUESTER_ODS))
    assert response.status_code in (200, 202), response.get_data(as_text=True)

    sent = delivered(client)
    assert len(sent) > 1  # the extract and its fragments
    for row, parts in sent:
        header, payload = etree.fromstring(parts[0][1]), etree.fromstring(parts[1][1])
        assert header.findtext(".//eb:From/eb:PartyId", namespaces=NS) == PRACTICE_PARTY_KEY
        assert header.findtext(".//eb:To/eb:PartyId", namespaces=NS) == REQUESTER_PARTY
        hl7_id = payload.find("hl7:id", NS).get("root")
        assert header.findtext(".//eb:MessageData/eb:MessageId", namespaces=NS) == hl7_id == row["message_id"]
