"""What checks, facts and handlers of one request share: the session, the post office, the message the path names."""

from __future__ import annotations

from sandbox.runtime import current_sandbox
from sandbox.services.mesh import compression
from sandbox.services.mesh import session as mesh_session
from sandbox.services.mesh.post_office import Found, PostOffice
from sandbox.web import current

_MISSING = object()


def mesh(session: str) -> mesh_session.MeshSession:
    return mesh_session.load(current_sandbox, session)  # the sandbox is looked up only when not cached


def post_office(session: str) -> PostOffice:
    ex = current.exchange()
    if ex is None:
        return PostOffice(mesh(session))
    office = ex.cache.get("mesh.office")
    if office is None or office.session != session:
        office = ex.cache["mesh.office"] = PostOffice(mesh(session))
    return office


def mailbox_of(params: dict) -> str:
    return (params.get("mailbox_id") or "").upper()


def message_in_path(session: str, params: dict) -> Found | None:
    """The message named in the path, read once per request (facts, checks and the handler share it)."""
    message_id = (params.get("message_id") or "").upper()
    ex = current.exchange()
    cached = ex.cache.get("mesh.found", _MISSING) if ex is not None else _MISSING
    if cached is _MISSING:
        cached = post_office(session).find(message_id) if message_id else None
        if ex is not None:
            ex.cache["mesh.found"] = cached
    return cached


def gzip_state(body: bytes, limit: int) -> tuple[str, str]:
    """compression.inspect of the request's body, worked out once per request (the check and the handler share it)."""
    ex = current.exchange()
    cached = ex.cache.get("mesh.gzip") if ex is not None else None
    if cached is None:
        cached = compression.inspect(body, limit)
        if ex is not None:
            ex.cache["mesh.gzip"] = cached
    return cached
