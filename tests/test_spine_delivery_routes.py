"""What the sandbox sends, end to end through the spine service's routes: a supplier's message makes the sandbox
deliver an answer to the supplier's registered MHS (a real loopback server); the supplier's acknowledgement, in its
HTTP answer or POSTed to Spine, completes the delivery; forward reliable relays the receiver's acknowledgement back
to the sender; and `spine-sandbox serve` workers deliver on their own."""

from __future__ import annotations

import pytest
import requests

from sandbox.app import create_app
from sandbox.services.sds.directory import directory
from sandbox.services.spine import delivery
from tests.conftest import LiveServer, free_port
from tests.mhs_client import ebxml_envelope
from tests.test_spine_delivery import FAST, Supplier, finished, wait_for
from tests.test_spine_messages import (
    OTHER,
    PDS_QUERY,
    SUPPLIER,
    ebxml_request,
    register,
    spine_cpa,
    wrapper,
)

PSIS = "urn:nhs:names:services:psis"
GP2GP = "urn:nhs:names:services:gp2gp"
ACK_HEADERS = {"Content-Type": "text/xml; charset=UTF-8",
               "SOAPAction": "urn:oasis:names:tc:ebxml-msg:service/Acknowledgment"}


def supplier_ack(ref: str, from_party: str = SUPPLIER["party_key"]) -> bytes:
    return ebxml_envelope(from_party=from_party, to_party="YES-0000806", cpa_id="S1", conversation_id=ref,
                          service="urn:oasis:names:tc:ebxml-msg:service", action="Acknowledgment",
                          message_id=f"ACK-{ref}", ref_to=ref, manifest=False, acknowledgment_of=ref).encode()


