"""Control endpoints under /_sandbox/oauth/: applications, tokens, and the mock identity providers' ID tokens."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify

from sandbox.hosting import bind, current_caller, visible
from sandbox.runtime import current_sandbox
from sandbox.services.oauth import idp
from sandbox.services.oauth.registry import DEMO_API_KEY, RegistrationError, Registry, demo_private_key
from sandbox.services.oauth.tokens import resolve_access, revoke_token
from sandbox.web.control import FieldError, body_object, control_error, field
from sandbox.web.sessions import require_visible

control = Blueprint("oauth-control", __name__)


@control.errorhandler(400)
@control.errorhandler(404)
def _json_error(exc):
    return control_error(exc.name, exc.description, exc.code, getattr(exc, "field", None))


def _registry() -> Registry:
    return Registry(current_sandbox().store)


def _app(api_key: str):
    app = _registry().get(api_key)
    if app is None or not _mine(app.session):  # another tenant's application: as if it did not exist
        abort(404, f"no application with API key {api_key[:80]!r} (GET /_sandbox/oauth/apps lists them)")
    return app


def _mine(session: str | None) -> bool:
    """Whether the caller may see what belongs to this session (an application, a token)."""
    caller = current_caller()
    return caller.sees_all or (session is not None and visible(caller, current_sandbox().store, session))


@control.get("/apps")
def list_apps():
    return jsonify(applications=[a.to_dict() for a in _registry().all() if _mine(a.session)])


@control.post("/apps")
def register_app():
    body = body_object(example='{"name": "…", "jwks": {"keys": [ … ]}, "redirect_uris": ["https://…"]}')
    redirect_uris = field(body, "redirect_uris", list, default=[], max_length=100)
    if not all(isinstance(uri, str) for uri in redirect_uris):
        raise FieldError("field 'redirect_uris' must be a JSON array of strings (http or https URLs)", "redirect_uris")
    session = field(body, "session", str, max_length=64)
    tenant = current_caller().tenant
    if session is not None and tenant is not None:
        require_visible(session)  # a tenant registers applications for its own sessions only
    try:
        app = _registry().register(field(body, "name", str, default="", max_length=200), field(body, "jwks", dict),
                                   redirect_uris, session)
    except RegistrationError as exc:
        abort(400, str(exc))
    if tenant is not None and session is None:  # the application's own new session: the tenant's
        bind(current_sandbox().store, app.session, tenant)
    return jsonify(app.to_dict(reveal=True)), 201  # the secret is shown this once


@control.get("/apps/<api_key>")
def show_app(api_key: str):
    return jsonify(_app(api_key).to_dict())


@control.put("/apps/<api_key>/jwks")
def set_jwks(api_key: str):
    _app(api_key)
    try:
        return jsonify(_registry().update(api_key, jwks=body_object(example='{"keys": [ … ]}')).to_dict())
    except RegistrationError as exc:
        abort(400, str(exc))


@control.delete("/apps/<api_key>")
def revoke_app(api_key: str):
    _app(api_key)
    return jsonify(_registry().update(api_key, revoked=True).to_dict())


@control.get("/tokens/<token>")
def show_token(token: str):
    access = resolve_access(token, current_sandbox())
    if access is None or not _mine(_token_session(access)):
        abort(404, "this sandbox never issued that access token")
    return jsonify(access.to_dict())


@control.post("/tokens/<token>/revoke")
def revoke(token: str):
    access = resolve_access(token, current_sandbox())
    if access is None or not _mine(_token_session(access)) or not revoke_token(current_sandbox().store, token):
        abort(404, "this sandbox never issued that access token")
    return jsonify(revoked=True)


def _token_session(access) -> str | None:
    """The session a token belongs to: its own (a session token) or its application's."""
    if access.session is not None:
        return access.session
    app = _registry().get(access.app or "")
    return app.session if app is not None else None


@control.get("/cis2/users")
def cis2_users():
    return jsonify(users=[w.to_dict() for w in idp.WORKERS], aal_levels=list(idp.AAL_LEVELS), issuer=idp.ISSUERS[idp.CIS2])


@control.get("/<any(cis2, 'nhs-login'):provider>/jwks")
def provider_jwks(provider: str):
    return jsonify(idp.jwks(current_sandbox().store, provider))


@control.post("/cis2/id-token")
def cis2_id_token():
    body = body_object(example='{"user_id": "…", "role_id": "…", "aal": "AAL3"}')
    try:
        token = idp.cis2_id_token(current_sandbox().store, str(field(body, "user_id", (str, int), default="")),
                                  field(body, "role_id", str), field(body, "aal", str, default="AAL3"),
                                  field(body, "audience", str, default="spine-sandbox", max_length=1000))
    except idp.IdpError as exc:
        abort(400, str(exc))
    return jsonify(id_token=token, issuer=idp.ISSUERS[idp.CIS2])


@control.post("/nhs-login/id-token")
def nhs_login_id_token():
    body = body_object(example='{"nhs_number": "9000000009", "vot": "P9.Cp.Cd"}')
    sandbox = current_sandbox()
    try:
        token = idp.nhs_login_id_token(sandbox.store, sandbox.population,
                                       str(field(body, "nhs_number", (str, int), default="")),
                                       field(body, "vot", str, default="P9.Cp.Cd"),
                                       field(body, "audience", str, default="spine-sandbox", max_length=1000))
    except idp.IdpError as exc:
        abort(400, str(exc))
    return jsonify(id_token=token, issuer=idp.ISSUERS[idp.NHS_LOGIN])


@control.get("/demo")
def demo():
    app = _registry().ensure_demo()
    return jsonify(warning="DEMO application: this private key is published with the sandbox; never use it for "
                   "anything real.", application=app.to_dict(reveal=True), kid=app.kids[0],
                   private_key_pem=demo_private_key(), api_key=DEMO_API_KEY)
