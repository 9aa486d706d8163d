"""A whole MHS conversation with a running sandbox, over plain HTTP and over mutual TLS: two suppliers' MHSs (the
tests' own, tests/mhs_client.py) register in SDS, look Spine up there, query PDS synchronously, trace
asynchronously (express), update a patient reliably with acknowledgements both ways, and exchange a GP2GP request
and its answer forward reliable through Spine's intermediary. A well-behaved MHS leaves no failing finding."""

from __future__ import annotations

import ssl
import time

import pytest
import requests
from lxml import etree

from sandbox.web import tls
from tests.conftest import LiveServer, free_port
from tests.mhs_client import MhsClient
from tests.test_gp2gp_messaging import REQUESTER_ASID, ack_xml, ehr_request_xml
from tests.test_pds_hl7v3 import NEW_ADDRESS, advanced_trace, update_message
from tests.test_spine_messages import pds_query

PDS_QUERY = "urn:nhs:names:services:pdsquery"
PDS = "urn:nhs:names:services:pds"
GP2GP = "urn:nhs:names:services:gp2gp"
NS = {"SOAP": "http://schemas.xmlsoap.org/soap/envelope/", "hl7": "urn:hl7-org:v3",
      "eb": "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"}
TEMPLATE_ASID = b"918999198975"  # the sender ASID the PDS HL7v3 test payloads carry
MOLLOY = "9691813343"  # a patient the NHS's own MHS adaptor uses in its published PDS examples
REQUESTER = {"ods": "A12345", "party_key": "A12345-0000001", "asid": REQUESTER_ASID}
SENDER = {"ods": "C84001", "party_key": "C84001-0000002", "asid": "200000009999"}


@pytest.fixture(params=["http", "mutual-tls"])
def spine(request, tmp_path):
    """A running sandbox, and for TLS the material both sides use: the sandbox CA signs every certificate."""
    tls_dir = tmp_path / "tls"
    secure = request.param == "mutual-tls"
    server = LiveServer(tmp_path / "data", free_port(), extra_env={"SANDBOX_TLS_DIR": str(tls_dir)},
                        args=["--tls"] if secure else [])
    if secure:
        server.url = server.url.replace("http://", "https://")
    try:
        _wait(server, tls_dir if secure else None)
        yield server, (tls_dir if secure else None)
    finally:
        server.stop()


def _wait(server: LiveServer, tls_dir, timeout: float = 30) -> None:
    """Until the server answers its health check (under TLS with the tools' client certificate it makes at start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited: {server.process.stdout.read()}")
        options = {} if tls_dir is None else {"verify": str(tls_dir / "ca.crt"), "cert": (
            str(tls_dir / "clients" / "sandbox.crt"), str(tls_dir / "clients" / "sandbox.key"))}
        try:
            if requests.get(server.url + "/_sandbox/health", timeout=1, **options).ok:
                return
        except (requests.ConnectionError, requests.Timeout, OSError):
            time.sleep(0.1)
    raise TimeoutError("server did not become healthy")


def mhs_for(who: dict, base_url: str, tls_dir) -> MhsClient:
    if tls_dir is None:
        return MhsClient(base_url, who["ods"], who["party_key"], who["asid"])
    pair = tls.client_pair(tls_dir, who["party_key"], who["party_key"])
    return MhsClient(base_url, who["ods"], who["party_key"], who["asid"], verify=str(tls_dir / "ca.crt"),
                     cert=(str(pair.cert), str(pair.key)))


def listener_tls(tls_dir) -> ssl.SSLContext | None:
    """The supplier's inbound side under TLS: a server certificate from the sandbox CA, and the sandbox's own client
    certificate required, so the sandbox's deliveries are mutually authenticated too."""
    if tls_dir is None:
        return None
    server = tls.server_pair(tls_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(server.cert), str(server.key))
    context.load_verify_locations(str(tls_dir / "ca.crt"))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def register(mhs: MhsClient, endpoint: str, interactions: list[str], tls_dir) -> None:
    body = {"ods": mhs.ods, "asid": mhs.asid, "party_key": mhs.party_key, "endpoint": endpoint,
            "interactions": interactions, "retry_interval": "PT1S", "retries": 2}
    if tls_dir is not None:
        body["ca_file"] = str(tls_dir / "ca.crt")
    answer = requests.post(f"{mhs.base_url}/_sandbox/sds/registrations", json=body, timeout=10, verify=mhs.verify,
                           cert=mhs.cert)
    assert answer.status_code == 201, answer.text


