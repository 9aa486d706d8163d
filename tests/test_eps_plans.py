"""Certifying EPS systems against the plans `eps-prescriber` and `eps-dispenser`, as an assessor would: a session
bound to the plan, well-behaved reference clients walking every step over HTTP (a prescribing GP system and a
community pharmacy's dispensing system: different users, roles and organisations, one session), then the verdict:
incomplete until the manual requirements are attested, then pass. A badly behaved client fails with the requirement
named; `spine-sandbox run` runs each plan against a real server; and the service page's Python runs as written.

The reference clients are written as suppliers would write them (no sandbox internals on the request path): each user
has an NHS CIS2 access token from the sandbox's identity service; they handle every forced fault as the specification
says: back off after a 429, re-authenticate after a 401, retry a 504 with the identical payload and the same
X-Request-ID, tell the user about refusals. Message bodies start from the specification's eRD example family (one
prescription's life: prepare, order, release, dispense, claim, return, withdraw), with new ids, this session's
prescriber, pharmacy and users, as a supplier's message builder fills its own templates. Signing uses the sandbox's
signing helper (what `spine-sandbox eps sign` runs) with a certificate of the sandbox's test CA (`spine-sandbox eps
certificate`). They run over the Flask test client or, for `spine-sandbox run`, over HTTP with `requests`
(`python -m tests.test_eps_plans prescriber|dispenser <the certificate files>`); benchmarks/eps_requests.py uses
them too."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import ROOT, TEST_POPULATION
from tests.eps_helpers import ADMIN, DISPENSER, NURSE, PRESCRIBER, User, example_json
from tests.plan_helpers import assert_certified, attest_all, failed

SCENARIO = "X-Sandbox-Scenario"
SESSION = "X-Sandbox-Session"
FHIR = "/FHIR/R4"
PRESCRIBING_BASE, DISPENSING_BASE, TRACKER_BASE = "/fhir-prescribing", "/fhir-dispensing", "/electronic-prescriptions"
SHORT_FORM = "https://fhir.nhs.uk/Id/prescription-order-number"
LONG_FORM = "https://fhir.nhs.uk/Id/prescription"
ITEM_ID = "https://fhir.nhs.uk/Id/prescription-order-item-number"
RFC4122 = "https://tools.ietf.org/html/rfc4122"
REPLACEMENT_OF = "https://fhir.nhs.uk/StructureDefinition/Extension-replacementOf"
BUSINESS_STATUS = "https://fhir.nhs.uk/StructureDefinition/Extension-EPS-TaskBusinessStatus"
DISPENSE_TYPE = "https://fhir.nhs.uk/CodeSystem/medicationdispense-type"
TOKEN_EXCHANGE = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                  "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CHECK_CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+"

# The eRD example family: the ids it uses, rewritten for each new prescription.
EXAMPLE_SHORT_FORMS = ("24F5DA-A83008-7EFE6Z", "060CC0-A83008-5A2E6T")
EXAMPLE_LONG_FORM = "20ba5fb5-cb58-462c-923e-22d180b09356"
EXAMPLE_ITEMS = ("a54219b8-f741-4c47-b662-e4f8dfa49ab6", "2868554c-5565-4d31-b92a-c5b8dab8b90a",
                 "5cb17f5a-11ac-4e18-825f-6470467238b3", "6989b7bd-8db6-428c-a593-4022e3044c00")
EXAMPLE_PHARMACY = "VNE51"
EXAMPLE_RELEASE_PHARMACY = "VNFKT"
EXAMPLE_PRESCRIBER_IDS = {"555086689106": "user_id", "200102238987": "role_id"}
EXAMPLE_DISPENSER_IDS = {"7654321": "user_id", "3415870201": "user_id", "741555508105": "role_id",
                         "454567759542": "role_id", "641555508105": "role_id", "555086415105": "role_id"}
EXAMPLES = {"prepare": ("spec", "prepare", "eRD-primary-example-req.json"),
            "cancel": ("spec", "prescribing", "prescription-order-update", "eRD-primary-example-req.json"),
            "release": ("spec", "dispensing", "release", "eRD-primary-example-req.json"),
            "dispense": ("spec", "dispensing", "dispense-notification", "eRD-primary-example-req.json"),
            "claim": ("spec", "dispensing", "claim", "eRD-primary-example-req.json"),
            "return": ("spec", "dispensing", "return", "eRD-primary-example-req.json"),
            "withdraw": ("spec", "dispensing", "withdraw", "eRD-primary-example-req.json")}


# ---- HTTP, over the Flask test client or requests -----------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def codes(self) -> list[str]:
        """Every issue's coding code of an OperationOutcome (or of a Bundle's OperationOutcome/MedicationRequest
        status-history extension, as a cancellation answers), for telling the user what happened."""
        try:
            found = self.json()
        except ValueError:
            return []
        return sorted(set(_codes(found)))


def _codes(value: Any) -> list[str]:
    if isinstance(value, dict):
        codes = [value["code"]] if isinstance(value.get("code"), str) and "system" in value else []
        return codes + [c for v in value.values() for c in _codes(v)]
    if isinstance(value, list):
        return [c for v in value for c in _codes(v)]
    return []


class Http:
    """The sandbox's root (identity service, control API and the EPS base paths), through the Flask test client or
    `requests`. Every request names the session with X-Sandbox-Session: CIS2 tokens do not carry it."""

    def __init__(self, session: str, client=None, base_url: str | None = None):
        self.session, self.client, self.base_url = session, client, (base_url or "").rstrip("/")
        if client is None:
            import requests

            self.requests = requests.Session()

    @property
    def token_url(self) -> str:
        return (self.base_url or "http://localhost") + "/oauth2/token"

    def send(self, method: str, path: str, headers: dict[str, str] | None = None, json_body: Any = None,
             form: dict | None = None, params: dict | None = None) -> Reply:
        headers = {SESSION: self.session, **(headers or {})}
        data = json.dumps(json_body).encode() if json_body is not None else None
        if self.client is not None:
            answer = self.client.open(path, method=method, headers=headers, data=data if form is None else form,
                                      query_string=params)
            return Reply(answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, answer.get_data())
        answer = self.requests.request(method, self.base_url + path, headers=headers,
                                       data=data if form is None else form, params=params, timeout=60)
        return Reply(answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, answer.content)


# ---- the identity service: an application and CIS2 tokens for its users -------------------------------------------
class Identity:
    """The supplier's application, registered with the sandbox's identity service with its own key pair; a CIS2
    healthcare-worker access token for each user (an ID token exchanged at /oauth2/token)."""

    def __init__(self, http: Http, name: str = "Acme EPS"):
        self.http = http
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"acme-{uuid.uuid4().hex[:8]}"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, alg="RS512", use="sig")
        made = http.send("POST", "/_sandbox/oauth/apps", {"Content-Type": "application/json"},
                         {"name": name, "jwks": {"keys": [jwk]}, "redirect_uris": ["https://acme.example/cb"],
                          "session": http.session})  # its tokens' requests belong to the session
        assert made.status == 201, made.body
        self.api_key = made.json()["api_key"]

    def _assertion(self) -> str:
        pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        claims = {"iss": self.api_key, "sub": self.api_key, "aud": self.http.token_url, "jti": str(uuid.uuid4()),
                  "exp": int(time.time()) + 300}
        return jwt.encode(claims, pem, algorithm="RS512", headers={"kid": self.kid, "typ": "JWT"})

    def worker_token(self, user: User) -> str:
        issued = self.http.send("POST", "/_sandbox/oauth/cis2/id-token", {"Content-Type": "application/json"},
                                {"user_id": user.user_id, "role_id": user.role_id, "aal": "AAL3"})
        assert issued.status == 200, issued.body
        form = {**TOKEN_EXCHANGE, "client_assertion_type": JWT_BEARER, "client_assertion": self._assertion(),
                "subject_token": issued.json()["id_token"]}
        answer = self.http.send("POST", "/oauth2/token", form=form)
        assert answer.status == 200, answer.body
        return answer.json()["access_token"]


# ---- one user of a supplier's system --------------------------------------------------------------------------------
class Unrecoverable(Exception):
    """A refusal the system tells its user about rather than retrying."""

    def __init__(self, reply: Reply):
        super().__init__(f"{reply.status} {reply.body[:300]!r}")
        self.reply = reply


@dataclass
class Actor:
    """One healthcare worker using the system: their CIS2 token and role, at an organisation."""

    http: Http
    identity: Identity
    user: User
    base: str  # the EPS base path the system is configured with, e.g. /fhir-prescribing
    token: str = ""
    log: list[str] = field(default_factory=list)  # what the system told its user

    def __post_init__(self):
        self.token = self.token or self.identity.worker_token(self.user)

    def headers(self, request_id: str, extra: dict | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "NHSD-Session-URID": self.user.role_id,
                "X-Request-ID": request_id, "X-Correlation-ID": str(uuid.uuid4()),
                "Content-Type": "application/fhir+json", "Accept": "application/fhir+json", **(extra or {})}

    def call(self, method: str, path: str, body: Any = None, *, fault: str | None = None, label: str | None = None,
             params: dict | None = None, base: str | None = None) -> Reply:
        """One request as a careful system sends it: it backs off exponentially after a 429, re-authenticates
        after a 401, and after a 504 (or a 503) retries the identical payload with the same X-Request-ID. `fault`
        forces a scenario on the first attempt only; `label` names the plan step on every attempt."""
        request_id = str(uuid.uuid4())  # one per message: a retry of the same message keeps it
        backoff = 1.0
        for _ in range(6):
            extra = {SCENARIO: fault or label} if (fault or label) else {}
            fault = None
            reply = self.http.send(method, (base or self.base) + FHIR + path, self.headers(request_id, extra), body,
                                   params=params)
            if reply.status == 429:
                self.log.append(f"throttled: waiting {backoff:g} s")
                time.sleep(backoff)
                backoff *= 2
            elif reply.status == 401:
                self.log.append("re-authenticated")
                self.token = self.identity.worker_token(self.user)
                request_id = str(uuid.uuid4())  # a refused request is not a failed one: sent again, it is new
            elif reply.status in (503, 504):
                wait = min(float(reply.header("Retry-After") or "0"), 1.0)  # bounded in tests; live says 5 s
                self.log.append(f"timed out: retrying the same message ({request_id})")
                time.sleep(wait)
            else:
                return reply
        raise AssertionError(f"{method} {path} still failing after 6 attempts: {reply.status}")

    def expect(self, reply: Reply, status: int = 200) -> Reply:
        if reply.status != status:
            self.log.append(f"refused {reply.status}: {', '.join(reply.codes) or reply.body[:120]!r}")
            raise Unrecoverable(reply)
        return reply


# ---- message builders: the specification's eRD family, filled in for this prescription -----------------------------
def check_character(body17: str) -> str:
    """ISO/IEC 7064 MOD 37-2, as EPS computes a short-form prescription id's last character."""
    total = 0
    for char in body17.replace("-", ""):
        total = ((total + CHECK_CHARACTERS.index(char)) * 2) % 37
    return CHECK_CHARACTERS[(38 - total) % 37]


