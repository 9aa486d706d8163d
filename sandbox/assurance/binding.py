"""Sessions bound to credentials of a service's own (Service.binding: MESH mailbox ids), for clients that can send no
session header: bound when the session is made, all or none; ended by `spine-sandbox sessions release`, the end of a
`spine-sandbox run`, or a purge (the service's `forget`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sandbox.assurance.plans import Plan
from sandbox.assurance.sessions import SessionError, create_session, find_plan
from sandbox.journal.store import SessionRecord, Store

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox
    from sandbox.services import Service, SessionBinding

MAX_BOUND = 20  # ids bound by one request


def checked(sandbox: Sandbox, plan: Plan, ids: Iterable[str], hosted: bool) -> list[str]:
    """The ids, cleaned, when a new session of the plan may be bound to them all (else SessionError)."""
    ids = list(ids)
    if not ids:
        return []
    binding = _binding(sandbox.services.values())
    if binding is None:
        raise SessionError("no service of this sandbox binds credentials to a session")
    return binding.check(sandbox, plan, ids, hosted)


def defaults(sandbox: Sandbox, plan: Plan, hosted: bool) -> list[str]:
    """What `spine-sandbox run` binds when it is given nothing to bind."""
    binding = _binding(sandbox.services.values())
    return binding.defaults(sandbox, plan, hosted) if binding else []


def create_bound_session(sandbox: Sandbox, plan_id: str, supplier: str, system: str, ids: Iterable[str],
                         hosted: bool) -> tuple[SessionRecord, str, list[str]]:
    """A new session of the plan (sessions.create_session) bound to the ids; returns it, its token and the ids bound.
    Every id is checked before the session is made, and a refusal leaves no session behind."""
    plan = find_plan(sandbox.plans, plan_id)
    wanted = checked(sandbox, plan, ids, hosted)
    record, token = create_session(sandbox.store, sandbox.plans, plan.id, supplier, system)
    if wanted:
        try:
            _binding(sandbox.services.values()).bind(sandbox.store, record.id, wanted)
        except SessionError:
            sandbox.store.forget([record.id])  # taken between the check and the binding: the session goes too
            raise
    return record, token, wanted


def release(store: Store, session: str, services: Iterable[Service]) -> list[str]:
    """End the session's bindings (its evidence stays); returns the ids released."""
    binding = _binding(services)
    return binding.release(store, session) if binding else []


def _binding(services: Iterable[Service]) -> SessionBinding | None:
    return next((service.binding for service in services if service.binding is not None), None)
