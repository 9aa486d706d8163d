"""Prescribers' signatures, as live EPS makes and checks them.

$prepare digests the prescription: the HL7v3 fragments a prescriber signs (translation.signature_fragments: the
author's time, the prescription id, the author, the patient and the line items, exclusive-c14n) are hashed with
SHA-256 into the DigestValue of an XML-DSig SignedInfo, and the digest handed back is the base64 of that SignedInfo,
canonical (the bytes the prescriber's smartcard signs). The prescribing system signs those bytes (RSA-SHA256),
wraps SignedInfo, SignatureValue and the certificate in a `<Signature>` and sends its base64 as
Provenance.signature[0].data, with Provenance.signature[0].when the timestamp $prepare gave (the author's time, which
is part of what was digested).

On $process-message live EPS (coordinator services/verification/signature-verification.ts) refuses, in this order:
a signature it cannot read ("Invalid signature format"), more than one certificate ("Multiple certificates
detected"), a certificate it cannot parse ("Invalid certificate"); then it collects "Signature is invalid" (the
SignatureValue does not verify over SignedInfo with the embedded certificate), "Signature doesn't match prescription"
(SignedInfo, DigestValue included, differs from a fresh digest of the prescription as submitted), "Certificate is
revoked", "CA certificate is revoked", "Certificate expired when signed" (the signing time, Provenance.signature.when,
outside the certificate's validity) and "Certificate not trusted" (not issued by one of its CAs). Each is a 400
OperationOutcome issue {severity error, code invalid, diagnostics <text>}. A prescription with no signature at all is
refused by Spine with MISSING_DIGITAL_SIGNATURE ("Digital signature not found.", the specification's table).

The sandbox trusts its own test CA only (certificates.py)."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import Malformed, parse_xml
from sandbox.journal.store import Store
from sandbox.services.eps import certificates, prescriptions, translation
from sandbox.services.eps.context import EpsCall
from sandbox.services.eps.errors import eps_error
from sandbox.services.eps.resources import entries, event_code

DSIG = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
DIGEST_SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SIGNATURE_TYPE = {"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1"}  # author's signature

# The live refusals, in the order live checks them (diagnostics texts as live writes them).
INVALID_FORMAT = "Invalid signature format"
MULTIPLE_CERTIFICATES = "Multiple certificates detected"
INVALID_CERTIFICATE = "Invalid certificate"
SIGNATURE_INVALID = "Signature is invalid"
DIGEST_MISMATCH = "Signature doesn't match prescription"
CERTIFICATE_REVOKED = "Certificate is revoked"
CERTIFICATE_EXPIRED = "Certificate expired when signed"
CERTIFICATE_UNTRUSTED = "Certificate not trusted"
MISSING_SIGNATURE = "Digital signature not found."

# Requirement ids (requirements/signatures.yaml) for each outcome.
REQUIREMENT = {
    MISSING_SIGNATURE: "EPS-SIG-001", INVALID_FORMAT: "EPS-SIG-002", MULTIPLE_CERTIFICATES: "EPS-SIG-002",
    INVALID_CERTIFICATE: "EPS-SIG-002", SIGNATURE_INVALID: "EPS-SIG-003", DIGEST_MISMATCH: "EPS-SIG-004",
    CERTIFICATE_REVOKED: "EPS-CERT-002", CERTIFICATE_EXPIRED: "EPS-CERT-003", CERTIFICATE_UNTRUSTED: "EPS-CERT-001",
}
VALID_REQUIREMENT = "EPS-SIG-004"
EXAMPLE_REQUIREMENT = "EPS-SIG-006"


class SignatureError(ValueError):
    """A digest, key or certificate handed to `sign` cannot be used; the message says which and why."""


@dataclass
class SignatureCheck:
    valid: bool
    requirement: str
    message: str
    error: SpineError | None = None  # the live refusal when not valid (the first of `problems`)
    problems: list[str] = field(default_factory=list)  # every live diagnostic, in live's order

    def finding(self) -> Finding:
        """The finding the exchange carries: failed with the live refusal, informational for a published example
        accepted on trust (its NHS test CA is not checked), passed otherwise."""
        if not self.valid:
            return Finding.failed(self.requirement, self.message, "Provenance.signature.data", reject=self.error)
        if self.requirement == EXAMPLE_REQUIREMENT:
            return Finding.info(self.requirement, self.message, "Provenance.signature.data")
        return Finding.passed(self.requirement, self.message, "Provenance.signature.data")


# --- the digest ------------------------------------------------------------------------------------------------


def signed_info(digest_value: str, signature_method: str = RSA_SHA256, digest_method: str = DIGEST_SHA256) -> bytes:
    """The canonical SignedInfo live writes (exclusive c14n: attributes sorted, empty elements written out)."""
    return (f'<SignedInfo xmlns="{DSIG}"><CanonicalizationMethod Algorithm="{EXC_C14N}"></CanonicalizationMethod>'
            f'<SignatureMethod Algorithm="{signature_method}"></SignatureMethod><Reference><Transforms>'
            f'<Transform Algorithm="{EXC_C14N}"></Transform></Transforms><DigestMethod Algorithm="{digest_method}">'
            f'</DigestMethod><DigestValue>{digest_value}</DigestValue></Reference></SignedInfo>').encode()


def digest_value(fragments: bytes, digest_method: str = DIGEST_SHA256) -> str:
    algorithm = hashlib.sha1 if digest_method == DIGEST_SHA1 else hashlib.sha256
    return base64.b64encode(algorithm(fragments).digest()).decode("ascii")


def timestamp(moment: datetime) -> str:
    """An author's time as $prepare gives it: UTC, to the second (HL7v3 TS precision), e.g. 2024-12-09T11:50:04+00:00."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def requester_reference(bundle: dict) -> str | None:
    """The first MedicationRequest's requester (the PractitionerRole whose signature live looks for)."""
    requests = entries(bundle, "MedicationRequest")
    requester = requests[0].get("requester") if requests else None
    reference = requester.get("reference") if isinstance(requester, dict) else None
    return reference if isinstance(reference, str) else None


