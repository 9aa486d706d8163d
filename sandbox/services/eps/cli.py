"""`spine-sandbox eps …`: the sandbox's test CA, smartcard-like signing certificates, and signing a $prepare digest.

A prescribing system signs with the prescriber's smartcard; against the sandbox it signs with a key and certificate
from `eps certificate` instead (valid, or expired / not-yet-valid / revoked / untrusted to see each live refusal).
The CA is kept in the store under the data directory, so a running server trusts what these commands issue."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sandbox.services.eps.certificates import KINDS
from sandbox.settings import SettingError, Settings

if TYPE_CHECKING:
    from sandbox.journal.store import Store

DATA_DIR = click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")


def _store(data_dir: Path | None) -> Store:
    from sandbox.journal.store import open_store

    try:
        store = open_store(Settings.load(data_dir=data_dir).journal_url)
    except SettingError as exc:
        raise click.UsageError(str(exc)) from None
    click.get_current_context().call_on_close(store.close)  # closed when the command ends
    return store


def resolve_user(user: str) -> tuple[str, str | None]:
    """(name, CIS2 user id) of --user: a synthetic healthcare worker by id or name, or any other name or id."""
    from sandbox.services.oauth.idp import WORKERS

    wanted = user.strip().lower()
    for person in WORKERS:
        full = f"{person.given} {person.family}".lower()
        if wanted in (person.uid, full, person.family.lower()):
            return f"{person.given} {person.family}", person.uid
    if re.fullmatch(r"\d{12}", wanted):
        return "Prescriber", wanted
    if not re.fullmatch(r"[A-Za-z][A-Za-z .'-]{0,63}", user.strip()):
        raise click.BadParameter("give a CIS2 user id (12 digits) or a name (letters, spaces, . ' -)",
                                 param_hint="--user")
    return user.strip(), None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "prescriber"


@click.group("eps")
def eps() -> None:
    """Electronic Prescription Service: the sandbox's test CA, certificates and signatures."""


@eps.command("certificate")
@click.option("--user", required=True, help="The prescriber: a synthetic healthcare worker's CIS2 user id or name "
              "(e.g. 555021935107 or 'Priya Shah'), or any name.")
@click.option("--kind", type=click.Choice(KINDS), default="valid", show_default=True,
              help="valid; expired, not-yet-valid, revoked or untrusted (from a CA the sandbox does not trust) to "
                   "see live EPS's refusal of each.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("."),
              show_default=True, help="Folder to write <name>.crt.pem and <name>.key.pem to.")
@DATA_DIR
def certificate(user: str, kind: str, out_dir: Path, data_dir: Path | None) -> None:
    """Issue a smartcard-like signing certificate and its private key from the sandbox's test CA."""
    from sandbox.services.eps.certificates import CertificateError, issue

    name, user_id = resolve_user(user)
    try:
        issued = issue(_store(data_dir), subject=name, user_id=user_id, kind=kind)
    except CertificateError as exc:
        raise click.ClickException(str(exc)) from None
    stem = _slug(name) + ("" if kind == "valid" else f"-{kind}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        certificate_path, key_path = out_dir / f"{stem}.crt.pem", out_dir / f"{stem}.key.pem"
        certificate_path.write_text(issued.certificate_pem)
        key_path.touch(mode=0o600, exist_ok=True)
        key_path.chmod(0o600)
        key_path.write_text(issued.key_pem)
    except OSError as exc:
        raise click.ClickException(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    click.echo(f"certificate: {certificate_path}  ({kind}, serial {issued.serial}, for {name}"
               + (f" {user_id}" if user_id else "") + ")")
    click.echo(f"private key: {key_path}")
    click.echo(f"sign a $prepare digest: spine-sandbox eps sign --digest <digest> --key {key_path} "
               f"--certificate {certificate_path}")


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read the {what} {path}: {getattr(exc, 'strerror', None) or exc}") from None


@eps.command("sign")
@click.option("--digest", required=True, help="The 'digest' valueString $prepare returned (base64).")
@click.option("--key", "key_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The private key (PEM) from `spine-sandbox eps certificate`.")
@click.option("--certificate", "certificate_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The certificate (PEM) from `spine-sandbox eps certificate`.")
def sign_digest(digest: str, key_file: Path, certificate_file: Path) -> None:
    """Print Provenance.signature[0].data for a $prepare digest (its `when` is $prepare's timestamp)."""
    from sandbox.services.eps.signatures import SignatureError, sign

    try:
        click.echo(sign(digest, _read(key_file, "private key"), _read(certificate_file, "certificate")))
    except SignatureError as exc:
        raise click.ClickException(str(exc)) from None


@eps.command("revoke")
@click.option("--certificate", "certificate_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The certificate (PEM) to put on the sandbox's revocation list.")
@click.option("--reason", default="keyCompromise", show_default=True,
              help="CRL reason: keyCompromise (and cACompromise, aACompromise) refuse every signature by it, any "
                   "other (e.g. superseded) only signatures made after now.")
@DATA_DIR
def revoke(certificate_file: Path, reason: str, data_dir: Path | None) -> None:
    """Revoke a certificate: orders signed with it are refused 'Certificate is revoked', as live reads the CRL."""
    from cryptography import x509

    from sandbox.services.eps.certificates import CertificateError
    from sandbox.services.eps.certificates import revoke as put_on_list

    try:
        certificate = x509.load_pem_x509_certificate(_read(certificate_file, "certificate").encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise click.ClickException(f"{certificate_file} is not a PEM certificate: {exc}") from None
    try:
        put_on_list(_store(data_dir), certificate.serial_number, reason)
    except CertificateError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"revoked: serial {certificate.serial_number} ({reason})")


@eps.command("ca")
@DATA_DIR
def ca(data_dir: Path | None) -> None:
    """Print the sandbox's test CA certificate (PEM): the only issuer the sandbox trusts for signatures."""
    from sandbox.services.eps.certificates import ca_certificate_pem

    click.echo(ca_certificate_pem(_store(data_dir)), nl=False)
