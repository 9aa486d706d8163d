"""The sandbox's test certificate authority for prescribers' signatures.

Live EPS accepts a prescription's signature only from a smartcard certificate issued by one of the NHS's sub-CAs,
not revoked and valid when the prescription was signed. The sandbox cannot issue NHS certificates, so it has its own
test CA (RSA 2048, made on first use and kept in the store's global state so every worker process and restart shares
it) and trusts that CA only. `spine-sandbox eps certificate` issues smartcard-like end-entity certificates from it —
valid, expired, not yet valid, revoked — and "untrusted" ones from a second CA the sandbox does not trust, so a
supplier can produce every signature the live service accepts or refuses. Its revocation list (global state, read by
signatures.verify; `spine-sandbox eps revoke`) is read as live reads the NHS CRLs: a compromised key revokes every
signature by it, any other reason only signatures made after the revocation.

The subject follows the NHS's smartcard certificates (CN=<user id>_<NAME>, OU=People) under an organisation that says
what it is, so nobody mistakes a sandbox certificate for an NHS one."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox.journal.store import Store, VersionConflict
from sandbox.services.oauth.registry import GLOBAL

CA_NAMESPACE = "eps.ca"
REVOKED_NAMESPACE = "eps.revoked"
TRUSTED, UNTRUSTED = "trusted", "untrusted"  # the keys of the two CAs in CA_NAMESPACE
KINDS = ("valid", "expired", "not-yet-valid", "revoked", "untrusted")
ORGANISATION = "Spine Sandbox (test only, not NHS)"
CA_NAMES = {TRUSTED: "Spine Sandbox EPS Test CA", UNTRUSTED: "Spine Sandbox EPS Untrusted Test CA"}
# CRL reason codes (RFC 5280); live treats the compromises as revoking every signature, the rest only later ones.
COMPROMISED = ("keyCompromise", "cACompromise", "aACompromise")
REASONS = ("unspecified", *COMPROMISED, "affiliationChanged", "superseded", "cessationOfOperation",
           "certificateHold", "removeFromCRL")
KEY_SIZE = 2048
CA_YEARS = 20


class CertificateError(ValueError):
    """A certificate cannot be issued as asked; the message says what is allowed."""


@dataclass
class Issued:
    certificate_pem: str
    key_pem: str
    serial: int
    kind: str


@dataclass(frozen=True)
class Authority:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)


def _key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _name(common_name: str, unit: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey, serial: int, not_before: datetime,
             not_after: datetime, *, ca: bool) -> x509.CertificateBuilder:
    """A CA's certificate signs certificates and CRLs; a smartcard's signs documents (non-repudiation too)."""
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(serial).not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=not ca, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                     crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))


def _make_authority(which: str) -> dict:
    key = _new_key()
    name = _name(CA_NAMES[which], "CA")
    now = datetime.now(UTC)
    certificate = _builder(name, name, key, x509.random_serial_number(), now - timedelta(days=1),
                           now + timedelta(days=365 * CA_YEARS), ca=True).sign(key, hashes.SHA256())
    return {"certificate": _pem(certificate), "key": _key_pem(key)}


def _stored(store: Store, which: str) -> dict:
    """One of the two CAs as kept in global state, made on first use (another process may make it first: theirs
    is used)."""
    item = store.state.get(GLOBAL, CA_NAMESPACE, which)
    if item is None:
        with contextlib.suppress(VersionConflict):
            store.state.put(GLOBAL, CA_NAMESPACE, which, _make_authority(which), create_only=True)
        item = store.state.get(GLOBAL, CA_NAMESPACE, which)
    return item.value


# Parsing the CA's private key costs about 100 ms; a CA never changes once made, so each PEM is parsed once per process.
@lru_cache(maxsize=4)
def _certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


@lru_cache(maxsize=4)
def _key(pem: str) -> rsa.RSAPrivateKey:
    return serialization.load_pem_private_key(pem.encode("ascii"), password=None)


def _authority(store: Store, which: str = TRUSTED) -> Authority:
    stored = _stored(store, which)
    return Authority(_certificate(stored["certificate"]), _key(stored["key"]))


def ca_certificate_pem(store: Store) -> str:
    """The CA the sandbox trusts for prescribers' signatures (PEM)."""
    return _stored(store, TRUSTED)["certificate"]


