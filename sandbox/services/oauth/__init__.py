"""Identity service (OAuth2): signed-JWT client credentials, token exchange with mock NHS CIS2 and NHS login ID
tokens, the authorisation-code pattern, and the access identity behind every API request's bearer token."""

from pathlib import Path

from sandbox.runtime import Sandbox
from sandbox.services import Service
from sandbox.services.oauth.checks import checks
from sandbox.services.oauth.commands import apps
from sandbox.services.oauth.control import control
from sandbox.services.oauth.errors import render_error
from sandbox.services.oauth.registry import Registry
from sandbox.services.oauth.routes import BASE_PATHS, blueprint, resolve_session
from sandbox.services.oauth.tokens import resolve_access


def _start(sandbox: Sandbox) -> None:
    Registry(sandbox.store).ensure_demo()


SERVICE = Service(
    name="oauth",
    title="Identity service (OAuth2)",
    base_paths=BASE_PATHS,
    blueprint=blueprint,
    operations={
        "token": "POST /token",
        "authorize": "GET /authorize",
        "sign-in": "POST /simulated_auth",
    },
    checks=checks,
    render_error=render_error,
    package_dir=Path(__file__).parent,
    specification={"Identity Service API": "NHSDigital/identity-service-api@5100cca3 (2026-04-23)"},
    http_error_codes={400: "invalid_request", 404: "invalid_request", 405: "invalid_request",
                      406: "invalid_request", 413: "invalid_request", 415: "invalid_request", 500: "server_error",
                      503: "temporarily_unavailable"},
    start=_start,
    resolve_session=resolve_session,
    session_by_secret=True,
    control=control,
    cli=apps,
    resolve_access=resolve_access,
)
