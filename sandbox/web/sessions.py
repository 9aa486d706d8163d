"""Which tenant a request belongs to: the caller's credentials, a session token, an X-Sandbox-Session header, or the
default."""

from __future__ import annotations

import re

from flask import Request

from sandbox.assurance.sessions import TOKEN_PREFIX, token_grant
from sandbox.conformance.findings import SpineError
from sandbox.hosting import Hidden, current_caller, visible
from sandbox.journal.redaction import redacted
from sandbox.runtime import Sandbox, current_sandbox
from sandbox.web.access import bearer_token

SESSION_HEADER = "X-Sandbox-Session"
DEFAULT_SESSION = "default"
_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def valid_session_id(value: str) -> bool:
    return bool(_SESSION_ID.match(value))


def resolve_session(request: Request, sandbox: Sandbox) -> str:
    if sandbox.settings.hosted:  # only what the request's own credentials prove (sandbox.hosting.binding)
        from sandbox.hosting.binding import resolve_hosted

        return resolve_hosted(request, sandbox)
    for service in sandbox.services.values():
        if service.resolve_session:
            session = service.resolve_session(request, sandbox)
            if session:
                return session
    named = request.headers.get(SESSION_HEADER)
    by_token = _session_of_token(request, sandbox)
    if by_token is not None:
        if named is not None and named != by_token:
            raise SpineError(400, "INVALID_VALUE", f"{SESSION_HEADER} {named[:80]!r} names a different session from "
                             "the session token in Authorization; send one or the other")
        return by_token
    if named is None:
        return DEFAULT_SESSION
    if not valid_session_id(named):
        raise SpineError(400, "INVALID_VALUE", f"{SESSION_HEADER} header {named[:80]!r} is not a session id: use "
                         "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return named


def _session_of_token(request: Request, sandbox: Sandbox) -> str | None:
    """A session token (`Authorization: Bearer sst_…`, from `spine-sandbox sessions create`, or one issued for an
    access mode) selects its session."""
    token = bearer_token(request.headers.get("Authorization"))
    if token is None or not token.startswith(TOKEN_PREFIX):
        return None
    grant = token_grant(sandbox.store, token)
    if grant is None:
        raise SpineError(401, "ACCESS_DENIED", f"The session token {redacted(token)} is not known to this sandbox: use "
                         "the token `spine-sandbox sessions create` printed, or the X-Sandbox-Session header")
    return grant.session


def control_session(request: Request) -> tuple[str, str | None]:
    """The session a control request names (?session=, the X-Sandbox-Session header, else the default), and what is
    wrong with it (None when it is a session id): each control API refuses a bad one in its own shape.

    In hosted mode a tenant must name a session (there is no shared default), and a session the caller may not see
    raises Hidden: 404, exactly as a session that does not exist."""
    named = request.args.get("session") or request.headers.get(SESSION_HEADER)
    caller = current_caller()
    if named is None and caller.tenant is not None:
        return "", ("name your session with ?session=<id> or the X-Sandbox-Session header (a hosted sandbox has no "
                    "shared default session; GET /_sandbox/sessions lists yours)")
    session = named or DEFAULT_SESSION
    if not valid_session_id(session):
        return session, (f"session {session[:80]!r} is not a session id (1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit)")
    require_visible(session)
    return session, None


def require_visible(session: str) -> str:
    """The session, when the caller of this control request may see it; else Hidden (404, the same answer as for a
    session that was never made). The one check every control endpoint naming a session goes through."""
    if not visible(current_caller(), current_sandbox().store, session):
        raise Hidden(f"no session {session[:80]!r} (GET /_sandbox/sessions lists yours)")
    return session
