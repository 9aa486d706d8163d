"""Tenants, assessors and the admin key of a hosted sandbox.

Keys are `sbk_` + 32 random characters, shown once when made; only their SHA-256 is stored, in the state of the
reserved session `_hosting` (which no client can name: session ids start with a letter or digit)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sandbox.hosting.caller import ADMIN_CALLER, ASSESSOR, TENANT, Caller
from sandbox.journal.store import Store
from sandbox.settings import Settings

HOSTING_SESSION = "_hosting"
KEY_PREFIX = "sbk_"
ADMIN_KEY_FILE = "admin.key"  # under the data dir
TENANTS, ASSESSORS = "tenants", "assessors"
MAX_NAME = 200
_ID_PREFIX = {TENANTS: "tnt-", ASSESSORS: "asr-"}


class HostingError(ValueError):
    """A tenant or assessor request cannot be met; `status` is the HTTP status the control API answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Principal:
    """A tenant (a supplier) or an assessor (certification staff): who holds a key."""

    id: str
    name: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict:
        return asdict(self)


Tenant = Principal
Assessor = Principal


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def _check_name(name: str | None, what: str) -> str:
    name = (name or "").strip()
    if not name:
        raise HostingError(f"a {what} needs a name (e.g. --name \"Alpha Health\")")
    if len(name) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise HostingError(f"{what} name {name[:40]!r} must be 1-{MAX_NAME} printable characters")
    return name


def _create(store: Store, namespace: str, name: str) -> tuple[Principal, str]:
    what = namespace[:-1]
    name = _check_name(name, what)
    key = new_key()
    principal = Principal(_ID_PREFIX[namespace] + secrets.token_hex(5), name, time.time())
    store.state.put(HOSTING_SESSION, namespace, principal.id, {**principal.to_dict(), "key_sha256": hash_key(key)},
                    create_only=True)
    return principal, key


def _list(store: Store, namespace: str) -> list[Principal]:
    items = store.state.items(HOSTING_SESSION, namespace)
    found = [Principal(v.value["id"], v.value["name"], v.value["created_at"], v.value.get("revoked_at"))
             for v in items.values()]
    return sorted(found, key=lambda p: p.created_at)


def _revoke(store: Store, namespace: str, principal_id: str) -> Principal:
    item = store.state.get(HOSTING_SESSION, namespace, principal_id)
    if item is None:
        raise HostingError(f"no {namespace[:-1]} {principal_id[:80]!r} (`spine-sandbox {namespace} list`)", 404)
    value = dict(item.value)
    value["revoked_at"] = value.get("revoked_at") or time.time()
    store.state.put(HOSTING_SESSION, namespace, principal_id, value)
    return Principal(value["id"], value["name"], value["created_at"], value["revoked_at"])


def create_tenant(store: Store, name: str) -> tuple[Principal, str]:
    """A new tenant and its key (returned once, never stored)."""
    return _create(store, TENANTS, name)


def list_tenants(store: Store) -> list[Principal]:
    return _list(store, TENANTS)


def revoke_tenant(store: Store, tenant_id: str) -> Principal:
    """The tenant's key answers 401 from now on; its sessions stay, for the record (admin and assessors see them)."""
    return _revoke(store, TENANTS, tenant_id)


def get_tenant(store: Store, tenant_id: str) -> Principal | None:
    item = store.state.get(HOSTING_SESSION, TENANTS, tenant_id)
    return None if item is None else Principal(item.value["id"], item.value["name"], item.value["created_at"],
                                               item.value.get("revoked_at"))


def create_assessor(store: Store, name: str) -> tuple[Principal, str]:
    return _create(store, ASSESSORS, name)


def list_assessors(store: Store) -> list[Principal]:
    return _list(store, ASSESSORS)


def revoke_assessor(store: Store, assessor_id: str) -> Principal:
    return _revoke(store, ASSESSORS, assessor_id)


def admin_key_path(settings: Settings) -> Path:
    return settings.data_dir / ADMIN_KEY_FILE


def ensure_admin_key(settings: Settings) -> tuple[str, bool]:
    """The admin key and whether it was made just now: SANDBOX_ADMIN_KEY when set, else the one in
    <data dir>/admin.key, written (mode 0600) the first time."""
    if settings.admin_key:
        return settings.admin_key, False
    path = admin_key_path(settings)
    try:
        return _read_admin_key(path), False
    except FileNotFoundError:
        pass
    key = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _read_admin_key(path), False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key, True


def _read_admin_key(path: Path) -> str:
    key = path.read_text(encoding="utf-8").strip()
    if not key:  # an empty key would lock the admin out without a word
        raise OSError(f"the admin key file {path} is empty: delete it to have a new key made, or set "
                      "SANDBOX_ADMIN_KEY")
    return key


def admin_key(settings: Settings) -> str:
    return ensure_admin_key(settings)[0]


def authenticate(store: Store, settings: Settings, key: str | None, admin: str | None = None) -> Caller | None:
    """The caller a key proves: admin, an active assessor or an active tenant; None for no key, a wrong one or a
    revoked one. `admin`: the admin key when the caller has it at hand (else it is read from the settings)."""
    if not key or not key.startswith(KEY_PREFIX):
        return None
    admin = admin or admin_key(settings)
    if hmac.compare_digest(key.encode("utf-8", "replace"), admin.encode("utf-8")):
        return ADMIN_CALLER
    digest = hash_key(key)
    for namespace, role in ((TENANTS, TENANT), (ASSESSORS, ASSESSOR)):
        for item in store.state.items(HOSTING_SESSION, namespace).values():
            value = item.value
            if hmac.compare_digest(value.get("key_sha256", ""), digest) and not value.get("revoked_at"):
                return Caller(role, value["name"], value["id"] if role == TENANT else None)
    return None


def hosted_data(settings: Settings) -> bool:
    """Whether the data dir is a hosted sandbox's: hosted settings, or an admin key made there by `serve --hosted`.
    Commands working on it directly (attest) then ask for a key too."""
    return settings.hosted or admin_key_path(settings).is_file()
