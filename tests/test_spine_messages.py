"""The tests' own Spine messages, written from the published facts (MHS adaptor templates, the EIS shapes) and
independent of sandbox.messaging: HL7v3 requests, synchronous SOAP envelopes and ebXML MIME packages, and a
supplier's SDS registration. The tests at the end prove the builders make messages the sandbox accepts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sandbox.services.sds.directory import Registration, directory

SPINE_ASID = "928942012545"
SPINE_PARTY_KEY = "YES-0000806"
ASID_ROOT = "1.2.826.0.1285.0.2.0.107"
BOUNDARY = "--=_MIME-Boundary"
PARTY_TYPE = "urn:nhs:names:partyType:ocs+serviceInstance"
TO_PARTY_MSH = "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"
NEXT_MSH = "urn:oasis:names:tc:ebxml-msg:actor:nextMSH"
NEXT_ACTOR = "http://schemas.xmlsoap.org/soap/actor/next"
PDS_QUERY = "urn:nhs:names:services:pdsquery"
SUPPLIER = {"ods": "A20047", "asid": "200000001234", "party_key": "A20047-821870"}
OTHER = {"ods": "B86041", "asid": "200000005678", "party_key": "B86041-822103"}


def new_id() -> str:
    return str(uuid.uuid4()).upper()


def hl7_ts() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def wrapper(interaction: str, *, sender_asid: str, receiver_asid: str = SPINE_ASID, message_id: str | None = None,
            version: str = "V3NPfIT3.0", accept_ack: str = "NE", body: str = "", author: bool = True,
            processing: str = "P") -> bytes:
    """An HL7 message with its transmission wrapper and ControlActEvent; `body` goes inside the ControlActEvent."""
    author1 = (f'<author1 typeCode="AUT"><AgentSystemSDS classCode="AGNT"><agentSystemSDS classCode="DEV" '
               f'determinerCode="INSTANCE"><id root="{ASID_ROOT}" extension="{sender_asid}"/></agentSystemSDS>'
               "</AgentSystemSDS></author1>") if author else ""
    return (f'<{interaction} xmlns="urn:hl7-org:v3"><id root="{message_id or new_id()}"/>'
            f'<creationTime value="{hl7_ts()}"/><versionCode code="{version}"/>'
            f'<interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="{interaction}"/>'
            f'<processingCode code="{processing}"/><processingModeCode code="T"/>'
            f'<acceptAckCode code="{accept_ack}"/>'
            f'<communicationFunctionRcv typeCode="RCV"><device classCode="DEV" determinerCode="INSTANCE">'
            f'<id root="{ASID_ROOT}" extension="{receiver_asid}"/></device></communicationFunctionRcv>'
            f'<communicationFunctionSnd typeCode="SND"><device classCode="DEV" determinerCode="INSTANCE">'
            f'<id root="{ASID_ROOT}" extension="{sender_asid}"/></device></communicationFunctionSnd>'
            f'<ControlActEvent classCode="CACT" moodCode="EVN">{author1}{body}</ControlActEvent>'
            f"</{interaction}>").encode()


def pds_query(nhs_number: str = "9000000009", *, sender_asid: str = SUPPLIER["asid"], **kwargs) -> bytes:
    """QUPA_IN040000UK32, the PDS Retrieval Query, for one NHS number."""
    query = ('<query><historicDataIndicator><value code="0" codeSystem="2.16.840.1.113883.2.1.3.2.4.17.36"/>'
             "<semanticsText>historicDataIndicator</semanticsText></historicDataIndicator>"
             f'<person.id><value root="2.16.840.1.113883.2.1.4.1" extension="{nhs_number}"/>'
             "<semanticsText>person.id</semanticsText></person.id>"
             "<retrievalItem><semanticsText>person.allData</semanticsText></retrievalItem></query>")
    return wrapper("QUPA_IN040000UK32", sender_asid=sender_asid, body=query, **kwargs)


def soap_request(hl7: bytes, *, interaction: str = "QUPA_IN040000UK32", service: str = PDS_QUERY,
                 message_id: str | None = None, sender_asid: str = SUPPLIER["asid"],
                 receiver_asid: str = SPINE_ASID, to: str = "https://sandbox.example/sync-service") -> bytes:
    """A synchronous SOAP 1.1 request as the MHS adaptor sends it."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:hl7="urn:hl7-org:v3">'
        f"<SOAP-ENV:Header><wsa:MessageID>uuid:{message_id or new_id()}</wsa:MessageID>"
        f"<wsa:Action>{service}/{interaction}</wsa:Action><wsa:To>{to}</wsa:To>"
        "<wsa:From><wsa:Address>https://supplier.example/</wsa:Address></wsa:From>"
        f'<hl7:communicationFunctionRcv><hl7:device><hl7:id root="{ASID_ROOT}" extension="{receiver_asid}"/>'
        "</hl7:device></hl7:communicationFunctionRcv>"
        f'<hl7:communicationFunctionSnd><hl7:device><hl7:id root="{ASID_ROOT}" extension="{sender_asid}"/>'
        "</hl7:device></hl7:communicationFunctionSnd>"
        "<wsa:ReplyTo><wsa:Address>https://supplier.example/</wsa:Address></wsa:ReplyTo></SOAP-ENV:Header>"
        "<SOAP-ENV:Body>").encode() + hl7 + b"</SOAP-ENV:Body></SOAP-ENV:Envelope>"