def requester_signature(bundle: dict) -> dict | None:
    """The Provenance signature whose `who` is the requester, as live finds it (None: there is none)."""
    requester = requester_reference(bundle)
    if requester is None:
        return None
    for provenance in entries(bundle, "Provenance"):
        signatures = provenance.get("signature")
        for signature in signatures if isinstance(signatures, list) else []:
            who = signature.get("who") if isinstance(signature, dict) else None
            if isinstance(who, dict) and who.get("reference") == requester:
                return signature
    return None


def _fragments(bundle: dict) -> bytes:
    try:
        return translation.signature_fragments(bundle)
    except SpineError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, LookupError) as exc:
        where = getattr(exc, "path", "")  # translation.Untranslatable names the FHIR path, as live's errors do
        raise eps_error(400, "value", diagnostics=f"The prescription cannot be translated to be digested: {exc}"
                        + (f" ({where})" if where else "")) from None


def with_author_time(bundle: dict, when: str) -> dict:
    """A copy of a prescription carrying an empty requester signature made `when`: the author's time is part of
    what is digested, and live takes it from the requester's signature (at $prepare: the time of the request)."""
    return signed(bundle, base64.b64encode(f'<Signature xmlns="{DSIG}"/>'.encode()).decode("ascii"), when)


def prepare(call: EpsCall) -> dict:
    """$prepare's answer: Parameters {digest, timestamp, algorithm} for the prescription-order in call.body."""
    bundle = call.body
    if not isinstance(bundle, dict) or event_code(bundle) != "prescription-order":
        raise eps_error(400, "value", diagnostics="MessageHeader.eventCoding.code must be 'prescription-order'.")
    when = timestamp(prescriptions.now(call.session))  # the session's clock
    fragments = _fragments(with_author_time(bundle, when))
    digest = base64.b64encode(signed_info(digest_value(fragments))).decode("ascii")
    return {"resourceType": "Parameters", "parameter": [
        {"name": "digest", "valueString": digest}, {"name": "timestamp", "valueString": when},
        {"name": "algorithm", "valueString": "RS256"}]}


# --- signing (what a prescribing system does with its smartcard) ----------------------------------------------------


