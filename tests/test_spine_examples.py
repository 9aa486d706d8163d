"""Every captured Spine message of the published examples (MHS adaptor test messages, its expected messages, the
fake Spine's canned responses), sent to the sandbox as a supplier would send it: accepted, or refused with the
refusal the live Spine gives (HTTP 500, text/xml, the Spine error code and description). The sending party is
registered in SDS first wherever it can be (so the refusal is about the message, not an unknown sender); messages
Spine itself sent (From YES-0000806) are refused as no supplier may send in Spine's name. And the MHS adaptor's
integration-test HL7 templates, filled in, are answered through each pattern."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from lxml import etree

from sandbox.messaging.interactions import find
from sandbox.services.sds.directory import ODS_PATTERN, Registration, directory
from tests.conftest import SPECS, spec_path
from tests.test_spine_messages import SPINE_ASID, SUPPLIER, ebxml_request, register, soap_request, spine_cpa

EXAMPLES = SPECS / "spine-messaging-examples"
TEMPLATES = ("spine-messaging-examples", "integration-tests", "integration_tests", "integration_tests", "data", "templates")
CONTENT_TYPE = 'multipart/related; boundary="--=_MIME-Boundary"; type=text/xml; start=ebXMLHeader@spine.nhs.uk'
EB = "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"
NASP = "http://national.carerecords.nhs.uk/schema/"
# What is accepted (everything else is refused with HTTP 500): a synchronous PDS query from a registered system,
# and the MessageErrors / acknowledgements registered suppliers send back (they name nothing the sandbox sent,
# which the delivery findings say, but Spine takes them).
ACCEPTED = {"sync_message.xml": 200, "ebxml_fault_single_error.xml": 202, "ebxml_response_error_multiple.xml": 202,
            "ebxml_response_error_single.xml": 202, "ebxml_response_error_empty.xml": 202,
            "expected_messages/ebxml_ack.xml": 202}
# Refusals whose reason is the message itself rather than its parties.
REFUSED_FOR = {"ebxml_header_empty.xml": "eb:CPAId is missing",
               "ebxml_request_invalid_binary_ebxml_header.msg": "not well formed",
               "ebxml_request_no_header.msg": "not well formed"}


def _files() -> list[Path]:
    if not EXAMPLES.is_dir():
        return []
    return sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and p.suffix in (".msg", ".ebxml", ".xml"))


def _id(path: Path) -> str:
    return str(path.relative_to(EXAMPLES))


def _message(path: Path) -> bytes:
    """The file as a supplier would send it: a .msg template gets its .ebxml header, a template its ids."""
    data = path.read_bytes()
    if path.suffix == ".msg" and b"{{ebxml}}" in data and path.with_suffix(".ebxml").exists():
        data = data.replace(b"{{ebxml}}", path.with_suffix(".ebxml").read_bytes())
    return (data.replace(b"{{{messageGUID}}}", str(uuid.uuid4()).upper().encode())
            .replace(b"{{{toASID}}}", SPINE_ASID.encode()).replace(b"{{{fromASID}}}", SUPPLIER["asid"].encode()))


def _text(pattern: bytes, data: bytes) -> str | None:
    match = re.search(pattern, data, re.S)
    return match.group(1).decode() if match else None


def _register_sender(sandbox, data: bytes) -> str | None:
    party = _text(rb"<eb:From>\s*<eb:PartyId[^>]*>([^<]+)<", data)
    asid = _text(rb'communicationFunctionSnd.*?extension="(\d{12})"', data) or "200000009999"
    if party is None:
        register(sandbox, who={**SUPPLIER, "asid": asid})
    elif party != "YES-0000806" and ODS_PATTERN.match(party.split("-")[0]):
        directory(sandbox).register("default", Registration(ods=party.split("-")[0], asid=asid, party_key=party,
                                                             endpoint="http://127.0.0.1:9/inbound", interactions=()))
    return party


def _expected_refusal(path: Path, data: bytes, party: str | None) -> str:
    if path.name in REFUSED_FOR:
        return REFUSED_FOR[path.name]
    if party is None:
        return ""  # a SOAP message: its problems are listed in the fault
    to_party = _text(rb"<eb:To>\s*<eb:PartyId[^>]*>([^<]+)<", data)
    if party == "YES-0000806" or not ODS_PATTERN.match(party.split("-")[0]):
        return f"Unknown eb:From PartyId {party}"
    return f"Unknown eb:To PartyId {to_party}"


@pytest.mark.parametrize("path", _files(), ids=_id)
def test_a_captured_message_is_accepted_or_refused_as_spine_would(client, sandbox, path):
    data = _message(path)
    party = _register_sender(sandbox, data)
    action = (_text(rb"<(?:\w+:)?Action>([^<]+)<", data) or "").rsplit("/", 1)[-1]
    interaction = find(action)
    synchronous = b"ws/2004/08/addressing" in data and b"MessageHeader" not in data
    if synchronous:
        url = "/sync-service"
    elif interaction is not None and interaction.pattern.startswith("forward"):
        url = "/reliablemessaging/intermediary"
    elif interaction is not None and interaction.pattern == "async-express":
        url = "/reliablemessaging/queryrequest"
    else:
        url = "/reliablemessaging/reliablerequest"
    headers = {"Content-Type": CONTENT_TYPE if data.lstrip().startswith(b"--") else "text/xml; charset=UTF-8",
               "SOAPAction": interaction.soap_action if interaction else ""}
    response = client.post(url, data=data, headers=headers)
    text = response.get_data(as_text=True)
    assert "sandbox defect" not in text
    accepted = next((status for name, status in ACCEPTED.items() if _id(path).endswith(name)), None)
    if accepted is not None:
        assert response.status_code == accepted, text[:600]
        return
    assert response.status_code == 500 and response.content_type.startswith("text/xml"), (response.status_code, text)
    root = etree.fromstring(response.data)
    if synchronous:
        codes = [e.text for e in root.iter(f"{{{NASP}}}errorCode")]
        assert codes and set(codes) == {"201"}, text  # final: a supplier's message Spine cannot accept
    else:
        errors = [(e.get(f"{{{EB}}}errorCode"), e.findtext(f"{{{EB}}}Description")) for e in root.iter(f"{{{EB}}}Error")]
        assert errors, text
        assert any(_expected_refusal(path, data, party) in description for _, description in errors), errors


def test_the_examples_are_there(client):
    spec_path("spine-messaging-examples")
    assert len(_files()) > 50


# --- the MHS adaptor's integration-test templates, filled in, through each pattern -------------------------------

def _template(name: str, **values: str) -> bytes:
    text = spec_path(*TEMPLATES, f"{name}.mustache").read_text()
    values = {"uuid": str(uuid.uuid4()).upper(), "timestamp": "20260101120000", "asid": SUPPLIER["asid"],
              "to_asid": SPINE_ASID, "patient_nhs_number": "9000000009", "to_party_id": "YES-0000806",
              "dissentOverride": "0", "file_upload": "attachment.txt", **values}
    for key, value in values.items():
        text = text.replace("{{{" + key + "}}}", value).replace("{{" + key + "}}", value)
    return text.encode()


def test_the_pds_retrieval_template_is_answered_synchronously(client, sandbox):
    register(sandbox)
    response = client.post("/sync-service", data=soap_request(_template("QUPA_IN040000UK32")),
                           headers={"Content-Type": "text/xml; charset=UTF-8",
                                    "SOAPAction": "urn:nhs:names:services:pdsquery/QUPA_IN040000UK32"})
    assert response.status_code == 200, response.data[:600]
    assert b"QUPA_IN050000UK32" in response.data


@pytest.mark.parametrize("name, url", [("QUPC_IN160101UK05", "/reliablemessaging/queryrequest"),
                                       ("REPC_IN150016UK05", "/reliablemessaging/reliablerequest")])
def test_the_async_templates_are_accepted(client, sandbox, name, url):
    register(sandbox)
    interaction = find(name)
    headers, body, _ = ebxml_request(name, interaction.service, spine_cpa(sandbox, name), _template(name),
                                     reliable=interaction.pattern == "async-reliable")
    response = client.post(url, data=body, headers=headers)
    assert response.status_code == 202, response.data[:600]
