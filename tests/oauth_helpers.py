"""Test helpers for the identity service: real RS512 key pairs, JWKS, client assertions, token requests."""

from __future__ import annotations

import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TOKEN_URL = "http://localhost/oauth2/token"  # the URL Flask's test client calls
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class KeyPair:
    def __init__(self, kid: str):
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode("ascii")

    @property
    def jwk(self) -> dict:
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        key.update(kid=self.kid, alg="RS512", use="sig")
        return key


def jwks(*pairs: KeyPair) -> dict:
    return {"keys": [p.jwk for p in pairs]}


def claims(api_key: str, **changes) -> dict:
    base = {"iss": api_key, "sub": api_key, "aud": TOKEN_URL, "jti": str(uuid.uuid4()), "exp": int(time.time()) + 300}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}  # ... removes a claim


def assertion(pair: KeyPair, api_key: str, headers: dict | None = None, algorithm: str = "RS512", key=None,
              **changes) -> str:
    head = {"kid": pair.kid, "typ": "JWT", **(headers or {})}
    head = {k: v for k, v in head.items() if v is not ...}
    return jwt.encode(claims(api_key, **changes), key if key is not None else pair.pem, algorithm=algorithm,
                      headers=head)


def cc_form(token: str, **changes) -> dict:
    form = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER, "client_assertion": token}
    form.update(changes)
    return {k: v for k, v in form.items() if v is not ...}


def post_token(client, form: dict, headers: dict | None = None, path: str = "/oauth2/token"):
    return client.post(path, data=form, headers=headers or {})


def register(client, name: str = "Test app", keys: dict | None = None, **extra) -> dict:
    response = client.post("/_sandbox/oauth/apps", json={"name": name, "jwks": keys, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def findings(client, response) -> dict[str, list[dict]]:
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    found: dict[str, list[dict]] = {}
    for f in exchange["findings"]:
        found.setdefault(f["requirement"], []).append(f)
    return found


def outcome(found: dict, requirement: str) -> str:
    return found[requirement][0]["outcome"]
