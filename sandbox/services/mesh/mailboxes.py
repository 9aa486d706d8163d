"""Mailboxes of one's own: freshly made ids and passwords for a session, and which session each mailbox belongs to.

In hosted mode there are no shared mailboxes (the NHS MESH sandbox's X26ABC1… with password "password" would let
every supplier into every other's messages): each tenant makes its own with POST /_sandbox/mesh/mailboxes, is shown
the passwords once, and a request whose NHSMESH token proves a mailbox's password lands in that mailbox's session.

Elsewhere a session may be bound to mailboxes of the configuration (`spine-sandbox sessions create --mailbox
X26ABC1`): a request whose NHSMESH token names a bound mailbox lands in that session, so a client that cannot send
a session header (the official mesh-client) is judged against the session's plan. One session holds a mailbox at a
time; the binding ends when its session is released (`spine-sandbox sessions release`, the end of a `spine-sandbox
run`) or purged.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from flask import Request

from sandbox.assurance.plans import Plan
from sandbox.assurance.sessions import SessionError
from sandbox.conformance.findings import SpineError
from sandbox.journal.store import Store, VersionConflict
from sandbox.retention import forget_entries
from sandbox.services.mesh import auth
from sandbox.services.mesh import session as mesh_session
from sandbox.services.mesh.config import MeshConfig
from sandbox.web import current
from sandbox.web.sessions import SESSION_HEADER

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox

INDEX_SESSION = "_mesh"  # reserved (session ids cannot start with '_'): mailbox id -> the session that made it
INDEX = "mesh.mailbox-owner"
ID_ALPHABET = string.ascii_uppercase + string.digits
ID_PREFIX = "H"  # made mailbox ids are H + 9 characters, e.g. H4Q7ZK2M1P: never one of the published X26… ids
MAX_MAILBOXES = 20  # per request
HOSTED_SOURCE = "hosted: no shared mailboxes (POST /_sandbox/mesh/mailboxes makes the session's own)"
BINDINGS = "mesh.mailbox-binding"  # in INDEX_SESSION: mailbox id -> the session its traffic lands in (not hosted)
HOSTED_REFUSAL = ("a hosted sandbox binds no shared mailbox to a session: make the session's own mailboxes with "
                  "POST /_sandbox/mesh/mailboxes?session=<id>; a request whose NHSMESH token proves one of their "
                  "passwords lands in that session with no header")


class BindingError(SessionError):
    """A mailbox cannot be bound to a session; the message says which, why, and what to do."""


def hosted_default(config: MeshConfig) -> MeshConfig:
    """The default configuration of a hosted sandbox: the limits and shared key, but no mailboxes or workflows."""
    return replace(config, mailboxes={}, workflows={}, source=HOSTED_SOURCE)


def owner(store: Store, mailbox_id: str) -> str | None:
    item = store.state.get(INDEX_SESSION, INDEX, mailbox_id.upper()) if mailbox_id else None
    return item.value if item else None


def forget(sandbox: Sandbox, sessions: list[str]) -> None:
    """Retention: the purged sessions' mailbox ids, and the mailboxes bound to them, are free again."""
    forget_entries(sandbox.store, INDEX_SESSION, INDEX, sessions, lambda mailbox_id, session: session)
    forget_entries(sandbox.store, INDEX_SESSION, BINDINGS, sessions, lambda mailbox_id, session: session)


# --- sessions bound to mailboxes of the configuration (not hosted) -------------------------------------------------
def bound_session(store: Store, mailbox_id: str) -> str | None:
    """The session the mailbox is bound to, if any."""
    item = store.state.get(INDEX_SESSION, BINDINGS, mailbox_id.upper()) if mailbox_id else None
    return item.value if item else None


def bound_mailboxes(store: Store, session: str) -> list[str]:
    return sorted(mailbox_id for mailbox_id, item in store.state.items(INDEX_SESSION, BINDINGS).items()
                  if item.value == session)