def ca_certificate(store: Store) -> x509.Certificate:
    return _certificate(ca_certificate_pem(store))


def common_name(subject: str, user_id: str | None) -> str:
    """As the NHS's smartcard certificates write it: <user id>_<NAME>, or the name alone."""
    name = re.sub(r"[^A-Z0-9]+", "_", subject.upper()).strip("_") or "PRESCRIBER"
    return f"{user_id}_{name}" if user_id else name


def _validity(kind: str, now: datetime) -> tuple[datetime, datetime]:
    if kind == "expired":
        return now - timedelta(days=2 * 365), now - timedelta(days=1)
    if kind == "not-yet-valid":
        return now + timedelta(days=30), now + timedelta(days=2 * 365)
    return now - timedelta(hours=1), now + timedelta(days=2 * 365)


def issue(store: Store, *, subject: str, user_id: str | None = None, kind: str = "valid",
          now: datetime | None = None) -> Issued:
    """A smartcard-like signing certificate and its private key. `kind`: valid, expired, not-yet-valid, revoked
    (valid, then put on the sandbox's revocation list) or untrusted (issued by a CA the sandbox does not trust).
    `now` sets the validity period's reference (default: real time)."""
    if kind not in KINDS:
        raise CertificateError(f"certificate kind {kind!r} is not one of {', '.join(KINDS)}")
    if user_id is not None and not re.fullmatch(r"[0-9A-Za-z]{1,20}", user_id):
        raise CertificateError(f"user id {user_id!r} must be letters and digits (a CIS2 user id has 12 digits)")
    authority = _authority(store, UNTRUSTED if kind == "untrusted" else TRUSTED)
    key = _new_key()
    not_before, not_after = _validity(kind, now or datetime.now(UTC))
    serial = x509.random_serial_number()
    certificate = (
        _builder(_name(common_name(subject, user_id), "People"), authority.certificate.subject, key, serial,
                 not_before, not_after, ca=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
                       critical=False)
        .sign(authority.key, hashes.SHA256()))
    if kind == "revoked":
        revoke(store, serial)
    return Issued(_pem(certificate), _key_pem(key), serial, kind)


def revoke(store: Store, serial: int, reason: str = "keyCompromise", when: datetime | None = None) -> None:
    """Put a certificate on the sandbox's revocation list (what live reads from the NHS CRLs)."""
    if reason not in REASONS:
        raise CertificateError(f"revocation reason {reason!r} is not one of {', '.join(REASONS)}")
    moment = (when or datetime.now(UTC)).timestamp()
    store.state.put(GLOBAL, REVOKED_NAMESPACE, str(serial), {"revoked_at": moment, "reason": reason})


def is_revoked(store: Store, serial: int) -> bool:
    return store.state.get(GLOBAL, REVOKED_NAMESPACE, str(serial)) is not None


def revoked_when_signed(store: Store, serial: int, signed_at: datetime) -> bool:
    """As live reads a CRL entry: a compromised key (keyCompromise, cACompromise, aACompromise) makes every
    signature invalid; any other reason only those made after the revocation."""
    item = store.state.get(GLOBAL, REVOKED_NAMESPACE, str(serial))
    if item is None:
        return False
    if item.value.get("reason") in COMPROMISED:
        return True
    return signed_at.timestamp() > float(item.value.get("revoked_at", 0))


def issued_by_sandbox(store: Store, certificate: x509.Certificate) -> bool:
    """Whether the sandbox's trusted CA issued this certificate (its signature verifies with the CA's key)."""
    try:
        certificate.verify_directly_issued_by(ca_certificate(store))
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):  # another issuer name, key type or signature
        return False
    return True
