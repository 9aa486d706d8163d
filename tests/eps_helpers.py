"""Helpers for the EPS tests: the specification's examples (an outside reference, read through spec_path), the
synthetic healthcare workers who prescribe and dispense, real tokens for them from the sandbox's identity service,
and the headers an EPS client sends."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.conftest import spec_path
from tests.oauth_helpers import KeyPair, assertion, cc_form, jwks, post_token, register

LEGACY = "/electronic-prescriptions/FHIR/R4"
PRESCRIBING = "/fhir-prescribing/FHIR/R4"
DISPENSING = "/fhir-dispensing/FHIR/R4"

EXCHANGE = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}


class User:
    """A synthetic healthcare worker (sandbox.services.oauth.idp.WORKERS) in one of their roles."""

    def __init__(self, user_id: str, role_id: str, role_code: str, ods: str, name: str):
        self.user_id, self.role_id, self.role_code, self.ods, self.name = user_id, role_id, role_code, ods, name


PRESCRIBER = User("555021935107", "555021936103", "R8000", "Y12345", "Priya Shah")  # GP, Clinical Practitioner
NURSE = User("555021937109", "555021938105", "R8001", "Y12345", "Tom Evans")  # nurse prescriber
DISPENSER = User("555021942100", "555021943106", "R8003", "FX123", "Jo Wright")  # pharmacist at pharmacy FX123
ADMIN = User("555021939101", "555021940108", "R8008", "Y23456", "Sam Okafor")  # Admin/Clinical Support role


def example(*parts: str) -> Path:
    """A file of the specification's examples (skips the test when the reference specs are absent)."""
    return spec_path("eps-fhir", "examples", *parts)


def example_json(*parts: str):
    return json.loads(example(*parts).read_bytes())


class Tokens:
    """Access tokens from the sandbox's own identity service: an application registered with a key pair, its
    application-restricted token, and CIS2 healthcare-worker tokens (ID token exchanged for an access token)."""

    _key = None

    def __init__(self, client):
        if Tokens._key is None:
            Tokens._key = KeyPair("eps-tests-1")
        self.client = client
        self.app_key = register(client, name="EPS test app", keys=jwks(Tokens._key),
                                redirect_uris=["https://app.example/callback"])["api_key"]

    def _token(self, form: dict) -> str:
        response = post_token(self.client, form)
        assert response.status_code == 200, response.get_json()
        return response.get_json()["access_token"]

    def application(self) -> str:
        return self._token(cc_form(assertion(Tokens._key, self.app_key)))

    def worker(self, user: User, aal: str = "AAL3") -> str:
        issued = self.client.post("/_sandbox/oauth/cis2/id-token",
                                  json={"user_id": user.user_id, "role_id": user.role_id, "aal": aal})
        assert issued.status_code == 200, issued.get_json()
        return self._token(cc_form(assertion(Tokens._key, self.app_key),
                                   subject_token=issued.get_json()["id_token"], **EXCHANGE))


def eps_headers(token: str | None, user: User | None = None, **extra: str) -> dict[str, str]:
    """What an EPS client sends: bearer token, a fresh X-Request-ID, the user's role (NHSD-Session-URID)."""
    headers = {"X-Request-ID": str(uuid.uuid4()), "Content-Type": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if user is not None:
        headers["NHSD-Session-URID"] = user.role_id
    headers.update(extra)
    return headers