def default_bindings(sandbox: Sandbox, plan: Plan, hosted: bool) -> list[str]:
    """For a plan that covers MESH, the configuration's mailboxes that no live session holds: what `spine-sandbox run`
    binds by default (its own sandbox: its MESH traffic is the run's)."""
    if hosted or "mesh" not in plan.services:
        return []
    config = sandbox.extensions[mesh_session.EXTENSION]
    return [mailbox_id for mailbox_id in config.mailboxes
            if (holder := bound_session(sandbox.store, mailbox_id)) is None or sandbox.store.sessions.get(holder) is None]


def bindable(sandbox: Sandbox, plan: Plan, mailbox_ids: Iterable[str], hosted: bool) -> list[str]:
    """The mailbox ids, upper case and once each, when a new session of the plan may be bound to them all."""
    wanted = list(dict.fromkeys(mailbox_id.strip().upper() for mailbox_id in mailbox_ids))
    if not wanted:
        return []
    if hosted:
        raise BindingError(HOSTED_REFUSAL)
    if "mesh" not in plan.services:
        mesh_plans = ", ".join(p.id for p in sandbox.plans if "mesh" in p.services) or "none"
        raise BindingError(f"plan {plan.id} does not cover MESH, so it takes no --mailbox (MESH plans: {mesh_plans})")
    config = sandbox.extensions[mesh_session.EXTENSION]  # what a new session starts with
    for mailbox_id in wanted:
        if config.mailbox(mailbox_id) is None:
            raise BindingError(f"no MESH mailbox {mailbox_id[:40]!r} in this sandbox (mailboxes: "
                               f"{', '.join(config.mailboxes) or 'none'}; `spine-sandbox mesh mailboxes`)")
        holder = bound_session(sandbox.store, mailbox_id)
        if holder is not None and sandbox.store.sessions.get(holder) is not None:
            raise _taken(sandbox.store, mailbox_id, holder)
    return wanted


def bind(store: Store, session: str, mailbox_ids: Iterable[str]) -> None:
    """Bind each mailbox to the session, all or none: a mailbox another live session holds is a BindingError."""
    claimed: list[str] = []
    try:
        for mailbox_id in mailbox_ids:
            _claim_binding(store, session, mailbox_id)
            claimed.append(mailbox_id)
    except BindingError:
        for mailbox_id in claimed:
            store.state.delete(INDEX_SESSION, BINDINGS, mailbox_id)
        raise


def _claim_binding(store: Store, session: str, mailbox_id: str) -> None:
    for _ in range(3):  # a compare-and-set that lost to a concurrent binding or release looks again
        item = store.state.get(INDEX_SESSION, BINDINGS, mailbox_id)
        if item is not None and item.value == session:
            return
        if item is not None and store.sessions.get(item.value) is not None:
            raise _taken(store, mailbox_id, item.value)
        try:  # free, or held by a session that no longer exists
            store.state.put(INDEX_SESSION, BINDINGS, mailbox_id, session,
                            **({"expect_version": item.version} if item else {"create_only": True}))
            return
        except VersionConflict:
            continue
    raise BindingError(f"MESH mailbox {mailbox_id} was being bound by another session at the same moment; try again",
                       409)


def _taken(store: Store, mailbox_id: str, holder: str) -> BindingError:
    record = store.sessions.get(holder)
    about = f" (plan {record.plan}, {record.supplier}, {record.system})" if record and record.plan else ""
    return BindingError(f"MESH mailbox {mailbox_id} is bound to session {holder}{about}; a mailbox is bound to one "
                        f"session at a time: `spine-sandbox sessions release {holder}` frees it", 409)


def release(store: Store, session: str) -> list[str]:
    """End the session's bindings: its mailboxes' traffic goes where it went before (its evidence stays)."""
    released = bound_mailboxes(store, session)
    for mailbox_id in released:
        store.state.delete(INDEX_SESSION, BINDINGS, mailbox_id)
    return released