def _load_key(key_pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
        raise SignatureError(f"the private key is not an unencrypted PEM key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SignatureError("the private key must be an RSA key (smartcard keys are RSA)")
    return key


def _load_certificate_pem(certificate_pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise SignatureError(f"the certificate is not a PEM X.509 certificate: {exc}") from None


def _signed_info_of_digest(digest: str) -> etree._Element:
    try:
        raw = base64.b64decode(digest.strip(), validate=True)
        element = parse_xml(raw)
    except Malformed as exc:
        raise SignatureError(f"the digest is not the base64 SignedInfo $prepare returns: its XML: {exc.detail}") \
            from None
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"the digest is not the base64 SignedInfo $prepare returns: {exc}") from None
    if element.tag != f"{{{DSIG}}}SignedInfo":
        raise SignatureError("the digest is not the base64 SignedInfo $prepare returns (its root is not SignedInfo)")
    return element


def _hash_of(signature_method: str) -> hashes.HashAlgorithm:
    # as live: rsa-sha256 when the method says so, every other method is read as rsa-sha1
    return hashes.SHA256() if signature_method.endswith("rsa-sha256") else hashes.SHA1()  # noqa: S303


def sign(digest: str, key_pem: str, certificate_pem: str) -> str:
    """Provenance.signature[0].data for a $prepare digest: base64 of <Signature> (SignedInfo, SignatureValue
    RSA over the canonical SignedInfo, KeyInfo/X509Data/X509Certificate)."""
    element = _signed_info_of_digest(digest)
    key = _load_key(key_pem)
    certificate = _load_certificate_pem(certificate_pem)
    if certificate.public_key().public_numbers() != key.public_key().public_numbers():
        raise SignatureError("the private key does not belong to the certificate")
    canonical = canonical_signed_info(element)
    method = _signature_method(element)
    value = base64.b64encode(key.sign(canonical, padding.PKCS1v15(), _hash_of(method))).decode("ascii")
    der = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")
    inner = canonical.decode().replace(f'<SignedInfo xmlns="{DSIG}">', "<SignedInfo>", 1)
    document = (f'<Signature xmlns="{DSIG}">{inner}<SignatureValue>{value}</SignatureValue>'
                f"<KeyInfo><X509Data><X509Certificate>{der}</X509Certificate></X509Data></KeyInfo></Signature>")
    return base64.b64encode(document.encode()).decode("ascii")


def _is_provenance(entry: object) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("resource"), dict) \
        and entry["resource"].get("resourceType") == "Provenance"


def _entries_without_provenance(bundle: dict) -> list:
    listed = bundle.get("entry")
    return [entry for entry in listed if not _is_provenance(entry)] if isinstance(listed, list) else []


def _provenance_entry(bundle: dict, signature_data: str, when: str) -> dict:
    requester = requester_reference(bundle) or ""
    targets = [entry.get("fullUrl") for entry in bundle["entry"]
               if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
               and entry["resource"].get("resourceType") == "MedicationRequest" and entry.get("fullUrl")]
    provenance_id = str(uuid.uuid4())
    return {"fullUrl": f"urn:uuid:{provenance_id}", "resource": {
        "resourceType": "Provenance", "id": provenance_id, "target": [{"reference": url} for url in targets],
        "recorded": when, "agent": [{"who": {"reference": requester}}],
        "signature": [{"type": [dict(SIGNATURE_TYPE)], "when": when, "who": {"reference": requester},
                       "data": signature_data}]}}


def signed(bundle: dict, signature_data: str, when: str | None = None) -> dict:
    """A copy of a prepared prescription with the requester's Provenance signature (as the specification's order
    examples carry it), ready for $process-message. `when` must be the timestamp $prepare gave (it is digested)."""
    result = copy.deepcopy(bundle)
    result["entry"] = _entries_without_provenance(result)
    result["entry"].append(_provenance_entry(result, signature_data, when or timestamp(datetime.now(UTC))))
    return result


# --- verification ---------------------------------------------------------------------------------------------------


def _strip_blank_text(element: etree._Element) -> etree._Element:
    """Whitespace between elements dropped, as live's XML reader (xml-js, compact) drops it."""
    element = copy.deepcopy(element)
    for node in element.iter():
        if node.text is not None and not node.text.strip() and len(node):
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    return element


def canonical_signed_info(element: etree._Element) -> bytes:
    """SignedInfo, exclusive c14n, as live re-serialises it from a Signature before verifying."""
    return etree.tostring(_strip_blank_text(element), method="c14n", exclusive=True, with_comments=False)


def _signature_method(signed_info_element: etree._Element) -> str:
    method = signed_info_element.find(f"{{{DSIG}}}SignatureMethod")
    return method.get("Algorithm", "") if method is not None else ""


def _digest_method(signed_info_element: etree._Element) -> str:
    method = signed_info_element.find(f"{{{DSIG}}}Reference/{{{DSIG}}}DigestMethod")
    return DIGEST_SHA256 if method is not None and method.get("Algorithm") == DIGEST_SHA256 else DIGEST_SHA1


def _text(element: etree._Element, path: str) -> str:
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def _refusal(problem: str) -> SpineError:
    if problem == MISSING_SIGNATURE:
        return eps_error(400, "value", "MISSING_DIGITAL_SIGNATURE", MISSING_SIGNATURE,
                         "The prescription carries no Provenance signature by its requester "
                         "(MedicationRequest.requester); sign the $prepare digest and add it.")
    return eps_error(400, "invalid", diagnostics=problem)


def _failed(problems: list[str], detail: str) -> SignatureCheck:
    first = problems[0]
    return SignatureCheck(False, REQUIREMENT[first], f"{first}: {detail}" if detail else first,
                          _refusal(first), problems)


def _parse_signature(data: object) -> etree._Element | None:
    if not isinstance(data, str):
        return None
    try:
        root = parse_xml(base64.b64decode(data.strip(), validate=True))
    except (binascii.Error, ValueError, Malformed):
        return None
    return root if root.tag == f"{{{DSIG}}}Signature" else None


def _signing_time(signature: dict) -> datetime | None:
    when = signature.get("when")
    try:
        moment = datetime.fromisoformat(when) if isinstance(when, str) else None
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC) if moment else None


