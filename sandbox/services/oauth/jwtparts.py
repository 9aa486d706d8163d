"""A JWT as the identity service reads it: header and claims decoded without trust, then the signature checked."""

from __future__ import annotations

import binascii
from dataclasses import dataclass

import jwt
from jwt.utils import base64url_decode

from sandbox.conformance.parsing import Malformed, parse_json

ALGORITHM = "RS512"


@dataclass(frozen=True)
class Decoded:
    token: str
    header: dict
    claims: dict


def decode_unverified(token: str) -> Decoded | None:
    """Header and claims of a compact JWS, or None when either part is not a base64url JSON object."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        # Bounded JSON: no 1e999 or 400-digit claims, deep nesting or lone surrogates get past the decoding.
        header = parse_json(base64url_decode(parts[0].encode("ascii")))
        claims = parse_json(base64url_decode(parts[1].encode("ascii")))
    except (Malformed, ValueError, UnicodeError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return Decoded(token, header, claims)


def signature_valid(token: str, jwk: dict) -> bool:
    """True when the RS512 signature verifies with the JWK's public key (claims are judged elsewhere)."""
    try:
        key = jwt.PyJWK(jwk, algorithm=ALGORITHM).key
        jwt.PyJWS().decode_complete(token, key=key, algorithms=[ALGORITHM])
        return True
    except (jwt.PyJWKError, jwt.InvalidTokenError, ValueError, TypeError):
        return False


def sign(claims: dict, private_key_pem: str, kid: str, typ: str = "JWT") -> str:
    return jwt.encode(claims, private_key_pem, algorithm=ALGORITHM, headers={"kid": kid, "typ": typ})


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