def test_an_mhs_conversation_through_every_pattern(spine):
    server, tls_dir = spine
    requester, sender = (mhs_for(REQUESTER, server.url, tls_dir), mhs_for(SENDER, server.url, tls_dir))
    try:
        register(requester, requester.listen(listener_tls(tls_dir)),
                 [f"{PDS_QUERY}:QUPA_IN000011UK02", f"{PDS}:MCCI_IN010000UK13", f"{GP2GP}:MCCI_IN010000UK13",
                  f"{GP2GP}:RCMR_IN030000UK06"], tls_dir)
        register(sender, sender.listen(listener_tls(tls_dir)),
                 [f"{GP2GP}:RCMR_IN010000UK05", f"{GP2GP}:MCCI_IN010000UK13"], tls_dir)
        asid = requester.asid.encode()

        # SDS: where Spine takes a PDS retrieval, and Spine's own ASID.
        route = requester.route(f"{PDS_QUERY}:QUPA_IN040000UK32")
        assert route.address == f"{server.url}/sync-service"
        spine_asid = requester.spine_asid(f"{PDS_QUERY}:QUPA_IN040000UK32")
        assert spine_asid == "928942012545"

        # Synchronous: the retrieval is answered in the HTTP response, in the live shape.
        answer = requester.sync(route, PDS_QUERY, "QUPA_IN040000UK32", pds_query(MOLLOY, sender_asid=requester.asid),
                                spine_asid)
        assert answer.status_code == 200, answer.text[:800]
        found = etree.fromstring(answer.content).find(
            ".//SOAP:Body/hl7:retrievalQueryResponse/hl7:QUPA_IN050000UK32", NS)
        assert found is not None, answer.text[:800]
        assert MOLLOY in answer.text

        # Asynchronous express: accepted at once, the trace's answer delivered to the requester's listener.
        route = requester.route(f"{PDS_QUERY}:QUPA_IN000006UK02")
        assert route.address == f"{server.url}/reliablemessaging/queryrequest"
        trace = advanced_trace("MOLLOY", "1", "19390120").replace(TEMPLATE_ASID, asid)
        message_id, accepted = requester.send_async(route, PDS_QUERY, "QUPA_IN000006UK02", trace)
        assert accepted.status_code == 202, accepted.text[:800]
        [traced] = requester.wait_for("QUPA_IN000011UK02")
        assert MOLLOY.encode() in traced.hl7

        # Asynchronous reliable: Spine acknowledges the update in its answer, then delivers the application
        # acknowledgement reliably; the requester acknowledges that in its own HTTP answer.
        route = requester.route(f"{PDS}:PRPA_IN000203UK03")
        assert route.address == f"{server.url}/reliablemessaging/reliablerequest"
        assert route.ack_requested and route.duplicate_elimination
        update = update_message(MOLLOY, "1", before_id=NEW_ADDRESS).replace(TEMPLATE_ASID, asid)
        message_id, accepted = requester.send_async(route, PDS, "PRPA_IN000203UK03", update)
        assert accepted.status_code == 202, accepted.text[:800]
        ack = etree.fromstring(accepted.content)
        assert ack.findtext(".//eb:Acknowledgment/eb:RefToMessageId", namespaces=NS) == message_id
        [application_ack] = requester.wait_for("MCCI_IN010000UK13")
        assert application_ack.ack_requested
        assert b'typeCode="AA"' in application_ack.hl7, application_ack.hl7[:800]
        _wait_delivered(requester, application_ack.message_id)

        # Forward reliable: the requester's GP2GP request goes through Spine's intermediary to the other
        # supplier's MHS, whose acknowledgement Spine relays back; the answer travels the same way back.
        route = requester.route(f"{GP2GP}:RCMR_IN010000UK05", ods=SENDER["ods"])
        assert route.address == f"{server.url}/reliablemessaging/intermediary"
        request = ehr_request_xml(MOLLOY, sender_ods=SENDER["ods"], requester_ods=REQUESTER["ods"],
                                  receiver_asid=SENDER["asid"])
        request_id, accepted = requester.send_async(route, GP2GP, "RCMR_IN010000UK05", request,
                                                    to_party=SENDER["party_key"], forward=True)
        assert accepted.status_code in (200, 202), accepted.text[:800]
        [forwarded] = sender.wait_for("RCMR_IN010000UK05")
        assert forwarded.message_id == request_id
        relayed = requester.wait_for("Acknowledgment")
        assert any(r.acknowledgment_of == request_id for r in relayed), [r.body[:300] for r in relayed]

        back = sender.route(f"{GP2GP}:MCCI_IN010000UK13", ods=REQUESTER["ods"])
        # The sending practice refuses (GP2GP 06, patient not at surgery): its ASID sends, the requester's receives.
        refusal = (ack_xml(request_id, "AE", "06", receiver_asid="RECEIVER").replace(asid, sender.asid.encode())
                   .replace(b"RECEIVER", asid))
        answer_id, accepted = sender.send_async(back, GP2GP, "MCCI_IN010000UK13", refusal,
                                                to_party=REQUESTER["party_key"], forward=True)
        assert accepted.status_code in (200, 202), accepted.text[:800]
        gp2gp_answers = [r for r in requester.wait_for("MCCI_IN010000UK13", count=2) if r.message_id == answer_id]
        assert gp2gp_answers, "the sending practice's answer was not forwarded to the requester"

        # The evidence: every exchange journaled in the session the registrations bound the traffic to, and a
        # well-behaved MHS has no failing finding.
        journal = requests.get(f"{server.url}/_sandbox/exchanges", params={"service": "spine", "limit": 200},
                               timeout=10, verify=requester.verify, cert=requester.cert).json()
        exchanges = journal.get("exchanges", journal)
        operations = {e["operation"] for e in exchanges}
        assert {"QUPA_IN040000UK32", "QUPA_IN000006UK02", "PRPA_IN000203UK03", "RCMR_IN010000UK05",
                "deliver"} <= operations, operations
        failing = requests.get(f"{server.url}/_sandbox/exchanges", timeout=10, verify=requester.verify,
                               cert=requester.cert, params={"service": "spine", "outcome": "fail", "limit": 50}).json()
        failing = failing.get("exchanges", failing)
        assert failing == [], [(e["operation"], e.get("findings")) for e in failing]
    finally:
        requester.close()
        sender.close()


def _wait_delivered(mhs: MhsClient, message_id: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = requests.get(f"{mhs.base_url}/_sandbox/spine/deliveries", timeout=10, verify=mhs.verify,
                            cert=mhs.cert).json()["deliveries"]
        mine = [r for r in rows if r.get("message_id") == message_id]
        if mine and mine[0]["status"] == "delivered":
            return
        time.sleep(0.1)
    raise AssertionError(f"delivery of {message_id} not marked delivered: {mine}")
