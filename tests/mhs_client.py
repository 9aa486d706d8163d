"""A small MHS (Message Handling System) of the tests' own, written from the Spine messaging specifications and
independent of the sandbox's own messaging code: it looks routes up in SDS, sends synchronous SOAP and
asynchronous ebXML, and runs an inbound listener that receives what Spine delivers and acknowledges it, the way a
supplier's MHS does. Its inbound side can be told to drop, delay or duplicate, to prove the sandbox's reliability."""

from __future__ import annotations

import email.parser
import email.policy
import http.server
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

import requests
from lxml import etree

SDS_BASE = "/spine-directory/FHIR/R4"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SVC_SYSTEM = "https://fhir.nhs.uk/Id/nhsServiceInteractionId"
PK_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsPartyKey"
CPA_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsCPAId"
ASID_SYSTEM = "https://fhir.nhs.uk/Id/nhsSpineASID"
RELIABILITY = "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-ReliabilityConfiguration"
NS = {"SOAP": "http://schemas.xmlsoap.org/soap/envelope/",
      "eb": "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd",
      "hl7": "urn:hl7-org:v3", "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing"}
BOUNDARY = "--=_MIME-Boundary"
PARTY_TYPE = "urn:nhs:names:partyType:ocs+serviceInstance"
TO_PARTY_MSH = "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"
NEXT_MSH = "urn:oasis:names:tc:ebxml-msg:actor:nextMSH"
NEXT_ACTOR = "http://schemas.xmlsoap.org/soap/actor/next"


def new_id() -> str:
    return str(uuid.uuid4()).upper()


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Route:
    """What SDS says about one service interaction at one organisation: where to send it and how."""

    address: str
    party_key: str
    cpa_id: str
    reliability: dict[str, str | int]

    @property
    def ack_requested(self) -> bool:
        return self.reliability.get("nhsMHSAckRequested") == "always"

    @property
    def duplicate_elimination(self) -> bool:
        return self.reliability.get("nhsMHSDuplicateElimination") == "always"


@dataclass
class Received:
    """One message the inbound listener received."""

    headers: dict[str, str]
    body: bytes
    header: etree._Element  # the ebXML SOAP envelope
    hl7: bytes | None

    def text(self, xpath: str) -> str | None:
        found = self.header.xpath(f"string({xpath})", namespaces=NS)
        return found or None

    @property
    def message_id(self) -> str | None:
        return self.text("//eb:MessageData/eb:MessageId")

    @property
    def action(self) -> str | None:
        return self.text("//eb:MessageHeader/eb:Action")

    @property
    def ack_requested(self) -> bool:
        return bool(self.header.xpath("//eb:AckRequested", namespaces=NS))

    @property
    def acknowledgment_of(self) -> str | None:
        return self.text("//eb:Acknowledgment/eb:RefToMessageId")


def split_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related body, through the standard library's MIME parser."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    if not message.is_multipart():
        return [({"content-type": content_type}, body)]
    return [({k.lower(): v for k, v in part.items()}, part.get_payload(decode=True) or b"")
            for part in message.iter_parts()]


def parse_ebxml(content_type: str, body: bytes) -> tuple[etree._Element, bytes | None]:
    parts = split_multipart(content_type, body)
    header = etree.fromstring(parts[0][1], etree.XMLParser(resolve_entities=False, no_network=True))
    return header, (parts[1][1] if len(parts) > 1 else None)