def _verifies(certificate: x509.Certificate, canonical: bytes, value: str, method: str) -> bool:
    try:
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            return False
        public_key.verify(base64.b64decode(value, validate=False), canonical, padding.PKCS1v15(), _hash_of(method))
    except (InvalidSignature, binascii.Error, ValueError, UnsupportedAlgorithm):
        return False
    return True


def verify(bundle: dict, store: Store, *, trusted_example: bool = False, now: datetime | None = None) -> SignatureCheck:
    """Check a prescription-order's requester signature as live does (module docstring), against the sandbox's CA.

    `trusted_example`: the bundle equals a specification example, signed by an NHS test smartcard (or carrying the
    published empty placeholder): only its own signature value is checked; the issuer, revocation and validity
    checks are skipped, and a digest that differs from the sandbox's translation is reported, not refused.
    `now`: the time used when the signature has no readable `when` (the session's clock)."""
    signature = requester_signature(bundle) if isinstance(bundle, dict) else None
    if signature is None:
        return _failed([MISSING_SIGNATURE], "")
    root = _parse_signature(signature.get("data"))
    if root is None:
        return _failed([INVALID_FORMAT], "Provenance.signature.data is not base64 of an XML-DSig <Signature>")
    element = root.find(f"{{{DSIG}}}SignedInfo")
    value = _text(root, f"{{{DSIG}}}SignatureValue")
    certificate_text = _text(root, f"{{{DSIG}}}KeyInfo/{{{DSIG}}}X509Data/{{{DSIG}}}X509Certificate")
    if trusted_example and element is not None and not value and not certificate_text:
        return SignatureCheck(True, EXAMPLE_REQUIREMENT, "A published example's placeholder signature (no "
                              "SignatureValue or certificate) is accepted as the specification's example.")
    if element is None or not value or not certificate_text:
        return _failed([INVALID_FORMAT], "the Signature lacks SignedInfo, SignatureValue or X509Certificate")
    if "BEGIN CERTIFICATE" in certificate_text or "END CERTIFICATE" in certificate_text:
        return _failed([MULTIPLE_CERTIFICATES], "X509Certificate must hold one base64 DER certificate, no PEM")
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode("".join(certificate_text.split())))
    except (binascii.Error, ValueError):
        return _failed([INVALID_CERTIFICATE], "X509Certificate is not a base64 DER X.509 certificate")

    problems: list[str] = []
    canonical = canonical_signed_info(element)
    method = _signature_method(element)
    if not _verifies(certificate, canonical, value, method):
        problems.append(SIGNATURE_INVALID)
    digest_method = _digest_method(element)  # live rebuilds SignedInfo with the methods of the signature's digest
    try:
        fragments = _fragments(bundle)
    except SpineError as error:  # the prescription cannot be translated: refused as live refuses it
        return SignatureCheck(False, REQUIREMENT[DIGEST_MISMATCH], error.diagnostics, error, [error.diagnostics])
    fresh = signed_info(digest_value(fragments, digest_method),
                        RSA_SHA256 if digest_method == DIGEST_SHA256 else RSA_SHA1, digest_method)
    digest_matches = fresh == canonical
    if not digest_matches and not trusted_example:
        problems.append(DIGEST_MISMATCH)
    if not trusted_example:
        signed_at = _signing_time(signature) or now or datetime.now(UTC)
        if certificates.revoked_when_signed(store, certificate.serial_number, signed_at):
            problems.append(CERTIFICATE_REVOKED)
        if not certificate.not_valid_before_utc <= signed_at <= certificate.not_valid_after_utc:
            problems.append(CERTIFICATE_EXPIRED)
        if not certificates.issued_by_sandbox(store, certificate):
            problems.append(CERTIFICATE_UNTRUSTED)
    subject = certificate.subject.rfc4514_string()
    if problems:
        return _failed(problems, f"certificate {subject}, serial {certificate.serial_number}")
    if trusted_example:
        note = "" if digest_matches else " (its digest differs from the sandbox's translation of the prescription)"
        return SignatureCheck(True, EXAMPLE_REQUIREMENT, f"A published example's signature by {subject} verifies "
                              f"with its own certificate; the issuer (an NHS test CA) is not checked{note}.")
    return SignatureCheck(True, VALID_REQUIREMENT, f"The signature by {subject} verifies and matches the prescription.")
