"""Mailboxes of one's own: freshly made ids and passwords for a session, and which session each mailbox belongs to.

In hosted mode there are no shared mailboxes (the NHS MESH sandbox's X26ABC1… with password "password" would let
every supplier into every other's messages): each tenant makes its own with POST /_sandbox/mesh/mailboxes, is shown
the passwords once, and a request whose NHSMESH token proves a mailbox's password lands in that mailbox's session.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import replace
from typing import TYPE_CHECKING

from flask import Request

from sandbox.journal.store import Store, VersionConflict
from sandbox.retention import forget_entries
from sandbox.services.mesh import auth
from sandbox.services.mesh import session as mesh_session
from sandbox.services.mesh.config import MeshConfig

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox

INDEX_SESSION = "_mesh"  # reserved (session ids cannot start with '_'): mailbox id -> the session that made it
INDEX = "mesh.mailbox-owner"
ID_ALPHABET = string.ascii_uppercase + string.digits
ID_PREFIX = "H"  # made mailbox ids are H + 9 characters, e.g. H4Q7ZK2M1P: never one of the published X26… ids
MAX_MAILBOXES = 20  # per request
HOSTED_SOURCE = "hosted: no shared mailboxes (POST /_sandbox/mesh/mailboxes makes the session's own)"


def hosted_default(config: MeshConfig) -> MeshConfig:
    """The default configuration of a hosted sandbox: the limits and shared key, but no mailboxes or workflows."""
    return replace(config, mailboxes={}, workflows={}, source=HOSTED_SOURCE)


def owner(store: Store, mailbox_id: str) -> str | None:
    item = store.state.get(INDEX_SESSION, INDEX, mailbox_id.upper()) if mailbox_id else None
    return item.value if item else None


def forget(sandbox: Sandbox, sessions: list[str]) -> None:
    """Retention: the purged sessions' mailbox ids are free again."""
    forget_entries(sandbox.store, INDEX_SESSION, INDEX, sessions, lambda mailbox_id, session: session)


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
    """The Service.resolve_session hook (hosted mode only): the session of the mailbox whose password the NHSMESH
    token proves. Anything less (no token, an unknown mailbox, a wrong hash) proves nothing, and the request is
    judged (and refused) in the session it lands in otherwise."""
    if not sandbox.settings.hosted or not sandbox.services["mesh"].owns(req.path):
        return None
    try:
        token = auth.parse(req.headers.get("Authorization"))
    except auth.TokenProblem:
        return None
    session = owner(sandbox.store, token.mailbox)
    if session is None:
        return None
    config = mesh_session.load(sandbox, session).config
    mailbox = config.mailbox(token.mailbox)
    if mailbox is None or not auth.digest_matches(token, config.shared_key, mailbox.password):
        return None
    return session