def new_short_form(ods: str) -> str:
    head = uuid.uuid4().hex[:6].upper()
    body = f"{head}-{ods.upper()[-6:].rjust(6, '0')}-{uuid.uuid4().hex[:5].upper()}"
    return body + check_character(body)


@dataclass
class Prescription:
    """What the prescribing system remembers of one prescription it made."""

    short_form: str
    long_form: str
    items: tuple[str, ...]
    pharmacy: str  # the nominated pharmacy's ODS code
    prescriber: User
    patient: str = "9449304130"
    order: dict | None = None  # the signed Bundle sent
    dispenses: list[str] = field(default_factory=list)  # identifiers of dispense notifications sent
    claims: list[str] = field(default_factory=list)  # identifiers of claims sent

    @classmethod
    def new(cls, prescriber: User, pharmacy: str) -> Prescription:
        return cls(new_short_form("A83008"), str(uuid.uuid4()), tuple(str(uuid.uuid4()) for _ in EXAMPLE_ITEMS),
                   pharmacy, prescriber)


def _rewrite(value: Any, exact: dict[str, str], within: dict[str, str]) -> Any:
    """Every string equal to a key of `exact`, and every occurrence of a key of `within` inside a string, replaced."""
    if isinstance(value, str):
        if value in exact:
            return exact[value]
        for old, new in within.items():
            if old in value:
                value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_rewrite(v, exact, within) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite(v, exact, within) for k, v in value.items()}
    return value


