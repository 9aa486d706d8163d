"""Helpers for the SDS tests: query strings as suppliers write them, the published-mode app, findings of an answer."""

from __future__ import annotations

from urllib.parse import quote

from sandbox.app import create_app

SDS = "/spine-directory/FHIR/R4"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SVC = "https://fhir.nhs.uk/Id/nhsServiceInteractionId"
PK = "https://fhir.nhs.uk/Id/nhsMhsPartyKey"
REPC = "urn:nhs:names:services:psis:REPC_IN150016UK05"
QUPA = "urn:nhs:names:services:pdsquery:QUPA_IN040000UK32"
QUPC = "urn:nhs:names:services:psisquery:QUPC_IN160101UK05"
GP2GP = "urn:nhs:names:services:gp2gp:COPC_IN000001UK01"
SPINE_PK = "YES-0000806"
HOST = "localhost:9000"


def query(org: str | None = None, svc: str | None = None, pk: str | None = None, man: str | None = None,
          encode: bool = True) -> str:
    """organization / identifier / manufacturing-organization tokens, in that order."""
    parts = []
    for name, system, value in (("organization", ODS, org), ("identifier", SVC, svc), ("identifier", PK, pk),
                                ("manufacturing-organization", ODS, man)):
        if value is not None:
            token = f"{system}|{value}"
            parts.append(f"{name}={quote(token, safe='') if encode else token}")
    return "&".join(parts)


def get(client, path: str, qs: str = "", headers: dict | list | None = None, **kwargs):
    """GET at the SDS base path, from localhost:9000 unless a Host is given; headers may be a list of pairs."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    merged = pairs if any(k.lower() == "host" for k, _ in pairs) else [("Host", HOST), *pairs]
    return client.get(f"{SDS}{path}" + (f"?{qs}" if qs else ""), headers=merged, **kwargs)


def findings(client, response) -> list[dict]:
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    return exchange["findings"]


def finding(client, response, requirement: str) -> list[dict]:
    return [f for f in findings(client, response) if f["requirement"] == requirement]


def published_client(settings):
    """A client of a sandbox whose SDS answers the published records verbatim (SANDBOX_SDS_ADDRESSES=published)."""
    return create_app(settings.replace(sds_addresses="published")).test_client()