def make(store: Store, session: str, base: MeshConfig, count: int, ods_code: str = "") -> tuple[dict, list[dict]]:
    """`count` new mailboxes for the session, added to its configuration (`base`, the one it has now). Returns the
    stored configuration and the new mailboxes with their passwords (shown once: the caller answers with them)."""
    data = base.to_dict()
    if base.source == HOSTED_SOURCE:  # the hosted default: nothing of its own yet
        data["mailboxes"], data["workflows"] = [], []
    made = []
    with store.state.transaction(session):
        for _ in range(count):
            mailbox_id = _claim(store, session)
            mailbox = {"id": mailbox_id, "password": secrets.token_urlsafe(18), "name": f"Mailbox {mailbox_id}",
                       "ods_code": ods_code or mailbox_id[:5], "org_code": ods_code or mailbox_id[:5],
                       "org_name": f"Session {session}", "billing_entity": "England", "chunking": True}
            data["mailboxes"].append(mailbox)
            made.append(mailbox)
        store.state.put(session, mesh_session.SESSION_NS, "config", data)
    mesh_session.forget_cached(session)
    return data, made


def _claim(store: Store, session: str) -> str:
    for _ in range(10):
        mailbox_id = ID_PREFIX + "".join(secrets.choice(ID_ALPHABET) for _ in range(9))
        try:
            store.state.put(INDEX_SESSION, INDEX, mailbox_id, session, create_only=True)
            return mailbox_id
        except VersionConflict:
            continue  # 36**9 ids: a collision is astronomically rare, so draw again
    raise RuntimeError("could not allocate a mailbox id")


def foreign_mailboxes(store: Store, session: str, data: dict) -> list[str]:
    """The mailbox ids of a configuration body that were not made for this session (hosted mode allows only its
    own: another's id would be a way into its traffic, a made-up one a way round the passwords shown once)."""
    ids = [m.get("id") for m in data.get("mailboxes") or () if isinstance(m, dict)]
    return [i for i in ids if isinstance(i, str) and owner(store, i) != session]


def resolve_session(req: Request, sandbox) -> str | None:
    """The Service.resolve_session hook. Hosted: the session of the mailbox whose password the NHSMESH token proves;
    anything less (no token, an unknown mailbox, a wrong hash) proves nothing, and the request is judged (and
    refused) in the session it lands in otherwise. Not hosted: the session the token's mailbox is bound to."""
    if not sandbox.services["mesh"].owns(req.path):
        return None
    try:
        token = auth.parse(req.headers.get("Authorization"))
    except auth.TokenProblem:
        return None
    if not sandbox.settings.hosted:
        return _bound(req, sandbox.store, token.mailbox)
    session = owner(sandbox.store, token.mailbox)
    if session is None:
        return None
    config = mesh_session.load(sandbox, session).config
    mailbox = config.mailbox(token.mailbox)
    if mailbox is None or not auth.digest_matches(token, config.shared_key, mailbox.password):
        return None
    return session


def _bound(req: Request, store: Store, mailbox_id: str) -> str | None:
    """The session the mailbox is bound to. The mailbox is not proved (a wrong password is refused, and journaled,
    in that session: it is the bound system's own evidence). A session header naming another session is refused
    rather than obeyed or ignored: the caller meant one of the two, and either guess would misfile its traffic."""
    session = bound_session(store, mailbox_id)
    if session is None:
        return None
    named = req.headers.get(SESSION_HEADER)
    if named is not None and named.strip() != session:
        ex = current.exchange()
        if ex is not None:
            ex.session = session  # journaled as the bound system's own evidence
        raise SpineError(400, "INVALID_VALUE", f"{SESSION_HEADER} {named[:80]!r} names another session than "
                         f"{session}, which MESH mailbox {mailbox_id.upper()[:40]} is bound to: leave the header out, "
                         f"or free the mailbox first (`spine-sandbox sessions release {session}`)")
    return session