def message(kind: str, rx: Prescription, dispenser: User | None = None, pharmacy: str | None = None) -> dict:
    """The example message of `kind`, about prescription `rx`, sent by `dispenser` for `pharmacy`."""
    body = copy.deepcopy(example_json(*EXAMPLES[kind]))
    exact = {short: rx.short_form for short in EXAMPLE_SHORT_FORMS}
    exact.update({old: getattr(rx.prescriber, attr) for old, attr in EXAMPLE_PRESCRIBER_IDS.items()})
    dispensing_user = dispenser or DISPENSER
    exact.update({old: getattr(dispensing_user, attr) for old, attr in EXAMPLE_DISPENSER_IDS.items()})
    exact.update({EXAMPLE_PHARMACY: pharmacy or rx.pharmacy, EXAMPLE_RELEASE_PHARMACY: pharmacy or rx.pharmacy})
    within = {EXAMPLE_LONG_FORM: rx.long_form, **dict(zip(EXAMPLE_ITEMS, rx.items, strict=True))}
    if kind in ("prepare", "cancel"):  # the prescriber's pharmacy nomination is the prescription's
        exact[EXAMPLE_PHARMACY] = rx.pharmacy
    body = _rewrite(body, exact, within)
    _same_repeats(body, repeats_allowed())
    if kind == "prepare":
        _valid_from_today(body)
    if kind in ("prepare", "cancel", "dispense"):  # a new message: a new Bundle identifier and entry ids
        body["identifier"] = {"system": RFC4122, "value": str(uuid.uuid4())}
    elif isinstance(body.get("identifier"), list):  # Task, Claim: a new business identifier
        body["identifier"] = [{"system": RFC4122, "value": str(uuid.uuid4())}]
    return body


def _valid_from_today(bundle: dict) -> None:
    """A prescription written today, dispensable for 90 days (the example's validity period is long past)."""
    today = datetime.now(UTC).date()
    for entry in bundle.get("entry", []):
        request = entry.get("resource", {})
        if request.get("resourceType") == "MedicationRequest" and "dispenseRequest" in request:
            request["dispenseRequest"]["validityPeriod"] = {
                "start": today.isoformat(), "end": f"{(today + timedelta(days=90)).isoformat()}T23:59:59Z"}


def repeats_allowed() -> int:
    """numberOfRepeatsAllowed of the repeat dispensing prescriptions the prescribing system writes."""
    bundle = example_json(*EXAMPLES["prepare"])
    request = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest")
    return request["dispenseRequest"]["numberOfRepeatsAllowed"]


def _same_repeats(value: Any, allowed: int) -> None:
    """Every MedicationRequest a dispensing message carries names the prescription's authorised repeats."""
    if isinstance(value, dict):
        dispense_request = value.get("dispenseRequest")
        if value.get("resourceType") == "MedicationRequest" and isinstance(dispense_request, dict) \
                and "numberOfRepeatsAllowed" in dispense_request:
            dispense_request["numberOfRepeatsAllowed"] = allowed
        for child in value.values():
            _same_repeats(child, allowed)
    elif isinstance(value, list):
        for child in value:
            _same_repeats(child, allowed)


def identifier_of(body: dict) -> str:
    found = body.get("identifier")
    return (found[0] if isinstance(found, list) else found)["value"]


