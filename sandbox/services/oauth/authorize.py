"""The authorisation-code ("combined") pattern: GET /authorize, the mock sign-in page, the code it issues."""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlencode

from sandbox.journal.store import Store
from sandbox.services.oauth import idp
from sandbox.services.oauth.errors import UNSUPPORTED_RESPONSE_TYPE
from sandbox.services.oauth.registry import GLOBAL, Application, Registry
from sandbox.services.oauth.rules import RuleLog, shown
from sandbox.services.oauth.tokens import CODE_LIFETIME_S, CODES
from sandbox.web.access import HEALTHCARE_WORKER, PATIENT

PENDING = "oauth.authorize"  # sign-in pages shown and not yet answered
PENDING_LIFETIME_S = 900
CLIENT_ID, CLIENT_KNOWN, REDIRECT, REDIRECT_MATCHES, STATE, RESPONSE_TYPE, RESPONSE_CODE = (
    f"OAUTH-AUZ-{n:03}" for n in range(1, 8))
RULES = (CLIENT_ID, CLIENT_KNOWN, REDIRECT, REDIRECT_MATCHES, STATE, RESPONSE_TYPE, RESPONSE_CODE)


def with_query(uri: str, params: dict) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode({k: v for k, v in params.items() if v is not None})


def judge_authorize(log: RuleLog, args: dict[str, str], store: Store) -> Application | None:
    """Live order: the client and its redirect_uri are answered directly (nowhere safe to redirect to); state and
    response_type problems go back to the client's redirect_uri."""
    client_id, uri, state = args.get("client_id"), args.get("redirect_uri"), args.get("state")
    if not log.check(CLIENT_ID, bool(client_id), "client_id is present.", "client_id is missing; expected your "
                     "application's API key.", "query:client_id", 401, "client_id is missing"):
        log.skipped(RULES[1:], "there is no client_id")
        return None
    app = Registry(store).get(client_id)
    app = None if app is None or app.revoked else app
    if not log.check(CLIENT_KNOWN, app is not None, f"client_id is the API key of {app.name if app else ''!r}.",
                     f"client_id {shown(client_id)} is not the API key of a registered application.",
                     "query:client_id", 401, "client_id is invalid"):
        log.skipped(RULES[2:], "the application is not known")
        return None
    if not log.check(REDIRECT, bool(uri), "redirect_uri is present.", "redirect_uri is missing.",
                     "query:redirect_uri", 400, "redirect_uri is missing"):
        log.skipped(RULES[3:], "there is no redirect_uri")
        return None
    if not log.check(REDIRECT_MATCHES, uri in app.redirect_uris, "redirect_uri is registered for the application.",
                     f"redirect_uri {shown(uri)} is not registered for {app.name!r} "
                     f"({', '.join(app.redirect_uris) or 'none registered: spine-sandbox apps register --redirect-uri'})"
                     ".", "query:redirect_uri", 400, "redirect_uri is invalid"):
        log.skipped(RULES[4:], "the redirect_uri is not registered")
        return None

    def back(error: str, description: str) -> dict:
        return {"Location": with_query(uri, {"error": error, "error_description": description, "state": state})}

    if state:
        log.passed(STATE, "state is present.", "query:state")
    else:
        log.failed(STATE, "state is missing; send an unguessable value and check it on the redirect (CSRF).",
                   "query:state", 302, "state is missing", **back("invalid_request", "state is missing"))
    response_type = args.get("response_type")
    if not response_type:
        log.failed(RESPONSE_TYPE, "response_type is missing; expected 'code'.", "query:response_type", 302,
                   "response_type is missing", **back("invalid_request", "response_type is missing"))
        log.skipped(RESPONSE_CODE, "there is no response_type")
    else:
        log.passed(RESPONSE_TYPE, "response_type is present.", "query:response_type")
        if response_type == "code":
            log.passed(RESPONSE_CODE, "response_type is 'code'.", "query:response_type")
        else:
            log.failed(RESPONSE_CODE, f"response_type is {shown(response_type)}; expected 'code'.",
                       "query:response_type", 302, "response_type is invalid", UNSUPPORTED_RESPONSE_TYPE,
                       **back(UNSUPPORTED_RESPONSE_TYPE, "response_type is invalid"))
    return None if log.rejected else app


def open_sign_in(store: Store, app: Application, args: dict[str, str]) -> str:
    """Remember the authorisation request behind a sign-in page; returns the page's one-time id."""
    request_id = secrets.token_urlsafe(16)
    store.state.put(GLOBAL, PENDING, request_id, {
        "app": app.api_key, "redirect_uri": args["redirect_uri"], "state": args["state"],
        "scope": args.get("scope"), "expires_at": time.time() + PENDING_LIFETIME_S}, create_only=True)
    return request_id


class SignInError(ValueError):
    pass


def complete_sign_in(store: Store, population, form: dict[str, str]) -> str:
    """The signed-in user -> an authorisation code; returns the redirect back to the client."""
    item = store.state.get(GLOBAL, PENDING, form.get("request", ""))
    if item is None or time.time() > item.value["expires_at"]:
        raise SignInError("This sign-in page has expired or was already used; start again from your "
                          "application's /oauth2/authorize request.")
    pending = item.value
    if form.get("idp") == idp.CIS2:
        user_id, _, role_id = form.get("worker", "").partition("/")  # the page's choice: "<user id>/<role id>"
        person = idp.worker(user_id)
        role = next((r for r in person.roles if r.id == role_id), None) if person else None
        if person is None or role is None or form.get("aal") not in idp.AAL_LEVELS:
            raise SignInError("Choose a healthcare worker, one of their roles and an AAL.")
        provider, mode = idp.CIS2, HEALTHCARE_WORKER
        identity = {"user_id": person.uid, "role_id": role.id, "role_code": role.code, "aal": form["aal"],
                    "roles": [r.id for r in person.roles]}
    elif form.get("idp") == idp.NHS_LOGIN:
        number, vot = form.get("nhs_number", "").replace(" ", ""), form.get("vot", "")
        if population.by_nhs_number(number) is None:
            raise SignInError(f"{number!r} is not a patient of the synthetic population; spine-sandbox patients "
                              "list shows some.")
        if not idp.VOT.match(vot):
            raise SignInError(f"{vot!r} is not a vector of trust such as P9.Cp.Cd.")
        provider, mode = idp.NHS_LOGIN, PATIENT
        identity = {"nhs_number": number, "vot": vot, "proofing_level": vot.split(".")[0]}
    else:
        raise SignInError("Choose NHS CIS2 (healthcare worker) or NHS login (patient).")
    store.state.delete(GLOBAL, PENDING, form["request"])
    code = secrets.token_urlsafe(20)
    store.state.put(GLOBAL, CODES, code, {
        "app": pending["app"], "redirect_uri": pending["redirect_uri"], "mode": mode, "idp": provider,
        "expires_at": time.time() + CODE_LIFETIME_S, "used": False, **identity}, create_only=True)
    return with_query(pending["redirect_uri"], {"code": code, "state": pending["state"]})