def ebxml_envelope(*, from_party: str, to_party: str, cpa_id: str, conversation_id: str, service: str,
                   action: str, message_id: str, ref_to: str | None = None, duplicate_elimination: bool = False,
                   ack_requested: bool = False, sync_reply: bool = False, manifest: bool = True,
                   acknowledgment_of: str | None = None) -> str:
    ref = f"<eb:RefToMessageId>{ref_to}</eb:RefToMessageId>" if ref_to else ""
    header_extras = ""
    if ack_requested:
        header_extras += (f'<eb:AckRequested SOAP:mustUnderstand="1" eb:version="2.0" eb:signed="false" '
                          f'SOAP:actor="{TO_PARTY_MSH}"/>')
    if sync_reply:
        header_extras += f'<eb:SyncReply SOAP:mustUnderstand="1" eb:version="2.0" SOAP:actor="{NEXT_ACTOR}"/>'
    if acknowledgment_of:
        header_extras += (f'<eb:Acknowledgment SOAP:mustUnderstand="1" eb:version="2.0" SOAP:actor="{TO_PARTY_MSH}">'
                          f"<eb:Timestamp>{timestamp()}</eb:Timestamp>"
                          f"<eb:RefToMessageId>{acknowledgment_of}</eb:RefToMessageId>"
                          f'<eb:From><eb:PartyId eb:type="{PARTY_TYPE}">{from_party}</eb:PartyId></eb:From>'
                          "</eb:Acknowledgment>")
    body = "<SOAP:Body/>"
    if manifest:
        body = ('<SOAP:Body><eb:Manifest SOAP:mustUnderstand="1" eb:version="2.0">'
                f'<eb:Reference xlink:href="cid:{message_id}@spine.nhs.uk">'
                '<eb:Schema eb:location="http://www.nhsia.nhs.uk/schemas/HL7-Message.xsd" eb:version="1.0"/>'
                '<eb:Description xml:lang="en">HL7 payload</eb:Description>'
                '<hl7ebxml:Payload style="HL7" encoding="XML" version="3.0"/>'
                "</eb:Reference></eb:Manifest></SOAP:Body>")
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:eb="http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd" '
            'xmlns:hl7ebxml="urn:hl7-org:transport/ebXML/DSTUv1.0" xmlns:xlink="http://www.w3.org/1999/xlink">'
            '<SOAP:Header><eb:MessageHeader SOAP:mustUnderstand="1" eb:version="2.0">'
            f'<eb:From><eb:PartyId eb:type="{PARTY_TYPE}">{from_party}</eb:PartyId></eb:From>'
            f'<eb:To><eb:PartyId eb:type="{PARTY_TYPE}">{to_party}</eb:PartyId></eb:To>'
            f"<eb:CPAId>{cpa_id}</eb:CPAId><eb:ConversationId>{conversation_id}</eb:ConversationId>"
            f"<eb:Service>{service}</eb:Service><eb:Action>{action}</eb:Action>"
            f"<eb:MessageData><eb:MessageId>{message_id}</eb:MessageId><eb:Timestamp>{timestamp()}</eb:Timestamp>"
            f"{ref}</eb:MessageData>{'<eb:DuplicateElimination/>' if duplicate_elimination else ''}"
            f"</eb:MessageHeader>{header_extras}</SOAP:Header>{body}</SOAP:Envelope>")


def multipart(envelope: str, message_id: str, hl7: bytes) -> tuple[str, bytes]:
    parts = [f"{BOUNDARY}\r\nContent-Id: <ebXMLHeader@spine.nhs.uk>\r\nContent-Type: text/xml; charset=UTF-8\r\n"
             f"Content-Transfer-Encoding: 8bit\r\n\r\n{envelope}\r\n".encode(),
             f"{BOUNDARY}\r\nContent-Id: <{message_id}@spine.nhs.uk>\r\nContent-Type: text/xml; charset=UTF-8\r\n"
             f"Content-Transfer-Encoding: 8bit\r\n\r\n".encode() + hl7 + b"\r\n",
             f"{BOUNDARY}--\r\n".encode()]
    content_type = (f'multipart/related; boundary="{BOUNDARY[2:]}"; type="text/xml"; '
                    'start="<ebXMLHeader@spine.nhs.uk>"')
    return content_type, b"".join(parts)


@dataclass
class InboundBehaviour:
    """How the listener answers what Spine delivers: acknowledge (default), drop the first N, answer late."""

    drop_first: int = 0  # answer 500 to the first N deliveries
    delay_s: float = 0.0  # wait this long before answering each delivery
    ack_twice: bool = False  # also POST a second acknowledgement to Spine afterwards
    ack_in_response: bool = True  # acknowledge in the HTTP answer (else POST the ack to Spine later)