def dispense_notification(rx: Prescription, dispenser: User, pharmacy: str, *, partial: bool = False,
                          replaces: str | None = None) -> dict:
    """A dispense notification for every item: all fully dispensed (the prescription Dispensed, 0006), or the first
    item only partly (the prescription stays With Dispenser - Active, 0003). `replaces` amends an earlier one."""
    body = message("dispense", rx, dispenser, pharmacy)
    status = ("0003", "With Dispenser - Active") if partial else ("0006", "Dispensed")
    for n, entry in enumerate(e for e in body["entry"] if e["resource"]["resourceType"] == "MedicationDispense"):
        dispense = entry["resource"]
        for extension in dispense.get("extension", []):
            if extension.get("url") == BUSINESS_STATUS:
                extension["valueCoding"] = {"system": extension["valueCoding"]["system"], "code": status[0],
                                            "display": status[1]}
        if partial and n == 0:
            dispense["type"] = {"coding": [{"system": DISPENSE_TYPE, "code": "0003",
                                            "display": "Item dispensed - partial"}]}
            dispense["status"] = "in-progress"
        else:
            dispense["type"] = {"coding": [{"system": DISPENSE_TYPE, "code": "0001",
                                            "display": "Item fully dispensed"}]}
            dispense["status"] = "completed"
    for n, entry in enumerate(e for e in body["entry"] if e["resource"]["resourceType"] == "MedicationDispense"):
        for contained in entry["resource"].get("contained", []):  # the item it dispenses, as the order named it
            if contained.get("resourceType") == "MedicationRequest":
                contained["identifier"] = [{"system": ITEM_ID, "value": rx.items[n % len(rx.items)]}]
    if replaces:
        header = body["entry"][0]["resource"]
        header.setdefault("extension", []).append({"url": REPLACEMENT_OF, "valueIdentifier": {
            "system": RFC4122, "value": replaces}})
    return body


def claim(rx: Prescription, dispenser: User, pharmacy: str, replaces: str | None = None) -> dict:
    body = message("claim", rx, dispenser, pharmacy)
    if replaces:
        body.setdefault("extension", []).append({"url": REPLACEMENT_OF, "valueIdentifier": {
            "system": RFC4122, "value": replaces}})
    return body


def withdraw(rx: Prescription, dispenser: User, pharmacy: str, notification: str) -> dict:
    body = message("withdraw", rx, dispenser, pharmacy)
    body["focus"] = {"type": "Bundle", "identifier": {"system": RFC4122, "value": notification}}
    return body


def release(owner_body: dict, short_form: str | None) -> dict:
    """Task/$release's Parameters: by id (group-identifier first) or nominated (without it)."""
    body = copy.deepcopy(owner_body)
    body["parameter"] = [p for p in body["parameter"] if p.get("name") != "group-identifier"]
    if short_form:
        body["parameter"].insert(0, {"name": "group-identifier", "valueIdentifier": {"system": SHORT_FORM,
                                                                                     "value": short_form}})
    return body


# ---- the prescribing system -------------------------------------------------------------------------------------------
@dataclass
class Smartcard:
    """The prescriber's signing key and certificate (from `spine-sandbox eps certificate`)."""

    certificate_pem: str
    key_pem: str

    def sign(self, digest: str) -> str:
        from sandbox.services.eps.signatures import sign  # what `spine-sandbox eps sign` runs

        return sign(digest, self.key_pem, self.certificate_pem)


class PrescribingSystem:
    def __init__(self, actor: Actor, card: Smartcard):
        self.actor, self.card = actor, card

    def prepare(self, rx: Prescription, fault: str | None = None) -> tuple[dict, str, str]:
        """$prepare: the Bundle, the digest to sign and the timestamp the signature must carry."""
        bundle = message("prepare", rx)
        reply = self.actor.expect(self.actor.call("POST", "/$prepare", bundle, fault=fault))
        values = {p["name"]: p.get("valueString") for p in reply.json()["parameter"]}
        return bundle, values["digest"], values["timestamp"]

    def signed_order(self, rx: Prescription, card: Smartcard | None = None, digest: str | None = None) -> dict:
        from sandbox.services.eps.signatures import signed

        bundle, prepared_digest, when = self.prepare(rx)
        signature = (card or self.card).sign(digest or prepared_digest)
        return signed(bundle, signature, when)

    def order(self, rx: Prescription, fault: str | None = None, label: str | None = None,
              body: dict | None = None) -> Reply:
        body = body or self.signed_order(rx)
        reply = self.actor.call("POST", "/$process-message", body, fault=fault, label=label)
        if reply.status == 200:
            rx.order = body
            self.actor.log.append(f"prescription {rx.short_form} sent")
        return reply

    def cancel(self, rx: Prescription, fault: str | None = None, label: str | None = None) -> Reply:
        return self.actor.call("POST", "/$process-message", message("cancel", rx), fault=fault, label=label)

    def track(self, rx: Prescription, fault: str | None = None) -> Reply:
        """The tracker is served by the original API and the dispensing API, not the prescribing one."""
        return self.actor.call("GET", "/Task", params={"focus:identifier": rx.short_form}, fault=fault,
                               base=TRACKER_BASE)


