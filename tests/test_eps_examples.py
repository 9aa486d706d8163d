"""Every request example in the specification's examples folder (eps-fhir/examples, an outside reference) answered
with the status and body shape of its paired response example, each in a fresh session, by a healthcare worker of
the right role (a prescriber for prescribing, a pharmacist for dispensing), and every JSON answer valid against the
specification's schema for that operation and status (tests/eps_spec.py); and $convert of each request with a
paired HL7v3 conversion answered with XML of the same interaction.

Pairing (REQUESTS below, one row per request example, checked against the folder and the specifications):
- by the OpenAPI documents' example keys: the same key under an operation's requestBody and its response;
- by the folder's naming: N-Prepare-Request <-> N-Prepare-Response, N-Process-Request-Send <-> N-Process-Response-Send
  (and <-> N-Convert-Response-Send.xml for $convert), N-Process-Request-Cancel <-> N-Convert-Response-Cancel.xml,
  *-req.json <-> *-res.json (dispense notifications acute-primary-example-0N-req <-> acute-primary-example-res),
  '...-400_...' expects 400;
- a request example with no pair still gets an answer: its row names the answer the specification's examples show
  for its kind (the shape of a named response example of the same operation), or the error its name announces.
Examples the specifications reference but the folder lacks (primary-care/repeat-prescribing/*) are not tested: the
test covers the folder as it is, and says so (test_the_specifications_reference_missing_examples)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from sandbox.app import create_app
from sandbox.conformance.parsing import json_digest
from sandbox.services.eps import published
from sandbox.services.eps.context import (
    CANCEL,
    CLAIM,
    CONVERT,
    DISPENSE,
    ORDER,
    PREPARE,
    RELEASE,
    RETURN,
    STATUS_HISTORY,
    WITHDRAW,
    EpsCall,
)
from sandbox.settings import Settings
from tests import eps_spec
from tests.conftest import spec_path
from tests.eps_helpers import DISPENSER, DISPENSING, PRESCRIBER, PRESCRIBING, Tokens, eps_headers, example
from tests.oauth_helpers import KeyPair, jwks, register

MP = "primary-care/acute/nominated-pharmacy/medical-prescriber"
RP = "primary-care/acute/nominated-pharmacy/responsible-party-org"
ST = f"{RP}/separate-telecom"
CANCEL_RESPONSE = f"{MP}/cancellations/2-Process-Response-Cancel-200_OK.json"
RELEASE_ONE = "spec/dispensing/release/eRD-primary-example-res.json"  # one passed, none failed
HL7 = "{urn:hl7-org:v3}"


@dataclass(frozen=True)
class Request:
    file: str  # below examples/
    operation: str
    status: int
    pair: str | None  # the paired response example; None: `shape` (or the error `code`) says what it must get
    shape: str | None = None  # no pair: the response example whose shape the answer has
    error: str | None = None  # an error answer: its issue code
    why: str = ""


def _orders() -> list[Request]:
    rows = [Request(f"{MP}/1-Process-Request-Send-200_OK.json", ORDER, 200,
                    f"{MP}/1-Process-Response-Send-200_OK.json"),
            Request(f"{MP}/3-Process-Request-Multiple-DosageInstructions-Send_200_OK.json", ORDER, 200,
                    f"{MP}/3-Process-Response-Multiple-DosageInstructions-Send_200_OK.json"),
            Request(f"{RP}/3-Process-Request-Send-200_OK.json", ORDER, 200, f"{RP}/3-Process-Response-Send-200_OK.json"),
            Request(f"{ST}/1-Process-Request-Send-200_OK.json", ORDER, 200, f"{ST}/1-Process-Response-Send-200_OK.json"),
            Request("spec/prescribing/prescription-order/eRD-primary-example-req.json", ORDER, 200,
                    "spec/prescribing/prescription-order/eRD-primary-example-res.json"),
            Request("spec/prescribing/prescription-order/repeat-primary-example-req.json", ORDER, 200, None,
                    shape="spec/errors/operation-outcome-success.json",
                    why="its repeat-primary-example-res.json is not in the folder: an accepted order"),
            Request("spec/errors/prescription-order-update/R-0006-Prescription.json", ORDER, 200, None,
                    shape="spec/errors/operation-outcome-success.json",
                    why="the order the R-0006 cancellation examples cancel: accepted"),
            Request("spec/errors/example-b-spine-error-patient-deceased/SendRequest-FhirMessageSigned.json", ORDER,
                    400, None, error="business-rule",
                    why="its folder names the Spine error: the patient is deceased (deceasedDateTime)")]
    rows += [Request(f"{MP}/cancellations/{n}-Process-Request-Send-200_OK.json", ORDER, 200, None,
                     shape="spec/errors/operation-outcome-success.json",
                     why="the order its cancellation example cancels: accepted") for n in range(1, 10)]
    return rows


def _prepares() -> list[Request]:
    return [Request(f"{MP}/1-Prepare-Request-200_OK.json", PREPARE, 200, f"{MP}/1-Prepare-Response-200_OK.json"),
            Request(f"{MP}/Prepare-Request-Multiple-Dosages-200_OK.json", PREPARE, 200,
                    f"{MP}/Prepare-Response-Multiple-Dosages-200_OK.json"),
            Request(f"{RP}/3-Prepare-Request-200_OK.json", PREPARE, 200, f"{RP}/3-Prepare-Response-200_OK.json"),
            Request(f"{ST}/1-Prepare-Request-200_OK.json", PREPARE, 200, f"{ST}/1-Prepare-Response-200_OK.json"),
            Request("spec/prepare/eRD-primary-example-req.json", PREPARE, 200, "spec/prepare/eRD-primary-example-res.json"),
            Request("spec/errors/example-b-spine-error-patient-deceased/PrepareRequest-FhirMessageUnsigned.json",
                    PREPARE, 400, None, error="value",
                    why="an older example: its PractitionerRoles carry no SDS role profile id, which live's "
                        "translator requires before it can digest the prescription (400 value)")]


def _cancellations() -> list[Request]:
    rows = [Request(f"{MP}/cancellations/{n}-Process-Request-Cancel-200_OK.json", CANCEL, 200,
                    CANCEL_RESPONSE if n == 2 else None, shape=None if n == 2 else CANCEL_RESPONSE,
                    why="" if n == 2 else "no response in the folder: cancelled (R-0001), as example 2 shows")
            for n in range(1, 10)]
    return rows + [
        Request(f"{RP}/cancellations/3-Process-Request-Cancel-200_OK.json", CANCEL, 200, None, shape=CANCEL_RESPONSE,
                why="the specification's key responsible-party-org has no 200 response: cancelled (R-0001)"),
        Request("spec/prescribing/prescription-order-update/eRD-primary-example-req.json", CANCEL, 200,
                "spec/prescribing/prescription-order-update/eRD-primary-example-res.json"),
        Request("spec/prescribing/prescription-order-update/repeat-primary-example-req.json", CANCEL, 200,
                "spec/prescribing/prescription-order-update/repeat-primary-example-res.json")]


def _dispensing() -> list[Request]:
    release = "spec/dispensing/release"
    rows = [Request(f"{release}/acute-primary-example-req.json", RELEASE, 200, f"{release}/acute-primary-example-res.json"),
            Request(f"{release}/repeat-primary-example-req.json", RELEASE, 200, f"{release}/acute-primary-example-res.json",
                    why="equal as JSON to acute-primary-example-req.json (keys reordered), which the specification "
                        "pairs with another answer: one request has one answer, the acute example's"),
            Request(f"{release}/eRD-primary-example-req.json", RELEASE, 200, f"{release}/eRD-primary-example-res.json"),
            Request(f"{MP}/1-Task-Request-Release-200_OK.json", RELEASE, 200, None, shape=RELEASE_ONE,
                    why="no response in the folder: the prescription released"),
            Request("spec/dispense/Patient-Request-Release-200_OK.json", RELEASE, 200, None, shape=RELEASE_ONE,
                    why="no response in the folder: the prescription released"),
            Request("spec/dispense/Nominated-Pharmacy-Request-Release-200_OK.json", RELEASE, 200, None,
                    shape=RELEASE_ONE, why="no response in the folder: the pharmacy's nominated prescription released"),
            Request(f"{MP}/2-Claim-Request-400_Missing_Endorsement_Code.json", CLAIM, 400, None, error="invalid",
                    why="its name: 400, live's 'The claim is missing the required endorsement code.'")]
    notification = "spec/dispensing/dispense-notification"
    rows += [Request(f"{notification}/acute-primary-example-0{n}-req.json", DISPENSE, 200,
                     f"{notification}/acute-primary-example-res.json") for n in range(1, 6)]
    for kind in ("eRD", "repeat"):
        rows.append(Request(f"{notification}/{kind}-primary-example-req.json", DISPENSE, 200,
                            f"{notification}/{kind}-primary-example-res.json"))
    for folder, operation in (("claim", CLAIM), ("return", RETURN), ("withdraw", WITHDRAW)):
        rows += [Request(f"spec/dispensing/{folder}/{kind}-primary-example-req.json", operation, 200,
                         f"spec/dispensing/{folder}/{kind}-primary-example-res.json")
                 for kind in ("acute", "eRD", "repeat")]
    return rows


REQUESTS = [*_prepares(), *_orders(), *_cancellations(), *_dispensing()]
# $convert: each request with a paired HL7v3 conversion.
CONVERSIONS = [
    (f"{MP}/1-Process-Request-Send-200_OK.json", f"{MP}/1-Convert-Response-Send-200_OK.xml"),
    (f"{RP}/3-Process-Request-Send-200_OK.json", f"{RP}/3-Convert-Response-Send-200_OK.xml"),
    (f"{ST}/1-Process-Request-Send-200_OK.json", f"{ST}/1-Convert-Response-Send-200_OK.xml"),
    *((f"{MP}/cancellations/{n}-Process-Request-Cancel-200_OK.json",
       f"{MP}/cancellations/{n}-Convert-Response-Cancel-200_OK.xml") for n in range(1, 10)),
    (f"{RP}/cancellations/3-Process-Request-Cancel-200_OK.json", f"{RP}/cancellations/3-Convert-Response-Cancel-200_OK.xml"),
]
PRESCRIBING_OPERATIONS = (PREPARE, ORDER, CANCEL, CONVERT)
STATEFUL = (CANCEL, RELEASE, DISPENSE, CLAIM, RETURN, WITHDRAW)  # routes.STATEFUL_EXAMPLES
PATHS = {PREPARE: "/$prepare", ORDER: "/$process-message", CANCEL: "/$process-message", DISPENSE: "/$process-message",
         RELEASE: "/Task/$release", RETURN: "/Task", WITHDRAW: "/Task", CLAIM: "/Claim", CONVERT: "/$convert"}


def examples_root() -> Path:
    return example()


def body_of(file: str):
    return json.loads((examples_root() / file).read_bytes())


# ---- which files are requests ---------------------------------------------------------------------------------

REQUEST_EVENTS = ("prescription-order", "prescription-order-update", "dispense-notification")


def is_request(body) -> bool:
    """A request example: a message Bundle EPS takes, a release's Parameters, a Claim or a Task."""
    kind = body.get("resourceType") if isinstance(body, dict) else None
    if kind == "Bundle":
        header = next((e["resource"] for e in body.get("entry", []) if e["resource"]["resourceType"] == "MessageHeader"),
                      None)
        return header is not None and header["eventCoding"]["code"] in REQUEST_EVENTS
    if kind == "Parameters":
        return any(p.get("name") == "owner" for p in body.get("parameter", []))
    return kind in ("Claim", "Task")


