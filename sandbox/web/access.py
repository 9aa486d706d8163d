"""Access modes: who an API request acts for, resolved from its bearer token, and the finding services record.

The engine knows no identity provider: a service that issues tokens (the OAuth2 identity service) offers a
`resolve_access(token, sandbox)` hook; the pipeline resolves every operation's Authorization header through it and
puts the result on the exchange (`ex.access`) and in the check facts (`facts["access"]`, `facts["access_mode"]`).
Services judge it with `access_findings`, which honours SANDBOX_AUTH (strict / lenient / off).

Using it in a service's per-operation rules (the contract PDS's access-mode rules are written against):

    # in a check: the token itself is judged once, by the service's Authorization check (access_findings)
    access: Access = ctx.facts["access"]
    # in a handler decorated with @operation: the same object
    access = ex.access
    if access.mode == APPLICATION:          # e.g. a search answers at most one match, or 403 INVALID_VALUE
        ...
    elif access.mode == PATIENT:            # e.g. only access.nhs_number's own record, else 403 ACCESS_DENIED
        ...
    elif access.mode == HEALTHCARE_WORKER:  # access.user_id / role_id / role_code / aal
        ...
    else:                                   # NONE: no valid token (only reachable when SANDBOX_AUTH is lenient or
        ...                                 # off): apply no mode-specific restriction, as the open sandbox does

Scenarios can trigger on the mode too: `trigger: {facts: {access_mode: patient}}`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sandbox.conformance.findings import Finding, SpineError
from sandbox.journal.redaction import redacted

if TYPE_CHECKING:
    from flask import Request

    from sandbox.conformance.checks import CheckContext
    from sandbox.runtime import Sandbox

APPLICATION = "application"  # application-restricted: the calling application, no end user
HEALTHCARE_WORKER = "healthcare-worker"  # user-restricted, NHS CIS2: user id, role, AAL
PATIENT = "patient"  # user-restricted, NHS login: NHS number, vector of trust
NONE = "none"  # no usable token
ACCESS_MODES = (APPLICATION, HEALTHCARE_WORKER, PATIENT)  # what a session token may be issued to stand in for
DEFAULT_PATIENT = "9000000009"  # the published sandbox patient: whom access="patient" acts for unless told

# Token states: only "valid" carries an identity.
VALID, MISSING, MALFORMED, UNKNOWN, EXPIRED, REVOKED = "valid", "missing", "malformed", "unknown", "expired", "revoked"

# What every NHS API platform service answers for a missing, invalid or expired token (PDS spec, 401 ACCESS_DENIED).
ACCESS_DENIED_TEXT = ("Access token missing, invalid or expired, or calling application not configured for this "
                      "operation.")
_TOKEN68 = re.compile(r"^[\x21-\x7e]+$")  # what a bearer token may hold: visible ASCII, no spaces


@dataclass(frozen=True)
class Access:
    """The identity behind one request. Fields that do not apply to the mode are None."""

    mode: str = NONE
    token: str = MISSING  # the token's state
    detail: str = ""  # what was seen, in words, for findings
    strictness: str = "lenient"  # SANDBOX_AUTH when resolved
    app: str | None = None  # API key (client id) of the calling application
    app_name: str | None = None
    user_id: str | None = None  # healthcare worker: CIS2 user id
    role_id: str | None = None  # healthcare worker: selected role profile id (NHSD-Session-URID)
    role_code: str | None = None  # healthcare worker: national RBAC role code, e.g. S8000:G8000:R8000
    roles: tuple[str, ...] | None = None  # healthcare worker: every role profile id the user holds
    aal: str | None = None  # healthcare worker: authenticator assurance level, AAL1..AAL3
    nhs_number: str | None = None  # patient
    vot: str | None = None  # patient: NHS login vector of trust, e.g. P9.Cp.Cd
    proofing_level: str | None = None  # patient: P0, P5 or P9
    expires_at: float | None = None  # Unix time
    session: str | None = None  # set when a session token (`sst_…`) stands in for an access token of `mode`

    def __post_init__(self):
        if self.roles is not None:  # stored token records keep them as a JSON list
            object.__setattr__(self, "roles", tuple(self.roles))

    @property
    def valid(self) -> bool:
        return self.token == VALID

    def describe(self) -> str:
        """One line for findings and logs: the mode and who."""
        if self.session is not None:  # `detail` says where the mode came from (see session_token_access)
            patient = f" of NHS number {self.nhs_number}" if self.nhs_number else ""
            why = f" ({self.detail})" if self.detail else ""
            return f"session token of session {self.session}, standing in for a {self.mode} access token{patient}{why}"
        if self.mode == APPLICATION:
            who = f"application-restricted token of application {self.app_name!r} ({self.app})"
        elif self.mode == HEALTHCARE_WORKER:
            who = (f"healthcare worker token (CIS2 user {self.user_id}, role {self.role_id} {self.role_code or ''}"
                   f", {self.aal}) of application {self.app_name!r}").replace(" ,", ",")
        elif self.mode == PATIENT:
            who = (f"patient token (NHS login, NHS number {self.nhs_number}, vector of trust {self.vot}) of "
                   f"application {self.app_name!r}")
        else:
            return "no usable access token"
        if self.expires_at is not None:
            who += f", valid for {max(0, int(self.expires_at - time.time()))} s more"
        return who

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def chosen_access(mode: object, nhs_number: object = None) -> tuple[str, str | None]:
    """An access mode chosen for a session token (mock_spine(access=…), @pytest.mark.spine(access=…)), checked: the
    mode, and for patient access the patient's NHS number (DEFAULT_PATIENT when none is given). A wrong choice raises
    TypeError or ValueError with one line that names the valid ones."""
    choices = ", ".join(repr(m) for m in ACCESS_MODES)
    if mode is None and nhs_number is not None:
        raise ValueError(f"nhs_number names the patient of access={PATIENT!r}: add access={PATIENT!r}")
    if not isinstance(mode, str):
        raise TypeError(f"access must be one of {choices}, not {type(mode).__name__} {mode!r}")
    if mode not in ACCESS_MODES:
        raise ValueError(f"access {mode!r} is not an access mode; use one of {choices}")
    if mode != PATIENT:
        if nhs_number is not None:
            raise ValueError(f"nhs_number names the patient of access={PATIENT!r}; access={mode!r} acts for no patient")
        return mode, None
    if nhs_number is None:
        return mode, DEFAULT_PATIENT
    if not isinstance(nhs_number, str):
        raise TypeError(f"nhs_number must be a string of 10 digits, e.g. {DEFAULT_PATIENT!r}, not "
                        f"{type(nhs_number).__name__} {nhs_number!r}")
    from sandbox.synthetic.identifiers import is_valid_nhs_number

    if not is_valid_nhs_number(nhs_number):
        raise ValueError(f"nhs_number {nhs_number[:20]!r} is not a valid NHS number (10 digits, the last a Modulus 11 "
                         f"check digit), e.g. {DEFAULT_PATIENT!r}")
    return mode, nhs_number


def credentials(header: str | None, scheme: str) -> str | None:
    """What follows `scheme` in an Authorization header value (`Bearer`, `Basic`, `NHSMESH`…), or None when the header
    uses another scheme. Schemes are case-insensitive (RFC 9110 section 11.1): 'bearer x', 'BEARER x' and 'Bearer x'
    all carry the credentials 'x'. The credentials keep their case; surrounding spaces are dropped."""
    if header is None:
        return None
    name, _, rest = header.strip().partition(" ")
    return rest.strip() if name.lower() == scheme.lower() else None


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (any case of the scheme), or None when the header is
    not a bearer token of visible ASCII characters."""
    token = credentials(header, "Bearer")
    return token if token and _TOKEN68.match(token) else None