# ---- the dispensing system --------------------------------------------------------------------------------------------
class DispensingSystem:
    def __init__(self, actor: Actor, pharmacy: str):
        self.actor, self.pharmacy = actor, pharmacy

    def _release_body(self, short_form: str | None) -> dict:
        from tests.eps_helpers import example_json as spec

        template = _rewrite(spec(*EXAMPLES["release"]), {EXAMPLE_RELEASE_PHARMACY: self.pharmacy,
                                                         **{old: getattr(self.actor.user, attr) for old, attr in
                                                            EXAMPLE_DISPENSER_IDS.items()}}, {})
        return release(template, short_form)

    def release_nominated(self, fault: str | None = None) -> Reply:
        return self.actor.call("POST", "/Task/$release", self._release_body(None), fault=fault)

    def release(self, short_form: str, fault: str | None = None, label: str | None = None) -> Reply:
        return self.actor.call("POST", "/Task/$release", self._release_body(short_form), fault=fault, label=label)

    def dispense(self, rx: Prescription, *, partial: bool = False, amend: bool = False,
                 label: str | None = None, fault: str | None = None) -> Reply:
        body = dispense_notification(rx, self.actor.user, self.pharmacy, partial=partial,
                                     replaces=rx.dispenses[-1] if amend and rx.dispenses else None)
        reply = self.actor.call("POST", "/$process-message", body, label=label, fault=fault)
        if reply.status == 200:
            rx.dispenses.append(identifier_of(body))
        return reply

    def withdraw(self, rx: Prescription, fault: str | None = None) -> Reply:
        return self.actor.call("POST", "/Task", withdraw(rx, self.actor.user, self.pharmacy, rx.dispenses[-1]),
                               fault=fault)

    def return_(self, rx: Prescription, fault: str | None = None) -> Reply:
        return self.actor.call("POST", "/Task", message("return", rx, self.actor.user, self.pharmacy), fault=fault)

    def claim(self, rx: Prescription, *, amend: bool = False, label: str | None = None,
              fault: str | None = None) -> Reply:
        body = claim(rx, self.actor.user, self.pharmacy, rx.claims[-1] if amend and rx.claims else None)
        reply = self.actor.call("POST", "/Claim", body, label=label, fault=fault)
        if reply.status == 200:
            rx.claims.append(identifier_of(body))
        return reply

    def track(self, rx: Prescription) -> Reply:
        return self.actor.call("GET", "/Task", params={"focus:identifier": rx.short_form})


def business_status(reply: Reply) -> str | None:
    """The tracker's business status code of the first Task in its Bundle."""
    for entry in reply.json().get("entry", []):
        task = entry.get("resource", {})
        if task.get("resourceType") == "Task":
            for coding in task.get("businessStatus", {}).get("coding", []):
                return coding.get("code")
    return None



# ---- the walks: each plan's steps, as the system's own test run would do them ---------------------------------------
def refused(reply: Reply, status: int, code: str) -> bool:
    return reply.status == status and code in reply.codes


def walk_prescriber(http: Http, identity: Identity, card: Smartcard, stranger: Smartcard, pharmacy: str) -> dict:
    """A GP system: prepare, sign, order; a signature that does not verify; cancel before and after release; track;
    and every fault the prescribing side can meet. A pharmacy (the dispensing system) releases one prescription."""
    gp = PrescribingSystem(Actor(http, identity, PRESCRIBER, PRESCRIBING_BASE), card)
    log = gp.actor.log
    # An order that times out at the platform: retried with the identical payload and X-Request-ID.
    first = Prescription.new(PRESCRIBER, pharmacy)
    gp.actor.expect(gp.order(first, fault="eps-gateway-timeout"))
    # The tracker, throttled once: back off, then ask again.
    tracked = gp.actor.expect(gp.track(first, fault="eps-rate-limited"))
    assert business_status(tracked) == "0001", tracked.body
    # A signature the sandbox's CA did not issue is refused; the prescriber signs again with their own card.
    second = Prescription.new(PRESCRIBER, pharmacy)
    bad = gp.order(second, label="eps-order-bad-signature", body=gp.signed_order(second, card=stranger))
    assert bad.status == 400, bad.body
    log.append(f"signature refused: {bad.json()['issue'][0].get('diagnostics') or bad.codes}")
    gp.actor.expect(gp.order(second))
    # A token that expired: re-authenticate with CIS2, then prepare again.
    third = Prescription.new(PRESCRIBER, pharmacy)
    gp.prepare(third, fault="eps-access-token-invalid")
    # Prescribing switched off: tell the user, keep the prescription unsent; send it once EPS is back.
    try:
        gp.prepare(third, fault="eps-prescribing-disabled")
    except Unrecoverable as refusal:
        log.append(f"not sent, prescribing is disabled: {refusal.reply.json()['issue'][0]['diagnostics']}")
    gp.actor.expect(gp.order(third))
    # Spine refuses a prescription (a patient recorded as dead; an internal failure): shown, never re-sent as it was.
    fourth = Prescription.new(PRESCRIBER, pharmacy)
    dead = gp.order(fourth, fault="eps-patient-deceased")
    assert refused(dead, 400, "PATIENT_DECEASED"), dead.body
    log.append("refused by Spine: patient is recorded as dead")
    failing = gp.order(Prescription.new(PRESCRIBER, pharmacy), fault="eps-order-failure-to-process")
    assert refused(failing, 400, "FAILURE_TO_PROCESS_MESSAGE"), failing.body
    log.append("refused by Spine: not processed; a corrected prescription gets a new id and signature")
    # Cancel a prescription not yet released: Spine switched off first (R-0009), then cancelled (R-0001).
    off = gp.cancel(third, fault="eps-cancellation-disabled")
    assert refused(off, 400, "R-0009"), off.body
    log.append("cancellation not possible now: Spine's cancellation is disabled")
    cancelled = gp.cancel(third)
    assert cancelled.status == 200 and "R-0001" in cancelled.codes, cancelled.body
    # A prescription the pharmacy has released: the cancellation waits for it (R-0002, pending).
    pharmacy_system = DispensingSystem(Actor(http, identity, DISPENSER, DISPENSING_BASE), pharmacy)
    pharmacy_system.actor.expect(pharmacy_system.release(second.short_form))
    pending = gp.cancel(second, label="eps-cancel-with-dispenser")
    assert refused(pending, 400, "R-0002"), pending.body
    log.append(f"cancellation of {second.short_form} pending: the pharmacy has it")
    # The signatures of prescriptions already sent.
    verified = gp.actor.call("POST", "/$verify-signature", first.order)
    assert verified.status == 200, verified.body
    return {"prescriptions": [first, second, third], "log": log + pharmacy_system.actor.log}


