"""HL7v3 translation as live EPS does it, against the specification's own $convert outputs (an outside reference:
the *-Convert-Response-*.xml examples beside their *-Process-Request-*.json), the official order schema, the
structural rules for the other interactions, and the signature fragments behind the $prepare examples' digests."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from datetime import UTC, datetime

import pytest
from lxml import etree

from sandbox.conformance.findings import Outcome
from sandbox.services.eps.context import CANCEL, CLAIM, DISPENSE, ORDER, RELEASE, RETURN, WITHDRAW, EpsCall
from sandbox.services.eps.translation import (
    findings_of,
    message_of,
    prepare_parts,
    signature_fragments,
    translate,
)
from sandbox.web.access import HEALTHCARE_WORKER, Access
from tests.conftest import spec_path
from tests.eps_helpers import example, example_json

HL7 = "{urn:hl7-org:v3}"
MEDICAL = ("primary-care", "acute", "nominated-pharmacy", "medical-prescriber")
ORG = ("primary-care", "acute", "nominated-pharmacy", "responsible-party-org")
# The user and system live's $convert examples were produced for (the NHS sandbox's default CIS2 user).
EXAMPLE_USER = Access(mode=HEALTHCARE_WORKER, user_id="555254239107", role_id="555254240100")
# The fixed clock the examples were produced under (creationTime, and a cancellation's effectiveTime, are "now").
EXAMPLE_NOW = datetime(2022, 2, 1, tzinfo=UTC)

CONVERSIONS = [
    (*MEDICAL, "1-Process-Request-Send-200_OK.json"),
    *[(*MEDICAL, "cancellations", f"{n}-Process-Request-Cancel-200_OK.json") for n in range(1, 10)],
    (*ORG, "3-Process-Request-Send-200_OK.json"),
    (*ORG, "cancellations", "3-Process-Request-Cancel-200_OK.json"),
    (*ORG, "separate-telecom", "1-Process-Request-Send-200_OK.json"),
]
ORDERS = [
    (*MEDICAL, "1-Process-Request-Send-200_OK.json"),
    (*MEDICAL, "3-Process-Request-Multiple-DosageInstructions-Send_200_OK.json"),
    (*ORG, "3-Process-Request-Send-200_OK.json"),
    (*ORG, "separate-telecom", "1-Process-Request-Send-200_OK.json"),
    ("spec", "prescribing", "prescription-order", "repeat-primary-example-req.json"),
    ("spec", "prescribing", "prescription-order", "eRD-primary-example-req.json"),
]


def call_for(operation: str, body, access: Access | None = EXAMPLE_USER) -> EpsCall:
    return EpsCall(operation=operation, session="s", api="electronic-prescriptions", headers={}, query={},
                   body=body, raw=b"", access=access)


def canonical(xml: bytes) -> str:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(xml, parser), method="c14n").decode()


def generated_values_normalised(xml: bytes) -> str:
    """creationTime and a cancellation's effectiveTime are the moment of translation: set them to a constant."""
    root = etree.fromstring(xml, etree.XMLParser(remove_blank_text=True))
    root.find(f"{HL7}creationTime").set("value", "0")
    for cancellation in root.iter(f"{HL7}CancellationRequest"):
        cancellation.find(f"{HL7}effectiveTime").set("value", "0")
    return etree.tostring(root, method="c14n").decode()


@pytest.fixture
def schema_app(settings):
    from sandbox.app import create_app
    app = create_app(settings.replace(hl7v3_schemas=str(spec_path("spine-hl7v3-xsd", "omvt"))))
    with app.app_context():
        yield app
    app.extensions["sandbox"].close()


@pytest.fixture
def bare_app(app):
    with app.app_context():
        yield app


