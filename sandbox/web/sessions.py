"""Which tenant a request belongs to: the caller's credentials, an X-Sandbox-Session header, or the default."""

from __future__ import annotations

import re

from flask import Request

from sandbox.conformance.findings import SpineError
from sandbox.runtime import Sandbox

SESSION_HEADER = "X-Sandbox-Session"
DEFAULT_SESSION = "default"
_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def valid_session_id(value: str) -> bool:
    return bool(_SESSION_ID.match(value))


def resolve_session(request: Request, sandbox: Sandbox) -> str:
    for service in sandbox.services.values():
        if service.resolve_session:
            session = service.resolve_session(request, sandbox)
            if session:
                return session
    named = request.headers.get(SESSION_HEADER)
    if named is None:
        return DEFAULT_SESSION
    if not valid_session_id(named):
        raise SpineError(400, "INVALID_VALUE", f"{SESSION_HEADER} header {named[:80]!r} is not a session id: use "
                         "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return named
