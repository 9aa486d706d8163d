"""Who is calling the control API: the role a request's X-Sandbox-Key proves, or "local" when not hosted."""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, has_request_context

LOCAL_ROLE, ADMIN, ASSESSOR, TENANT = "local", "admin", "assessor", "tenant"
ANONYMOUS = "anonymous"  # hosted mode, no valid key: may do nothing (only outside /_sandbox/, where keys are not asked)


@dataclass(frozen=True)
class Caller:
    role: str  # "local" (not hosted: may do everything), "admin", "assessor", "tenant" (or "anonymous")
    name: str  # tenant or assessor name; "admin"; "local"
    tenant: str | None = None  # the tenant id, for role "tenant"

    @property
    def may_attest(self) -> bool:
        return self.role in (LOCAL_ROLE, ADMIN, ASSESSOR)

    @property
    def sees_all(self) -> bool:
        """Assessors read every tenant's sessions and reports, as admin and the single developer do."""
        return self.role in (LOCAL_ROLE, ADMIN, ASSESSOR)

    @property
    def may_change(self) -> bool:
        """Assessors only read and attest."""
        return self.role in (LOCAL_ROLE, ADMIN, TENANT)

    @property
    def is_admin(self) -> bool:
        return self.role in (LOCAL_ROLE, ADMIN)


LOCAL = Caller(LOCAL_ROLE, "local")
ADMIN_CALLER = Caller(ADMIN, "admin")
NOBODY = Caller(ANONYMOUS, "anonymous")


def current_caller() -> Caller:
    """The caller of the current control request: set by hosting.install's before_request in hosted mode; "local"
    when the sandbox is not hosted (or outside any request, e.g. the CLI working on its own data dir)."""
    if not has_request_context():
        return LOCAL
    return g.get("sandbox_caller", LOCAL)


def set_caller(caller: Caller) -> None:
    g.sandbox_caller = caller


def attester(caller: Caller, by: str | None) -> str | None:
    """The name an attestation records: an assessor's own name, from its key (never from what the request says);
    the admin and the single developer name whoever they attest for (`by`), the admin being "admin" by default."""
    if caller.role == ASSESSOR:
        return caller.name
    if caller.role == ADMIN:
        return by or caller.name
    return by