@pytest.fixture
def mhs():
    servers = []

    def make(plan):
        server = Supplier(plan=list(plan)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def app(settings):
    app = create_app(settings)
    delivery.configure(app.extensions["sandbox"], **FAST)
    yield app
    app.extensions["sandbox"].store.close()


def express_query(client, sandbox) -> str:
    """A supplier's asynchronous express PDS query asking for an application acknowledgement: Spine answers it by
    delivering MCCI_IN010000UK13 to the supplier's MHS."""
    cpa = spine_cpa(sandbox, "QUPA_IN020000UK31")
    headers, body, message_id = ebxml_request("QUPA_IN020000UK31", PDS_QUERY, cpa, wrapper(
        "QUPA_IN020000UK31", sender_asid=SUPPLIER["asid"], accept_ack="AL"))
    response = client.post("/reliablemessaging/queryrequest", data=body, headers=headers)
    assert response.status_code == 202, response.data[:600]
    return message_id


def answer_to(sandbox, message_id: str) -> dict:
    return wait_for(lambda: next((d for d in delivery.deliveries(sandbox, "default")
                                  if d["ref_to_message_id"] == message_id), None), what="the queued answer")


def exchange_findings(client, exchange_id: str) -> set[tuple[str, str]]:
    exchange = client.get(f"/_sandbox/exchanges/{exchange_id}").get_json()
    return {(f["requirement"], f["outcome"]) for f in exchange["findings"]}


def test_an_answer_acknowledged_in_the_suppliers_http_response_is_delivered(app, mhs):
    client, sandbox = app.test_client(), app.extensions["sandbox"]
    supplier = mhs(["ack"])
    register(sandbox, endpoint=supplier.url, interactions=(f"{PSIS}:MCCI_IN010000UK13",))

    sent = answer_to(sandbox, express_query(client, sandbox))
    record = finished(sandbox, "default", sent["id"])

    assert record["status"] == "delivered" and record["reliable"] is True
    [got] = supplier.received
    assert got.headers["soapaction"].endswith("/MCCI_IN010000UK13")
    assert b"MCCI_IN010000UK13" in got.body and got.message_id == record["message_id"]
    shown = client.get("/_sandbox/spine/deliveries").get_json()
    assert [d["status"] for d in shown["deliveries"] if d["id"] == record["id"]] == ["delivered"]
    assert ("SPINE-REL-101", "pass") in exchange_findings(client, record["attempts"][0]["exchange"])


def test_an_acknowledgement_posted_to_spine_completes_the_delivery(app, mhs):
    client, sandbox = app.test_client(), app.extensions["sandbox"]
    supplier = mhs(["accept"])  # HTTP 202, the acknowledgement comes separately
    register(sandbox, endpoint=supplier.url, interactions=(f"{PSIS}:MCCI_IN010000UK13",))
    sent = answer_to(sandbox, express_query(client, sandbox))
    wait_for(lambda: delivery.get(sandbox, "default", sent["id"])["attempts"], what="the first attempt")

    acked = client.post("/reliablemessaging/reliablerequest", data=supplier_ack(sent["message_id"]),
                        headers=ACK_HEADERS)
    again = client.post("/reliablemessaging/reliablerequest", data=supplier_ack(sent["message_id"]),
                        headers=ACK_HEADERS)

    assert acked.status_code == 202
    assert delivery.get(sandbox, "default", sent["id"])["status"] == "delivered"
    assert supplier.count() == 1
    found = exchange_findings(client, acked.headers["X-Sandbox-Exchange"])
    assert {("SPINE-REL-101", "pass"), ("SPINE-REL-104", "pass")} <= found
    assert ("SPINE-REL-102", "fail") in exchange_findings(client, again.headers["X-Sandbox-Exchange"])


def test_forward_reliable_relays_the_receivers_acknowledgement_to_the_sender(app, mhs):
    client, sandbox = app.test_client(), app.extensions["sandbox"]
    sender, receiver = mhs(["accept"]), mhs(["ack"])
    register(sandbox, endpoint=sender.url, interactions=(f"{GP2GP}:RCMR_IN010000UK05",))
    register(sandbox, who=OTHER, endpoint=receiver.url, interactions=(f"{GP2GP}:RCMR_IN010000UK05",))
    cpa = directory(sandbox).endpoints("default", base_url="http://localhost", party_key=OTHER["party_key"],
                                       interaction="RCMR_IN010000UK05")[0].cpa_id
    hl7 = wrapper("RCMR_IN010000UK05", sender_asid=SUPPLIER["asid"], receiver_asid=OTHER["asid"])
    headers, body, message_id = ebxml_request("RCMR_IN010000UK05", GP2GP, cpa, hl7, forward=True,
                                              to_party=OTHER["party_key"])

    response = client.post("/reliablemessaging/intermediary", data=body, headers=headers)

    assert response.status_code == 202, response.data[:600]
    wait_for(lambda: receiver.count() == 1, what="the receiver to get the forwarded message")
    assert receiver.received[0].body == body  # passed on unchanged
    wait_for(lambda: sender.count() == 1, what="the sender to get the relayed acknowledgement")
    relayed = sender.received[0]
    assert b"Acknowledgment" in relayed.body and message_id.encode() in relayed.body
    forwarded = next(d for d in delivery.deliveries(sandbox, "default") if d["message_id"] == message_id)
    assert forwarded["status"] == "delivered" and forwarded["relay_to_party"] == SUPPLIER["party_key"]


def test_serve_workers_deliver_and_the_control_api_shows_it(tmp_path, mhs):
    supplier = mhs(["ack"])
    server = LiveServer(tmp_path / "live", free_port()).wait()
    try:
        registration = {"ods": SUPPLIER["ods"], "asid": SUPPLIER["asid"], "party_key": SUPPLIER["party_key"],
                        "endpoint": supplier.url, "interactions": ["MCCI_IN010000UK13"]}
        assert requests.post(server.url + "/_sandbox/sds/registrations", json=registration,
                             timeout=10).status_code == 201
        cpa = _spine_cpa_over_http(server.url, "QUPA_IN020000UK31")
        headers, body, message_id = ebxml_request("QUPA_IN020000UK31", PDS_QUERY, cpa, wrapper(
            "QUPA_IN020000UK31", sender_asid=SUPPLIER["asid"], accept_ack="AL"))
        assert requests.post(server.url + "/reliablemessaging/queryrequest", data=body, headers=headers,
                             timeout=10).status_code == 202

        def delivered():
            rows = requests.get(server.url + "/_sandbox/spine/deliveries", timeout=10).json()["deliveries"]
            return [r for r in rows if r["ref_to_message_id"] == message_id and r["status"] == "delivered"]

        [row] = wait_for(delivered, timeout=20, what="the serve worker to deliver the answer")
        assert supplier.count() == 1 and supplier.received[0].message_id == row["message_id"]
        detail = requests.get(f"{server.url}/_sandbox/spine/deliveries/{row['id']}", timeout=10).json()
        assert row["message_id"] in detail["message"]["body"]
    finally:
        server.stop()


def _spine_cpa_over_http(base: str, interaction: str) -> str:
    """Spine's CPA id for the interaction, as a supplier reads it from SDS."""
    from urllib.parse import quote

    query = (f"organization={quote('https://fhir.nhs.uk/Id/ods-organization-code|YES', safe='')}&identifier="
             f"{quote(f'https://fhir.nhs.uk/Id/nhsServiceInteractionId|{PDS_QUERY}:{interaction}', safe='')}")
    bundle = requests.get(f"{base}/spine-directory/FHIR/R4/Endpoint?{query}",
                          headers={"X-Correlation-ID": "5e0a5f45-3fb5-4c4e-9fa5-a56a0e3d0d1d"}, timeout=10).json()
    ids = {i["system"]: i["value"] for i in bundle["entry"][0]["resource"]["identifier"]}
    return ids["https://fhir.nhs.uk/Id/nhsMhsCPAId"]


def test_the_registrations_retry_interval_and_count_are_used(app, mhs):
    client, sandbox = app.test_client(), app.extensions["sandbox"]
    supplier = mhs(["error", "ack"])
    register(sandbox, endpoint=supplier.url, interactions=(f"{PSIS}:MCCI_IN010000UK13",), retries=1,
             retry_interval="PT0.3S")

    sent = answer_to(sandbox, express_query(client, sandbox))
    record = finished(sandbox, "default", sent["id"])

    assert (record["retries"], record["retry_interval_s"]) == (1, 0.3)
    assert record["status"] == "delivered" and [a["http_status"] for a in record["attempts"]] == [500, 200]
    assert supplier.received[1].at - supplier.received[0].at >= 0.3
    assert supplier.received[0].body == supplier.received[1].body  # the same message, the same MessageId


def test_forward_reliable_relays_an_acknowledgement_the_receiver_posts_later(app, mhs):
    client, sandbox = app.test_client(), app.extensions["sandbox"]
    sender, receiver = mhs(["accept"]), mhs(["accept"])
    register(sandbox, endpoint=sender.url, interactions=(f"{GP2GP}:RCMR_IN010000UK05",))
    register(sandbox, who=OTHER, endpoint=receiver.url, interactions=(f"{GP2GP}:RCMR_IN010000UK05",))
    cpa = directory(sandbox).endpoints("default", base_url="http://localhost", party_key=OTHER["party_key"],
                                       interaction="RCMR_IN010000UK05")[0].cpa_id
    hl7 = wrapper("RCMR_IN010000UK05", sender_asid=SUPPLIER["asid"], receiver_asid=OTHER["asid"])
    headers, body, message_id = ebxml_request("RCMR_IN010000UK05", GP2GP, cpa, hl7, forward=True,
                                              to_party=OTHER["party_key"])
    assert client.post("/reliablemessaging/intermediary", data=body, headers=headers).status_code == 202
    wait_for(lambda: receiver.count() == 1, what="the receiver to get the forwarded message")

    acked = client.post("/reliablemessaging/reliablerequest", headers=ACK_HEADERS,
                        data=supplier_ack(message_id, from_party=OTHER["party_key"]))

    assert acked.status_code == 202
    wait_for(lambda: sender.count() == 1, what="the sender to get the relayed acknowledgement")
    relayed = sender.received[0]
    assert b"Acknowledgment" in relayed.body and f"<eb:RefToMessageId>{message_id}".encode() in relayed.body
    assert OTHER["party_key"].encode() in relayed.body  # acknowledged by the receiver, relayed by Spine
