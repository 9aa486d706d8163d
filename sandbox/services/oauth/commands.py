"""`spine-sandbox apps …`: register applications, rotate keys, revoke, and mint assertions and ID tokens.

Writes go straight to the Store under the data directory, so a running server sees them on its next request.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import click

from sandbox.settings import SettingError, Settings

DATA_DIR = click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _store(data_dir):
    from sandbox.journal.store import open_store

    try:
        store = open_store(Settings.load(data_dir=data_dir).journal_url)
    except SettingError as exc:
        raise click.UsageError(str(exc)) from None
    click.get_current_context().call_on_close(store.close)  # closed when the command ends
    return store


def _registry(data_dir):
    from sandbox.services.oauth.registry import Registry

    return Registry(_store(data_dir))


def _fail(exc: Exception):
    raise click.ClickException(str(exc)) from None


def _show(app, as_json: bool, full: bool = False, reveal: bool = False) -> None:
    """An application; its secret only when `reveal` (once, when registered), otherwise its fingerprint."""
    data = app.to_dict(reveal=reveal)
    if as_json:
        brief = {"api_key": app.api_key, "name": app.name, "kids": app.kids, **({"secret": app.secret} if reveal else {})}
        click.echo(json.dumps(data if full else brief, indent=2))
        return
    for key in ("api_key", "name", "secret", "kids", "redirect_uris", "session", "revoked", "demo"):
        click.echo(f"{key:>14}: {data[key]}")


@click.group()
def apps() -> None:
    """Applications of the mock identity service (API keys, public keys), tokens and mock sign-ins."""


@apps.command("register")
@click.option("--name", required=True, help="The application's name.")
@click.option("--jwks", "jwks_file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="JSON Web Key Set of your public keys (several kids allowed), for signed-JWT authentication.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Callback URL for the authorisation-code "
              "(combined) pattern (repeatable).")
@click.option("--session", help="Sandbox session the application's requests belong to [default: its own].")
@DATA_DIR
@AS_JSON
def register(name, jwks_file, redirect_uris, session, data_dir, as_json) -> None:
    """Register an application: prints its API key (the client id: iss and sub of your assertions) and its secret
    (shown this once)."""
    from sandbox.services.oauth.registry import RegistrationError, load_jwks_file

    try:
        jwks = load_jwks_file(jwks_file) if jwks_file else None
        app = _registry(data_dir).register(name, jwks, redirect_uris, session)
    except RegistrationError as exc:
        _fail(exc)
    _show(app, as_json, reveal=True)  # the secret is shown this once


@apps.command("list")
@DATA_DIR
@AS_JSON
def list_apps(data_dir, as_json) -> None:
    """List registered applications."""
    found = _registry(data_dir).all()
    if as_json:
        click.echo(json.dumps([a.to_dict() for a in found], indent=2))
        return
    for app in found:
        state = "revoked" if app.revoked else "demo" if app.demo else "active"
        click.echo(f"{app.api_key:<34} {state:<8} kids={','.join(app.kids) or '-':<30} {app.name}")


@apps.command("show")
@click.argument("api_key")
@DATA_DIR
@AS_JSON
def show(api_key, data_dir, as_json) -> None:
    """Show one application, with its public keys (and its secret's fingerprint)."""
    app = _registry(data_dir).get(api_key)
    if app is None:
        _fail(ValueError(f"no application with API key {api_key!r}; `spine-sandbox apps list` shows them"))
    _show(app, as_json, full=True)


@apps.command("set-jwks")
@click.argument("api_key")
@click.option("--jwks", "jwks_file", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@DATA_DIR
@AS_JSON
def set_jwks(api_key, jwks_file, data_dir, as_json) -> None:
    """Replace an application's public keys (key rotation: publish the new kid beside the old, then drop the old)."""
    from sandbox.services.oauth.registry import RegistrationError, load_jwks_file

    try:
        app = _registry(data_dir).update(api_key, jwks=load_jwks_file(jwks_file))
    except RegistrationError as exc:
        _fail(exc)
    _show(app, as_json)


@apps.command("revoke")
@click.argument("api_key")
@DATA_DIR
def revoke(api_key, data_dir) -> None:
    """Revoke an application: its tokens stop working and it can get no more."""
    from sandbox.services.oauth.registry import RegistrationError

    try:
        _registry(data_dir).update(api_key, revoked=True)
    except RegistrationError as exc:
        _fail(exc)
    click.echo(f"revoked {api_key}")


@apps.command("revoke-token")
@click.argument("token")
@DATA_DIR
def revoke_access_token(token, data_dir) -> None:
    """Revoke one access token (APIs then answer it with 401 ACCESS_DENIED in strict mode)."""
    from sandbox.services.oauth.tokens import revoke_token

    if not revoke_token(_store(data_dir), token):
        _fail(ValueError("this sandbox never issued that access token"))
    click.echo("revoked")


@apps.command("demo")
@DATA_DIR
@AS_JSON
def demo(data_dir, as_json) -> None:
    """The ready-made DEMO application and where its (public!) private key is."""
    from sandbox.services.oauth.registry import DEMO_DIR

    app = _registry(data_dir).ensure_demo()
    key = DEMO_DIR / "demo-private-key.pem"
    if as_json:
        click.echo(json.dumps({"api_key": app.api_key, "kid": app.kids[0], "private_key": str(key),
                               "secret": app.secret, "redirect_uris": app.redirect_uris}, indent=2))
        return
    click.echo("DEMO application: its private key ships with the sandbox, so it proves nothing; use it to try "
               "things, then register your own.")
    click.echo(f"       api_key: {app.api_key}\n           kid: {app.kids[0]}\n   private key: {key}\n"
               f"        secret: {app.secret}\n  redirect_uri: {app.redirect_uris[0]}")


@apps.command("assertion")
@click.option("--api-key", help="iss and sub [default: the demo application].")
@click.option("--key", "key_file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="PEM private key to sign with [default: the demo key].")
@click.option("--kid", help="kid of the matching public key [default: the demo kid].")
@click.option("--aud", default="http://127.0.0.1:9000/oauth2/token", show_default=True,
              help="The token URL you will call.")
@click.option("--lifetime", type=int, default=300, show_default=True, help="Seconds until exp.")
def assertion(api_key, key_file, kid, aud, lifetime) -> None:
    """Print a signed client assertion (RS512 JWT) for POST /oauth2/token, e.g. for curl."""
    from sandbox.services.oauth.jwtparts import sign
    from sandbox.services.oauth.registry import DEMO_API_KEY, demo_private_key

    if key_file is None and (api_key or kid) and api_key != DEMO_API_KEY:
        raise click.UsageError("--key is required with --api-key/--kid (the demo key signs only for the demo app)")
    pem = key_file.read_text(encoding="ascii") if key_file else demo_private_key()
    api_key = api_key or DEMO_API_KEY
    claims = {"iss": api_key, "sub": api_key, "aud": aud, "jti": str(uuid.uuid4()), "exp": int(time.time()) + lifetime}
    try:
        click.echo(sign(claims, pem, kid or "sandbox-demo-1"))
    except (ValueError, TypeError) as exc:
        _fail(ValueError(f"cannot sign with {key_file}: {exc}"))


@apps.command("id-token")
@click.option("--user", "user_id", help="Mock NHS CIS2: a synthetic healthcare worker's user id.")
@click.option("--role", "role_id", help="Their role profile id [default: their first].")
@click.option("--aal", type=click.Choice(["AAL1", "AAL2", "AAL3"]), default="AAL3", show_default=True)
@click.option("--nhs-number", help="Mock NHS login: a synthetic patient's NHS number.")
@click.option("--vot", default="P9.Cp.Cd", show_default=True, help="NHS login vector of trust.")
@click.option("--seed", type=int, help="[SANDBOX_SEED]")
@click.option("--population", type=int, help="[SANDBOX_POPULATION]")
@DATA_DIR
def id_token(user_id, role_id, aal, nhs_number, vot, seed, population, data_dir) -> None:
    """Print an ID token from the mock NHS CIS2 (--user) or NHS login (--nhs-number), for the token-exchange grant."""
    from sandbox.services.oauth import idp
    from sandbox.synthetic.population import Population

    if bool(user_id) == bool(nhs_number):
        raise click.UsageError("give either --user (NHS CIS2) or --nhs-number (NHS login)")
    store = _store(data_dir)
    try:
        if user_id:
            click.echo(idp.cis2_id_token(store, user_id, role_id, aal))
        else:
            settings = Settings.load(data_dir=data_dir, seed=seed, population=population)
            click.echo(idp.nhs_login_id_token(store, Population(settings.seed, settings.population), nhs_number, vot))
    except idp.IdpError as exc:
        _fail(exc)
