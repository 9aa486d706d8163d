"""Secrets never shown back: what the journal keeps, the control API answers and every report renders.

A secret is replaced by `[redacted sha256:1a2b3c4d]`: the first 8 hex digits of the SHA-256 of the secret as it was
sent, so a supplier can still match its own requests (`printf %s "$TOKEN" | sha256sum | cut -c1-8`) and nobody
else can use it. Redacted are: Authorization credentials of any scheme (Bearer, NHSMESH, Basic…), API and sandbox
keys, cookies, session tokens (`sst_…`) and sandbox keys (`sbk_…`) wherever they appear, secret form fields and JSON
members (client secrets, passwords, access and refresh tokens), PEM private keys, JWK private members, and signed
JWTs (client assertions, ID tokens), which keep their header and claims readable but lose their signature.

Every function is total (any input, no exception) and idempotent (a redacted value is left as it is), because the
journal applies them both when it records an exchange and when it reads one back from an older journal.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from urllib.parse import quote_plus, unquote_plus

MARKER = re.compile(r"\[redacted(?: [a-z ]+)? sha256:[0-9a-f]{8}\]")
# What redaction leaves: a marker, or a JWT's header and claims before one (and nothing else, so a secret with a
# marker glued to its end is still redacted).
_REDACTED = re.compile(r"^(?:[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.)?" + MARKER.pattern + r"$")

# Headers whose whole value (after an Authorization scheme) is a credential.
CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "x-sandbox-key", "apikey", "x-api-key"}
COOKIE_HEADERS = {"cookie", "set-cookie"}
# Form fields and query parameters, and JSON members, whose value is a secret (names compared in lower case).
SECRET_FIELDS = {"client_secret", "password", "access_token", "refresh_token", "id_token", "subject_token",
                 "client_assertion", "assertion", "token", "secret", "private_key"}
JSON_SECRETS = SECRET_FIELDS - {"token", "assertion"}
JWK_PRIVATE = ("d", "p", "q", "dp", "dq", "qi", "k")
_SCHEMES = {"bearer", "basic", "digest", "nhsmesh"}
# Bodies up to this size have their JSON members redacted whatever their case; a larger body only when it is JSON
# and names one in lower case (a cheap search). Tokens, keys and PEM blocks are found in bodies of any size.
SCAN_LIMIT = 1024 * 1024

_TOKEN = r"(?<![A-Za-z0-9_])(?:sst|sbk)_[A-Za-z0-9_-]{4,}"
_PEM = (r"-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY-----.*?"
        r"(?:-----END (?P=kind)PRIVATE KEY-----|$)")
_TEXT = re.compile(f"{_TOKEN}|{_PEM}", re.DOTALL)
_BYTES = re.compile(_TEXT.pattern.encode(), re.DOTALL)
_TEXT_HINTS = (b"sst_", b"sbk_", b"PRIVATE KEY-----")
_JWT = re.compile(r"^([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.)[A-Za-z0-9_-]+$")
_JSON_STRING = r'"((?:[^"\\]|\\.)*)"'
_JSON_MEMBER = re.compile(
    rb'"(' + "|".join(sorted(JSON_SECRETS)).encode() + rb')"(\s*:\s*)' + _JSON_STRING.encode(), re.IGNORECASE)
_JWK_MEMBER = re.compile(rb'"(' + "|".join(JWK_PRIVATE).encode() + rb')"(\s*:\s*)' + _JSON_STRING.encode())
# Every name in JSON_SECRETS ends in one of these (a body without any has no secret member: five searches, not nine).
_JSON_HINTS = (b'token"', b'secret"', b'password"', b'private_key"', b'assertion"')
# Bodies up to this size are remembered with their redaction: the same answer (a record served unchanged) is searched
# once, not on every request.
REMEMBER_BELOW = 64 * 1024


@functools.lru_cache(maxsize=256)  # the same token arrives on request after request
def fingerprint(secret: str | bytes) -> str:
    """The first 8 hex digits of the SHA-256 of the secret (UTF-8 when text)."""
    data = secret if isinstance(secret, bytes) else secret.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:8]


def redacted(secret: str | bytes, what: str = "") -> str:
    """What a secret is shown as: `[redacted sha256:1a2b3c4d]` (`[redacted <what> sha256:…]` when named)."""
    return f"[redacted {what + ' ' if what else ''}sha256:{fingerprint(secret)}]"


def is_redacted(value: str) -> bool:
    return bool(_REDACTED.match(value))


def redact_secret(value: str) -> str:
    """One secret value: a JWT keeps its header and claims and loses its signature; anything else is replaced."""
    if not value or is_redacted(value):
        return value
    jwt = _JWT.match(value)
    if jwt:
        return jwt.group(1) + redacted(value)
    return redacted(value)


def redact_text(text: str) -> str:
    """Session tokens, sandbox keys and PEM private keys wherever they appear in a text."""
    if "sst_" not in text and "sbk_" not in text and "PRIVATE KEY-----" not in text:
        return text
    return _TEXT.sub(_text_marker, text)


def _text_marker(match: re.Match) -> str:
    return redacted(match.group(0), "private key" if match.group("kind") is not None else "")


def redact_headers(headers) -> list[tuple[str, str]]:
    """Headers as (name, value) pairs with every credential redacted."""
    shown = []
    for name, value in headers:
        name, value = str(name), str(value)
        lower = name.lower()
        if lower in CREDENTIAL_HEADERS:
            value = _credential(value)
        elif lower in COOKIE_HEADERS:
            value = _cookies(value, lower == "set-cookie")
        else:
            value = redact_text(value)
        shown.append((name, value))
    return shown


def _credential(value: str) -> str:
    """`Scheme credentials` keeps the scheme (any case); a value without one is all credential."""
    stripped = value.strip()
    scheme, space, rest = stripped.partition(" ")
    if not rest.strip() and scheme.lower() in _SCHEMES:
        return value  # a scheme with no credentials: nothing to hide
    if space and rest.strip() and re.fullmatch(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*", scheme):
        return f"{scheme} {redact_secret(rest.strip())}"
    return redact_secret(stripped)


def _cookies(value: str, set_cookie: bool) -> str:
    """Each cookie's value redacted (for Set-Cookie only the first pair is the cookie; the rest are attributes)."""
    parts = value.split(";")
    for n, part in enumerate(parts):
        if set_cookie and n > 0:
            break
        name, equals, cookie = part.partition("=")
        if equals and cookie.strip():
            parts[n] = f"{name}={redact_secret(cookie.strip())}"
    return redact_text(";".join(parts))


