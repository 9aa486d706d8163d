"""Each Spine message check, pass and fail: a well-formed reliable ebXML message passes every one; each mutation
of it fails (or warns about) exactly the requirement it breaks, with where, and every problem of a message with
many is reported at once."""

from __future__ import annotations

import pytest

from tests.test_spine_messages import SUPPLIER, ebxml_request, findings, register, spine_cpa, wrapper

PDS = "urn:nhs:names:services:pds"
INTERACTION = "PRPA_IN000203UK03"
URL = "/reliablemessaging/reliablerequest"


def good(sandbox, **changes):
    register(sandbox)
    hl7 = wrapper(INTERACTION, sender_asid=SUPPLIER["asid"], **changes.pop("hl7", {}))
    return ebxml_request(INTERACTION, PDS, spine_cpa(sandbox, INTERACTION), hl7, reliable=True, **changes)


def send(client, headers, body, url=URL):
    response = client.post(url, data=body, headers=headers)
    by_requirement: dict[str, set[str]] = {}
    for f in findings(client, response):
        by_requirement.setdefault(f["requirement"], set()).add(f["outcome"])
    return response, by_requirement


CHECKED = ["SPINE-MIME-001", "SPINE-MIME-002", "SPINE-MIME-003", "SPINE-MIME-004", "SPINE-MIME-005", "SPINE-MIME-006",
           "SPINE-EBX-001", "SPINE-EBX-002", "SPINE-EBX-003", "SPINE-EBX-004", "SPINE-EBX-005", "SPINE-EBX-006",
           "SPINE-EBX-007", "SPINE-EBX-008", "SPINE-EBX-009", "SPINE-EBX-010", "SPINE-EBX-011", "SPINE-EBX-012",
           "SPINE-EBX-014", "SPINE-HL7-001", "SPINE-HL7-002", "SPINE-HL7-003", "SPINE-HL7-004", "SPINE-HL7-005",
           "SPINE-HL7-006", "SPINE-HL7-007", "SPINE-HL7-008", "SPINE-HL7-009"]


def test_a_well_formed_reliable_message_passes_every_check(client, sandbox):
    headers, body, _ = good(sandbox)
    response, outcomes = send(client, headers, body)
    assert response.status_code == 202
    for requirement in CHECKED:
        assert outcomes.get(requirement) == {"pass"}, (requirement, outcomes.get(requirement))


def _replace(old: bytes, new: bytes):
    def mutate(headers, body):
        assert old in body, old
        return headers, body.replace(old, new, 1)
    return mutate


def _header(name: str, value: str):
    def mutate(headers, body):
        return {**headers, name: value}, body
    return mutate


MUTATIONS = {
    "SPINE-MIME-001": ("fail", _header("Content-Type", "text/plain")),
    "SPINE-MIME-002": ("fail", _header("Content-Type", 'multipart/related; boundary="=_MIME-Boundary"; '
                                                      'start="<ebXMLHeader@spine.nhs.uk>"')),
    "SPINE-MIME-003": ("fail", _replace(b"Content-Type: text/xml; charset=UTF-8\r\nContent-Transfer",
                                        b"Content-Type: image/png\r\nContent-Transfer")),
    "SPINE-MIME-004": ("fail", _replace(b"Content-Type: text/xml; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit"
                                        b"\r\n\r\n<PRPA", b"Content-Type: text/xml; charset=ISO-8859-1\r\n"
                                        b"Content-Transfer-Encoding: 8bit\r\n\r\n<PRPA")),
    "SPINE-MIME-006": ("fail", _replace(b"Content-Id: <ebXMLHeader@spine.nhs.uk>\r\n", b"")),
    "SPINE-EBX-002": ("fail", _replace(SUPPLIER["party_key"].encode(), b"NOPE-123456")),
    "SPINE-EBX-003": ("fail", _replace(b">YES-0000806<", b">YEA-0000806<")),
    "SPINE-EBX-004": ("fail", _replace(b"<eb:CPAId>", b"<eb:CPAId>X")),
    "SPINE-EBX-005": ("warning", lambda h, b: (h, _conversation(b))),
    "SPINE-EBX-006": ("fail", lambda h, b: (h, _message_id(b))),
    "SPINE-EBX-008": ("fail", lambda h, b: (h, _timestamp(b))),
    "SPINE-EBX-009": ("fail", _header("SOAPAction", "urn:nhs:names:services:pds/SOMETHING_ELSE")),
    "SPINE-EBX-010": ("fail", _replace(b'xlink:href="cid:', b'xlink:href="cid:x')),
    "SPINE-EBX-011": ("fail", _replace(b"<eb:DuplicateElimination/>", b"")),
    "SPINE-EBX-012": ("fail", _replace(b'eb:MessageHeader SOAP:mustUnderstand="1" eb:version="2.0"',
                                       b'eb:MessageHeader SOAP:mustUnderstand="1" eb:version="1.0"')),
    "SPINE-HL7-002": ("fail", lambda h, b: (h, _hl7_id(b))),
    "SPINE-HL7-003": ("fail", _replace(b'<creationTime value="', b'<creationTime value="x')),
    "SPINE-HL7-004": ("fail", _replace(b'root="2.16.840.1.113883.2.1.3.2.4.12"', b'root="1.2.3"')),
    "SPINE-HL7-005": ("fail", _replace(b'<versionCode code="V3NPfIT3.0"/>', b'<versionCode code="2.0"/>')),
    "SPINE-HL7-006": ("fail", _replace(b'<processingCode code="P"/>', b'<processingCode code="D"/>')),
    "SPINE-HL7-007": ("fail", _replace(b'<acceptAckCode code="NE"/>', b'<acceptAckCode code="XX"/>')),
    "SPINE-HL7-008": ("fail", _replace(f'<communicationFunctionSnd typeCode="SND"><device classCode="DEV" '
                                       f'determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107" extension="'
                                       f'{SUPPLIER["asid"]}"'.encode(),
                                       b'<communicationFunctionSnd typeCode="SND"><device classCode="DEV" '
                                       b'determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107" '
                                       b'extension="111111111111"')),
    "SPINE-HL7-009": ("fail", {"author": False}),
}


