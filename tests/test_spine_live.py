"""Spine core messaging over real sockets: a supplier's MHS (the tests' own, tests/mhs_client.py) registers in SDS,
looks Spine up there, queries PDS synchronously, and sends a reliable message whose application acknowledgement
the sandbox then delivers to the MHS's own listener."""

from __future__ import annotations

import requests
from lxml import etree

from tests.mhs_client import MhsClient
from tests.test_spine_messages import SUPPLIER, pds_query, wrapper

PDS_QUERY = "urn:nhs:names:services:pdsquery"
PDS = "urn:nhs:names:services:pds"
NS = {"SOAP": "http://schemas.xmlsoap.org/soap/envelope/", "hl7": "urn:hl7-org:v3",
      "eb": "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"}


def test_an_mhs_queries_pds_and_gets_its_reliable_answer_delivered(live_server):
    mhs = MhsClient(live_server.url, SUPPLIER["ods"], SUPPLIER["party_key"], SUPPLIER["asid"])
    endpoint = mhs.listen()
    try:
        registered = requests.post(f"{live_server.url}/_sandbox/sds/registrations", timeout=10, json={
            "ods": SUPPLIER["ods"], "asid": SUPPLIER["asid"], "party_key": SUPPLIER["party_key"],
            "endpoint": endpoint, "interactions": ["MCCI_IN010000UK13"]})
        assert registered.status_code in (200, 201), registered.text

        route = mhs.route(f"{PDS_QUERY}:QUPA_IN040000UK32")
        assert route.address == f"{live_server.url}/sync-service"
        answer = mhs.sync(route, PDS_QUERY, "QUPA_IN040000UK32", pds_query(), mhs.spine_asid(
            f"{PDS_QUERY}:QUPA_IN040000UK32"))
        assert answer.status_code == 200, answer.text[:500]
        assert etree.fromstring(answer.content).find(".//hl7:retrievalQueryResponse/hl7:QUPA_IN050000UK32", NS) \
            is not None

        route = mhs.route(f"{PDS}:PRPA_IN000203UK03")
        assert route.address == f"{live_server.url}/reliablemessaging/reliablerequest"
        message_id, accepted = mhs.send_async(route, PDS, "PRPA_IN000203UK03",
                                              wrapper("PRPA_IN000203UK03", sender_asid=SUPPLIER["asid"]))
        assert accepted.status_code == 202, accepted.text[:500]
        ack = etree.fromstring(accepted.content)
        assert ack.findtext(".//eb:Acknowledgment/eb:RefToMessageId", namespaces=NS) == message_id
        [delivered] = mhs.wait_for("MCCI_IN010000UK13")
        assert delivered.text("//eb:RefToMessageId") == message_id
    finally:
        mhs.close()
