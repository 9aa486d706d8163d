"""The report signing key: Ed25519, so anyone holding the public key can check a report and nobody without the
private key can make one that passes.

The private key is SANDBOX_REPORT_SIGNING_KEY when set (the PEM text itself, or the path of a PEM file: a CI secret
is usually text, a Docker or Kubernetes secret a file), else `<data dir>/report-signing.key` (PKCS8 PEM, mode 0600),
made on first use. The public key is published at GET /_sandbox/report-key and by `spine-sandbox report-key`; its
fingerprint (SHA-256 of the raw 32-byte key) names it in reports and in `verify`'s output.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sandbox.settings import Settings, default_data_dir

KEY_FILE = "report-signing.key"
ALGORITHM = "Ed25519"
ENV_VARIABLE = "SANDBOX_REPORT_SIGNING_KEY"
PEM_START = "-----BEGIN"


class SigningKeyError(Exception):
    """A key that cannot be used: unreadable, not PEM, or not Ed25519. The message says which and where."""


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode("ascii").rstrip("=")


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_info(public: Ed25519PublicKey) -> dict:
    """How a report, a manifest, the control API and the CLI name a public key."""
    return {"algorithm": ALGORITHM, "public_key": public_pem(public), "fingerprint": fingerprint(public)}


def key_path(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE


def key_source(settings: Settings) -> str:
    """Where the private key comes from, in words, for messages."""
    configured = settings.report_signing_key.strip()
    if not configured:
        return str(key_path(settings))
    return ENV_VARIABLE if configured.startswith(PEM_START) else f"{configured} ({ENV_VARIABLE})"


def signing_key(settings: Settings, key_dir: Path | None = None) -> Ed25519PrivateKey:
    """The sandbox's private key: configured, read from the data dir (or key_dir), or made there now."""
    configured = settings.report_signing_key.strip()
    if configured:
        return _private_key(_configured_pem(configured), key_source(settings))
    path = (key_dir or settings.data_dir) / KEY_FILE
    if not path.is_file():
        _create(path)
    return _private_key(_read(path), str(path))


def run_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The key for a run on a throwaway data dir (`run` without --data-dir, the pytest plugin, mock_spine()), whose
    own key would go with it: SANDBOX_REPORT_SIGNING_KEY when set, else the key of the default data dir, so
    `spine-sandbox verify` on the same machine checks the report with no options. Only when that key does not exist
    and cannot be made (a read-only home) does the run's own key sign."""
    configured = os.environ.get(ENV_VARIABLE) or settings.report_signing_key
    if configured.strip():
        return signing_key(settings.replace(report_signing_key=configured))
    home = default_data_dir()
    try:
        return signing_key(settings, home)
    except SigningKeyError:
        if (home / KEY_FILE).exists():
            raise
        return signing_key(settings)


def local_public_key(settings: Settings) -> Ed25519PublicKey | None:
    """The public half of this sandbox's key, without making one; None when it has none yet."""
    configured = settings.report_signing_key.strip()
    if not configured and not key_path(settings).is_file():
        return None
    return signing_key(settings).public_key()


def load_public_key(data: bytes, where: str) -> Ed25519PublicKey:
    """A trusted public key from a file: PEM (`spine-sandbox report-key`, GET /_sandbox/report-key?format=pem) or
    the JSON of GET /_sandbox/report-key."""
    text = data.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        with contextlib.suppress(ValueError, RecursionError, AttributeError):
            text = str(json.loads(text).get("public_key", "")).strip()
    if "PRIVATE KEY" in text:
        raise SigningKeyError(f"{where} holds a private key: give the public key (`spine-sandbox report-key`)")
    try:
        key = serialization.load_pem_public_key(text.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{where} is not a PEM public key ({_reason(exc)}); get one with `spine-sandbox "
                              f"report-key` or GET /_sandbox/report-key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{where} holds a {type(key).__name__.removeprefix('_')} key, not an Ed25519 key")
    return key


def _configured_pem(configured: str) -> bytes:
    if configured.startswith(PEM_START):
        return configured.encode("utf-8")
    return _read(Path(configured).expanduser(), f" ({ENV_VARIABLE} is PEM text or the path of a PEM file)")


def _read(path: Path, hint: str = "") -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the report signing key {path}: {exc.strerror or exc}{hint}") from None


def _private_key(pem: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"the report signing key in {where} is not an unencrypted PEM private key "
                              f"({_reason(exc)})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"the report signing key in {where} is a {type(key).__name__.removeprefix('_')}, "
                              f"not an Ed25519 key; make one with `openssl genpkey -algorithm ed25519`")
    return key


def _create(path: Path) -> None:
    """A new key, written whole or not at all; when several workers race, the first one's key wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(temporary, path)
    except OSError as exc:
        raise SigningKeyError(f"cannot write the report signing key {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


def _reason(exc: Exception) -> str:
    return str(exc).split("\n")[0][:200] or type(exc).__name__
