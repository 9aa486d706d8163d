"""Actors for the EPS lifecycle tests: a prescriber (prepares, signs with a certificate from the sandbox's test CA,
orders, cancels) and a pharmacy (releases, dispenses, claims, returns, withdraws, tracks), each a synthetic healthcare
worker with a real CIS2 token from the sandbox's identity service. Their messages are the specification's examples
(an outside reference, read through tests/eps_helpers.example) with the prescription's own ids put in."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import date, timedelta
from itertools import count
from urllib.parse import quote

from sandbox.services.eps import certificates, prescription_ids, signatures
from tests.eps_helpers import DISPENSER, DISPENSING, PRESCRIBER, PRESCRIBING, User, eps_headers, example_json

EXAMPLE_ID = "24F5DA-A83008-7EFE6Z"
EXAMPLE_UUID = "20ba5fb5-cb58-462c-923e-22d180b09356"
ACUTE_ORDER = ("primary-care", "acute", "nominated-pharmacy", "medical-prescriber", "1-Prepare-Request-200_OK.json")
ERD_ORDER = ("spec", "prepare", "eRD-primary-example-req.json")
CANCEL_EXAMPLE = ("primary-care", "acute", "nominated-pharmacy", "medical-prescriber", "cancellations",
                  "1-Process-Request-Cancel-200_OK.json")
PRESCRIBER_ODS = "A83008"
ITEMS = ["a54219b8-f741-4c47-b662-e4f8dfa49ab6", "6989b7bd-8db6-428c-a593-4022e3044c00",
         "2868554c-5565-4d31-b92a-c5b8dab8b90a", "5cb17f5a-11ac-4e18-825f-6470467238b3"]
ALL_DISPENSED = ["0001"] * 4
NONE_DISPENSED = ["0002"] * 4
PARTIAL = ["0001", "0001", "0003", "0004"]
_sequence = count(1)


def _substituted(document, replacements: dict[str, str]):
    text = json.dumps(document)
    for old, new in replacements.items():
        text = text.replace(old, new)
    return json.loads(text)


def _new_message_id(document: dict) -> dict:
    """The copy of an example with its own message (Bundle / Task / Claim) identifier."""
    document = copy.deepcopy(document)
    identifier = document.get("identifier")
    fresh = str(uuid.uuid4())
    if isinstance(identifier, dict):
        identifier["value"] = fresh
    elif isinstance(identifier, list) and identifier:
        identifier[0]["value"] = fresh
    return document


def message_id(document: dict) -> str:
    identifier = document["identifier"]
    return (identifier if isinstance(identifier, dict) else identifier[0])["value"]


class Prescription:
    """A prescription the tests made: its ids, patient and nominated pharmacy."""

    def __init__(self, short_form: str, long_form: str, nhs_number: str, performer: str, order: dict):
        self.id, self.uuid, self.nhs_number, self.performer, self.order = (short_form, long_form, nhs_number,
                                                                          performer, order)


class Prescriber:
    def __init__(self, client, sandbox, tokens, user: User = PRESCRIBER, base: str = PRESCRIBING):
        self.client, self.user, self.base, self.tokens = client, user, base, tokens
        self.token = tokens.worker(user)
        self.issued = certificates.issue(sandbox.store, subject=user.name, user_id=user.user_id)

    def post(self, path: str, body):
        return self.client.post(self.base + path, json=body, headers=eps_headers(self.token, self.user))

    def new_order(self, performer: str = DISPENSER.ods, erd: bool = False, repeats: int = 2,
                  validity_end: str | None = None) -> Prescription:
        """An unsigned order: the example with a new, valid prescription id, nominated to `performer`."""
        short_form = prescription_ids.new_short_form(PRESCRIBER_ODS, 4000 + next(_sequence))
        long_form = str(uuid.uuid4())
        bundle = example_json(*(ERD_ORDER if erd else ACUTE_ORDER))
        bundle = _substituted(bundle, {EXAMPLE_ID: short_form, EXAMPLE_UUID: long_form, '"FA565"': f'"{performer}"',
                                       '"VNE51"': f'"{performer}"'})
        bundle = _new_message_id(bundle)
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "MedicationRequest":
                dispense = resource.setdefault("dispenseRequest", {})
                if erd:  # the example's course ended in 2023: this one runs a year from today
                    dispense["numberOfRepeatsAllowed"] = repeats
                    dispense["validityPeriod"] = {"start": date.today().isoformat(),
                                                  "end": (date.today() + timedelta(days=365)).isoformat()}
                if validity_end:
                    dispense["validityPeriod"] = {"start": "2020-01-01", "end": validity_end}
        patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        return Prescription(short_form, long_form, patient["identifier"][0]["value"], performer, bundle)

    def prepare(self, bundle: dict):
        return self.post("/$prepare", bundle)

    def sign(self, bundle: dict, issued=None) -> dict:
        prepared = self.prepare(bundle)
        assert prepared.status_code == 200, prepared.get_json()
        parameters = {p["name"]: p.get("valueString") for p in prepared.get_json()["parameter"]}
        issued = issued or self.issued
        data = signatures.sign(parameters["digest"], issued.key_pem, issued.certificate_pem)
        return signatures.signed(bundle, data, parameters.get("timestamp"))

    def send(self, bundle: dict):
        return self.post("/$process-message", bundle)

    def order(self, **kwargs) -> Prescription:
        prescription = self.new_order(**kwargs)
        response = self.send(self.sign(prescription.order))
        assert response.status_code == 200, response.get_json()
        return prescription

    def cancellation(self, prescription: Prescription, nhs_number: str | None = None,
                     item: str = ITEMS[0]) -> dict:
        """A prescription-order-update for one item of the order, as the specification's example makes one."""
        reason = next(e["resource"] for e in example_json(*CANCEL_EXAMPLE)["entry"]
                      if e["resource"]["resourceType"] == "MedicationRequest")["statusReason"]
        bundle = _new_message_id(copy.deepcopy(prescription.order))
        header = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MessageHeader")
        header["eventCoding"] = {"system": "https://fhir.nhs.uk/CodeSystem/message-event",
                                 "code": "prescription-order-update", "display": "Prescription Order Update"}
        kept, first = [], True
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Provenance":
                continue
            if resource["resourceType"] == "MedicationRequest":
                if not first:
                    continue
                first = False
                resource["status"] = "cancelled"
                resource["statusReason"] = reason
                resource["identifier"] = [{"system": "https://fhir.nhs.uk/Id/prescription-order-item-number",
                                           "value": item}]
            if resource["resourceType"] == "Patient" and nhs_number:
                resource["identifier"][0]["value"] = nhs_number
            kept.append(entry)
        header["focus"] = [f for f in header.get("focus", []) if any(e.get("fullUrl") == f.get("reference")
                                                                     for e in kept)]
        bundle["entry"] = kept
        return bundle

    def cancel(self, prescription: Prescription, **kwargs):
        return self.send(self.cancellation(prescription, **kwargs))


