"""Identity service endpoints at the live paths: POST /token, GET /authorize, the mock sign-in page."""

from __future__ import annotations

import json
import time
from pathlib import Path

from flask import Blueprint, Response, redirect, render_template_string, request

from sandbox.runtime import current_sandbox
from sandbox.services.oauth import idp
from sandbox.services.oauth.authorize import PENDING, SignInError, complete_sign_in, open_sign_in
from sandbox.services.oauth.checks import parse_form
from sandbox.services.oauth.errors import oauth_error
from sandbox.services.oauth.exchange import TOKEN_EXCHANGE
from sandbox.services.oauth.grants import CLIENT_CREDENTIALS, Grant
from sandbox.services.oauth.jwtparts import decode_unverified
from sandbox.services.oauth.registry import GLOBAL, Registry
from sandbox.services.oauth.tokens import (
    expires_in,
    issue_access_token,
    issue_refresh_token,
    lifetime_ms,
    token_record,
)
from sandbox.web.access import bearer_token
from sandbox.web.pipeline import operation

BASE_PATHS = ("/oauth2", "/oauth2-mock")  # live: /oauth2; integration's mock-authentication proxy: /oauth2-mock
ISSUED_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
LOGIN_PAGE = (Path(__file__).parent / "login.html").read_text(encoding="utf-8")

blueprint = Blueprint("oauth", __name__)


@blueprint.post("/token")
@operation("token")
def token(ex):
    grant: Grant = ex.facts["grant"]
    store = current_sandbox().store
    # Like live, a client may shorten (never lengthen) the token's life with _access_token_expiry_ms.
    access, record = issue_access_token(store, grant.app, grant.mode, grant.identity, grant.grant,
                                        lifetime_ms(_form().get("_access_token_expiry_ms")))
    body = {"access_token": access, "expires_in": expires_in(record), "token_type": "Bearer"}
    if grant.grant == TOKEN_EXCHANGE:
        body["issued_token_type"] = ISSUED_TOKEN_TYPE
    elif grant.grant != CLIENT_CREDENTIALS:  # authorisation code and refresh: the user-restricted pair
        refresh, refreshed = issue_refresh_token(store, grant.app, grant.mode, grant.identity, grant.idp,
                                                 grant.refresh_count)
        body.update(refresh_token=refresh, refresh_count=str(grant.refresh_count),
                    refresh_token_expires_in=expires_in(refreshed))
    body["issued_at"] = str(int(record["issued_at"] * 1000))
    return Response(json.dumps(body), status=200, mimetype="application/json",
                    headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@blueprint.route("/token", methods=["GET", "PUT", "PATCH", "DELETE"])
def token_wrong_method():
    raise oauth_error(405, f"{request.method} is not supported on the token endpoint: use POST with form "
                      "parameters.", Allow="POST")


@blueprint.get("/authorize")
@operation("authorize")
def authorize(ex):
    sandbox = current_sandbox()
    app = ex.facts["application"]
    args = {key: request.args[key] for key in request.args}
    request_id = open_sign_in(sandbox.store, app, args)
    page = render_template_string(LOGIN_PAGE, app=app, request_id=request_id, workers=idp.WORKERS,
                                  aal_levels=idp.AAL_LEVELS, vectors=idp.PDS_VECTORS,
                                  action=request.path.rsplit("/", 1)[0] + "/simulated_auth",
                                  examples=_example_patients(sandbox.population))
    return Response(page, status=200, mimetype="text/html")


@blueprint.post("/simulated_auth")
@operation("sign-in")
def sign_in(ex):
    sandbox = current_sandbox()
    try:
        return redirect(complete_sign_in(sandbox.store, sandbox.population, _form()), 302)
    except SignInError as exc:
        raise oauth_error(400, str(exc)) from None


def _form() -> dict[str, str]:
    return parse_form(request.get_data(cache=True))


def _example_patients(population, count: int = 5) -> list:
    return [p for p in (population.person(i) for i in range(min(population.size, 200))) if p.kind == "standard"][:count]


def resolve_session(req, sandbox) -> str | None:
    """The Service.resolve_session hook: the session of the application behind the request, if any."""
    registry = Registry(sandbox.store)
    token = bearer_token(req.headers.get("Authorization"))
    if token is not None:
        record = token_record(sandbox.store, token)
        if record is not None:
            app = registry.get(record["app"])
            return app.session if app else None
    if not any(req.path == base or req.path.startswith(base + "/") for base in BASE_PATHS):
        return None
    form = _form() if req.method == "POST" else {}
    client = req.args.get("client_id") or form.get("client_id") or _assertion_issuer(form.get("client_assertion"))
    if not client and form.get("request"):
        pending = sandbox.store.state.get(GLOBAL, PENDING, form["request"])
        client = pending.value["app"] if pending and time.time() < pending.value["expires_at"] else None
    app = registry.get(client) if isinstance(client, str) else None
    return app.session if app else None


def _assertion_issuer(assertion: str | None):
    decoded = decode_unverified(assertion) if assertion else None
    return decoded.claims.get("iss") if decoded else None