def sync_headers(interaction: str = "QUPA_IN040000UK32", service: str = PDS_QUERY, **extra) -> dict:
    return {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": f"{service}/{interaction}", **extra}


def ebxml_header(*, from_party: str, to_party: str, cpa_id: str, service: str, action: str, message_id: str,
                 conversation_id: str | None = None, duplicate_elimination: bool = False,
                 ack_requested: bool = False, ack_actor: str = TO_PARTY_MSH, sync_reply: bool = False,
                 manifest_href: str | None = None, version: str = "2.0") -> str:
    extras = ""
    if ack_requested:
        extras += (f'<eb:AckRequested SOAP:mustUnderstand="1" eb:version="2.0" eb:signed="false" '
                   f'SOAP:actor="{ack_actor}"/>')
    if sync_reply:
        extras += f'<eb:SyncReply SOAP:mustUnderstand="1" eb:version="2.0" SOAP:actor="{NEXT_ACTOR}"/>'
    href = manifest_href or f"cid:{message_id}@spine.nhs.uk"
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:eb="http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd" '
            'xmlns:hl7ebxml="urn:hl7-org:transport/ebXML/DSTUv1.0" xmlns:xlink="http://www.w3.org/1999/xlink">'
            f'<SOAP:Header><eb:MessageHeader SOAP:mustUnderstand="1" eb:version="{version}">'
            f'<eb:From><eb:PartyId eb:type="{PARTY_TYPE}">{from_party}</eb:PartyId></eb:From>'
            f'<eb:To><eb:PartyId eb:type="{PARTY_TYPE}">{to_party}</eb:PartyId></eb:To>'
            f"<eb:CPAId>{cpa_id}</eb:CPAId><eb:ConversationId>{conversation_id or message_id}</eb:ConversationId>"
            f"<eb:Service>{service}</eb:Service><eb:Action>{action}</eb:Action>"
            f"<eb:MessageData><eb:MessageId>{message_id}</eb:MessageId>"
            f"<eb:Timestamp>{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}</eb:Timestamp></eb:MessageData>"
            f"{'<eb:DuplicateElimination/>' if duplicate_elimination else ''}</eb:MessageHeader>{extras}"
            '</SOAP:Header><SOAP:Body><eb:Manifest SOAP:mustUnderstand="1" eb:version="2.0">'
            f'<eb:Reference xlink:href="{href}">'
            '<eb:Description xml:lang="en">HL7 payload</eb:Description>'
            '<hl7ebxml:Payload style="HL7" encoding="XML" version="3.0"/></eb:Reference></eb:Manifest>'
            "</SOAP:Body></SOAP:Envelope>")


def multipart(header: str, message_id: str, hl7: bytes, *, payload_type: str = "text/xml; charset=UTF-8",
              content_type: str | None = None) -> tuple[str, bytes]:
    body = (f"{BOUNDARY}\r\nContent-Id: <ebXMLHeader@spine.nhs.uk>\r\nContent-Type: text/xml; charset=UTF-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{header}\r\n"
            f"{BOUNDARY}\r\nContent-Id: <{message_id}@spine.nhs.uk>\r\nContent-Type: {payload_type}\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + hl7 + f"\r\n{BOUNDARY}--\r\n".encode()
    return (content_type or f'multipart/related; boundary="{BOUNDARY[2:]}"; type="text/xml"; '
            'start="<ebXMLHeader@spine.nhs.uk>"'), body


def ebxml_request(interaction: str, service: str, cpa_id: str, hl7: bytes, *, message_id: str | None = None,
                  from_party: str = SUPPLIER["party_key"], to_party: str = SPINE_PARTY_KEY, reliable: bool = False,
                  forward: bool = False, sync_reply: bool | None = None, **header) -> tuple[dict, bytes, str]:
    """(headers, body, MessageId) of an ebXML request as the MHS adaptor sends it for the pattern."""
    message_id = message_id or new_id()
    if sync_reply is None:
        sync_reply = not forward
    text = ebxml_header(from_party=from_party, to_party=to_party, cpa_id=cpa_id, service=service, action=interaction,
                        message_id=message_id, duplicate_elimination=reliable or forward,
                        ack_requested=reliable or forward, ack_actor=NEXT_MSH if forward else TO_PARTY_MSH,
                        sync_reply=sync_reply, **header)
    content_type, body = multipart(text, message_id, hl7)
    return {"Content-Type": content_type, "SOAPAction": f"{service}/{interaction}"}, body, message_id


def register(sandbox, session: str = "default", *, who: dict = SUPPLIER, endpoint: str = "http://127.0.0.1:9/inbound",
             interactions: tuple[str, ...] = (), **extra) -> Registration:
    """The supplier's own system in SDS for the session (party key, ASID, where its MHS listens)."""
    return directory(sandbox).register(session, Registration(
        ods=who["ods"], asid=who["asid"], party_key=who["party_key"], endpoint=endpoint,
        interactions=tuple(interactions), **extra))


def spine_cpa(sandbox, interaction: str, base_url: str = "http://localhost") -> str:
    """The CPA id SDS holds for Spine's MHS and the interaction."""
    entries = directory(sandbox).endpoints("default", base_url=base_url, party_key=SPINE_PARTY_KEY,
                                           interaction=interaction)
    assert entries, f"SDS has no Spine entry for {interaction}"
    return entries[0].cpa_id


def findings(client, response) -> list[dict]:
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    return exchange["findings"]


def outcomes(client, response, requirement: str) -> set[str]:
    return {f["outcome"] for f in findings(client, response) if f["requirement"] == requirement}


# --- the builders' own messages are the ones the sandbox accepts ---------------------------------------------------

def test_a_well_formed_sync_request_has_no_failures(client, sandbox):
    register(sandbox)
    response = client.post("/sync-service", data=soap_request(pds_query()), headers=sync_headers())
    failed = [f for f in findings(client, response) if f["outcome"] == "fail"]
    assert response.status_code == 200, response.data
    assert failed == []
