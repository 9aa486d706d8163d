"""Over the whole interaction catalogue: every interaction a supplier may send is accepted at its pattern's address,
and every HL7v3 message the sandbox sends back for it — in the synchronous answer or delivered afterwards — validates
against the official schemas (an outside reference: skipped when the MIM folder is absent)."""

from __future__ import annotations

from lxml import etree

from sandbox.messaging import interactions
from sandbox.messaging.schemas import schema_set
from sandbox.services.spine.inbound import ENDPOINT_OF_PATTERN
from tests.conftest import spec_path
from tests.mhs_client import split_multipart
from tests.test_spine_messages import SUPPLIER, ebxml_request, register, soap_request, spine_cpa, wrapper

HL7 = "urn:hl7-org:v3"
# What the sandbox sends that the MIM folder has no schema for; each is held against a schema of its own elsewhere
# (tests/test_pds_hl7v3.py builds QUQI_IN010000UK14's from the official wrapper and control-act parts).
NO_OFFICIAL_SCHEMA = {"QUQI_IN010000UK14"}


def _hl7_of_soap(body: bytes) -> list[etree._Element]:
    root = etree.fromstring(body)
    return [el for el in root.iter(f"{{{HL7}}}*") if el.find(f"{{{HL7}}}interactionId") is not None]


def _sent(client) -> list[etree._Element]:
    """The HL7 payload of every message the sandbox queued for delivery in the session."""
    out = []
    for row in client.get("/_sandbox/spine/deliveries").get_json()["deliveries"]:
        message = client.get(f"/_sandbox/spine/deliveries/{row['id']}").get_json()["message"]
        parts = split_multipart(message["content_type"], message["body"].encode("utf-8"))
        for headers, payload in parts[1:]:
            if "xml" in headers.get("content-type", "") and payload.strip():
                root = etree.fromstring(payload)
                if root.find(f"{{{HL7}}}interactionId") is not None:
                    out.append(root)
    return out


def test_everything_sent_back_for_every_interaction_validates(client, sandbox):
    schemas = schema_set(spec_path("spine-hl7v3-xsd", "omvt"))
    register(sandbox)
    answered: list[etree._Element] = []
    answered_async: list[etree._Element] = []
    silent: list[str] = []  # asynchronous interactions nothing was sent back for
    requests = [i for i in interactions.catalogue().values() if i.answer_to is None]
    for interaction in requests:
        # Asynchronous requests ask for an application acknowledgement (AL), so that even an interaction with no
        # business answer sends one back.
        hl7 = wrapper(interaction.id, sender_asid=SUPPLIER["asid"],
                      accept_ack="NE" if interaction.pattern == "sync" else "AL")
        if interaction.pattern == "sync":
            response = client.post("/sync-service", data=soap_request(hl7, interaction=interaction.id,
                                                                         service=interaction.service),
                                   headers={"Content-Type": "text/xml; charset=UTF-8",
                                            "SOAPAction": interaction.soap_action})
            found = _hl7_of_soap(response.data)
            if response.status_code != 200 or not found:
                silent.append(f"{interaction.id} {response.status_code} {response.data[:600]!r}")
            answered += found
            continue
        headers, body, _ = ebxml_request(
            interaction.id, interaction.service, spine_cpa(sandbox, interaction.service_interaction), hl7,
            reliable=interaction.reliable, forward=interaction.pattern.startswith("forward"))
        response = client.post(ENDPOINT_OF_PATTERN[interaction.pattern], data=body, headers=headers)
        assert response.status_code in (200, 202), (interaction.id, response.status_code, response.data[:300])
        sent = _sent(client)
        if len(sent) == len(answered_async):
            silent.append(interaction.id)
        answered_async = sent
    answered += answered_async
    assert silent == ["MCCI_IN010000UK13"], silent  # an application acknowledgement is not itself acknowledged

    assert len(answered) >= len(requests) - 1
    unchecked = set()
    for message in answered:
        name = etree.QName(message).localname
        if not schemas.available(name):
            unchecked.add(name)
            continue
        problems = schemas.validate(name, message)
        assert not problems, f"{name} does not validate: {problems[:3]}"
    assert unchecked <= NO_OFFICIAL_SCHEMA, unchecked