def test_every_request_example_in_the_folder_has_a_row():
    files = sorted(str(p.relative_to(examples_root())) for p in examples_root().rglob("*.json"))
    requests = [f for f in files if is_request(body_of(f))]
    assert sorted(r.file for r in REQUESTS) == requests
    assert len(requests) == 58


def test_pairs_agree_with_the_specifications_example_keys():
    """Where an OpenAPI document gives a request and a 200 response the same example key, the row pairs them
    (except where one request has two answers: the row's `why` says so)."""
    by_request = {r.file: r for r in REQUESTS}
    found = eps_spec.spec_examples()
    checked = 0
    for item in found:
        if item.status != "request" or not item.file.startswith("examples/"):
            continue
        request_file = item.file.removeprefix("examples/")
        response = next((r for r in found if r.spec_file == item.spec_file and r.operation_id == item.operation_id
                         and r.key == item.key and r.status == "200"), None)
        row = by_request.get(request_file)
        if row is None or response is None or not (examples_root() / response.file.removeprefix("examples/")).exists():
            continue
        assert row.operation == item.operation_id, request_file
        if "one request has one answer" not in row.why:
            assert row.pair == response.file.removeprefix("examples/"), (request_file, item.key)
        checked += 1
    assert checked >= 25


def test_pairs_agree_with_the_folders_naming():
    for row in REQUESTS:
        name = Path(row.file).name
        if "-400_" in name:
            assert row.status == 400, row.file
        if row.pair and name.endswith("-req.json") and "one request has one answer" not in row.why:
            stem = name.removesuffix("-req.json")
            assert Path(row.pair).name in (f"{stem}-res.json", f"{stem[:-3]}-res.json"), row.file
        if row.pair and "-Request-" in name:
            assert Path(row.pair).name == name.replace("-Request-", "-Response-"), row.file
    for request_file, xml in CONVERSIONS:
        assert Path(xml).name == Path(request_file).name.replace("Process-Request", "Convert-Response") \
            .replace(".json", ".xml")