def resolve_access(request: Request, sandbox: Sandbox) -> Access:
    """The request's Authorization header, resolved through the first service that knows the token."""
    strictness = sandbox.settings.auth
    header = request.headers.get("Authorization")
    if header is None:
        return Access(token=MISSING, detail="Authorization header is missing", strictness=strictness)
    token = bearer_token(header)
    if token is None:
        shown = header.split(" ", 1)[0][:20]
        return Access(token=MALFORMED, strictness=strictness,
                      detail=f"Authorization header is not 'Bearer <access token>' (it starts {shown!r})")
    from sandbox.assurance.sessions import TOKEN_PREFIX, session_token_access  # here: sessions import Access

    if token.startswith(TOKEN_PREFIX):
        return replace(session_token_access(token, sandbox), strictness=strictness)
    for service in sandbox.services.values():
        if service.resolve_access is not None:
            found = service.resolve_access(token, sandbox)
            if found is not None:
                return replace(found, strictness=strictness)
    return Access(token=UNKNOWN, strictness=strictness,
                  detail=f"bearer token {_shown(token)} was not issued by this sandbox's identity service")


def access_findings(requirement: str, ctx: CheckContext, diagnostics: str = ACCESS_DENIED_TEXT) -> Iterator[Finding]:
    """The finding for a request's access token under SANDBOX_AUTH: strict refuses anything but a valid token
    with 401 ACCESS_DENIED (the service renders it in its own shape); lenient records the failure and lets the
    request through; off records nothing."""
    access: Access = ctx.facts.get("access") or Access()
    if access.strictness == "off":
        return
    if access.valid:
        yield Finding.passed(requirement, f"Authorization carries a valid {access.describe()}.", "header:Authorization")
        return
    message = (f"{access.detail[:1].upper()}{access.detail[1:]}; expected 'Authorization: Bearer <access token>' "
               "with a token from this sandbox's POST /oauth2/token (live services refuse this with 401 "
               "ACCESS_DENIED).")
    if access.strictness == "strict":
        yield Finding.failed(requirement, message, "header:Authorization",
                             reject=SpineError(401, "ACCESS_DENIED", diagnostics))
    else:
        yield Finding.failed(requirement, message + " Accepted only because SANDBOX_AUTH=lenient.",
                             "header:Authorization")


def _shown(token: str) -> str:
    return redacted(token)  # a fingerprint the supplier can match, never the token
