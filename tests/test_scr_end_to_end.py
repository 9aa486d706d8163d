"""The Summary Care Record through the sandbox's front door: a GP system's MHS uploads a GP summary async reliable
to /reliablemessaging/reliablerequest and queries for it async express at /reliablemessaging/queryrequest; the
application acknowledgement and the query answer are delivered to its registered endpoint. The ebXML is built by
the tests' own MHS helpers (tests/mhs_client.py)."""

from __future__ import annotations

import pytest
from lxml import etree

from sandbox.messaging.hl7 import parse_wrapper
from tests.mhs_client import ebxml_envelope, multipart, split_multipart
from tests.test_scr_messaging import KNOWN, SUPPLIER_ASID, new_id, query_xml, upload_xml

NS = {"hl7": "urn:hl7-org:v3"}
SUPPLIER_PARTY = "A91424-9199121"


@pytest.fixture
def spine(sandbox):
    if "spine" not in sandbox.services or "sds" not in sandbox.services:
        pytest.skip("the spine and sds services are not there yet")
    from sandbox.services.sds.directory import Registration, directory

    sds = directory(sandbox)
    sds.register("default", Registration(
        ods="A91424", asid=SUPPLIER_ASID, party_key=SUPPLIER_PARTY, endpoint="https://mhs.example.invalid/",
        interactions=("urn:nhs:names:services:psis:MCCI_IN010000UK13",
                      "urn:nhs:names:services:psisquery:QUPC_IN160102UK05")))
    return sds


def send(client, spine, path: str, service: str, interaction: str, hl7: bytes, *, reliable: bool):
    [route] = spine.endpoints("default", base_url="http://localhost", interaction=f"{service}:{interaction}")
    message_id = parse_wrapper(hl7).message_id
    envelope = ebxml_envelope(from_party=SUPPLIER_PARTY, to_party=route.party_key, cpa_id=route.cpa_id,
                              conversation_id=message_id, service=service, action=interaction, message_id=message_id,
                              duplicate_elimination=reliable, ack_requested=reliable, sync_reply=True)
    content_type, body = multipart(envelope, message_id, hl7)
    response = client.post(path, data=body, headers={"Content-Type": content_type,
                                                     "SOAPAction": f"{service}/{interaction}"})
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    return {f["requirement"]: f["outcome"] for f in exchange["findings"] if f["requirement"].startswith("SCR-")}


def delivered_hl7(client, interaction: str) -> list[etree._Element]:
    found = []
    for row in client.get("/_sandbox/spine/deliveries").get_json()["deliveries"]:
        if row["interaction"] == interaction:
            message = client.get(f"/_sandbox/spine/deliveries/{row['id']}").get_json()["message"]
            parts = split_multipart(message["content_type"], message["body"].encode("utf-8"))
            found.append(etree.fromstring(parts[1][1]))
    return found


def test_an_upload_is_acknowledged_and_then_listed_by_the_query(client, spine):
    document = new_id()
    upload = upload_xml(KNOWN, document_id=document)
    findings = send(client, spine, "/reliablemessaging/reliablerequest", "urn:nhs:names:services:psis",
                    "REPC_IN150016UK05", upload, reliable=True)
    assert findings == {f"SCR-UPL-00{n}": "pass" for n in range(1, 6)}
    [ack] = delivered_hl7(client, "MCCI_IN010000UK13")
    assert ack.find("hl7:acknowledgement", NS).get("typeCode") == "AA"
    assert ack.find("hl7:acknowledgement/hl7:messageRef/hl7:id", NS).get("root") == parse_wrapper(upload).message_id

    findings = send(client, spine, "/reliablemessaging/queryrequest", "urn:nhs:names:services:psisquery",
                    "QUPC_IN160101UK05", query_xml(KNOWN), reliable=False)
    assert findings == {"SCR-QRY-001": "pass"}
    [answer] = delivered_hl7(client, "QUPC_IN160102UK05")
    assert [e.get("root") for e in answer.iterfind(".//hl7:pSISDocMetaData/hl7:id", NS)] == [document]