def test_the_specifications_reference_missing_examples():
    """The documents reference examples the folder lacks: those are out of this test (recorded, not hidden)."""
    missing = sorted({e.file for e in eps_spec.spec_examples()
                      if not (spec_path("eps-fhir") / e.file).exists()})
    assert missing == ["examples/primary-care/repeat-prescribing/1-Prepare-Request-200_OK.json",
                       "examples/primary-care/repeat-prescribing/1-Prepare-Response-200_OK.json",
                       "examples/primary-care/repeat-prescribing/1-Process-Request-Send-200_OK.json",
                       "examples/primary-care/repeat-prescribing/1-Process-Response-Send-200_OK.json"]


# ---- the sandbox, and a fresh session per request --------------------------------------------------------------

@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings.load(environ={}, data_dir=tmp_path_factory.mktemp("eps-examples") / "data", population=2000)
    settings = settings.replace(hl7v3_schemas=str(spec_path("spine-hl7v3-xsd", "omvt")))
    app = create_app(settings)
    try:
        yield app.test_client()
    finally:
        app.extensions["sandbox"].close()


class SessionTokens(Tokens):
    """Tokens of an application registered in a session of its own: a CIS2 token's requests go to its
    application's session, so a fresh application is a fresh session."""

    def __init__(self, client, session: str):
        if Tokens._key is None:
            Tokens._key = KeyPair("eps-tests-1")
        self.client = client
        self.app_key = register(client, name="EPS examples", keys=jwks(Tokens._key), session=session,
                                redirect_uris=["https://app.example/callback"])["api_key"]