def walk_dispenser(http: Http, identity: Identity, card: Smartcard, pharmacy: str, other_pharmacy: str) -> dict:
    """A community pharmacy: nominated download and release by id; another pharmacy's prescription; partial, full and
    amended dispense notifications; withdraw; return; claim and its amendment; track; and every fault the dispensing
    side can meet. The prescriptions come from a prescribing system in the same session."""
    gp = PrescribingSystem(Actor(http, identity, NURSE, PRESCRIBING_BASE), card)
    made = [Prescription.new(NURSE, pharmacy) for _ in range(3)]
    for rx in made:
        gp.actor.expect(gp.order(rx))
    chemist = DispensingSystem(Actor(http, identity, DISPENSER, DISPENSING_BASE), pharmacy)
    log = chemist.actor.log
    # Nominated download: every prescription nominated to the pharmacy; then nothing more this round.
    downloaded = chemist.actor.expect(chemist.release_nominated())
    assert all(rx.short_form.encode() in downloaded.body for rx in made), downloaded.body[:400]
    done = chemist.actor.expect(chemist.release_nominated(fault="eps-no-more-prescriptions"))
    assert "NO_MORE_PRESCRIPTIONS" in done.codes
    log.append("nominated download finished for this round")
    # A prescription from the patient's token, released by id (a platform time-out first: retried identically).
    walk_in = Prescription.new(NURSE, other_pharmacy)
    gp.actor.expect(gp.order(walk_in))
    chemist.actor.expect(chemist.release(walk_in.short_form, fault="eps-gateway-timeout"))
    # Another pharmacy asks for it: refused, with the pharmacy that has it.
    elsewhere = DispensingSystem(Actor(http, identity, ADMIN, DISPENSING_BASE), other_pharmacy)
    taken = elsewhere.release(walk_in.short_form, label="eps-release-with-another-dispenser")
    assert refused(taken, 400, "PRESCRIPTION_WITH_ANOTHER_DISPENSER"), taken.body
    elsewhere.actor.log.append(f"{walk_in.short_form} is with pharmacy {pharmacy}")
    # Dispense part, amend that notification, then dispense the rest; claim (refused once as invalid), amend it.
    first, second, third = made
    chemist.actor.expect(chemist.dispense(first, partial=True, label="eps-dispense-partial"))
    chemist.actor.expect(chemist.dispense(first, partial=True, amend=True, label="eps-dispense-amend"))
    chemist.actor.expect(chemist.dispense(first))
    invalid = chemist.claim(first, fault="eps-claim-invalid-message")
    assert refused(invalid, 400, "INVALID_MESSAGE"), invalid.body
    log.append("claim refused as invalid: corrected before sending again")
    chemist.actor.expect(chemist.claim(first))
    chemist.actor.expect(chemist.claim(first, amend=True, label="eps-claim-amend"))
    tracked = chemist.actor.expect(chemist.track(first))
    assert business_status(tracked) == "0008", tracked.body
    # A dispense notification sent in error is withdrawn (Spine failing once: track, then withdraw again).
    chemist.actor.expect(chemist.dispense(second))
    failing = chemist.withdraw(second, fault="eps-dispensing-failure-to-process")
    assert refused(failing, 400, "FAILURE_TO_PROCESS_MESSAGE"), failing.body
    assert business_status(chemist.actor.expect(chemist.track(second))) == "0006"
    chemist.actor.expect(chemist.withdraw(second))
    # A prescription the pharmacy cannot dispense goes back to Spine.
    chemist.actor.expect(chemist.return_(third))
    return {"prescriptions": made + [walk_in], "log": log + gp.actor.log + elsewhere.actor.log}


# ---- the tests -------------------------------------------------------------------------------------------------------
def new_session(client, plan: str) -> str:
    made = client.post("/_sandbox/sessions", json={"plan": plan, "supplier": "Acme Health", "system": "Acme 4.2"})
    assert made.status_code == 201, made.get_data(as_text=True)
    return made.get_json()["session"]


