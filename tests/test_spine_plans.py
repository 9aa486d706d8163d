"""Certifying an MHS against a Spine plan, as an assessor would: a session bound to `spine-pds-hl7v3`, the
supplier's system registered in it (which binds its Spine traffic to the session), every scenario of the plan run
by a well-behaved client, then the verdict: incomplete until the manual requirements are attested, then pass."""

from __future__ import annotations

import time

from lxml import etree

from tests.test_spine_messages import SUPPLIER, pds_query, soap_request, sync_headers

NS = {"hl7": "urn:hl7-org:v3", "SOAP-ENV": "http://schemas.xmlsoap.org/soap/envelope/",
      "nasp": "http://national.carerecords.nhs.uk/schema/"}
RETRIABLE_FAULTS = {"200", "206", "208"}


class SyncClient:
    """Retrieves patients the way a careful MHS does: retries a retriable fault or a 503 (after Retry-After) with
    the same wsa:MessageID, and never retries a final fault."""

    def __init__(self, client):
        self.client = client

    def retrieve(self, nhs_number: str) -> tuple[int, etree._Element | None]:
        hl7 = pds_query(nhs_number)
        body = soap_request(hl7, message_id=_message_id(hl7))
        for _ in range(3):
            response = self.client.post("/sync-service", data=body, headers=sync_headers())
            if response.status_code == 503:
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            root = etree.fromstring(response.data) if response.data else None
            codes = root.xpath("//nasp:errorCode/text()", namespaces=NS) if root is not None else []
            if response.status_code == 500 and set(codes) & RETRIABLE_FAULTS:
                continue
            return response.status_code, root
        return response.status_code, None


def _message_id(hl7: bytes) -> str:
    return etree.fromstring(hl7).find("hl7:id", NS).get("root")


def test_an_mhs_is_certified_against_the_synchronous_pds_plan(client):
    made = client.post("/_sandbox/sessions", json={"plan": "spine-pds-hl7v3", "supplier": "Acme Health",
                                                   "system": "Acme MHS 2.1"})
    assert made.status_code == 201, made.get_data(as_text=True)
    session = made.get_json()["session"]
    registered = client.post(f"/_sandbox/sds/registrations?session={session}", json={
        **SUPPLIER, "endpoint": "http://127.0.0.1:9/inbound", "interactions": ["QUPA_IN050000UK32"]})
    assert registered.status_code == 201, registered.get_data(as_text=True)

    mhs = SyncClient(client)
    status, answer = mhs.retrieve("9000000009")
    assert status == 200 and answer.find(".//hl7:retrievalQueryResponse/hl7:QUPA_IN050000UK32", NS) is not None
    assert mhs.retrieve("9999000118")[0] == 200  # fault 206 once, then answered on the retry
    assert mhs.retrieve("9999000126")[0] == 500  # fault 300: final, not retried
    status, answer = mhs.retrieve("9999000134")
    assert status == 200 and answer.find(".//hl7:acknowledgement", NS).get("typeCode") == "AE"
    assert mhs.retrieve("9999000169")[0] == 200  # 503 with Retry-After, then answered
    assert mhs.retrieve("9999000142")[0] == 200  # the slow answer

    progress = client.get(f"/_sandbox/sessions/{session}").get_json()
    failed = [r for r in progress["requirements"] if r["verdict"] == "fail"]
    assert failed == [], failed
    assert progress["verdict"] == "incomplete", progress["reasons"]
    assert set(progress["awaiting_attestation"]) == {"SPINE-BEH-002", "SPINE-SCH-001"}
    for requirement in progress["awaiting_attestation"]:
        attested = client.post(f"/_sandbox/sessions/{session}/attestations", json={
            "requirement": requirement, "verdict": "pass", "by": "A. Assessor", "note": "Seen in the MHS's logs."})
        assert attested.status_code == 201
    final = client.get(f"/_sandbox/sessions/{session}").get_json()
    assert final["verdict"] == "pass", final["reasons"]
    report = client.get(f"/_sandbox/sessions/{session}/report")
    assert report.status_code == 200 and report.get_json()["verdict"] == "pass"
