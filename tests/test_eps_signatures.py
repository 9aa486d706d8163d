"""Prescribers' signatures: $prepare's digest as live makes it (reproducing the specification's own digests), the
sandbox's test CA and its certificates, the signature a prescribing system makes, and each live refusal of a signature
on $process-message and in $verify-signature — over HTTP where a supplier sees them, directly where a case needs a
signature no HTTP client would produce."""

from __future__ import annotations

import base64
import copy
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from sandbox.app import create_app
from sandbox.journal.store import open_store
from sandbox.services.eps import certificates, signatures, translation
from sandbox.services.eps.prescription_ids import new_short_form
from sandbox.settings import Settings
from tests.eps_helpers import LEGACY, PRESCRIBER, PRESCRIBING, Tokens, eps_headers, example_json

MEDICAL = ("primary-care", "acute", "nominated-pharmacy", "medical-prescriber")
RS256_PREPARES = [  # (request, response) pairs whose published digest is RSA-SHA256
    (MEDICAL + ("1-Prepare-Request-200_OK.json",), MEDICAL + ("1-Prepare-Response-200_OK.json",)),
    (("primary-care", "acute", "nominated-pharmacy", "responsible-party-org", "3-Prepare-Request-200_OK.json"),
     ("primary-care", "acute", "nominated-pharmacy", "responsible-party-org", "3-Prepare-Response-200_OK.json")),
    (("primary-care", "acute", "nominated-pharmacy", "responsible-party-org", "separate-telecom",
      "1-Prepare-Request-200_OK.json"),
     ("primary-care", "acute", "nominated-pharmacy", "responsible-party-org", "separate-telecom",
      "1-Prepare-Response-200_OK.json")),
]


def prepare_request() -> dict:
    return example_json(*MEDICAL, "1-Prepare-Request-200_OK.json")


def fresh_order() -> dict:
    """The published prepare request under a new prescription id (so the session holds none like it, and it is
    not a published example)."""
    body = prepare_request()
    short_form = new_short_form("A83008")
    text = re.sub(r"24F5DA-A83008-7EFE6Z", short_form, json.dumps(body))
    body = json.loads(text)
    for entry in body["entry"]:
        if entry["resource"]["resourceType"] == "MessageHeader":
            entry["resource"]["destination"][0]["endpoint"] = entry["resource"]["destination"][0]["endpoint"] \
                .replace("$prepare", "$process-message#prescription-order")
    return body


def parameters(body: dict) -> dict:
    return {item["name"]: item.get("valueString") for item in body["parameter"]}


@pytest.fixture
def store(tmp_path):
    store = open_store(Settings.load(environ={}, data_dir=tmp_path / "data").journal_url)
    yield store
    store.close()


def digest_for(bundle: dict, when: str) -> str:
    """What $prepare answers for `bundle` at `when` (the HTTP path is tested below; this is for direct checks)."""
    fragments = translation.signature_fragments(signatures.with_author_time(bundle, when))
    return base64.b64encode(signatures.signed_info(signatures.digest_value(fragments))).decode()


WHEN = signatures.timestamp(datetime.now(UTC))  # sandbox certificates are valid from an hour before issue


def signed_order(store, kind: str = "valid", bundle: dict | None = None, when: str = WHEN) -> dict:
    bundle = bundle or fresh_order()
    issued = certificates.issue(store, subject=PRESCRIBER.name, user_id=PRESCRIBER.user_id, kind=kind)
    return signatures.signed(bundle, signatures.sign(digest_for(bundle, when), issued.key_pem,
                                                     issued.certificate_pem), when)


def signature_document(bundle: dict) -> str:
    return base64.b64decode(signatures.requester_signature(bundle)["data"]).decode()


def with_signature_document(bundle: dict, document: str) -> dict:
    changed = copy.deepcopy(bundle)
    signatures.requester_signature(changed)["data"] = base64.b64encode(document.encode()).decode()
    return changed