def smartcards(app) -> tuple[Smartcard, Smartcard]:
    """The prescriber's card from the sandbox's test CA, and one from a CA it does not trust
    (`spine-sandbox eps certificate --user … [--kind untrusted]`)."""
    from sandbox.services.eps.certificates import issue

    store = app.extensions["sandbox"].store
    cards = []
    for kind in ("valid", "untrusted"):
        issued = issue(store, subject=PRESCRIBER.name, user_id=PRESCRIBER.user_id, kind=kind)
        cards.append(Smartcard(issued.certificate_pem, issued.key_pem))
    return cards[0], cards[1]


def walk(plan: str, http: Http, identity: Identity, card: Smartcard, stranger: Smartcard) -> dict:
    if plan == "eps-prescriber":
        return walk_prescriber(http, identity, card, stranger, DISPENSER.ods)
    return walk_dispenser(http, identity, card, DISPENSER.ods, ADMIN.ods)


@pytest.mark.parametrize("plan", ["eps-prescriber", "eps-dispenser"])
def test_a_well_behaved_system_is_certified_against_the_plan(client, app, plan):
    session = new_session(client, plan)
    card, stranger = smartcards(app)
    http = Http(session, client)
    made = walk(plan, http, Identity(http), card, stranger)
    assert "re-authenticated" in made["log"] or plan == "eps-dispenser"
    assert_certified(client, session)


def test_one_prescription_through_its_whole_life_with_different_users_and_roles(client, app):
    """Prescribed by a GP (R8000), released, partly then fully dispensed and claimed by a pharmacist (R8003) of the
    nominated pharmacy, one session; the tracker follows each state."""
    session = new_session(client, "eps-dispenser")
    card, _ = smartcards(app)
    http = Http(session, client)
    identity = Identity(http)
    gp = PrescribingSystem(Actor(http, identity, PRESCRIBER, PRESCRIBING_BASE), card)
    chemist = DispensingSystem(Actor(http, identity, DISPENSER, DISPENSING_BASE), DISPENSER.ods)
    rx = Prescription.new(PRESCRIBER, DISPENSER.ods)
    seen = []
    for step in (lambda: gp.order(rx), lambda: chemist.release(rx.short_form),
                 lambda: chemist.dispense(rx, partial=True), lambda: chemist.dispense(rx), lambda: chemist.claim(rx)):
        reply = step()
        assert reply.status == 200, reply.body
        if reply.header("X-Sandbox-HL7v3") is not None:
            translated = client.get(f"/_sandbox/exchanges/{reply.header('X-Sandbox-HL7v3')}")
            assert translated.status_code == 200
        seen.append(business_status(chemist.track(rx)))
    assert seen == ["0001", "0002", "0003", "0006", "0008"]


def test_a_prescriber_that_retries_a_timeout_with_a_new_signature_fails_the_plan(client, app):
    """After a 504 the prescription may already be with Spine: preparing and signing it again (a different payload)
    under the same X-Request-ID fails EPS-BEH-002."""
    session = new_session(client, "eps-prescriber")
    card, stranger = smartcards(app)
    http = Http(session, client)
    identity = Identity(http)
    walk_prescriber(http, identity, card, stranger, DISPENSER.ods)
    careless = PrescribingSystem(Actor(http, identity, PRESCRIBER, PRESCRIBING_BASE), card)
    rx = Prescription.new(PRESCRIBER, DISPENSER.ods)
    request_id = str(uuid.uuid4())
    timed_out = http.send("POST", PRESCRIBING_BASE + FHIR + "/$process-message", careless.actor.headers(
        request_id, {SCENARIO: "eps-gateway-timeout"}), careless.signed_order(rx))
    assert timed_out.status == 504
    again = http.send("POST", PRESCRIBING_BASE + FHIR + "/$process-message", careless.actor.headers(request_id),
                      careless.signed_order(rx))
    assert again.status == 200, again.body
    progress = attest_all(client, session)
    # a changed request under a used X-Request-ID is also not a retry (EPS-BEH-001)
    assert progress["verdict"] == "fail" and failed(progress) == ["EPS-BEH-001", "EPS-BEH-002"], progress["reasons"]


def test_a_dispenser_that_claims_too_early_and_reuses_its_request_id_fails_the_plan(client, app):
    """A claim for a prescription not yet dispensed is refused (EPS-DSP-002); and every new request needs a new
    X-Request-ID (it is how EPS tells a retry from a new message): a dispensing system that sends its claim under the
    id of its (successful) dispense notification fails EPS-BEH-001."""
    session = new_session(client, "eps-dispenser")
    card, _ = smartcards(app)
    http = Http(session, client)
    identity = Identity(http)
    walk_dispenser(http, identity, card, DISPENSER.ods, ADMIN.ods)
    gp = PrescribingSystem(Actor(http, identity, PRESCRIBER, PRESCRIBING_BASE), card)
    careless = DispensingSystem(Actor(http, identity, DISPENSER, DISPENSING_BASE), DISPENSER.ods)
    rx = Prescription.new(PRESCRIBER, DISPENSER.ods)
    gp.actor.expect(gp.order(rx))
    careless.actor.expect(careless.release(rx.short_form))
    early = careless.claim(rx)
    assert refused(early, 400, "PRESCRIPTION_INVALID_STATE_TRANSITION"), early.body
    request_id = str(uuid.uuid4())
    for body, path in ((dispense_notification(rx, DISPENSER, DISPENSER.ods), "/$process-message"),
                       (claim(rx, DISPENSER, DISPENSER.ods), "/Claim")):
        sent = http.send("POST", DISPENSING_BASE + FHIR + path, careless.actor.headers(request_id), body)
        assert sent.status == 200, sent.body
    progress = attest_all(client, session)
    assert progress["verdict"] == "fail" and set(failed(progress)) == {"EPS-BEH-001", "EPS-DSP-002"}, \
        progress["reasons"]


