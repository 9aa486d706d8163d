"""The signed-JWT client assertion (client_credentials and token-exchange grants), every rule in the live order.

Order and texts follow the live identity service: the form parameter, the decoded header and claims as one
block (alg, expiry, kid, typ, exp, iss/sub, jti, replay, 5-minute limit), then the API key, the application's
public keys, the kid, the signature and, last, the audience (the gateway verifies a signature before claims).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sandbox.journal.store import Store
from sandbox.services.oauth.errors import PUBLIC_KEY_ERROR
from sandbox.services.oauth.jwtparts import ALGORITHM, Decoded, decode_unverified, is_number, signature_valid
from sandbox.services.oauth.registry import GLOBAL, Application, Registry
from sandbox.services.oauth.rules import RuleLog, shown

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
USED_JTIS = "oauth.jti"
MAX_LIFETIME = 300  # the NHS guide: exp at most 5 minutes ahead
LIFETIME_TOLERANCE = 10  # the live service allows 10 s more "to mitigate edge cases"
WHERE = "form:client_assertion"

TYPE, PRESENT, DECODES = "OAUTH-CA-001", "OAUTH-CA-002", "OAUTH-CA-003"
ALG, NOT_EXPIRED, KID, TYP, EXP, EXP_NUMBER = (f"OAUTH-CA-{n:03}" for n in range(4, 10))
ISS_SUB, JTI, JTI_STRING, JTI_UNIQUE, EXP_LIMIT = (f"OAUTH-CA-{n:03}" for n in range(10, 15))
API_KEY, HAS_KEYS, KID_KNOWN, SIGNATURE, AUD = (f"OAUTH-CA-{n:03}" for n in range(15, 20))
CLAIM_RULES = (ALG, NOT_EXPIRED, KID, TYP, EXP, EXP_NUMBER, ISS_SUB, JTI, JTI_STRING, JTI_UNIQUE, EXP_LIMIT)
KEY_RULES = (API_KEY, HAS_KEYS, KID_KNOWN, SIGNATURE, AUD)
RULES = (TYPE, PRESENT, DECODES, *CLAIM_RULES, *KEY_RULES)


@dataclass
class Outcome:
    log: RuleLog
    app: Application | None = None  # the authenticated application, when every rule passed


def check_client_assertion(form: dict[str, str], audiences: list[str], store: Store, now: float | None = None,
                           log: RuleLog | None = None, type_checked: bool = False) -> Outcome:
    log = log or RuleLog()
    now = time.time() if now is None else now
    if not type_checked:
        check_assertion_type(log, form)
    token = form.get("client_assertion")
    if not log.check(PRESENT, bool(token), "client_assertion is present.",
                     "client_assertion form parameter is missing or empty; expected your signed JWT.", WHERE, 400,
                     "Missing client_assertion"):
        log.skipped(RULES[2:], "there is no client_assertion")
        return Outcome(log)
    decoded = decode_unverified(token)
    if not log.check(DECODES, decoded is not None, "client_assertion decodes as a JWT (header.claims.signature).",
                     "client_assertion is not a JWT: expected three base64url parts separated by '.', the first two "
                     "JSON objects.", WHERE, 400, "Malformed JWT in client_assertion"):
        log.skipped(RULES[3:], "the client_assertion could not be decoded")
        return Outcome(log)
    _claim_rules(log, decoded, now)
    _replay_rule(log, decoded, store, now)
    app = _key_rules(log, decoded, audiences, Registry(store))
    return Outcome(log, None if log.rejected else app)


def check_assertion_type(log: RuleLog, form: dict[str, str]) -> None:
    given = form.get("client_assertion_type")
    log.check(TYPE, given == JWT_BEARER, f"client_assertion_type is {JWT_BEARER!r}.",
              f"client_assertion_type is {shown(given) if given is not None else 'missing'}; expected "
              f"{JWT_BEARER!r}.", "form:client_assertion_type", 400,
              f"Missing or invalid client_assertion_type - must be '{JWT_BEARER}'")


def _claim_rules(log: RuleLog, jwt: Decoded, now: float) -> None:
    header, claims = jwt.header, jwt.claims
    alg = header.get("alg")
    if not alg:
        log.failed(ALG, "The JWT header has no 'alg'; expected 'RS512'.", "jwt-header:alg", 400,
                   "Missing 'alg' header in client_assertion JWT")
    else:
        log.check(ALG, alg == ALGORITHM, "alg is RS512.", f"alg is {shown(alg)}; the identity service accepts only "
                  "RS512 (RSASSA-PKCS1-v1_5 with SHA-512).", "jwt-header:alg", 400,
                  "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'")
    exp = claims.get("exp")
    if is_number(exp):
        log.check(NOT_EXPIRED, now <= exp, f"exp {exp} is not in the past (now {int(now)}).",
                  f"exp {exp} is {int(now - exp)} s in the past (now {int(now)}); sign a fresh assertion for every "
                  "token request.", "jwt-claim:exp", 400, "Invalid 'exp' claim in client_assertion JWT - JWT has expired")
    else:
        log.skipped(NOT_EXPIRED, "exp is not a number")
    log.check(KID, bool(header.get("kid")), f"kid {shown(header.get('kid'))} is present.",
              "The JWT header has no 'kid'; expected the kid of one of your registered public keys.",
              "jwt-header:kid", 400, "Missing 'kid' header in client_assertion JWT")
    typ = header.get("typ")
    log.check(TYP, isinstance(typ, str) and typ.lower() == "jwt", f"typ is {typ!r}.",
              f"typ is {shown(typ) if typ is not None else 'missing'}; expected 'JWT'.", "jwt-header:typ", 400,
              "Invalid 'typ' header in client_assertion JWT - must be 'JWT'")
    if log.check(EXP, bool(exp), "exp is present.", "The claims have no 'exp'; expected a Unix time at most 5 "
                 "minutes ahead.", "jwt-claim:exp", 400, "Missing 'exp' claim in client_assertion JWT"):
        if log.check(EXP_NUMBER, is_number(exp), f"exp {exp} is a number.",
                     f"exp is {shown(exp)} ({type(exp).__name__}); expected an integer Unix time, not a string.",
                     "jwt-claim:exp", 400, "Invalid 'exp' claim in client_assertion JWT - must be an integer") \
                and isinstance(exp, float):
            log.warning(EXP_NUMBER, f"exp {exp} has a fraction; the live service accepts it, but the NHS guide asks "
                        "for an integer.", "jwt-claim:exp")
    else:
        log.skipped(EXP_NUMBER, "there is no exp")
    iss, sub = claims.get("iss"), claims.get("sub")
    log.check(ISS_SUB, bool(iss) and iss == sub, f"iss and sub are both {shown(iss)}.",
              f"iss is {shown(iss)} and sub is {shown(sub)}; both must be your application's API key.",
              "jwt-claim:iss", 400, "Missing or non-matching 'iss'/'sub' claims in client_assertion JWT")
    jti = claims.get("jti")
    if log.check(JTI, bool(jti), f"jti {shown(jti)} is present.", "The claims have no 'jti'; expected a new "
                 "unique string (a UUID) for every assertion.", "jwt-claim:jti", 400,
                 "Missing 'jti' claim in client_assertion JWT"):
        log.check(JTI_STRING, isinstance(jti, str), "jti is a string.", f"jti is {shown(jti)} "
                  f"({type(jti).__name__}); expected a string such as a UUID.", "jwt-claim:jti", 400,
                  "Invalid 'jti' claim in client_assertion JWT - must be a unique string value such as a GUID")
    else:
        log.skipped(JTI_STRING, "there is no jti")


def _replay_rule(log: RuleLog, jwt: Decoded, store: Store, now: float) -> None:
    """jti reuse, then the 5-minute limit; a jti is used up only when every earlier rule passed (as live caches it
    only then), and atomically, so two workers never both accept the same assertion."""
    claims = jwt.claims
    jti, iss, exp = claims.get("jti"), claims.get("iss"), claims.get("exp")
    remaining = exp - now if is_number(exp) else None
    limit_ok = remaining is None or remaining <= MAX_LIFETIME + LIFETIME_TOLERANCE
    if not (jti and isinstance(jti, str)):
        log.skipped(JTI_UNIQUE, "there is no string jti")
    else:
        key = f"{iss}:{jti}"
        if not log.rejected and limit_ok:
            # Remembered until the assertion expires: from then on it is refused as expired anyway.
            unique = store.state.claim(GLOBAL, USED_JTIS, key, (exp if is_number(exp) else now + MAX_LIFETIME) + 1)
        else:
            unique = not store.state.claimed(GLOBAL, USED_JTIS, key)
        log.check(JTI_UNIQUE, unique, f"jti {shown(jti)} has not been used before by {shown(iss)}.",
                  f"jti {shown(jti)} was already used by {shown(iss)}; a jti may be used once only.",
                  "jwt-claim:jti", 400, "Non-unique 'jti' claim in client_assertion JWT")
    if remaining is None:
        log.skipped(EXP_LIMIT, "exp is not a number")
    else:
        log.check(EXP_LIMIT, limit_ok, f"exp is {int(remaining)} s ahead (at most {MAX_LIFETIME} s allowed).",
                  f"exp is {int(remaining)} s ahead; expected at most {MAX_LIFETIME} s (the live service tolerates "
                  f"{LIFETIME_TOLERANCE} s more).", "jwt-claim:exp", 400,
                  "Invalid 'exp' claim in client_assertion JWT - more than 5 minutes in future")


def _key_rules(log: RuleLog, jwt: Decoded, audiences: list[str], registry: Registry) -> Application | None:
    claims, kid = jwt.claims, jwt.header.get("kid")
    iss = claims.get("iss")
    app = registry.get(iss) if isinstance(iss, str) and iss == claims.get("sub") else None
    if app is not None and app.revoked:
        app = None
    if not log.check(API_KEY, app is not None, f"iss/sub {shown(iss)} is the API key of application "
                     f"{app.name if app else ''!r}.", f"iss/sub {shown(iss)} is not the API key of a registered "
                     "application (spine-sandbox apps list shows them).", "jwt-claim:iss", 401,
                     "Invalid 'iss'/'sub' claims in client_assertion JWT"):
        log.skipped(KEY_RULES[1:], "the application is not known")
        return None
    if not log.check(HAS_KEYS, bool(app.kids), f"application {app.name!r} has public keys ({', '.join(app.kids)}).",
                     f"application {app.name!r} has no public key registered (spine-sandbox apps set-jwks).",
                     "application:jwks", 403, "You need to register a public key to use this authentication method "
                     "- please contact support to configure", PUBLIC_KEY_ERROR):
        log.skipped(KEY_RULES[2:], "the application has no public keys")
        return app
    jwk = app.key(kid) if isinstance(kid, str) else None
    if not log.check(KID_KNOWN, jwk is not None, f"kid {kid!r} is one of the application's keys.",
                     f"kid {shown(kid)} is not among application {app.name!r}'s keys ({', '.join(app.kids)}).",
                     "jwt-header:kid", 401, "Invalid 'kid' header in client_assertion JWT - no matching public key"):
        log.skipped(SIGNATURE, "no public key matches the kid")
    elif jwt.header.get("alg") != ALGORITHM:
        log.skipped(SIGNATURE, "alg is not RS512")
    else:
        log.check(SIGNATURE, signature_valid(jwt.token, jwk), f"the RS512 signature verifies with key {kid!r}.",
                  f"the signature does not verify with the public key {kid!r}: was the assertion signed with the "
                  "matching private key?", "jwt-signature", 401, "JWT signature verification failed", PUBLIC_KEY_ERROR)
    aud = claims.get("aud")
    aud_ok = aud in audiences if isinstance(aud, str) else isinstance(aud, list) and any(a in audiences for a in aud)
    log.check(AUD, aud_ok, f"aud is the token URL {aud!r}.",
              f"aud is {shown(aud) if aud is not None else 'missing'}; expected the token URL you call: "
              f"{' or '.join(repr(a) for a in audiences)}.", "jwt-claim:aud", 401,
              "Missing or invalid 'aud' claim in client_assertion JWT")
    return app