# --- the digest -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("request_parts,response_parts", RS256_PREPARES)
def test_the_digest_reproduces_the_specifications_prepare_responses(request_parts, response_parts):
    """The strongest check of the digest: the sandbox's SignedInfo for the published request, at the published
    timestamp, is byte for byte the published digest (translation, fragments, c14n, SHA-256 and the template)."""
    published = parameters(example_json(*response_parts))
    assert published["algorithm"] == "RS256"
    assert digest_for(example_json(*request_parts), published["timestamp"]) == published["digest"]


def test_the_digest_depends_on_the_author_time_and_the_prescription():
    bundle = prepare_request()
    first = digest_for(bundle, WHEN)
    assert digest_for(bundle, "2026-01-05T10:00:01+00:00") != digest_for(bundle, "2026-01-05T10:00:00+00:00")
    changed = copy.deepcopy(bundle)
    next(e for e in changed["entry"] if e["resource"]["resourceType"] == "Patient")["resource"]["birthDate"] = \
        "1999-01-01"
    assert digest_for(changed, WHEN) != first


# --- the test CA and its certificates -------------------------------------------------------------------------------


def test_the_ca_is_made_once_and_shared_by_every_app_on_the_data_dir(tmp_path):
    settings = Settings.load(environ={}, data_dir=tmp_path / "data", population=2000)
    pems = []
    for _ in range(2):
        app = create_app(settings)
        try:
            pems.append(certificates.ca_certificate_pem(app.extensions["sandbox"].store))
        finally:
            app.extensions["sandbox"].close()
    assert pems[0] == pems[1]
    ca = x509.load_pem_x509_certificate(pems[0].encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "Spine Sandbox" in ca.subject.rfc4514_string()


def test_issued_certificates_look_like_smartcard_certificates(store):
    issued = certificates.issue(store, subject="Priya Shah", user_id="555021935107")
    certificate = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "555021935107_PRIYA_SHAH"
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "People"
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    assert certificate.issuer == x509.load_pem_x509_certificate(
        certificates.ca_certificate_pem(store).encode()).subject
    key = serialization.load_pem_private_key(issued.key_pem.encode(), None)
    assert key.key_size == 2048 and key.public_key().public_numbers() == certificate.public_key().public_numbers()
    assert certificate.serial_number == issued.serial and certificates.issued_by_sandbox(store, certificate)


def test_certificate_kinds(store):
    def load(kind):
        return x509.load_pem_x509_certificate(certificates.issue(store, subject="Tom Evans", kind=kind)
                                              .certificate_pem.encode())

    now = datetime.now(UTC)
    assert load("expired").not_valid_after_utc < now
    assert load("not-yet-valid").not_valid_before_utc > now
    revoked = load("revoked")
    assert certificates.is_revoked(store, revoked.serial_number) and certificates.issued_by_sandbox(store, revoked)
    untrusted = load("untrusted")
    assert not certificates.issued_by_sandbox(store, untrusted) and "Untrusted" in untrusted.issuer.rfc4514_string()
    with pytest.raises(certificates.CertificateError, match="not one of"):
        certificates.issue(store, subject="x", kind="stolen")


# --- verification, directly -----------------------------------------------------------------------------------------


def test_a_valid_signature_verifies(store):
    check = signatures.verify(signed_order(store), store)
    assert check.valid and check.error is None and check.requirement == "EPS-SIG-004"


@pytest.mark.parametrize("kind,problem,requirement", [
    ("expired", "Certificate expired when signed", "EPS-CERT-003"),
    ("not-yet-valid", "Certificate expired when signed", "EPS-CERT-003"),
    ("revoked", "Certificate is revoked", "EPS-CERT-002"),
    ("untrusted", "Certificate not trusted", "EPS-CERT-001"),
])
def test_certificate_problems_are_refused_as_live(store, kind, problem, requirement):
    check = signatures.verify(signed_order(store, kind, when=signatures.timestamp(datetime.now(UTC))), store)
    assert not check.valid and check.problems == [problem] and check.requirement == requirement
    assert (check.error.status, check.error.issue_code, check.error.code, check.error.diagnostics) == (
        400, "invalid", "", problem)


def test_a_prescription_changed_after_signing_does_not_match(store):
    bundle = signed_order(store)
    next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")["resource"]["birthDate"] = \
        "1999-01-01"
    check = signatures.verify(bundle, store)
    assert check.problems == ["Signature doesn't match prescription"] and check.error.status == 400


def test_a_signing_time_other_than_the_prepared_one_does_not_match(store):
    bundle = signed_order(store)
    signatures.requester_signature(bundle)["when"] = signatures.timestamp(datetime.now(UTC) + timedelta(seconds=9))
    assert signatures.verify(bundle, store).problems == ["Signature doesn't match prescription"]


def test_a_tampered_digest_value_is_refused(store):
    """A SignedInfo whose DigestValue is not the prescription's, properly signed: the digest does not match."""
    bundle = fresh_order()
    issued = certificates.issue(store, subject="Priya Shah", user_id="555021935107")
    digest = base64.b64decode(digest_for(bundle, WHEN)).decode()
    tampered = re.sub(r"<DigestValue>[^<]+</DigestValue>",
                      "<DigestValue>" + base64.b64encode(b"\0" * 32).decode() + "</DigestValue>", digest)
    data = signatures.sign(base64.b64encode(tampered.encode()).decode(), issued.key_pem, issued.certificate_pem)
    check = signatures.verify(signatures.signed(bundle, data, WHEN), store)
    assert check.problems == ["Signature doesn't match prescription"]


def test_a_signature_value_that_does_not_verify_is_refused(store):
    bundle = signed_order(store)
    document = signature_document(bundle)
    value = re.search(r"<SignatureValue>([^<]+)</SignatureValue>", document).group(1)
    flipped = base64.b64encode(bytes([base64.b64decode(value)[0] ^ 1]) + base64.b64decode(value)[1:]).decode()
    check = signatures.verify(with_signature_document(bundle, document.replace(value, flipped)), store)
    assert check.problems == ["Signature is invalid"]


def test_a_signature_made_with_another_key_is_refused(store):
    bundle = fresh_order()
    mine = certificates.issue(store, subject="Priya Shah", user_id="555021935107")
    other = certificates.issue(store, subject="Sam Okafor")
    data = signatures.sign(digest_for(bundle, WHEN), mine.key_pem, mine.certificate_pem)
    document = base64.b64decode(data).decode()
    other_der = base64.b64encode(x509.load_pem_x509_certificate(other.certificate_pem.encode())
                                 .public_bytes(serialization.Encoding.DER)).decode()
    swapped = re.sub(r"<X509Certificate>[^<]+</X509Certificate>", f"<X509Certificate>{other_der}</X509Certificate>",
                     document)
    check = signatures.verify(with_signature_document(signatures.signed(bundle, data, WHEN), swapped), store)
    assert check.problems == ["Signature is invalid"]


def test_no_signature_is_missing_digital_signature(store):
    check = signatures.verify(fresh_order(), store)
    assert not check.valid and check.requirement == "EPS-SIG-001"
    assert (check.error.status, check.error.code, check.error.display) == (
        400, "MISSING_DIGITAL_SIGNATURE", "Digital signature not found.")


def test_a_signature_by_someone_other_than_the_requester_is_missing(store):
    bundle = signed_order(store)
    signatures.requester_signature(bundle)["who"] = {"reference": "urn:uuid:someone-else"}
    assert signatures.verify(bundle, store).error.code == "MISSING_DIGITAL_SIGNATURE"


@pytest.mark.parametrize("document,problem", [
    ("not xml at all", "Invalid signature format"),
    ('<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/></Signature>', "Invalid signature format"),
    ("<Signature><SignedInfo/><SignatureValue>AA==</SignatureValue></Signature>", "Invalid signature format"),
    ('<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/><SignatureValue>AA==</SignatureValue>'
     "<KeyInfo><X509Data><X509Certificate>-----BEGIN CERTIFICATE-----</X509Certificate></X509Data></KeyInfo>"
     "</Signature>", "Multiple certificates detected"),
    ('<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/><SignatureValue>AA==</SignatureValue>'
     "<KeyInfo><X509Data><X509Certificate>AAAA</X509Certificate></X509Data></KeyInfo></Signature>",
     "Invalid certificate"),
])
def test_unreadable_signatures_are_refused_as_live(store, document, problem):
    check = signatures.verify(with_signature_document(signed_order(store), document), store)
    assert check.problems == [problem] and check.error.diagnostics == problem


def test_signature_data_that_is_not_base64_is_an_invalid_format(store):
    bundle = signed_order(store)
    signatures.requester_signature(bundle)["data"] = "%%% not base64 %%%"
    assert signatures.verify(bundle, store).problems == ["Invalid signature format"]


def test_a_published_examples_nhs_signature_is_trusted_only_as_an_example(store):
    example = example_json(*MEDICAL, "cancellations", "1-Process-Request-Send-200_OK.json")
    trusted = signatures.verify(example, store, trusted_example=True)
    assert trusted.valid and trusted.requirement == "EPS-SIG-006" and "not checked" in trusted.message
    refused = signatures.verify(example, store)
    assert not refused.valid and "Certificate not trusted" in refused.problems


def test_a_published_examples_placeholder_signature_is_accepted_as_an_example(store):
    example = example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json")
    assert signatures.verify(example, store, trusted_example=True).valid
    assert signatures.verify(example, store).problems == ["Invalid signature format"]


def test_sign_refuses_what_it_cannot_use(store):
    issued = certificates.issue(store, subject="Priya Shah")
    other = certificates.issue(store, subject="Sam Okafor")
    digest = digest_for(prepare_request(), WHEN)
    with pytest.raises(signatures.SignatureError, match="SignedInfo"):
        signatures.sign("bm90IHhtbA==", issued.key_pem, issued.certificate_pem)
    with pytest.raises(signatures.SignatureError, match="does not belong"):
        signatures.sign(digest, other.key_pem, issued.certificate_pem)
    with pytest.raises(signatures.SignatureError, match="PEM"):
        signatures.sign(digest, "not a key", issued.certificate_pem)


def test_signed_adds_one_provenance_for_the_requester():
    bundle = prepare_request()
    twice = signatures.signed(signatures.signed(bundle, "AAAA", WHEN), "BBBB", WHEN)
    provenances = [e for e in twice["entry"] if e["resource"]["resourceType"] == "Provenance"]
    assert len(provenances) == 1
    signature = provenances[0]["resource"]["signature"][0]
    assert signature["data"] == "BBBB" and signature["when"] == WHEN
    assert signature["who"]["reference"] == signatures.requester_reference(bundle)
    assert bundle == prepare_request()  # the input is not changed


# --- over HTTP ------------------------------------------------------------------------------------------------------


@pytest.fixture
def prescriber(client):
    return Tokens(client).worker(PRESCRIBER)


def http_prepare(client, token, body) -> dict:
    response = client.post(PRESCRIBING + "/$prepare", json=body, headers=eps_headers(token, PRESCRIBER))
    assert response.status_code == 200, response.get_json()
    return parameters(response.get_json())


def http_signed_order(client, token, sandbox, kind="valid") -> dict:
    body = fresh_order()
    prepared = http_prepare(client, token, body)
    issued = certificates.issue(sandbox.store, subject=PRESCRIBER.name, user_id=PRESCRIBER.user_id, kind=kind)
    return signatures.signed(body, signatures.sign(prepared["digest"], issued.key_pem, issued.certificate_pem),
                             prepared["timestamp"])


def process(client, token, body):
    return client.post(PRESCRIBING + "/$process-message", json=body, headers=eps_headers(token, PRESCRIBER))


def test_prepare_answers_a_signed_info_over_the_prescription(client, prescriber):
    prepared = http_prepare(client, prescriber, fresh_order())
    assert prepared["algorithm"] == "RS256"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", prepared["timestamp"])
    signed_info = base64.b64decode(prepared["digest"]).decode()
    assert signed_info.startswith('<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#">')
    assert signatures.RSA_SHA256 in signed_info and signatures.DIGEST_SHA256 in signed_info


def test_a_valid_signature_is_accepted_by_process_message(client, prescriber, sandbox):
    response = process(client, prescriber, http_signed_order(client, prescriber, sandbox))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["issue"][0]["code"] == "informational"


@pytest.mark.parametrize("kind,problem", [("untrusted", "Certificate not trusted"),
                                          ("expired", "Certificate expired when signed"),
                                          ("revoked", "Certificate is revoked")])
def test_a_wrong_certificate_is_refused_by_process_message(client, prescriber, sandbox, kind, problem):
    response = process(client, prescriber, http_signed_order(client, prescriber, sandbox, kind))
    assert response.status_code == 400
    issue = response.get_json()["issue"][0]
    assert (issue["severity"], issue["code"], issue["diagnostics"]) == ("error", "invalid", problem)


def test_a_tampered_prescription_is_refused_by_process_message(client, prescriber, sandbox):
    body = http_signed_order(client, prescriber, sandbox)
    next(e for e in body["entry"] if e["resource"]["resourceType"] == "Patient")["resource"]["birthDate"] = \
        "1999-01-01"
    response = process(client, prescriber, body)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["diagnostics"] == "Signature doesn't match prescription"


def test_a_tampered_digest_is_refused_by_process_message(client, prescriber, sandbox):
    body = fresh_order()
    prepared = http_prepare(client, prescriber, body)
    signed_info = base64.b64decode(prepared["digest"]).decode()
    tampered = re.sub(r"<DigestValue>[^<]+</DigestValue>", "<DigestValue>" + base64.b64encode(b"\1" * 32).decode()
                      + "</DigestValue>", signed_info)
    issued = certificates.issue(sandbox.store, subject=PRESCRIBER.name, user_id=PRESCRIBER.user_id)
    data = signatures.sign(base64.b64encode(tampered.encode()).decode(), issued.key_pem, issued.certificate_pem)
    response = process(client, prescriber, signatures.signed(body, data, prepared["timestamp"]))
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["diagnostics"] == "Signature doesn't match prescription"


def test_an_unsigned_order_is_refused_missing_digital_signature(client, prescriber):
    response = process(client, prescriber, fresh_order())
    assert response.status_code == 400
    coding = response.get_json()["issue"][0]["details"]["coding"][0]
    assert (coding["code"], coding["display"]) == ("MISSING_DIGITAL_SIGNATURE", "Digital signature not found.")


# --- $verify-signature ----------------------------------------------------------------------------------------------


def verify_signature(client, token, body, base=LEGACY):
    return client.post(base + "/$verify-signature", json=body, headers=eps_headers(token, PRESCRIBER))


def results(response) -> list[list[dict]]:
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["resourceType"] == "Parameters"
    found = []
    for index, part in enumerate(body["parameter"]):
        assert part["name"] == str(index)
        named = {item["name"]: item for item in part["part"]}
        assert "identifier" in named["messageIdentifier"]["valueReference"]
        found.append(named["result"]["resource"]["issue"])
    return found


def test_verify_signature_answers_informational_for_a_valid_signature(client, prescriber, sandbox):
    body = http_signed_order(client, prescriber, sandbox)
    [issues] = results(verify_signature(client, prescriber, body))
    assert issues == [{"severity": "information", "code": "informational"}]


def test_verify_signature_names_each_problem(client, prescriber, sandbox):
    body = http_signed_order(client, prescriber, sandbox, kind="untrusted")
    next(e for e in body["entry"] if e["resource"]["resourceType"] == "Patient")["resource"]["birthDate"] = \
        "1999-01-01"
    [issues] = results(verify_signature(client, prescriber, body))
    displays = [issue["details"]["coding"][0]["display"] for issue in issues]
    assert displays == ["Signature doesn't match prescription", "Certificate not trusted"]
    assert all(issue["details"]["coding"][0]["code"] == "INVALID" and issue["code"] == "invalid"
               and issue["expression"] == ["Provenance.signature.data"] for issue in issues)


def test_verify_signature_takes_a_bundle_of_prescriptions(client, prescriber, sandbox):
    good = http_signed_order(client, prescriber, sandbox)
    unsigned = fresh_order()
    outer = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": good}, {"resource": unsigned}]}
    first, second = results(verify_signature(client, prescriber, outer))
    assert first[0]["code"] == "informational"
    assert second[0]["details"]["coding"][0]["display"] == "Invalid signature format"


def test_verify_signature_checks_the_prescription_the_session_holds(client, prescriber, sandbox):
    body = http_signed_order(client, prescriber, sandbox)
    assert process(client, prescriber, body).status_code == 200
    changed = copy.deepcopy(body)
    for entry in changed["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            for identifier in entry["resource"]["identifier"]:
                identifier["value"] = "9999999999"
    [issues] = results(verify_signature(client, prescriber, changed))
    assert [issue["details"]["coding"][0]["display"] for issue in issues] == ["Nhs Number does not match"]


def test_verify_signature_refuses_what_is_not_a_bundle(client, prescriber):
    response = verify_signature(client, prescriber, {"resourceType": "Parameters", "parameter": []})
    assert response.status_code == 400
    issue = response.get_json()["issue"][0]
    assert issue["diagnostics"] == "Incorrect FHIR resource type. Expected Bundle."


# --- total over hostile input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bundle", [
    {}, {"entry": "x"}, {"entry": [1, None, "x"]}, {"resourceType": "Bundle", "entry": [{"resource": []}]},
    {"entry": [{"resource": {"resourceType": "MedicationRequest", "requester": "me"}}]},
    {"entry": [{"resource": {"resourceType": "Provenance", "signature": [1, {"who": "x"}, {"who": {}}]}}]},
    {"entry": [{"resource": {"resourceType": "MedicationRequest"}},
               {"resource": {"resourceType": "Provenance", "signature": [{"who": {}, "data": "AAAA"}]}}]},
])
def test_verify_answers_every_malformed_bundle_with_a_refusal(store, bundle):
    check = signatures.verify(bundle, store)
    assert not check.valid and check.error is not None and check.error.status == 400