def redact_query(query: str) -> str:
    """A query string (or form body) with secret fields redacted; their names and the order are kept."""
    if not query:
        return query
    pairs = query.split("&")
    for n, pair in enumerate(pairs):
        name, equals, value = pair.partition("=")
        if equals and value and unquote_plus(name).strip().lower() in SECRET_FIELDS:
            secret = unquote_plus(value)
            if not is_redacted(secret):
                pairs[n] = f"{name}={quote_plus(redact_secret(secret), safe='[]:.')}"
    text = "&".join(pairs)
    if "sst_" not in text and "sbk_" not in text and "PRIVATE KEY-----" not in text:
        return text
    return _TEXT.sub(lambda match: quote_plus(_text_marker(match), safe="[]:"), text)  # still a query string


def redact_body(body: bytes, content_type: str = "") -> bytes:
    """A body with its secrets redacted: form fields (form bodies), JSON members and JWK private members, tokens,
    keys and PEM blocks, in any body up to SCAN_LIMIT and in JSON of any size (a larger payload is kept as sent)."""
    if not body:
        return body
    body = body if isinstance(body, bytes) else bytes(body)
    if len(body) < REMEMBER_BELOW:
        return _redact_remembered(body, content_type or "")
    return _redact_body(body, content_type)


@functools.lru_cache(maxsize=64)
def _redact_remembered(body: bytes, content_type: str) -> bytes:
    return _redact_body(body, content_type)


def _redact_body(body: bytes, content_type: str) -> bytes:
    kind = (content_type or "").lower()
    if "x-www-form-urlencoded" in kind:
        return redact_query(body.decode("latin-1")).encode("latin-1")
    if len(body) > SCAN_LIMIT and "json" not in kind:
        return body  # a payload (a MESH message, a Spine attachment) that its recipient reads as sent anyway
    if any(hint in body for hint in _TEXT_HINTS):
        body = _BYTES.sub(lambda m: _text_marker(m).encode(), body)
    named = body.lower() if len(body) <= SCAN_LIMIT else body
    if any(hint in named for hint in _JSON_HINTS):
        body = _JSON_MEMBER.sub(_json_member, body)
    if b'"kty"' in named:
        body = _JWK_MEMBER.sub(_json_member, body)
    return body


def _json_member(match: re.Match) -> bytes:
    raw = match.group(3)
    try:
        value = json.loads(b'"' + raw + b'"')
    except ValueError:  # not a JSON string after all: the raw text is the secret
        value = raw.decode("latin-1")
    shown = redact_secret(value)
    if shown == value:
        return match.group(0)
    return b'"' + match.group(1) + b'"' + match.group(2) + json.dumps(shown).encode()
