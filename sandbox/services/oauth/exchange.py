"""The token-exchange grant's subject_token: an ID token from (mock) NHS CIS2 or NHS login, in the live order."""

from __future__ import annotations

import time

from sandbox.journal.store import Store
from sandbox.services.oauth import idp
from sandbox.services.oauth.errors import PUBLIC_KEY_ERROR
from sandbox.services.oauth.jwtparts import ALGORITHM, decode_unverified, is_number, signature_valid
from sandbox.services.oauth.rules import RuleLog, shown

ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
WHERE = "form:subject_token"

SUBJECT_TYPE, PRESENT, DECODES, KID, TYP, ALG, EXP, NOT_EXPIRED, ISS, AUD, ISSUER, KID_KNOWN, SIGNATURE = (
    f"OAUTH-TEX-{n:03}" for n in range(1, 14))
RULES = (SUBJECT_TYPE, PRESENT, DECODES, KID, TYP, ALG, EXP, NOT_EXPIRED, ISS, AUD, ISSUER, KID_KNOWN, SIGNATURE)


def check_subject_token(log: RuleLog, form: dict[str, str], store: Store, now: float | None = None) \
        -> tuple[str, dict] | None:
    """Rules after the client assertion; returns (identity provider, claims) when every rule passed."""
    now = time.time() if now is None else now
    log.passed(SUBJECT_TYPE, f"subject_token_type is {ID_TOKEN_TYPE!r}.", "form:subject_token_type")
    token = form.get("subject_token")
    if not log.check(PRESENT, bool(token), "subject_token is present.", "subject_token form parameter is missing; "
                     "expected the ID token from NHS CIS2 or NHS login.", WHERE, 400, "Missing subject_token"):
        log.skipped(RULES[2:], "there is no subject_token")
        return None
    decoded = decode_unverified(token)
    if not log.check(DECODES, decoded is not None, "subject_token decodes as a JWT.", "subject_token is not a JWT "
                     "(three base64url parts, the first two JSON objects).", WHERE, 400, "subject_token is invalid"):
        log.skipped(RULES[3:], "the subject_token could not be decoded")
        return None
    header, claims = decoded.header, decoded.claims
    log.check(KID, bool(header.get("kid")), "subject_token has a kid.", "The subject_token header has no 'kid'.",
              "subject_token-header:kid", 400, "Missing 'kid' header in subject_token JWT")
    typ = header.get("typ")
    log.check(TYP, isinstance(typ, str) and typ.lower() == "jwt", "subject_token typ is 'JWT'.",
              f"subject_token typ is {shown(typ)}; expected 'JWT'.", "subject_token-header:typ", 400,
              "Invalid 'typ' header in subject_token JWT - must be 'JWT'")
    log.check(ALG, bool(header.get("alg")), "subject_token has an alg.", "The subject_token header has no 'alg'.",
              "subject_token-header:alg", 400, "Missing 'alg' header in subject_token JWT")
    exp = claims.get("exp")
    if not exp:
        log.failed(EXP, "The subject_token has no 'exp'.", "subject_token-claim:exp", 400,
                   "Missing 'exp' claim in subject_token JWT")
        log.skipped(NOT_EXPIRED, "the subject_token has no exp")
    elif not is_number(exp):
        log.failed(EXP, f"subject_token exp is {shown(exp)}; expected an integer Unix time.",
                   "subject_token-claim:exp", 400, "Invalid 'exp' claim in subject_token JWT - must be an integer")
        log.skipped(NOT_EXPIRED, "the subject_token exp is not a number")
    else:
        log.passed(EXP, f"subject_token exp {exp} is a number.", "subject_token-claim:exp")
        log.check(NOT_EXPIRED, now <= exp, "the subject_token has not expired.", f"the subject_token expired "
                  f"{int(now - exp)} s ago; get a fresh ID token.", "subject_token-claim:exp", 400,
                  "Invalid 'exp' claim in subject_token JWT - JWT has expired")
    iss = claims.get("iss")
    log.check(ISS, bool(iss), f"subject_token iss is {shown(iss)}.", "The subject_token has no 'iss'.",
              "subject_token-claim:iss", 400, "Missing 'iss' claim in subject_token JWT")
    log.check(AUD, bool(claims.get("aud")), "subject_token has an aud.", "The subject_token has no 'aud'.",
              "subject_token-claim:aud", 401, "Missing 'aud' claim in subject_token JWT")
    provider = next((name for name, issuer in idp.ISSUERS.items() if issuer == iss), None)
    if not log.check(ISSUER, provider is not None, f"the subject_token comes from the mock {provider} identity "
                     "provider.", f"subject_token iss {shown(iss)} is neither the sandbox's mock NHS CIS2 nor its mock "
                     "NHS login (get ID tokens from /_sandbox/oauth/cis2/id-token or /_sandbox/oauth/nhs-login/"
                     "id-token).", "subject_token-claim:iss", 400, "Missing or non-matching iss/sub claims in JWT"):
        log.skipped((KID_KNOWN, SIGNATURE), "the identity provider is not known")
        return None
    jwk = idp.signing_key(store, provider)[1]
    kid = header.get("kid")
    if not log.check(KID_KNOWN, kid == jwk["kid"], f"kid {kid!r} is the {provider} signing key.",
                     f"kid {shown(kid)} is not a {provider} signing key (expected {jwk['kid']!r}).",
                     "subject_token-header:kid", 401, "Invalid 'kid' header in subject_token JWT - no matching public key"):
        log.skipped(SIGNATURE, "no identity provider key matches the kid")
    elif header.get("alg") != ALGORITHM:
        log.failed(SIGNATURE, f"subject_token alg is {shown(header.get('alg'))}; the mock identity providers sign "
                   "with RS512.", "subject_token-signature", 401, "subject_token JWT signature verification failed",
                   PUBLIC_KEY_ERROR)
    else:
        log.check(SIGNATURE, signature_valid(token, jwk), f"the subject_token signature verifies with {kid!r}.",
                  "the subject_token signature does not verify: was it altered after the identity provider signed it?",
                  "subject_token-signature", 401, "subject_token JWT signature verification failed", PUBLIC_KEY_ERROR)
    return None if log.rejected else (provider, claims)