@pytest.mark.slow
@pytest.mark.parametrize("role", ["prescriber", "dispenser"])
def test_spine_sandbox_run_runs_a_plan_against_a_real_server(tmp_path, role):
    """`spine-sandbox eps certificate`, then `spine-sandbox run --plan eps-<role> -- <the system's tests>`: every
    step runs over HTTP (requests); the verdict waits only for the assessor's attestations (exit 4)."""
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for kind in ("valid", "untrusted"):
        made = subprocess.run([sys.executable, "-m", "sandbox.cli", "eps", "certificate", "--user", PRESCRIBER.user_id,
                               "--kind", kind, "--out", str(tmp_path / "cards"), "--data-dir", str(data)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stdout + made.stderr
    cards = sorted((tmp_path / "cards").glob("*.pem"))
    completed = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "run", "--plan", f"eps-{role}", "--data-dir", str(data),
         "--population", str(TEST_POPULATION), "--report-dir", str(tmp_path / "ci"), "--supplier", "Acme",
         "--system", "Acme 4.2", "--", sys.executable, "-m", "tests.test_eps_plans", role, *map(str, cards)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 4, completed.stdout + completed.stderr
    report = json.loads((tmp_path / "ci" / "report.json").read_text())
    assert len(report["verdict_reasons"]) == 1 and report["verdict_reasons"][0].startswith("awaiting attestation: ")
    assert all(step["exercised"] for step in report["steps"])


def _card(paths: list[str], untrusted: bool) -> Smartcard:
    chosen = [p for p in paths if ("-untrusted" in p) == untrusted]
    certificate = next(p for p in chosen if p.endswith(".crt.pem"))
    key = next(p for p in chosen if p.endswith(".key.pem"))
    return Smartcard(Path(certificate).read_text(), Path(key).read_text())


def main(argv: list[str]) -> int:
    """The prescribing (or dispensing) system's own test run, as `spine-sandbox run` starts it: its role, then the
    certificate and key files `spine-sandbox eps certificate` wrote (valid and untrusted)."""
    role, *paths = argv
    http = Http(os.environ["SPINE_SANDBOX_SESSION"], base_url=os.environ["SPINE_SANDBOX_URL"])
    made = walk(f"eps-{role}", http, Identity(http), _card(paths, False), _card(paths, True))
    print("\n".join(made["log"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# ---- the service page's examples (docs/services/eps.md), run as written ------------------------------------------------
DOC = ROOT / "docs" / "services" / "eps.md"
DOC_BASE = "http://127.0.0.1:9000"


@dataclass
class _DocResponse:
    status_code: int
    headers: Any
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class _DocRequests:
    """What the page's Python calls of `requests`, sent through the Flask test client."""

    def __init__(self, client):
        self.client = client

    def _open(self, method: str, url: str, json=None, data=None, params=None, headers=None):
        assert url.startswith(DOC_BASE), url
        answer = self.client.open(url.removeprefix(DOC_BASE), method=method, json=json, data=data,
                                  query_string=params, headers=headers or {}, base_url=DOC_BASE)
        return _DocResponse(answer.status_code, answer.headers, answer.get_data(as_text=True))

    def post(self, url: str, **kwargs):
        return self._open("POST", url, **kwargs)

    def get(self, url: str, **kwargs):
        return self._open("GET", url, **kwargs)


def doc_blocks(text: str) -> list[str]:
    import re

    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_service_page_examples_run_as_written(client, app, tmp_path, monkeypatch):
    """Every ```python block of docs/services/eps.md, in order, in one namespace, against a fresh sandbox: the
    prescription's whole life (its asserts are the page's), with `spine-sandbox eps certificate`'s files in the
    working directory and the specification's examples where the page says."""
    from sandbox.services.eps.certificates import issue
    from tests.conftest import spec_path

    issued = issue(app.extensions["sandbox"].store, subject=PRESCRIBER.name, user_id=PRESCRIBER.user_id)
    (tmp_path / "priya-shah.crt.pem").write_text(issued.certificate_pem)
    (tmp_path / "priya-shah.key.pem").write_text(issued.key_pem)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "requests", _DocRequests(client))
    examples = str(spec_path("eps-fhir", "examples", "spec"))
    blocks = doc_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        code = block.replace('"../shared/specs/eps-fhir/examples/spec"', repr(examples))
        exec(compile(code, f"docs/services/eps.md python block {number}", "exec"), namespace)  # noqa: S102
    assert namespace["tracked"]() == "0008"


def test_the_service_page_lists_every_scenario_and_plan(sandbox):
    text = DOC.read_text(encoding="utf-8")
    missing = [s.id for s in sandbox.scenarios.for_service("eps") if f"`{s.id}`" not in text]
    assert missing == []
    assert "`eps-prescriber`" in text and "`eps-dispenser`" in text
    for plan in ("eps-prescriber", "eps-dispenser"):
        steps = len(sandbox.plans.get(plan).steps)
        assert f"| `{plan}` |" in text and f"| {steps} |" in text, (plan, steps)
