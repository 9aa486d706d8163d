"""Which tenant's session service traffic lands in, in hosted mode: only what the request proves by its own
credentials counts.

- A service credential (an OAuth access token or API key of an application, a MESH mailbox's NHSMESH token whose
  password checks out) selects the session it was issued for.
- A session token (`sst_…`, as `Authorization: Bearer` or as `X-Sandbox-Session`) selects its session. A plain
  session id there is refused: ids are listed and guessable, tokens are not.
- A token of one tenant with another tenant's session (named, or selected by a credential) is refused with 403 and
  journaled in the token's own session only.
- No credential at all: the reserved session `anonymous`, which is no tenant's (only admin and assessors see it).

Only the hooks of services that declare `session_by_secret` count. Spine messaging's (the sender's party key or
ASID) does not: those are published identifiers, so Spine traffic names its session by its session token here.
"""

from __future__ import annotations

from flask import Request

from sandbox.assurance.sessions import TOKEN_PREFIX, token_grant
from sandbox.conformance.findings import SpineError
from sandbox.hosting.ownership import owner_of
from sandbox.journal.redaction import redacted
from sandbox.runtime import Sandbox
from sandbox.web import current
from sandbox.web.access import bearer_token
from sandbox.web.sessions import SESSION_HEADER

ANONYMOUS_SESSION = "anonymous"  # requests with no credential; reserved: never bound to a tenant


def resolve_hosted(request: Request, sandbox: Sandbox) -> str:
    ex = current.exchange()
    _land(ex, ANONYMOUS_SESSION)  # a refusal before any credential is proved is journaled in no tenant's session
    store = sandbox.store
    by_credential = _by_credential(request, sandbox)
    named = request.headers.get(SESSION_HEADER)
    named = named.strip() if named is not None else None
    bearer = bearer_token(request.headers.get("Authorization"))
    bearer = bearer if bearer and bearer.startswith(TOKEN_PREFIX) else None
    named_token = named if named and named.startswith(TOKEN_PREFIX) else None
    if bearer and named_token and bearer != named_token:
        raise _refusal(ex, 400, "INVALID_VALUE", f"{SESSION_HEADER} and Authorization carry two different session "
                       "tokens; send the token once")
    token = bearer or named_token
    plain = named if named and named_token is None else None
    if token is None:
        if plain is not None:
            raise _refusal(ex, 401, "ACCESS_DENIED", f"This sandbox is hosted: {SESSION_HEADER} takes your session "
                           f"token (sst_…, printed once when the session was created), not a session id such as "
                           f"{plain[:80]!r}; ids are listed and guessable, tokens are not")
        return by_credential or ANONYMOUS_SESSION
    grant = token_grant(store, token)
    if grant is None:
        raise _refusal(ex, 401, "ACCESS_DENIED", f"The session token {redacted(token)} is not known to this sandbox: use "
                       "the token printed when your session was created")
    by_token = grant.session
    _land(ex, by_token)  # from here on, a refusal is the token holder's own business: journaled in its session
    tenant = owner_of(store, by_token)
    for other, how in ((plain, f"{SESSION_HEADER} names"), (by_credential, "the request's credentials select")):
        if other is None or other == by_token:
            continue
        if owner_of(store, other) != tenant:
            raise _refusal(ex, 403, "ACCESS_DENIED", f"{how} session {other[:80]!r}, which the session token "
                           f"{redacted(token)} does not belong to: a session token opens only its own tenant's sessions")
        if plain is not None and other == plain:
            raise _refusal(ex, 400, "INVALID_VALUE", f"{SESSION_HEADER} {plain[:80]!r} names a different session "
                           "from the session token; send the token alone")
    return by_credential or by_token


def _by_credential(request: Request, sandbox: Sandbox) -> str | None:
    for service in sandbox.services.values():
        if service.session_by_secret and service.resolve_session:
            session = service.resolve_session(request, sandbox)
            if session:
                return session
    return None


def _land(ex, session: str) -> None:
    if ex is not None:
        ex.session = session


def _refusal(ex, status: int, code: str, message: str) -> SpineError:
    """The refusal in the service's own error shape (its code for the status)."""
    if ex is not None and ex.service is not None:
        return ex.service.http_error(status, message)
    return SpineError(status, code, message)
