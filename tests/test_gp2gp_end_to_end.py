"""GP2GP through the sandbox's front door: a requesting practice's MHS looks the sending practice up in SDS, sends
the EHR request forward reliable to /reliablemessaging/intermediary, and gets the extract and, for a large record,
the COPC fragments with their attachments delivered to its registered endpoint; its acknowledgement of the extract
is recorded. The ebXML is built by the tests' own MHS helpers (tests/mhs_client.py)."""

from __future__ import annotations

import pytest
from lxml import etree

from sandbox.messaging.hl7 import parse_wrapper
from sandbox.services.gp2gp import records
from sandbox.services.gp2gp.practice import PRACTICE_ODS, PRACTICE_PARTY_KEY
from tests.mhs_client import ebxml_envelope, multipart, split_multipart
from tests.test_gp2gp_messaging import REQUESTER_ASID, ack_xml, ehr_request_xml

NS = {"hl7": "urn:hl7-org:v3", "eb": "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd",
      "xlink": "http://www.w3.org/1999/xlink"}
SERVICE = "urn:nhs:names:services:gp2gp"
REQUESTER_ODS = "A91424"
REQUESTER_PARTY = "A91424-9199121"


@pytest.fixture
def spine(sandbox):
    if "spine" not in sandbox.services or "sds" not in sandbox.services:
        pytest.skip("the spine and sds services are not there yet")
    from sandbox.services.sds.directory import Registration, directory

    sds = directory(sandbox)
    sds.register("default", Registration(  # the requesting practice's MHS, as a supplier registers it
        ods=REQUESTER_ODS, asid=REQUESTER_ASID, party_key=REQUESTER_PARTY, endpoint="https://mhs.example.invalid/",
        interactions=tuple(f"{SERVICE}:{i}" for i in ("RCMR_IN030000UK06", "COPC_IN000001UK01",
                                                       "MCCI_IN010000UK13"))))
    return sds


def send(client, route, interaction: str, hl7: bytes):
    message_id = parse_wrapper(hl7).message_id
    envelope = ebxml_envelope(from_party=REQUESTER_PARTY, to_party=route.party_key, cpa_id=route.cpa_id,
                              conversation_id=message_id, service=SERVICE, action=interaction, message_id=message_id,
                              duplicate_elimination=True, ack_requested=True)
    envelope = envelope.replace("actor:toPartyMSH", "actor:nextMSH")  # forward reliable: acknowledged hop by hop
    content_type, body = multipart(envelope, message_id, hl7)
    return client.post("/reliablemessaging/intermediary", data=body, headers={
        "Content-Type": content_type, "SOAPAction": f"{SERVICE}/{interaction}"})


def findings_of(client, response) -> dict[str, set[str]]:
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    found: dict[str, set[str]] = {}
    for finding in exchange["findings"]:
        found.setdefault(finding["requirement"], set()).add(finding["outcome"])
    return found


def delivered(client) -> list[tuple[dict, list[tuple[dict[str, str], bytes]]]]:
    """Each HL7 message the sandbox queued for delivery in the session (not its ebXML acknowledgements), with its
    MIME parts (headers, body)."""
    out = []
    for row in client.get("/_sandbox/spine/deliveries").get_json()["deliveries"]:
        if row["interaction"] == "Acknowledgment":
            continue
        message = client.get(f"/_sandbox/spine/deliveries/{row['id']}").get_json()["message"]
        assert message["body_encoding"] == "utf-8"
        out.append((row, split_multipart(message["content_type"], message["body"].encode("utf-8"))))
    return out


def test_a_large_record_is_delivered_as_the_extract_and_its_fragments_and_the_ack_is_recorded(client, sandbox,
                                                                                               spine):
    person = next(p for p in sandbox.population.of_kind("standard") if records.is_large_record(p))
    [route] = spine.endpoints("default", base_url="http://localhost", ods=PRACTICE_ODS,
                              interaction=f"{SERVICE}:RCMR_IN010000UK05")
    assert route.party_key == PRACTICE_PARTY_KEY
    request = ehr_request_xml(person.nhs_number, requester_ods=REQUESTER_ODS)
    response = send(client, route, "RCMR_IN010000UK05", request)
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    found = findings_of(client, response)
    for requirement in ("GP2GP-REQ-001", "GP2GP-REQ-002", "GP2GP-REQ-003", "GP2GP-REQ-004", "GP2GP-REQ-005"):
        assert found.get(requirement) == {"pass"}, (requirement, found)

    sent = delivered(client)
    assert [row["interaction"] for row, _ in sent] == ["RCMR_IN030000UK06"] + ["COPC_IN000001UK01"] * len(
        records.documents(person))
    assert {row["to_party"] for row, _ in sent} == {REQUESTER_PARTY}
    (_, extract_parts), *fragments = sent
    extract = etree.fromstring(extract_parts[1][1])
    references = {d.get("value") for d in extract.iterfind(".//hl7:referredToExternalDocument/hl7:text/hl7:reference",
                                                           NS)}
    carried = set()
    for _, parts in fragments:
        header, payload, attachment = (etree.fromstring(parts[0][1]), etree.fromstring(parts[1][1]), parts[2])
        reference = payload.find(".//hl7:pertinentPayloadBody/hl7:value/hl7:reference", NS).get("value")
        carried.add(reference)
        filename = reference.removeprefix("file://localhost/")
        descriptions = [d.text for d in header.iterfind(".//eb:Manifest/eb:Reference/eb:Description", NS)]
        assert any(f'Filename="{filename}"' in (d or "") for d in descriptions)
        assert len(attachment[1]) == records.ATTACHMENT_BYTES
    assert carried == references and len(references) == len(fragments)

    extract_id = extract.find("hl7:id", NS).get("root")
    ack = send(client, route, "MCCI_IN010000UK13", ack_xml(extract_id))
    assert ack.status_code in (200, 202), ack.get_data(as_text=True)
    found = findings_of(client, ack)
    assert found.get("GP2GP-ACK-001") == {"pass"} and found.get("GP2GP-ACK-002") == {"pass"}
