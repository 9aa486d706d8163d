"""The NHSMESH authorisation token: `NHSMESH mailbox:nonce:nonce_count:timestamp:hmac`, HMAC-SHA256 keyed with the
environment's shared secret over `mailbox:nonce:nonce_count:password:timestamp`."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

SCHEME = "NHSMESH "
TIMESTAMP = re.compile(r"[0-9]{12}")  # ASCII digits only (\d would admit other scripts' digits)
COUNT = re.compile(r"[0-9]{1,20}")
HEX64 = re.compile(r"[0-9a-fA-F]{64}")
GUID = re.compile(r"^\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?$")


@dataclass(frozen=True)
class Token:
    mailbox: str
    nonce: str
    nonce_count: str
    timestamp: str
    digest: str

    @property
    def key(self) -> str:
        """What makes a token unique: a replay has the same key."""
        return f"{self.mailbox}:{self.nonce}:{self.nonce_count}:{self.timestamp}"

    @property
    def bucket(self) -> str:
        return self.timestamp[:10]  # the hour it was made: tokens older than the window can be dropped by hour


class TokenProblem(ValueError):
    pass


@functools.lru_cache(maxsize=32)
def parse(header: str | None) -> Token:
    """The token of an Authorization value. Kept for the next few calls: a request parses its token twice (to find
    its mailbox's session, then in the check), and a Token is immutable. A problem is raised again each time."""
    if not header:
        raise TokenProblem("the Authorization header is missing")
    if header[:len(SCHEME)].upper() != SCHEME:  # the scheme is case-insensitive, as every HTTP auth scheme
        raise TokenProblem(f"the Authorization header does not start with the scheme {SCHEME!r} (it starts "
                           f"{header[:12]!r})")
    parts = header[len(SCHEME):].strip().split(":")
    if len(parts) != 5:
        raise TokenProblem(f"the token has {len(parts)} colon-separated fields; expected 5 "
                           "(mailbox_id:nonce:nonce_count:timestamp:hash)")
    token = Token(*parts)
    if not token.mailbox or " " in token.mailbox:
        raise TokenProblem(f"the token's mailbox id {token.mailbox[:40]!r} is empty or contains a space")
    if not COUNT.fullmatch(token.nonce_count):
        raise TokenProblem(f"nonce_count {token.nonce_count[:20]!r} is not a whole number")
    if not TIMESTAMP.fullmatch(token.timestamp):
        raise TokenProblem(f"timestamp {token.timestamp[:20]!r} is not UTC yyyyMMddHHmm (12 digits, e.g. "
                           "202006041718)")
    if not HEX64.fullmatch(token.digest):
        raise TokenProblem("the hash is not 64 hexadecimal characters (an HMAC-SHA256 hex digest)")
    return token


def token_time(token: Token) -> datetime:
    return _minute(token.timestamp)


@functools.lru_cache(maxsize=64)
def _minute(t: str) -> datetime:
    """Kept for the minutes seen last: every token a client makes within a minute has the same timestamp. `t` is
    twelve digits (checked by parse()); slicing beats strptime."""
    try:
        return datetime(int(t[:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]), int(t[10:12]), tzinfo=UTC)
    except ValueError:
        raise TokenProblem(f"timestamp {t!r} is not a real date and time (yyyyMMddHHmm)") from None


@functools.lru_cache(maxsize=64)
def _keyed(shared_key: str) -> hmac.HMAC:
    """HMAC-SHA256 with the key already taken in: a copy per token (looking SHA-256 up in OpenSSL and hashing the
    key's pads each time cost more than the hash of the token itself)."""
    return hmac.new(shared_key.encode("utf-8"), digestmod=hashlib.sha256)


def expected_digest(shared_key: str, mailbox: str, nonce: str, nonce_count: str, password: str, timestamp: str) -> str:
    mac = _keyed(shared_key).copy()
    mac.update(f"{mailbox}:{nonce}:{nonce_count}:{password}:{timestamp}".encode())
    return mac.hexdigest()


def digest_matches(token: Token, shared_key: str, password: str) -> bool:
    wanted = expected_digest(shared_key, token.mailbox, token.nonce, token.nonce_count, password, token.timestamp)
    return hmac.compare_digest(wanted, token.digest.lower())


def nonce_is_guid(nonce: str) -> bool:
    return GUID.match(nonce) is not None


def make_token(mailbox: str, password: str, shared_key: str, nonce: str | None = None, nonce_count: int = 0,
               when: datetime | None = None) -> str:
    """A valid header value, as a client builds it (for the CLI, tests and benchmarks)."""
    nonce = nonce or str(uuid.uuid4())
    timestamp = (when or datetime.now(UTC)).strftime("%Y%m%d%H%M")
    digest = expected_digest(shared_key, mailbox, nonce, str(nonce_count), password, timestamp)
    return f"{SCHEME}{mailbox}:{nonce}:{nonce_count}:{timestamp}:{digest}"