@pytest.fixture(scope="module")
def tokens(client):
    return client  # each request makes its own (a fresh session); the fixture keeps the call sites uniform


def post(client, tokens, operation: str, raw: bytes):
    """`raw` POSTed to the operation's endpoint, in a fresh session, by a prescriber (prescribing) or a
    pharmacist (dispensing) with a real CIS2 token."""
    prescribing = operation in PRESCRIBING_OPERATIONS
    user = PRESCRIBER if prescribing else DISPENSER
    token = SessionTokens(client, f"examples-{uuid.uuid4().hex[:20]}").worker(user)
    base = PRESCRIBING if prescribing else DISPENSING
    return client.post(base + PATHS[operation], data=raw, headers=eps_headers(token, user))


# ---- the body shapes -------------------------------------------------------------------------------------------

def issues(outcome: dict) -> list[tuple]:
    return [(i.get("severity"), i.get("code"), tuple(c.get("code") for c in i.get("details", {}).get("coding", [])))
            for i in outcome.get("issue", [])]


def kinds(bundle: dict) -> Counter:
    return Counter(e["resource"]["resourceType"] for e in bundle.get("entry", []))


def status_history(bundle: dict) -> list[str]:
    return [inner["valueCoding"]["code"] for e in bundle.get("entry", [])
            for ext in e["resource"].get("extension", []) if e["resource"]["resourceType"] == "MedicationRequest"
            for inner in ext.get("extension", []) if inner.get("valueCoding", {}).get("system") == STATUS_HISTORY]


def event(bundle: dict) -> str | None:
    return next((e["resource"]["eventCoding"]["code"] for e in bundle.get("entry", [])
                 if e["resource"]["resourceType"] == "MessageHeader"), None)