@pytest.mark.parametrize("parts", CONVERSIONS, ids=lambda parts: "/".join(parts[-2:]))
def test_translation_equals_lives_convert_output(parts):
    """Exactly what live's $convert gave, once its clock is ours: no residual difference."""
    request = example_json(*parts)
    live = example(*parts[:-1], parts[-1].replace("Process-Request", "Convert-Response").replace(".json", ".xml"))
    operation = ORDER if "Send" in parts[-1] else CANCEL
    _, message = message_of(call_for(operation, request), now=EXAMPLE_NOW)
    assert canonical(etree.tostring(message)) == canonical(live.read_bytes())


@pytest.mark.parametrize("parts", CONVERSIONS, ids=lambda parts: "/".join(parts[-2:]))
def test_translate_equals_live_modulo_generated_times(bare_app, parts):
    request = example_json(*parts)
    live = example(*parts[:-1], parts[-1].replace("Process-Request", "Convert-Response").replace(".json", ".xml"))
    translation = translate(call_for(ORDER if "Send" in parts[-1] else CANCEL, request))
    assert translation.interaction == ("PORX_IN020101SM31" if "Send" in parts[-1] else "PORX_IN030101SM32")
    assert generated_values_normalised(translation.xml) == generated_values_normalised(live.read_bytes())


@pytest.mark.parametrize("parts", ORDERS, ids=lambda parts: parts[-1])
def test_orders_validate_against_the_official_schema(schema_app, parts):
    translation = translate(call_for(ORDER, example_json(*parts)))
    assert translation.schema == "PORX_IN020101UK31"
    assert translation.problems == []
    [finding] = findings_of(translation)
    assert finding.outcome == Outcome.PASS and finding.requirement == "EPS-HL7-001"
    assert "PORX_IN020101UK31.xsd" in finding.message


