"""Local TLS material for `serve --tls`: a sandbox CA, a server certificate, and client certificates it signs.

Made once and kept in the TLS folder (SANDBOX_TLS_DIR, default <data dir>/tls), so clients configured with them
keep working across restarts. Nothing here is fit for anything but a local sandbox: the CA key sits beside it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "Spine Sandbox local CA"
VALID_DAYS = 825


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Spine Sandbox"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(pair: KeyPair, cert: x509.Certificate, key) -> KeyPair:
    pair.cert.parent.mkdir(parents=True, exist_ok=True)
    pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    pair.key.chmod(0o600)
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pair


def _load(pair: KeyPair):
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    return cert, key


def authority(folder: Path) -> KeyPair:
    """The sandbox CA, made on first use. Trust its certificate (ca.crt) in clients."""
    pair = KeyPair(folder / "ca.crt", folder / "ca.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(CA_NAME)).issuer_name(_name(CA_NAME))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return _write(pair, cert, key)


def _issue(folder: Path, pair: KeyPair, common_name: str, server: bool, hosts: tuple[str, ...] = ()) -> KeyPair:
    ca_cert, ca_key = _load(authority(folder))
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                     else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _write(pair, builder.sign(ca_key, hashes.SHA256()), key)


def server_pair(folder: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")) -> KeyPair:
    pair = KeyPair(folder / "server.crt", folder / "server.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    return _issue(folder, pair, hosts[0], server=True, hosts=hosts)


def client_pair(folder: Path, name: str, common_name: str) -> KeyPair:
    """A client certificate signed by the sandbox CA, kept as clients/<name>.crt and .key."""
    pair = KeyPair(folder / "clients" / f"{name}.crt", folder / "clients" / f"{name}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    return _issue(folder, pair, common_name, server=False)