def assert_same_shape(expected: dict, actual: dict, where: str) -> None:
    """The structure that matters for each kind of answer, not its ids, dates or digests."""
    assert actual.get("resourceType") == expected["resourceType"], where
    kind = expected["resourceType"]
    if kind == "OperationOutcome":
        assert issues(actual) == issues(expected), where
    elif kind == "Parameters" and expected["parameter"][0]["name"] == "digest":
        assert [p["name"] for p in actual["parameter"]] == [p["name"] for p in expected["parameter"]], where
        assert all(isinstance(p.get("valueString"), str) and p["valueString"] for p in actual["parameter"]), where
    elif kind == "Parameters":  # a release
        assert [p["name"] for p in actual["parameter"]] == [p["name"] for p in expected["parameter"]], where
        for wanted, got in zip(expected["parameter"], actual["parameter"], strict=True):
            wanted_set, got_set = wanted["resource"], got["resource"]
            assert (got_set["type"], got_set.get("total")) == (wanted_set["type"], wanted_set.get("total")), where
            wanted_entries, got_entries = wanted_set.get("entry", []), got_set.get("entry", [])
            assert [e["resource"]["resourceType"] for e in got_entries] == \
                [e["resource"]["resourceType"] for e in wanted_entries], where
            for wanted_entry, got_entry in zip(wanted_entries, got_entries, strict=True):
                if wanted_entry["resource"]["resourceType"] == "Bundle":
                    inner_wanted, inner_got = wanted_entry["resource"], got_entry["resource"]
                    assert event(inner_got) == event(inner_wanted) == "prescription-order", where
                    assert set(kinds(inner_got)) == set(kinds(inner_wanted)), where
                else:
                    assert issues(got_entry["resource"]) == issues(wanted_entry["resource"]), where
    elif kind == "Bundle":  # a cancellation's response
        assert (actual.get("type"), event(actual)) == (expected["type"], event(expected)), where
        assert set(kinds(actual)) == set(kinds(expected)) and kinds(actual)["MedicationRequest"] == 1, where
        assert status_history(actual) == status_history(expected), where
    else:
        raise AssertionError(f"{where}: no shape rule for {kind}")


# ---- every request example, answered ---------------------------------------------------------------------------

@pytest.mark.parametrize("row", REQUESTS, ids=[r.file for r in REQUESTS])
def test_each_request_example_gets_its_paired_answer(client, tokens, row):
    response = post(client, tokens, row.operation, (examples_root() / row.file).read_bytes())
    body = response.get_json(silent=True)
    assert response.status_code == row.status, (row.file, response.status_code, response.get_data()[:400])
    assert isinstance(body, dict), row.file
    template = row.pair or row.shape
    if template is not None:
        assert_same_shape(body_of(template), body, row.file)
    else:
        assert body["resourceType"] == "OperationOutcome", row.file
        assert [i["severity"] for i in body["issue"]] == ["error"] and body["issue"][0]["code"] == row.error, body
    eps_spec.assert_valid(row.operation, response.status_code, body)
    if row.operation in STATEFUL and row.status == 200:  # answered from published.py: it says which example
        found = published.examples()[json_digest(body_of(row.file))]
        assert response.headers.get("X-Sandbox-Published") == found.name, row.file


def test_the_stateful_examples_are_answered_from_the_published_examples():
    """Every stateful example (about a prescription a fresh session does not hold) is one of published.py's, under
    the operation and status its row gives: X-Sandbox-Published names it (checked with each answer above)."""
    stateful = [row for row in REQUESTS if row.operation in STATEFUL and row.status == 200]
    assert len(stateful) == 34
    for row in stateful:
        found = published.examples()[json_digest(body_of(row.file))]
        assert row.file in found.names and (found.operation, found.status) == (row.operation, row.status)


def test_a_release_answers_the_examples_prescription(client, tokens):
    request = body_of("spec/dispensing/release/eRD-primary-example-req.json")
    wanted = next(p["valueIdentifier"]["value"] for p in request["parameter"] if p["name"] == "group-identifier")
    body = post(client, tokens, RELEASE, json.dumps(request).encode()).get_json()
    passed = body["parameter"][0]["resource"]["entry"][0]["resource"]
    ids = {e["resource"]["groupIdentifier"]["value"] for e in passed["entry"]
           if e["resource"]["resourceType"] == "MedicationRequest"}
    assert ids == {wanted}
    owner = next(p["resource"] for p in request["parameter"] if p["name"] == "owner")["identifier"][0]["value"]
    assert {e["resource"]["dispenseRequest"]["performer"]["identifier"]["value"] for e in passed["entry"]
            if e["resource"]["resourceType"] == "MedicationRequest"} == {owner}


def test_a_cancellation_answers_from_the_cancellation_itself(client, tokens):
    request = body_of(f"{MP}/cancellations/4-Process-Request-Cancel-200_OK.json")
    body = post(client, tokens, CANCEL, json.dumps(request).encode()).get_json()
    sent = next(e["resource"] for e in request["entry"] if e["resource"]["resourceType"] == "MedicationRequest")
    got = next(e["resource"] for e in body["entry"] if e["resource"]["resourceType"] == "MedicationRequest")
    assert got["groupIdentifier"]["value"] == sent["groupIdentifier"]["value"]
    assert status_history(body) == ["R-0001"]