def _between(body: bytes, start: bytes, end: bytes) -> bytes:
    return body.split(start, 1)[1].split(end, 1)[0]


def _conversation(body: bytes) -> bytes:
    return body.replace(b"<eb:ConversationId>" + _between(body, b"<eb:ConversationId>", b"<"),
                        b"<eb:ConversationId>conversation-1")


def _message_id(body: bytes) -> bytes:
    return body.replace(b"<eb:MessageId>" + _between(body, b"<eb:MessageId>", b"<"), b"<eb:MessageId>msg-1")


def _timestamp(body: bytes) -> bytes:
    return body.replace(b"<eb:Timestamp>" + _between(body, b"<eb:Timestamp>", b"<"), b"<eb:Timestamp>yesterday")


def _hl7_id(body: bytes) -> bytes:
    return body.replace(b'<id root="' + _between(body, b'<PRPA_IN000203UK03 xmlns="urn:hl7-org:v3"><id root="', b'"'),
                        b'<id root="not-a-uuid')


@pytest.mark.parametrize("requirement", sorted(MUTATIONS))
def test_each_check_fails_the_message_that_breaks_it(client, sandbox, requirement):
    outcome, mutate = MUTATIONS[requirement]
    if isinstance(mutate, dict):  # a change to the HL7 message itself
        headers, body, _ = good(sandbox, hl7=mutate)
    else:
        headers, body, _ = good(sandbox)
        headers, body = mutate(headers, body)
    response, outcomes = send(client, headers, body)
    assert outcome in outcomes.get(requirement, set()), (requirement, outcomes)
    located = [f for f in findings(client, response) if f["requirement"] == requirement and f["outcome"] == outcome]
    assert all(f["location"] for f in located) or requirement == "SPINE-EBX-002"


def test_the_pattern_endpoint_and_the_payload_interaction_are_checked(client, sandbox):
    headers, body, _ = good(sandbox)
    response, outcomes = send(client, headers, body, url="/reliablemessaging/queryrequest")
    assert "fail" in outcomes["SPINE-EBX-014"]
    headers, body, _ = good(sandbox)
    body = body.replace(b"<PRPA_IN000203UK03 ", b"<PRPA_IN000204UK03 ").replace(b"</PRPA_IN000203UK03>",
                                                                            b"</PRPA_IN000204UK03>")
    response, outcomes = send(client, headers, body)
    assert response.status_code == 500 and "fail" in outcomes["SPINE-HL7-001"]


def test_many_problems_are_all_reported_and_all_refusals_answered_at_once(client, sandbox):
    headers, body, _ = good(sandbox)
    for _, mutate in (MUTATIONS["SPINE-EBX-004"], MUTATIONS["SPINE-EBX-006"], MUTATIONS["SPINE-HL7-005"],
                      MUTATIONS["SPINE-EBX-002"], MUTATIONS["SPINE-EBX-011"], MUTATIONS["SPINE-HL7-006"]):
        headers, body = mutate(headers, body)
    response, outcomes = send(client, headers, body)
    for requirement in ("SPINE-EBX-002", "SPINE-EBX-004", "SPINE-EBX-006", "SPINE-HL7-005", "SPINE-HL7-006",
                        "SPINE-EBX-011"):
        assert "fail" in outcomes[requirement], requirement
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "501319:Unknown eb:CPAId" in text and "Unknown eb:From PartyId NOPE-123456" in text  # one ErrorList
