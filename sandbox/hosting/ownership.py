"""Which tenant owns which session, and who may see it. Owners live in the reserved `_hosting` session's state
(namespace "owners", key: the session id)."""

from __future__ import annotations

from sandbox.hosting.caller import Caller
from sandbox.hosting.keys import HOSTING_SESSION
from sandbox.journal.store import Store

OWNERS = "owners"


def owner_of(store: Store, session: str) -> str | None:
    """The tenant id the session is bound to; None when it holds no tenant."""
    item = store.state.get(HOSTING_SESSION, OWNERS, session)
    return None if item is None else item.value


def bind(store: Store, session: str, tenant: str) -> None:
    store.state.put(HOSTING_SESSION, OWNERS, session, tenant)


def sessions_of(store: Store, tenant: str) -> set[str]:
    return {session for session, item in store.state.items(HOSTING_SESSION, OWNERS).items() if item.value == tenant}


def visible(caller: Caller, store: Store, session: str) -> bool:
    """Whether the caller may see the session: every session for local, admin and assessors; a tenant's own only.
    A session no tenant holds (e.g. traffic with no credential in hosted mode) is no tenant's."""
    if caller.sees_all:
        return True
    return caller.tenant is not None and owner_of(store, session) == caller.tenant


def forget(store: Store, sessions: list[str]) -> None:
    """Retention: the purged sessions are no tenant's any more."""
    with store.state.transaction():
        for session in sessions:
            store.state.delete(HOSTING_SESSION, OWNERS, session)
