"""$convert over HTTP, as a supplier calls it: each kind of FHIR message EPS handles comes back as the HL7v3 live
sends to Spine (application/xml, 200), on every API that serves $convert; anything else is a 400 OperationOutcome.
The specification's own messages (an outside reference) are the input; for the order and cancellations the answer
is compared with live's $convert output beside them."""

from __future__ import annotations

import pytest
from lxml import etree

from tests.eps_helpers import (
    DISPENSER,
    DISPENSING,
    LEGACY,
    PRESCRIBER,
    PRESCRIBING,
    Tokens,
    eps_headers,
    example,
    example_json,
)

HL7 = "{urn:hl7-org:v3}"
MEDICAL = ("primary-care", "acute", "nominated-pharmacy", "medical-prescriber")
KINDS = [
    ((*MEDICAL, "1-Process-Request-Send-200_OK.json"), "PORX_IN020101SM31", "ParentPrescription"),
    ((*MEDICAL, "cancellations", "1-Process-Request-Cancel-200_OK.json"), "PORX_IN030101SM32", "CancellationRequest"),
    (("spec", "dispense", "Nominated-Pharmacy-Request-Release-200_OK.json"), "PORX_IN060102SM30",
     "NominatedPrescriptionReleaseRequest"),
    (("spec", "dispensing", "release", "acute-primary-example-req.json"), "PORX_IN132004SM30",
     "PatientPrescriptionReleaseRequest"),
    (("spec", "dispensing", "dispense-notification", "acute-primary-example-01-req.json"), "PORX_IN080101SM31",
     "DispenseNotification"),
    (("spec", "dispensing", "claim", "acute-primary-example-req.json"), "PORX_IN090101SM31", "DispenseClaim"),
    (("spec", "dispensing", "return", "acute-primary-example-req.json"), "PORX_IN100101SM31",
     "DispenseProposalReturn"),
    (("spec", "dispensing", "withdraw", "acute-primary-example-req.json"), "PORX_IN510101SM31", "ETPWithdraw"),
]


@pytest.fixture
def tokens(client):
    return Tokens(client)


def convert(client, token, user, body, base=LEGACY):
    return client.post(f"{base}/$convert", json=body, headers=eps_headers(token, user))


def normalised(xml: bytes) -> str:
    """creationTime, a cancellation's effectiveTime, and the ControlActEvent's author (the calling user) are the
    call's own: drop them, compare the rest."""
    root = etree.fromstring(xml, etree.XMLParser(remove_blank_text=True))
    root.find(f"{HL7}creationTime").set("value", "0")
    for cancellation in root.iter(f"{HL7}CancellationRequest"):
        cancellation.find(f"{HL7}effectiveTime").set("value", "0")
    control = root.find(f"{HL7}ControlActEvent")
    control.remove(control.find(f"{HL7}author"))
    return etree.tostring(root, method="c14n").decode()


@pytest.mark.parametrize(("parts", "interaction", "act"), KINDS, ids=[kind[1] for kind in KINDS])
def test_convert_answers_the_hl7v3_of_each_kind(client, tokens, parts, interaction, act):
    user = PRESCRIBER if interaction in ("PORX_IN020101SM31", "PORX_IN030101SM32") else DISPENSER
    response = convert(client, tokens.worker(user), user, example_json(*parts))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("application/xml")
    assert response.data.startswith(b"<?xml")
    root = etree.fromstring(response.data)
    assert root.tag == f"{HL7}{interaction}"
    assert root.find(f"{HL7}interactionId").get("extension") == interaction
    assert root.find(f"{HL7}ControlActEvent/{HL7}subject/{HL7}{act}") is not None
    # the ControlActEvent names the calling healthcare worker, as live names the user of the CIS2 token
    author = root.find(f"{HL7}ControlActEvent/{HL7}author/{HL7}AgentPersonSDS")
    assert author.find(f"{HL7}id").get("extension") == user.role_id
    assert author.find(f"{HL7}agentPersonSDS/{HL7}id").get("extension") == user.user_id


@pytest.mark.parametrize("name", ["1-Process-Request-Send-200_OK.json",
                                  "cancellations/1-Process-Request-Cancel-200_OK.json"])
def test_convert_equals_lives_convert_example(client, tokens, name):
    parts = (*MEDICAL, *name.split("/"))
    live = example(*parts[:-1], parts[-1].replace("Process-Request", "Convert-Response").replace(".json", ".xml"))
    response = convert(client, tokens.worker(PRESCRIBER), PRESCRIBER, example_json(*parts))
    assert response.status_code == 200
    assert normalised(response.data) == normalised(live.read_bytes())


@pytest.mark.parametrize("base", [LEGACY, PRESCRIBING, DISPENSING])
def test_convert_is_served_on_every_api(client, tokens, base):
    body = example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json")
    response = convert(client, tokens.worker(PRESCRIBER), PRESCRIBER, body, base)
    assert response.status_code == 200
    assert etree.fromstring(response.data).tag == f"{HL7}PORX_IN020101SM31"


@pytest.mark.parametrize("body", [{"resourceType": "Patient", "id": "x"},
                                  {"resourceType": "Bundle", "type": "message", "entry": []},
                                  {"resourceType": "Task", "status": "completed"}],
                         ids=["patient", "bundle-without-event", "task-unknown-status"])
def test_convert_refuses_an_unsupported_message(client, tokens, body):
    response = convert(client, tokens.worker(PRESCRIBER), PRESCRIBER, body)
    assert response.status_code == 400
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"


def test_convert_of_an_untranslatable_order_names_the_fhir_path(client, tokens):
    order = example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json")
    order["entry"] = [e for e in order["entry"] if e["resource"]["resourceType"] != "Patient"]
    response = convert(client, tokens.worker(PRESCRIBER), PRESCRIBER, order)
    assert response.status_code == 400
    issue = response.get_json()["issue"][0]
    assert issue["code"] == "value"
    assert "Patient" in issue["diagnostics"]


def test_convert_of_text_xml_cannot_hold_is_a_400_not_a_500(client, tokens):
    order = example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json")
    for entry in order["entry"]:
        if entry["resource"]["resourceType"] == "MedicationRequest":
            entry["resource"]["dosageInstruction"][0]["text"] = "twice a day\x01"
    response = convert(client, tokens.worker(PRESCRIBER), PRESCRIBER, order)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["code"] == "value"
