"""Mock identity providers: NHS CIS2 for synthetic healthcare workers, NHS login for synthetic patients.

Each signs ID tokens with its own RSA key, made once per data directory and kept in the Store (so every worker
process signs and verifies with the same key). Their issuers are fixed, host-independent names under the reserved
.invalid domain, so nobody mistakes a mock ID token for a real one.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from dataclasses import asdict, dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.journal.store import Store, VersionConflict
from sandbox.services.oauth.jwtparts import sign
from sandbox.services.oauth.registry import GLOBAL
from sandbox.web.access import HEALTHCARE_WORKER, PATIENT

CIS2, NHS_LOGIN = "cis2", "nhs-login"
ISSUERS = {
    CIS2: "https://mock-cis2.spine-sandbox.invalid/openam/oauth2/realms/root/realms/NHSIdentity/realms/Healthcare",
    NHS_LOGIN: "https://mock-nhs-login.spine-sandbox.invalid",
}
IDP_KEYS = "oauth.idp-key"
AAL_LEVELS = ("AAL1", "AAL2", "AAL3")
# NHS login vectors of trust: proofing level P0/P5/P9 and credential levels (Cm, Cp, Cd, Ck, ...).
VOT = re.compile(r"^P(0|5|9)\.C[a-z](\.C[a-z])?$")
PDS_VECTORS = ("P9.Cp.Cd", "P9.Cp.Ck", "P9.Cm")  # the vectors PDS patient access accepts


class IdpError(ValueError):
    """An ID token cannot be made as asked; the message says which value and what is allowed."""


@dataclass(frozen=True)
class Role:
    id: str  # role profile id, sent by suppliers as NHSD-Session-URID
    code: str  # national RBAC role code
    name: str
    org: str  # ODS code of the organisation the role is held at


@dataclass(frozen=True)
class Worker:
    uid: str  # CIS2 user id (12 digits)
    given: str
    family: str
    roles: tuple[Role, ...]

    def to_dict(self) -> dict:
        return {**asdict(self), "name": f"{self.given} {self.family}", "roles": [asdict(r) for r in self.roles]}


# Synthetic healthcare workers: made-up people, ids and organisations.
WORKERS = (
    Worker("555021935107", "Priya", "Shah", (
        Role("555021936103", "S8000:G8000:R8000", "Clinical Practitioner Access Role", "Y12345"),)),
    Worker("555021937109", "Tom", "Evans", (
        Role("555021938105", "S8000:G8001:R8001", "Nurse Access Role", "Y12345"),)),
    Worker("555021939101", "Sam", "Okafor", (
        Role("555021940108", "S8000:G8000:R8008", "Admin/Clinical Support Access Role", "Y23456"),
        Role("555021941104", "S8000:G8000:R8003", "Health Professional Access Role", "Y34567"))),
    Worker("555021942100", "Jo", "Wright", (
        Role("555021943106", "S8000:G8000:R8003", "Health Professional Access Role", "FX123"),)),
)


def worker(uid: str) -> Worker | None:
    return next((w for w in WORKERS if w.uid == uid), None)


def signing_key(store: Store, idp: str) -> tuple[str, dict]:
    """(private key PEM, public JWK) of a mock identity provider, made on first use."""
    item = store.state.get(GLOBAL, IDP_KEYS, idp)
    if item is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode("ascii")
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update(kid=f"mock-{idp}-1", alg="RS512", use="sig")
        with contextlib.suppress(VersionConflict):  # another process made it first: use theirs
            store.state.put(GLOBAL, IDP_KEYS, idp, {"pem": pem, "jwk": jwk}, create_only=True)
        item = store.state.get(GLOBAL, IDP_KEYS, idp)
    return item.value["pem"], item.value["jwk"]


def jwks(store: Store, idp: str) -> dict:
    return {"keys": [signing_key(store, idp)[1]]}


def cis2_id_token(store: Store, user_id: str, role_id: str | None = None, aal: str = "AAL3",
                  audience: str = "spine-sandbox", lifetime: int = 300) -> str:
    person = worker(user_id)
    if person is None:
        raise IdpError(f"no synthetic healthcare worker {user_id!r}; choose one of "
                       f"{', '.join(w.uid for w in WORKERS)} (GET /_sandbox/oauth/cis2/users)")
    role = next((r for r in person.roles if r.id == role_id), None) if role_id else person.roles[0]
    if role is None:
        raise IdpError(f"{person.given} {person.family} holds no role profile {role_id!r}; their roles are "
                       f"{', '.join(r.id for r in person.roles)}")
    if aal not in AAL_LEVELS:
        raise IdpError(f"aal {aal!r} is not one of {', '.join(AAL_LEVELS)}")
    now = int(time.time())
    claims = {
        "iss": ISSUERS[CIS2], "sub": person.uid, "aud": audience, "azp": audience, "exp": now + lifetime,
        "iat": now, "auth_time": now, "jti": str(uuid.uuid4()), "tokenName": "id_token", "tokenType": "JWTToken",
        "realm": "/NHSIdentity/Healthcare", "acr": f"{aal}_ANY",
        "amr": ["N3_SMARTCARD"] if aal == "AAL3" else ["PWD", "OTP"] if aal == "AAL2" else ["PWD"],
        "authentication_assurance_level": aal[-1], "id_assurance_level": "3", "nhsid_useruid": person.uid,
        "name": f"{person.given} {person.family}", "given_name": person.given, "family_name": person.family,
        "selected_roleid": role.id,
        "nhsid_nrbac_roles": [{"person_roleid": r.id, "role_code": r.code, "role_name": r.name, "org_code": r.org}
                              for r in person.roles],
    }
    pem, jwk = signing_key(store, CIS2)
    return sign(claims, pem, jwk["kid"])


def nhs_login_id_token(store: Store, population, nhs_number: str, vot: str = "P9.Cp.Cd",
                       audience: str = "spine-sandbox", lifetime: int = 600) -> str:
    person = population.by_nhs_number(nhs_number)
    if person is None:
        raise IdpError(f"{nhs_number!r} is not a patient of the synthetic population (seed {population.seed}, "
                       f"{population.size} patients); spine-sandbox patients list shows some")
    if not VOT.match(vot):
        raise IdpError(f"vector of trust {vot!r} is not of the form P9.Cp.Cd; PDS patient access accepts "
                       f"{', '.join(PDS_VECTORS)}")
    now = int(time.time())
    claims = {
        "iss": ISSUERS[NHS_LOGIN], "sub": str(uuid.uuid5(uuid.NAMESPACE_OID, f"nhs-login:{nhs_number}")),
        "aud": audience, "exp": now + lifetime, "iat": now, "auth_time": now, "jti": str(uuid.uuid4()),
        "vot": vot, "vtm": f"{ISSUERS[NHS_LOGIN]}/trustmark", "identity_proofing_level": vot.split(".")[0],
        "id_status": "verified", "token_use": "id", "nhs_number": nhs_number,
        "given_name": " ".join(person.given), "family_name": person.family,
        "birthdate": person.birth_date.isoformat(),
    }
    pem, jwk = signing_key(store, NHS_LOGIN)
    return sign(claims, pem, jwk["kid"])


def identity_from_id_token(idp: str, claims: dict) -> tuple[str, dict]:
    """(access mode, identity fields) an exchanged or signed-in ID token stands for."""
    if idp == CIS2:
        person = worker(str(claims.get("sub")))
        role = next((r for r in person.roles if r.id == claims.get("selected_roleid")), None) if person else None
        level = claims.get("authentication_assurance_level")
        return HEALTHCARE_WORKER, {"user_id": claims.get("sub"), "role_id": claims.get("selected_roleid"),
                                     "role_code": role.code if role else None,
                                     "roles": [r.id for r in person.roles] if person else None,
                                     "aal": f"AAL{level}" if level else str(claims.get("acr", "")).split("_")[0]}
    vot = claims.get("vot")
    return PATIENT, {"nhs_number": claims.get("nhs_number"), "vot": vot,
                       "proofing_level": claims.get("identity_proofing_level")}