class Pharmacy:
    """A dispensing system at one pharmacy (ODS code), used by a pharmacist."""

    def __init__(self, client, tokens, ods: str = DISPENSER.ods, user: User = DISPENSER, base: str = DISPENSING):
        self.client, self.ods, self.user, self.base = client, ods, user, base
        self.token = tokens.worker(user)
        self.last_dispense: str | None = None
        self.last_claim: str | None = None

    def headers(self) -> dict:
        return eps_headers(self.token, self.user)

    def post(self, path: str, body):
        return self.client.post(self.base + path, json=body, headers=self.headers())

    def _mine(self, document, prescription: Prescription):
        return _new_message_id(_substituted(document, {EXAMPLE_ID: prescription.id, EXAMPLE_UUID: prescription.uuid,
                                                       '"VNE51"': f'"{self.ods}"'}))

    def release_body(self, prescription: Prescription | None = None) -> dict:
        body = example_json("spec", "dispensing", "release", "acute-primary-example-req.json")
        body = _substituted(body, {'"VNE51"': f'"{self.ods}"'})
        if prescription is None:
            body["parameter"] = [p for p in body["parameter"] if p["name"] != "group-identifier"]
        else:
            body = _substituted(body, {EXAMPLE_ID: prescription.id})
        return body

    def release(self, prescription: Prescription | None = None):
        return self.post("/Task/$release", self.release_body(prescription))

    def notification(self, prescription: Prescription, codes: list[str], replaces: str | None = None) -> dict:
        body = self._mine(example_json("spec", "dispensing", "dispense-notification",
                                       "acute-primary-example-01-req.json"), prescription)
        dispenses = [e["resource"] for e in body["entry"] if e["resource"]["resourceType"] == "MedicationDispense"]
        for dispense, code in zip(dispenses, codes, strict=True):
            dispense["type"]["coding"][0]["code"] = code
        if replaces:
            header = next(e["resource"] for e in body["entry"] if e["resource"]["resourceType"] == "MessageHeader")
            header["extension"] = [{"url": "https://fhir.nhs.uk/StructureDefinition/Extension-replacementOf",
                                    "valueIdentifier": {"system": "https://tools.ietf.org/html/rfc4122",
                                                        "value": replaces}}]
        return body

    def dispense(self, prescription: Prescription, codes: list[str] = ALL_DISPENSED, replaces: str | None = None,
                 body: dict | None = None):
        body = body or self.notification(prescription, codes, replaces)
        response = self.post("/$process-message", body)
        if response.status_code == 200:
            self.last_dispense = message_id(body)
        return response

    def claim_body(self, prescription: Prescription, replaces: str | None = None) -> dict:
        body = self._mine(example_json("spec", "dispensing", "claim", "acute-primary-example-req.json"), prescription)
        if replaces:
            body.setdefault("extension", []).append({
                "url": "https://fhir.nhs.uk/StructureDefinition/Extension-replacementOf",
                "valueIdentifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": replaces}})
        return body

    def claim(self, prescription: Prescription, replaces: str | None = None, body: dict | None = None):
        body = body or self.claim_body(prescription, replaces)
        response = self.post("/Claim", body)
        if response.status_code == 200:
            self.last_claim = message_id(body)
        return response

    def return_(self, prescription: Prescription):
        body = self._mine(example_json("spec", "dispensing", "return", "acute-primary-example-req.json"), prescription)
        return self.post("/Task", body)

    def withdraw(self, prescription: Prescription):
        body = self._mine(example_json("spec", "dispensing", "withdraw", "acute-primary-example-req.json"),
                          prescription)
        return self.post("/Task", body)

    def track(self, prescription: Prescription | None = None, query: str | None = None):
        query = query if query is not None else f"focus:identifier={quote(prescription.id)}"  # '+' may end it
        return self.client.get(f"{self.base}/Task?{query}", headers=self.headers())

    def status(self, prescription: Prescription) -> str:
        response = self.track(prescription)
        assert response.status_code == 200, response.get_json()
        entries = response.get_json()["entry"]
        assert len(entries) == 1, response.get_json()
        return entries[0]["resource"]["businessStatus"]["coding"][0]["code"]


def session_of(client, response) -> str:
    """The session an EPS request was answered in (its application's session), from the journal."""
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}")
    assert exchange.status_code == 200, exchange.get_json()
    return exchange.get_json()["session"]