# ---- what 'equal' means ----------------------------------------------------------------------------------------

def call_with(body, operation: str = RETURN) -> EpsCall:
    return EpsCall(operation=operation, session="s", api=DISPENSING, headers={}, query={}, body=body, raw=b"")


def test_equal_json_matches_and_any_change_does_not():
    file = "spec/dispensing/return/acute-primary-example-req.json"
    body = body_of(file)
    found = published.match(call_with(body))
    assert found is not None and file in found.names
    reordered = json.loads(json.dumps(body, sort_keys=True))
    assert published.match(call_with(reordered)) == found
    changed = json.loads(json.dumps(body))
    changed["id"] = str(uuid.uuid4())
    assert published.match(call_with(changed)) is None
    assert published.match(call_with(body, operation=WITHDRAW)) is None  # sent as another operation
    assert published.match(call_with([body])) is None and published.match(call_with(None)) is None
    assert published.example_of(reordered) == found and published.example_of(changed) is None


# ---- $convert --------------------------------------------------------------------------------------------------

def shape_of(root: etree._Element) -> tuple:
    """Root, interactionId and major elements of an HL7v3 message (exact content is the translator's own tests')."""
    interaction = root.find(f"{HL7}interactionId")
    children = list(dict.fromkeys(etree.QName(c).localname for c in root if isinstance(c.tag, str)))
    subject = root.find(f"{HL7}ControlActEvent/{HL7}subject")
    payload = next((etree.QName(c).localname for c in subject if isinstance(c.tag, str)), None) \
        if subject is not None else None
    return (etree.QName(root).localname, interaction.get("extension") if interaction is not None else None,
            children, payload)


@pytest.mark.parametrize("request_file,xml", CONVERSIONS, ids=[x for _, x in CONVERSIONS])
def test_convert_answers_the_paired_interaction(client, tokens, request_file, xml):
    response = post(client, tokens, CONVERT, (examples_root() / request_file).read_bytes())
    assert response.status_code == 200, response.get_data()[:400]
    assert "xml" in response.headers.get("Content-Type", ""), response.headers.get("Content-Type")
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    got = etree.fromstring(response.get_data(), parser)
    expected = etree.parse(str(examples_root() / xml), parser).getroot()
    assert shape_of(got) == shape_of(expected)


def test_every_published_example_answers_its_status_directly(client):
    """published.answer for each example (routes.py asks only for the stateful ones; the rest are total too)."""
    with client.application.app_context():
        for found in published.examples().values():
            if found.answer == "prepare":
                continue  # $prepare is always its handler's (signatures.prepare), tested with each request above
            body = body_of(found.name)
            operation_api = PRESCRIBING if found.operation in PRESCRIBING_OPERATIONS else DISPENSING
            call = EpsCall(operation=found.operation, session=f"direct-{uuid.uuid4().hex[:12]}", api=operation_api,
                           headers={}, query={}, body=body, raw=json.dumps(body).encode())
            assert published.match(call) == found
            made = published.answer(call, found)
            assert (made.status, made.published) == (found.status, found.name), found.name
            assert isinstance(made.body, dict) and made.body.get("resourceType"), found.name
            eps_spec.assert_valid(found.operation, made.status, made.body)


def test_a_published_answer_keeps_no_state(client):
    """An example answered from published.py leaves the session as it was: the same release twice in one session
    is answered the same (no 'with another dispenser'), and the tracker holds no prescription for it."""
    token = SessionTokens(client, f"examples-{uuid.uuid4().hex[:20]}").worker(DISPENSER)
    raw = (examples_root() / "spec/dispensing/release/eRD-primary-example-req.json").read_bytes()
    answers = [client.post(DISPENSING + PATHS[RELEASE], data=raw, headers=eps_headers(token, DISPENSER))
               for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].headers["X-Sandbox-Published"] == answers[1].headers["X-Sandbox-Published"]
    wanted = json.loads(raw)["parameter"][-1]["valueIdentifier"]["value"]
    tracked = client.get(DISPENSING + f"/Task?focus:identifier={wanted}", headers=eps_headers(token, DISPENSER))
    assert tracked.status_code == 200 and tracked.get_json()["total"] == 0
