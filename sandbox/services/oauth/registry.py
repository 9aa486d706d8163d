"""Registered applications: API key (client id), secret, public keys (JWKS), redirect URIs, session.

Kept in the Store's session state (one reserved namespace), so every worker process and a CLI on the same data
directory see a registration at once, without a restart.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import string
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jwt

from sandbox.conformance.parsing import Malformed, parse_json
from sandbox.journal.redaction import redacted
from sandbox.journal.store import Store, VersionConflict
from sandbox.web.sessions import valid_session_id

# State that belongs to no tenant: applications, used jtis, issued tokens. Session ids cannot start with '_'.
GLOBAL = "_identity"
APPS = "oauth.app"
DEMO_DIR = Path(__file__).parent / "demo"
DEMO_API_KEY = "sandbox-demo-application"
DEMO_SECRET = "sandbox-demo-secret"  # noqa: S105 - published on purpose, like the demo key pair
DEMO_REDIRECT_URI = "http://localhost:8080/callback"
_ALPHANUMERIC = string.ascii_letters + string.digits


class RegistrationError(ValueError):
    """An application cannot be registered as asked; the message says which field and why."""


@dataclass
class Application:
    api_key: str  # the client id: iss and sub of its client assertions
    name: str
    secret: str  # for the authorisation-code (combined) pattern
    jwks: dict = field(default_factory=lambda: {"keys": []})
    redirect_uris: list[str] = field(default_factory=list)
    session: str = ""
    created_at: float = 0.0
    revoked: bool = False
    demo: bool = False

    @property
    def kids(self) -> list[str]:
        return [k["kid"] for k in self.jwks.get("keys", [])]

    def key(self, kid: str) -> dict | None:
        return next((k for k in self.jwks.get("keys", []) if k.get("kid") == kid), None)

    def to_dict(self, reveal: bool = False) -> dict:
        """The application as shown: its secret only when `reveal` (once, when registered; and the demo's, which is
        published), otherwise as its fingerprint."""
        data = {**asdict(self), "kids": self.kids}
        if not reveal:
            data["secret"] = redacted(self.secret)
        return data


def new_api_key() -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(32))  # the shape of a live API key


def check_jwks(jwks) -> dict:
    """A JWKS of RSA public keys, each with a distinct kid; raises RegistrationError saying what is wrong."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise RegistrationError('the JWKS must be a JSON object {"keys": [ ... ]} with at least one key')
    seen = set()
    for n, key in enumerate(jwks["keys"]):
        where = f"JWKS /keys/{n}"
        if not isinstance(key, dict):
            raise RegistrationError(f"{where} is not a JSON object")
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid:
            raise RegistrationError(f"{where} has no 'kid'; the identity service finds your key by it")
        if kid in seen:
            raise RegistrationError(f"{where}: kid {kid!r} appears twice")
        seen.add(kid)
        if key.get("kty") != "RSA":
            raise RegistrationError(f"{where} (kid {kid!r}) has kty {key.get('kty')!r}; RS512 needs an RSA key")
        if "d" in key:
            raise RegistrationError(f"{where} (kid {kid!r}) contains a private key ('d'); publish only the public key")
        try:
            jwt.PyJWK(key, algorithm="RS512")
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise RegistrationError(f"{where} (kid {kid!r}) is not a usable RSA public key: {exc}") from None
    return {"keys": [dict(k) for k in jwks["keys"]]}


def load_jwks_file(path: Path) -> dict:
    try:
        return check_jwks(parse_json(Path(path).read_bytes()))
    except Malformed as exc:
        raise RegistrationError(f"{path} is not JSON: {exc.detail}" + (f" ({exc.where})" if exc.where else "")) from None
    except RegistrationError as exc:
        raise RegistrationError(f"{path}: {exc}") from None


class Registry:
    def __init__(self, store: Store):
        self.store = store

    def get(self, api_key: str) -> Application | None:
        item = self.store.state.get(GLOBAL, APPS, api_key) if api_key else None
        return Application(**item.value) if item else None

    def all(self) -> list[Application]:
        apps = [Application(**item.value) for item in self.store.state.items(GLOBAL, APPS).values()]
        return sorted(apps, key=lambda a: (not a.demo, a.created_at, a.name))

    def register(self, name: str, jwks: dict | None = None, redirect_uris: list[str] | tuple = (),
                 session: str | None = None, api_key: str | None = None) -> Application:
        name = (name or "").strip()
        if not name:
            raise RegistrationError("an application needs a name")
        if session is not None and not valid_session_id(session):
            raise RegistrationError(f"session {session!r} is not a session id: use 1-64 letters, digits, '.', '_' "
                                    "or '-', starting with a letter or digit")
        for uri in redirect_uris:
            if not uri.startswith(("http://", "https://")):
                raise RegistrationError(f"redirect URI {uri!r} is not an http(s) URL")
        key = api_key or new_api_key()
        app = Application(api_key=key, name=name, secret="".join(secrets.choice(_ALPHANUMERIC) for _ in range(16)),
                          jwks=check_jwks(jwks) if jwks is not None else {"keys": []},
                          redirect_uris=list(redirect_uris), session=session or key, created_at=time.time())
        try:
            self.store.state.put(GLOBAL, APPS, key, asdict(app), create_only=True)
        except VersionConflict:
            raise RegistrationError(f"an application with API key {key!r} already exists") from None
        return app

    def update(self, api_key: str, **changes) -> Application:
        """Change an application (e.g. rotate its JWKS) with compare-and-set, so concurrent edits never get lost."""
        while True:
            item = self.store.state.get(GLOBAL, APPS, api_key)
            if item is None:
                raise RegistrationError(f"no application with API key {api_key!r}")
            value = {**item.value, **changes}
            if "jwks" in changes:
                value["jwks"] = check_jwks(changes["jwks"])
            try:
                self.store.state.put(GLOBAL, APPS, api_key, value, expect_version=item.version)
                return Application(**value)
            except VersionConflict:
                continue

    def ensure_demo(self) -> Application:
        """The ready-made demo application (its private key ships with the sandbox: see demo/README.md)."""
        existing = self.get(DEMO_API_KEY)
        if existing is not None:
            return existing
        jwks = json.loads((DEMO_DIR / "demo-jwks.json").read_text(encoding="utf-8"))
        app = Application(api_key=DEMO_API_KEY, name="Demo application (DEMO: public key pair, never for real use)",
                          secret=DEMO_SECRET, jwks=check_jwks(jwks), redirect_uris=[DEMO_REDIRECT_URI],
                          session="demo", created_at=time.time(), demo=True)
        with contextlib.suppress(VersionConflict):  # another worker made it first
            self.store.state.put(GLOBAL, APPS, DEMO_API_KEY, asdict(app), create_only=True)
        return self.get(DEMO_API_KEY)


def demo_private_key() -> str:
    return (DEMO_DIR / "demo-private-key.pem").read_text(encoding="ascii")
