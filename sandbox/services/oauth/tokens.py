"""Access tokens, refresh tokens and authorisation codes the sandbox issued, kept in the Store's session state
(so every worker process agrees), and the resolve_access hook that turns a bearer token back into an identity."""

from __future__ import annotations

import secrets
import time
from dataclasses import fields

from sandbox.conformance.parsing import parse_int
from sandbox.journal.store import Store
from sandbox.services.oauth.registry import GLOBAL, Application, Registry
from sandbox.web import current
from sandbox.web.access import EXPIRED, REVOKED, VALID, Access

ACCESS_TOKENS, REFRESH_TOKENS, CODES = "oauth.token", "oauth.refresh", "oauth.code"
ACCESS_LIFETIME_MS = 600_000  # live: 10 minutes, answered as expires_in "599"
REFRESH_LIFETIME_S = {"cis2": 43_200, "nhs-login": 3_600}  # live: 12 hours for CIS2, 1 hour for NHS login
CODE_LIFETIME_S = 300
_IDENTITY_FIELDS = {f.name for f in fields(Access)} - {"mode", "token", "detail", "strictness", "app", "app_name",
                                                      "expires_at"}


def new_token() -> str:
    return secrets.token_urlsafe(21)  # 28 characters, the length of a live access token


def lifetime_ms(requested: str | None) -> int:
    """The access token lifetime: live lets a client shorten (never lengthen) it with _access_token_expiry_ms."""
    try:
        asked = parse_int(requested) if requested is not None else ACCESS_LIFETIME_MS
    except ValueError:
        return ACCESS_LIFETIME_MS
    return max(0, min(asked, ACCESS_LIFETIME_MS))


def identity_of(record: dict) -> dict:
    return {k: v for k, v in record.items() if k in _IDENTITY_FIELDS and v is not None}


def issue_access_token(store: Store, app: Application, mode: str, identity: dict, grant: str,
                       expiry_ms: int = ACCESS_LIFETIME_MS) -> tuple[str, dict]:
    now = time.time()
    record = {"app": app.api_key, "app_name": app.name, "mode": mode, "grant": grant, "issued_at": now,
              "expires_at": now + expiry_ms / 1000, "revoked": False, **identity}
    token = new_token()
    store.state.put(GLOBAL, ACCESS_TOKENS, token, record, create_only=True)
    return token, record


def expires_in(record: dict) -> str:
    """As live counts it: a 600 s token is answered as "599"."""
    return str(max(0, int(round(record["expires_at"] - record["issued_at"])) - 1))


def issue_refresh_token(store: Store, app: Application, mode: str, identity: dict, idp: str,
                        refresh_count: int = 0) -> tuple[str, dict]:
    now = time.time()
    record = {"app": app.api_key, "mode": mode, "idp": idp, "issued_at": now,
              "expires_at": now + REFRESH_LIFETIME_S[idp], "refresh_count": refresh_count, "used": False, **identity}
    token = new_token()
    store.state.put(GLOBAL, REFRESH_TOKENS, token, record, create_only=True)
    return token, record


def token_record(store: Store, token: str) -> dict | None:
    ex = current.exchange()
    cache = ex.cache.setdefault("oauth.tokens", {}) if ex is not None else {}
    if token not in cache:
        item = store.state.get(GLOBAL, ACCESS_TOKENS, token)
        cache[token] = item.value if item else None
    return cache[token]


def revoke_token(store: Store, token: str) -> bool:
    item = store.state.get(GLOBAL, ACCESS_TOKENS, token)
    if item is None:
        return False
    store.state.put(GLOBAL, ACCESS_TOKENS, token, {**item.value, "revoked": True})
    return True


def resolve_access(token: str, sandbox) -> Access | None:
    """The Service.resolve_access hook: None for a token this sandbox never issued."""
    record = token_record(sandbox.store, token)
    if record is None:
        return None
    app = Registry(sandbox.store).get(record["app"])
    base = {"app": record["app"], "app_name": record.get("app_name"), "expires_at": record["expires_at"]}
    if record.get("revoked") or app is None or app.revoked:
        whose = "the token" if record.get("revoked") else f"application {record.get('app_name')!r}"
        return Access(token=REVOKED, detail=f"the bearer token was revoked ({whose} was revoked in the sandbox)",
                      **base)
    late = time.time() - record["expires_at"]
    if late > 0:
        return Access(token=EXPIRED, detail=f"the bearer token expired {int(late)} s ago (access tokens live "
                      f"{expires_in(record)} s; get a new one from /oauth2/token)", **base)
    return Access(mode=record["mode"], token=VALID, **base, **identity_of(record))
