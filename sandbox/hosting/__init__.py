"""Hosted mode: several suppliers (tenants) on one sandbox, each walled off, with assessors who certify them.

`install(app, sandbox)` authenticates every control request (`/_sandbox/…`) from its X-Sandbox-Key when the
sandbox is hosted; outside hosted mode it does nothing and every caller is "local" (the single developer)."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import Forbidden, NotFound

from sandbox.hosting.caller import ASSESSOR, LOCAL, NOBODY, Caller, current_caller, set_caller
from sandbox.hosting.keys import authenticate, ensure_admin_key
from sandbox.hosting.ownership import bind, owner_of, sessions_of, visible

KEY_HEADER = "X-Sandbox-Key"
CONTROL_PREFIX = "/_sandbox/"
PUBLIC_PATHS = ("/_sandbox/health", "/_sandbox/report-key")
READING = ("GET", "HEAD", "OPTIONS")
# What an assessor may do besides reading: attest. Every other write answers 403 before any endpoint runs.
ASSESSOR_WRITES = ("assurance.new_attestation",)

__all__ = ["KEY_HEADER", "LOCAL", "Caller", "Denied", "Hidden", "bind", "current_caller", "install", "owner_of",
           "require_admin", "require_change", "sessions_of", "visible"]


class Denied(Forbidden):
    """The caller's role may not do this (403), in the control API's JSON error shape."""

    def __init__(self, message: str):
        super().__init__(message)


class Hidden(NotFound):
    """What the caller may not see does not exist for it: 404, in the control API's JSON error shape, with the same
    message as for something that was never made."""

    def __init__(self, message: str):
        super().__init__(message)


def require_change(what: str = "change anything") -> Caller:
    """The caller, when it may change things; assessors only read and attest (403)."""
    caller = current_caller()
    if not caller.may_change:
        raise Denied(f"an {caller.role} key may read and attest but not {what}")
    return caller


def require_admin(what: str) -> Caller:
    caller = current_caller()
    if not caller.is_admin:
        raise Denied(f"only the admin key may {what}; this is a {caller.role} key")
    return caller


def install(app: Flask, sandbox) -> None:
    """In hosted mode: every request under /_sandbox/ but the public ones must carry a valid X-Sandbox-Key (else
    401 in the control JSON error shape); the caller it proves is current_caller() for the request."""
    from sandbox.hosting.control import control as hosting_control
    from sandbox.web.control import control_error

    app.register_blueprint(hosting_control)

    @app.errorhandler(Denied)
    def _denied(exc: Denied):
        return control_error("forbidden", exc.description, 403)

    @app.errorhandler(Hidden)
    def _hidden(exc: Hidden):
        return control_error("not_found", exc.description, 404)

    if not sandbox.settings.hosted:
        return
    admin, _ = ensure_admin_key(sandbox.settings)  # made here too when built without `serve` (tests, wsgi)

    @app.before_request
    def _authenticate():
        if not request.path.startswith(CONTROL_PREFIX) and request.path != CONTROL_PREFIX.rstrip("/"):
            set_caller(NOBODY)  # service traffic: bound by its own credentials, never by a control key
            return None
        if request.path in PUBLIC_PATHS:
            set_caller(NOBODY)
            return None
        key = request.headers.get(KEY_HEADER)
        caller = authenticate(sandbox.store, sandbox.settings, key, admin)
        if caller is None:
            message = (f"this sandbox is hosted: send {KEY_HEADER} with your tenant, assessor or admin key"
                       if not key else f"the {KEY_HEADER} given is not a valid key (wrong, or revoked)")
            return control_error("unauthorized", message, 401)
        set_caller(caller)
        if caller.role == ASSESSOR and request.method not in READING and request.endpoint not in ASSESSOR_WRITES:
            return control_error("forbidden", f"an assessor key ({caller.name}) may read everything and attest, "
                                 "but not change anything else", 403)
        return None