@dataclass
class MhsClient:
    """One supplier system: its identity, its Spine base URL, and an inbound listener."""

    base_url: str
    ods: str
    party_key: str
    asid: str
    session: str | None = None
    verify: str | bool = True
    cert: tuple[str, str] | None = None
    behaviour: InboundBehaviour = field(default_factory=InboundBehaviour)
    received: list[Received] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- SDS ------------------------------------------------------------------------------------------------
    def _get(self, path: str, **params):
        response = requests.get(self.base_url + SDS_BASE + path, params=params, headers=self._headers(),
                                verify=self.verify, cert=self.cert, timeout=10)
        response.raise_for_status()
        return response.json()

    def _headers(self, extra: dict | None = None) -> dict:
        headers = {"X-Correlation-ID": str(uuid.uuid4()), **(extra or {})}
        if self.session:
            headers["X-Sandbox-Session"] = self.session
        return headers

    def route(self, service_interaction: str, ods: str = "YES", party_key: str | None = None) -> Route:
        params = {"organization": f"{ODS_SYSTEM}|{ods}", "identifier": [f"{SVC_SYSTEM}|{service_interaction}"]}
        if party_key:
            params["identifier"].append(f"{PK_SYSTEM}|{party_key}")
        bundle = self._get("/Endpoint?" + urlencode(params, doseq=True))
        if not bundle["entry"]:
            raise LookupError(f"SDS has no endpoint for {service_interaction} at {ods}")
        endpoint = bundle["entry"][0]["resource"]
        ids = {i["system"]: i["value"] for i in endpoint["identifier"]}
        reliability = {}
        for ext in endpoint.get("extension", []):
            if ext["url"] == RELIABILITY:
                reliability = {e["url"]: e.get("valueString", e.get("valueInteger")) for e in ext["extension"]}
        return Route(endpoint["address"], ids[PK_SYSTEM], ids[CPA_SYSTEM], reliability)

    def spine_asid(self, service_interaction: str, ods: str = "YES") -> str:
        params = {"organization": f"{ODS_SYSTEM}|{ods}", "identifier": f"{SVC_SYSTEM}|{service_interaction}"}
        bundle = self._get("/Device?" + urlencode(params))
        ids = {i["system"]: i["value"] for i in bundle["entry"][0]["resource"]["identifier"]}
        return ids[ASID_SYSTEM]

    # --- sending --------------------------------------------------------------------------------------------
    def sync(self, route: Route, service: str, interaction: str, hl7: bytes, spine_asid: str) -> requests.Response:
        message_id = new_id()
        envelope = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:hl7="urn:hl7-org:v3">'
            f"<SOAP-ENV:Header><wsa:MessageID>uuid:{message_id}</wsa:MessageID>"
            f"<wsa:Action>{service}/{interaction}</wsa:Action><wsa:To>{route.address}</wsa:To>"
            f"<wsa:From><wsa:Address>{self.base_url}</wsa:Address></wsa:From>"
            f'<hl7:communicationFunctionRcv><hl7:device><hl7:id root="1.2.826.0.1285.0.2.0.107" '
            f'extension="{spine_asid}"/></hl7:device></hl7:communicationFunctionRcv>'
            f'<hl7:communicationFunctionSnd><hl7:device><hl7:id root="1.2.826.0.1285.0.2.0.107" '
            f'extension="{self.asid}"/></hl7:device></hl7:communicationFunctionSnd>'
            f"<wsa:ReplyTo><wsa:Address>{self.base_url}</wsa:Address></wsa:ReplyTo></SOAP-ENV:Header>"
            "<SOAP-ENV:Body>").encode() + _without_declaration(hl7) + b"</SOAP-ENV:Body></SOAP-ENV:Envelope>"
        return requests.post(route.address, data=envelope, verify=self.verify, cert=self.cert, timeout=30,
                             headers=self._headers({"Content-Type": "text/xml; charset=UTF-8",
                                                    "SOAPAction": f"{service}/{interaction}"}))

    def send_async(self, route: Route, service: str, interaction: str, hl7: bytes, *, to_party: str | None = None,
                   message_id: str | None = None, conversation_id: str | None = None,
                   forward: bool = False) -> tuple[str, requests.Response]:
        """Express or reliable as SDS says; `forward` sends reliably to another party through Spine's intermediary,
        acknowledged hop by hop (AckRequested for the next MSH, no SyncReply), as GP2GP does."""
        message_id = message_id or new_id()
        envelope = ebxml_envelope(
            from_party=self.party_key, to_party=to_party or route.party_key, cpa_id=route.cpa_id,
            conversation_id=conversation_id or message_id, service=service, action=interaction,
            message_id=message_id, duplicate_elimination=forward or route.duplicate_elimination,
            ack_requested=forward or route.ack_requested, sync_reply=not forward and route.ack_requested)
        if forward:
            envelope = envelope.replace(TO_PARTY_MSH, NEXT_MSH)
        content_type, body = multipart(envelope, message_id, hl7)
        response = requests.post(route.address, data=body, verify=self.verify, cert=self.cert, timeout=30,
                                 headers=self._headers({"Content-Type": content_type,
                                                        "SOAPAction": f"{service}/{interaction}"}))
        return message_id, response

    def acknowledge(self, address: str, received: Received) -> requests.Response:
        """An eb:Acknowledgment POSTed to Spine for a message it delivered (when not acknowledged in the answer)."""
        envelope = self._ack_for(received)
        return requests.post(address, data=envelope.encode(), verify=self.verify, cert=self.cert, timeout=10,
                             headers=self._headers({"Content-Type": "text/xml; charset=UTF-8",
                                                    "SOAPAction": "urn:oasis:names:tc:ebxml-msg:service/Acknowledgment"}))

    def _ack_for(self, received: Received) -> str:
        return ebxml_envelope(
            from_party=self.party_key, to_party=received.text("//eb:From/eb:PartyId") or "",
            cpa_id=received.text("//eb:CPAId") or "", conversation_id=received.text("//eb:ConversationId") or "",
            service="urn:oasis:names:tc:ebxml-msg:service", action="Acknowledgment", message_id=new_id(),
            ref_to=received.message_id, manifest=False, acknowledgment_of=received.message_id)

    # --- receiving ------------------------------------------------------------------------------------------
    def listen(self, tls: ssl.SSLContext | None = None) -> str:
        """Start the inbound listener on a free loopback port; returns its URL (register it in SDS)."""
        client = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 30  # a client that stalls mid-request frees its thread
            def do_POST(self):  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                header, hl7 = parse_ebxml(self.headers.get("Content-Type", ""), body)
                got = Received({k.lower(): v for k, v in self.headers.items()}, body, header, hl7)
                with client._lock:
                    client.received.append(got)
                    dropping = len(client.received) <= client.behaviour.drop_first
                if client.behaviour.delay_s:
                    time.sleep(client.behaviour.delay_s)
                if dropping:
                    self._answer(500, b"")
                elif got.ack_requested and client.behaviour.ack_in_response:
                    self._answer(200, client._ack_for(got).encode(), "text/xml; charset=UTF-8")
                else:
                    self._answer(202, b"")

            def _answer(self, status: int, body: bytes, content_type: str = "text/plain"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            # The handshake happens on the handler's first read, in its own thread: a client that connects and
            # never completes it must not block accept() (and with it shutdown()) for ever.
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
            scheme = "https"
        threading.Thread(target=self._server.serve_forever, daemon=True, name=f"mhs-{self.party_key}").start()
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/inbound"

    def wait_for(self, action: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [r for r in self.received if r.action == action]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        with self._lock:
            seen = [r.action for r in self.received]
        raise AssertionError(f"{self.party_key} did not receive {count} x {action} within {timeout} s; got {seen}")

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _without_declaration(xml: bytes) -> bytes:
    xml = xml.strip()
    if xml.startswith(b"<?xml"):
        xml = xml[xml.index(b"?>") + 2:].lstrip()
    return xml
