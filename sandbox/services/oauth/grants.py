"""POST /oauth2/token: which grant the request asks for, and the rules of each grant, in the live order.

`judge_token_request` leaves a finding for every rule of the chosen grant and returns what the handler needs to
answer (the application and the identity the token will carry) when every rule passed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sandbox.journal.store import Store, VersionConflict
from sandbox.services.oauth import assertion, exchange, idp
from sandbox.services.oauth.errors import INVALID_CLIENT, INVALID_GRANT, UNSUPPORTED_GRANT_TYPE
from sandbox.services.oauth.registry import GLOBAL, Application, Registry
from sandbox.services.oauth.rules import RuleLog, shown
from sandbox.services.oauth.tokens import CODES, REFRESH_TOKENS, identity_of
from sandbox.web.access import APPLICATION

FORM = "application/x-www-form-urlencoded"
CLIENT_CREDENTIALS, AUTHORIZATION_CODE, REFRESH_TOKEN = "client_credentials", "authorization_code", "refresh_token"
GRANTS = (CLIENT_CREDENTIALS, exchange.TOKEN_EXCHANGE, AUTHORIZATION_CODE, REFRESH_TOKEN)

CONTENT_TYPE, GRANT_PRESENT, GRANT_SUPPORTED = "OAUTH-TOK-001", "OAUTH-TOK-002", "OAUTH-TOK-003"
CLIENT_ID, CLIENT_KNOWN, SECRET, SECRET_MATCHES = (f"OAUTH-CLI-{n:03}" for n in range(1, 5))
REDIRECT, REDIRECT_MATCHES, CODE, CODE_VALID = (f"OAUTH-ACG-{n:03}" for n in range(1, 5))
REFRESH, REFRESH_VALID, REFRESH_LIVE = (f"OAUTH-RFT-{n:03}" for n in range(1, 4))
RULES = (CONTENT_TYPE, GRANT_PRESENT, GRANT_SUPPORTED, CLIENT_ID, CLIENT_KNOWN, SECRET, SECRET_MATCHES, REDIRECT,
         REDIRECT_MATCHES, CODE, CODE_VALID, REFRESH, REFRESH_VALID, REFRESH_LIVE, *assertion.RULES, *exchange.RULES)


@dataclass
class Grant:
    """What a token request that passed every rule is granted."""

    grant: str
    app: Application
    mode: str
    identity: dict = field(default_factory=dict)
    idp: str | None = None  # user-restricted grants: which identity provider signed the user in
    refresh_count: int = 0


def judge_token_request(log: RuleLog, content_type: str, form: dict[str, str], audiences: list[str],
                        store: Store) -> Grant | None:
    if not log.check(CONTENT_TYPE, content_type == FORM, f"Content-Type is {FORM}.",
                     f"Content-Type is {content_type or 'missing'!r}; the token endpoint takes form parameters, "
                     f"{FORM}.", "header:Content-Type", 415,
                     "Content-Type header must be application/x-www-urlencoded"):  # sic: the live text
        return None
    grant = form.get("grant_type")
    if form.get("subject_token_type") == exchange.ID_TOKEN_TYPE:
        return _token_exchange(log, form, audiences, store)
    if grant == CLIENT_CREDENTIALS:
        _grant_ok(log, grant)
        outcome = assertion.check_client_assertion(form, audiences, store, log=log)
        return Grant(grant, outcome.app, APPLICATION) if outcome.app else None
    if grant in (AUTHORIZATION_CODE, REFRESH_TOKEN):
        _grant_ok(log, grant)
        app = _client_secret(log, form, Registry(store))
        return (_authorization_code if grant == AUTHORIZATION_CODE else _refresh)(log, form, app, store)
    if grant == exchange.TOKEN_EXCHANGE:
        _grant_ok(log, grant)
        given = form.get("subject_token_type")
        log.failed(exchange.SUBJECT_TYPE, f"subject_token_type is {shown(given) if given else 'missing'}; expected "
                   f"{exchange.ID_TOKEN_TYPE!r}.", "form:subject_token_type", 400,
                   f"missing or invalid subject_token_type - must be '{exchange.ID_TOKEN_TYPE}'")
    elif grant:
        log.passed(GRANT_PRESENT, "grant_type is present.", "form:grant_type")
        log.failed(GRANT_SUPPORTED, f"grant_type {shown(grant)} is not supported; expected one of "
                   f"{', '.join(GRANTS)}.", "form:grant_type", 400, "grant_type is invalid", UNSUPPORTED_GRANT_TYPE)
    else:
        log.failed(GRANT_PRESENT, f"grant_type is missing; expected one of {', '.join(GRANTS)}.", "form:grant_type",
                   400, "grant_type is missing")
    return None


def _grant_ok(log: RuleLog, grant: str) -> None:
    log.passed(GRANT_PRESENT, "grant_type is present.", "form:grant_type")
    log.passed(GRANT_SUPPORTED, f"grant_type {grant!r} is supported.", "form:grant_type")


def _token_exchange(log: RuleLog, form: dict[str, str], audiences: list[str], store: Store) -> Grant | None:
    # Live picks this flow by subject_token_type, then checks client_assertion_type before grant_type.
    assertion.check_assertion_type(log, form)
    grant = form.get("grant_type")
    if grant != exchange.TOKEN_EXCHANGE:
        log.failed(GRANT_SUPPORTED, f"grant_type is {shown(grant) if grant else 'missing'}; a request with an ID "
                   f"token as subject_token_type must use {exchange.TOKEN_EXCHANGE!r}.", "form:grant_type", 400,
                   "grant_type is invalid")
        return None
    _grant_ok(log, grant)
    outcome = assertion.check_client_assertion(form, audiences, store, log=log, type_checked=True)
    subject = exchange.check_subject_token(log, form, store)
    if outcome.app is None or subject is None or log.rejected:
        return None
    provider, claims = subject
    mode, identity = idp.identity_from_id_token(provider, claims)
    return Grant(grant, outcome.app, mode, identity, provider)


def _client_secret(log: RuleLog, form: dict[str, str], registry: Registry) -> Application | None:
    client_id, secret = form.get("client_id"), form.get("client_secret")
    if not log.check(CLIENT_ID, bool(client_id), "client_id is present.", "client_id is missing; expected your "
                     "application's API key.", "form:client_id", 401, "client_id is missing"):
        log.skipped((CLIENT_KNOWN, SECRET, SECRET_MATCHES), "there is no client_id")
        return None
    app = registry.get(client_id)
    app = None if app is None or app.revoked else app
    log.check(CLIENT_KNOWN, app is not None, f"client_id is the API key of {app.name if app else ''!r}.",
              f"client_id {shown(client_id)} is not the API key of a registered application.", "form:client_id",
              401, "client_id or client_secret is invalid", INVALID_CLIENT)
    if log.check(SECRET, bool(secret), "client_secret is present.", "client_secret is missing.",
                 "form:client_secret", 401, "client_secret is missing"):
        if app is None:
            log.skipped(SECRET_MATCHES, "the application is not known")
        else:
            log.check(SECRET_MATCHES, secret == app.secret, "client_secret matches the application's secret.",
                      "client_secret is not this application's secret (it was shown once, when the application "
                      "was registered; `spine-sandbox apps show` gives its fingerprint to compare).",
                      "form:client_secret", 401, "client_id or client_secret is invalid", INVALID_CLIENT)
    else:
        log.skipped(SECRET_MATCHES, "there is no client_secret")
    return app


def _authorization_code(log: RuleLog, form: dict[str, str], app: Application | None, store: Store) -> Grant | None:
    uri = form.get("redirect_uri")
    if log.check(REDIRECT, bool(uri), "redirect_uri is present.", "redirect_uri is missing; expected the one the "
                 "authorisation request used.", "form:redirect_uri", 400, "redirect_uri is missing"):
        if app is None:
            log.skipped(REDIRECT_MATCHES, "the application is not known")
        else:
            log.check(REDIRECT_MATCHES, uri in app.redirect_uris, "redirect_uri is registered for the application.",
                      f"redirect_uri {shown(uri)} is not registered for {app.name!r} "
                      f"({', '.join(app.redirect_uris) or 'none registered'}).", "form:redirect_uri", 400,
                      "redirect_uri is invalid")
    else:
        log.skipped(REDIRECT_MATCHES, "there is no redirect_uri")
    code = form.get("code")
    if not log.check(CODE, bool(code), "code is present.", "code is missing; expected the authorisation code from "
                     "the redirect.", "form:code", 400, "authorization_code is missing"):
        log.skipped(CODE_VALID, "there is no code")
        return None
    record = _use_once(store, CODES, code, consume=not log.rejected)
    why = _code_problem(record, app, uri)
    log.check(CODE_VALID, why is None, "code is a live authorisation code issued to this application.",
              f"code {shown(code)} {why}.", "form:code", 400, "authorization_code is invalid", INVALID_GRANT)
    if log.rejected:
        return None
    return Grant(AUTHORIZATION_CODE, app, record["mode"], identity_of(record), record["idp"])


def _code_problem(record: dict | None, app: Application | None, uri: str | None) -> str | None:
    if record is None:
        return "was never issued by this sandbox"
    if record.get("used"):
        return "was already exchanged; a code is good for one token request"
    if time.time() > record["expires_at"]:
        return f"expired {int(time.time() - record['expires_at'])} s ago"
    if app is not None and record["app"] != app.api_key:
        return "was issued to another application"
    if uri and record["redirect_uri"] != uri:
        return f"was issued for redirect_uri {record['redirect_uri']!r}"
    return None


def _refresh(log: RuleLog, form: dict[str, str], app: Application | None, store: Store) -> Grant | None:
    token = form.get("refresh_token")
    if not log.check(REFRESH, bool(token), "refresh_token is present.", "refresh_token is missing.",
                     "form:refresh_token", 400, "refresh_token is missing"):
        log.skipped((REFRESH_VALID, REFRESH_LIVE), "there is no refresh_token")
        return None
    record = _use_once(store, REFRESH_TOKENS, token, consume=not log.rejected)
    valid = record is not None and not record.get("used") and (app is None or record["app"] == app.api_key)
    log.check(REFRESH_VALID, valid, "refresh_token was issued to this application and not used before.",
              f"refresh_token {shown(token)} was never issued to this application or was already used (each refresh "
              "token works once).", "form:refresh_token", 401, "refresh_token is invalid", INVALID_GRANT)
    if not valid:
        log.skipped(REFRESH_LIVE, "the refresh_token is not valid")
        return None
    late = time.time() - record["expires_at"]
    log.check(REFRESH_LIVE, late <= 0, "refresh_token has not expired.", f"refresh_token expired {int(late)} s ago; "
              "the user must sign in again.", "form:refresh_token", 401, "refresh token refresh period has expired",
              INVALID_GRANT)
    if log.rejected:
        return None
    return Grant(REFRESH_TOKEN, app, record["mode"], identity_of(record), record["idp"], record["refresh_count"] + 1)


def _use_once(store: Store, namespace: str, key: str, consume: bool) -> dict | None:
    """The record as it was before this request; with consume, marked used atomically (compare-and-set), so two
    concurrent requests never both redeem it."""
    item = store.state.get(GLOBAL, namespace, key)
    if item is None or item.value.get("used") or not consume:
        return item.value if item else None
    try:
        store.state.put(GLOBAL, namespace, key, {**item.value, "used": True}, expect_version=item.version)
    except VersionConflict:
        return {**item.value, "used": True}
    return item.value