def test_an_unreadable_signing_time_is_refused_not_crashed(store):
    bundle = signed_order(store)
    signatures.requester_signature(bundle)["when"] = "yesterday"
    check = signatures.verify(bundle, store)
    assert not check.valid and check.error.status == 400
    assert "'yesterday'" in check.error.diagnostics and "(Provenance.signature.when)" in check.error.diagnostics


def test_the_finding_of_each_outcome(store):
    from sandbox.conformance.findings import Outcome

    assert signatures.verify(signed_order(store), store).finding().outcome == Outcome.PASS
    refused = signatures.verify(fresh_order(), store).finding()
    assert refused.outcome == Outcome.FAIL and refused.reject.code == "MISSING_DIGITAL_SIGNATURE"
    example = example_json(*MEDICAL, "1-Process-Request-Send-200_OK.json")
    assert signatures.verify(example, store, trusted_example=True).finding().outcome == Outcome.INFO


@pytest.mark.parametrize("mutate", [
    lambda body: body.update(entry=[]),
    lambda body: body.update(entry="nonsense"),
    lambda body: [e["resource"].pop("requester", None) for e in body["entry"]
                  if e["resource"]["resourceType"] == "MedicationRequest"],
])
def test_prepare_refuses_a_broken_prescription_with_a_400(client, prescriber, mutate):
    body = fresh_order()
    mutate(body)
    response = client.post(PRESCRIBING + "/$prepare", json=body, headers=eps_headers(prescriber, PRESCRIBER))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_a_revocation_for_a_lesser_reason_refuses_only_later_signatures(store):
    """As live reads the CRL: superseded (or any reason but a compromise) invalidates signatures made after it."""
    bundle = fresh_order()
    issued = certificates.issue(store, subject="Priya Shah", user_id="555021935107")
    serial = x509.load_pem_x509_certificate(issued.certificate_pem.encode()).serial_number
    signed_at = datetime.now(UTC) - timedelta(minutes=10)
    when = signatures.timestamp(signed_at)
    order = signatures.signed(bundle, signatures.sign(digest_for(bundle, when), issued.key_pem,
                                                      issued.certificate_pem), when)
    certificates.revoke(store, serial, "superseded", when=signed_at + timedelta(minutes=5))
    assert signatures.verify(order, store).valid  # signed before the revocation
    later = signatures.timestamp(signed_at + timedelta(minutes=6))
    after = signatures.signed(bundle, signatures.sign(digest_for(bundle, later), issued.key_pem,
                                                      issued.certificate_pem), later)
    assert signatures.verify(after, store).problems == ["Certificate is revoked"]
    certificates.revoke(store, serial, "keyCompromise")
    assert signatures.verify(order, store).problems == ["Certificate is revoked"]  # a compromise revokes every one