def test_a_broken_order_gives_schema_problems_with_xpaths(schema_app):
    """An order whose line item ids are not UUIDs translates, but the schema's II root must be a uid."""
    order = copy.deepcopy(example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json"))
    for entry in order["entry"]:
        if entry["resource"]["resourceType"] == "MedicationRequest":
            entry["resource"]["identifier"][0]["value"] = "item 1"
    translation = translate(call_for(ORDER, order))
    assert len(translation.problems) >= 4  # each line item's id, and each care record element's reference to it
    problem = translation.problems[0]
    assert problem.code == "hl7.schema"
    assert problem.where == ("/hl7:PORX_IN020101SM31/hl7:ControlActEvent/hl7:subject/hl7:ParentPrescription/"
                             "hl7:pertinentInformation1/hl7:pertinentPrescription/hl7:pertinentInformation2[1]/"
                             "hl7:pertinentLineItem/hl7:id")
    line = int(re.match(r"line (\d+):", problem.message).group(1))
    assert b"item 1" in translation.xml.splitlines()[line - 1]  # the line of the journaled message
    assert "'item 1' is not a valid value" in problem.message and "UK31" not in problem.message
    findings = findings_of(translation)
    assert all(f.outcome == Outcome.FAIL and f.requirement == "EPS-HL7-001" for f in findings)
    assert findings[0].location == problem.where


def test_without_the_schema_folder_no_schema_check_runs_and_it_says_so(bare_app):
    translation = translate(call_for(ORDER, example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json")))
    assert [p.code for p in translation.problems] == ["schema.unavailable"]
    [finding] = findings_of(translation)
    assert finding.outcome == Outcome.INFO and finding.requirement == "EPS-HL7-004"
    assert translation.xml.startswith(b"<?xml")


def test_an_untranslatable_message_is_a_problem_not_a_traceback(bare_app):
    order = copy.deepcopy(example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json"))
    for entry in order["entry"]:
        if entry["resource"]["resourceType"] == "Practitioner":
            entry["resource"]["identifier"] = [i for i in entry["resource"]["identifier"]
                                               if "gmc" not in i["system"]]
    translation = translate(call_for(ORDER, order))
    assert translation.xml == b""
    [problem] = translation.problems
    assert problem.code == "hl7.untranslatable" and problem.where == "Practitioner.identifier"
    assert "Expected exactly one professional code" in problem.message
    [finding] = findings_of(translation)
    assert finding.outcome == Outcome.FAIL and finding.requirement == "EPS-HL7-003"
    for junk in (None, [], "text", {"resourceType": "Bundle"}, {"entry": [{"resource": 7}]}):
        assert translate(call_for(ORDER, junk)).problems[0].code == "hl7.untranslatable"


def test_without_a_healthcare_worker_the_control_act_has_only_the_system(bare_app):
    translation = translate(call_for(ORDER, example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json"), None))
    root = etree.fromstring(translation.xml)
    assert root.find(f"{HL7}ControlActEvent/{HL7}author") is None
    assert root.find(f"{HL7}ControlActEvent/{HL7}author1/{HL7}AgentSystemSDS") is not None


def _dispensing(kind: str, operation: str, interaction: str, names: list[str]) -> list:
    return [(operation, ("spec", "dispensing", kind, name), interaction) for name in names]


PATIENT_RELEASE, NOMINATED_RELEASE = "PORX_IN132004SM30", "PORX_IN060102SM30"
VARIANTS = ["acute-primary-example-req.json", "eRD-primary-example-req.json", "repeat-primary-example-req.json"]
DISPENSING = [
    *_dispensing("release", RELEASE, PATIENT_RELEASE, VARIANTS),
    (RELEASE, ("spec", "dispense", "Patient-Request-Release-200_OK.json"), PATIENT_RELEASE),
    (RELEASE, ("spec", "dispense", "Nominated-Pharmacy-Request-Release-200_OK.json"), NOMINATED_RELEASE),
    *_dispensing("dispense-notification", DISPENSE, "PORX_IN080101SM31",
                 [f"acute-primary-example-0{n}-req.json" for n in range(1, 6)] + VARIANTS[1:]),
    *_dispensing("claim", CLAIM, "PORX_IN090101SM31", VARIANTS),
    *_dispensing("return", RETURN, "PORX_IN100101SM31", VARIANTS),
    *_dispensing("withdraw", WITHDRAW, "PORX_IN510101SM31", VARIANTS),
]


@pytest.mark.parametrize(("operation", "parts", "interaction"), DISPENSING, ids=lambda v: v if isinstance(v, str)
                         else "/".join(v[-2:]))
def test_dispensing_messages_meet_the_structural_rules(bare_app, operation, parts, interaction):
    body = example_json(*parts)
    translation = translate(call_for(operation, body))
    assert translation.interaction == interaction
    assert translation.schema is None
    assert translation.problems == []
    [finding] = findings_of(translation)
    assert finding.outcome == Outcome.PASS and finding.requirement == "EPS-HL7-002"
    assert "structural rules" in finding.message
    root = etree.fromstring(translation.xml)
    assert etree.QName(root).localname == interaction
    assert root.find(f"{HL7}interactionId").get("extension") == interaction
    if interaction != NOMINATED_RELEASE:  # a nominated release names a pharmacy, not a prescription
        short_forms = {e.get("extension") for e in root.iter(f"{HL7}value")
                       if e.get("root") == "2.16.840.1.113883.2.1.3.2.4.18.8"}
        assert short_forms and short_forms <= set(re.findall(r"[0-9A-F]{6}-[0-9A-Z]{6}-[0-9A-F]{5}[0-9A-Z+]",
                                                             json.dumps(body)))


def test_a_dispensing_message_missing_its_prescription_breaks_the_rules(bare_app):
    task = copy.deepcopy(example_json("spec", "dispensing", "return", "acute-primary-example-req.json"))
    task.pop("groupIdentifier", None)
    text = json.dumps(task).replace("prescription-order-number", "something-else")
    translation = translate(call_for(RETURN, json.loads(text)))
    assert translation.problems and translation.problems[0].code == "hl7.untranslatable"
    assert findings_of(translation)[0].requirement == "EPS-HL7-003"


def _digest_and_time(response_parts: tuple[str, ...]) -> tuple[str, str, str]:
    parameters = {p["name"]: p["valueString"] for p in example_json(*response_parts)["parameter"]}
    signed_info = base64.b64decode(parameters["digest"]).decode()
    return (re.search(r"<DigestValue>(.*)</DigestValue>", signed_info).group(1), parameters["timestamp"],
            parameters["algorithm"])


@pytest.mark.parametrize("folder", [MEDICAL, ORG, (*ORG, "separate-telecom")], ids=["medical", "org", "telecom"])
def test_signature_fragments_reproduce_the_prepare_examples_digest(folder):
    prefix = "1" if folder != ORG else "3"
    request = example_json(*folder, f"{prefix}-Prepare-Request-200_OK.json")
    digest, timestamp, algorithm = _digest_and_time((*folder, f"{prefix}-Prepare-Response-200_OK.json"))
    assert algorithm == "RS256"
    when = datetime.fromisoformat(timestamp)  # the unsigned request's author time is live's "now"
    fragments = signature_fragments(request, when)
    assert base64.b64encode(hashlib.sha256(fragments).digest()).decode() == digest
    assert fragments.startswith(b'<FragmentsToBeHashed><Fragment><time xmlns="urn:hl7-org:v3" value="')
    assert prepare_parts(request, when) == (fragments, timestamp)


def test_the_sha1_prepare_examples_carry_a_canned_digest():
    """Known exception: Prepare-Response-Multiple-Dosages and spec/prepare/eRD-primary-example-res are SHA-1 (RS1)
    answers of the NHS's open sandbox with one identical digest for two different prescriptions: a canned value,
    not a digest of either request, so they cannot be reproduced (and are not a fault of the fragments)."""
    first = _digest_and_time((*MEDICAL, "Prepare-Response-Multiple-Dosages-200_OK.json"))
    second = _digest_and_time(("spec", "prepare", "eRD-primary-example-res.json"))
    assert first == second and first[2] == "RS1"
    requests = [example_json(*MEDICAL, "Prepare-Request-Multiple-Dosages-200_OK.json"),
                example_json("spec", "prepare", "eRD-primary-example-req.json")]
    when = datetime.fromisoformat(first[1])
    assert signature_fragments(requests[0], when) != signature_fragments(requests[1], when)


def test_a_signed_order_keeps_its_signature_time_in_the_fragments():
    order = example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json")
    fragments, timestamp = prepare_parts(order, datetime(2030, 1, 1, tzinfo=UTC))
    assert timestamp == "2022-10-21T13:47:00+00:00"
    assert b'<time xmlns="urn:hl7-org:v3" value="20221021134700"></time>' in fragments


def test_an_accepted_order_is_journaled_with_its_validated_hl7v3(schema_app):
    """Over HTTP: the order's answer names the derived exchange holding what Spine would have received, checked
    against the official schema."""
    from tests.eps_helpers import LEGACY, PRESCRIBER, Tokens, eps_headers

    client = schema_app.test_client()
    order = example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json")
    response = client.post(f"{LEGACY}/$process-message", json=order,
                           headers=eps_headers(Tokens(client).worker(PRESCRIBER), PRESCRIBER))
    assert response.status_code == 200, response.get_data(as_text=True)
    derived = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-HL7v3']}").get_json()
    assert derived["operation"] == "hl7v3-translation"
    assert [(f["requirement"], f["outcome"]) for f in derived["findings"]] == [("EPS-HL7-001", "pass")]
    journaled = derived["request"]["body"].encode()
    assert etree.fromstring(journaled).tag == f"{HL7}PORX_IN020101SM31"
    live = example(*MEDICAL, "1-Convert-Response-Send-200_OK.xml").read_bytes()

    def without_caller(xml: bytes) -> str:  # the ControlActEvent author is the calling user, not live's example user
        root = etree.fromstring(generated_values_normalised(xml).encode())
        control = root.find(f"{HL7}ControlActEvent")
        control.remove(control.find(f"{HL7}author"))
        return etree.tostring(root, method="c14n").decode()

    assert without_caller(journaled) == without_caller(live)
