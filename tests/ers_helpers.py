"""Helpers for the e-RS tests: the published sandbox's fixtures (an outside reference, read through spec_path), the
headers a supplier sends, an app per mode, and the header sets the published sandbox sends (BEHAVIOUR.md 7, 12)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from sandbox.app import create_app
from sandbox.settings import Settings
from tests.conftest import TEST_POPULATION, spec_path

ERS = "/referrals/FHIR"
STU3 = f"{ERS}/STU3"
R4 = f"{ERS}/R4"
RC, RCA, RA = "REFERRING_CLINICIAN", "REFERRING_CLINICIAN_ADMIN", "REFERRING_ADMIN"
SPC, SPCA, SPA = "SERVICE_PROVIDER_CLINICIAN", "SERVICE_PROVIDER_CLINICIAN_ADMIN", "SERVICE_PROVIDER_ADMIN"
EVERY_FUNCTION = (RC, RCA, RA, SPC, SPCA, SPA)
OBO_USER = "555555555555"
REQUEST_ID = "58621d65-d5ad-4c3a-959f-0438e355990e-1"
EXPOSE = "x-correlation-id,x-request-id,content-type,Location,ETag,Content-Disposition,Content-Length,Cache-Control"
BASE_URL_HEADER = "x-ers-sandbox-baseurl"


def mock(*parts: str) -> Path:
    """A file of the published sandbox's fixtures (skips the test when the reference specs are absent)."""
    return spec_path("e-rs-fhir", "published-sandbox", "mocks", *parts)


def mock_json(*parts: str):
    return json.loads(mock(*parts).read_bytes())


def ers_headers(function: str | None = None, **extra: str) -> dict[str, str]:
    """What an e-RS client sends: a business function (and, for SPCA, the on-behalf-of user) plus `extra`."""
    headers = {"Authorization": "Bearer sandbox-test-token", "NHSD-End-User-Organisation-ODS": "R69"}
    if function:
        headers["NHSD-eRS-Business-Function"] = function
    if function == SPCA:
        headers["NHSD-eRS-On-Behalf-Of-User-ID"] = OBO_USER
    headers.update(extra)
    return headers


@contextmanager
def ers_app(data_dir: Path, **settings):
    """An app with these settings (ers_mode, response_headers, ...), closed afterwards."""
    app = create_app(Settings.load(environ={}, data_dir=data_dir, population=TEST_POPULATION, **settings))
    try:
        yield app
    finally:
        app.extensions["sandbox"].close()


def names(response) -> set[str]:
    """The response's header names, lower-cased (the NHS suite compares names case-insensitively)."""
    return {name.lower() for name, _ in response.headers.items()}


# The headers of each answer kind (section 7) besides Date, Connection and Keep-Alive, which every answer has.
COMMON = {"x-request-id", "vary", "access-control-expose-headers", "cache-control", "date", "connection", "keep-alive"}
FILE_SMALL = COMMON | {"content-type", "content-length", "last-modified", "accept-ranges"}
FILE_COMPRESSED = COMMON | {"content-type", "last-modified", "accept-ranges", "content-encoding", "transfer-encoding"}
PDF_FILE = FILE_SMALL | {"content-disposition"}


def expected_names(kind: set[str], etag: bool = False, correlation: bool = False, origin: bool = False) -> set[str]:
    return kind | ({"etag"} if etag else set()) | ({"x-correlation-id"} if correlation else set()) | (
        {"access-control-allow-origin"} if origin else set())


def body_json(response):
    """A JSON answer's body, whether or not it came compressed (the test client does not decompress)."""
    import gzip
    import zlib

    data = response.get_data()
    coding = response.headers.get("content-encoding")
    if coding == "gzip":
        data = gzip.decompress(data)
    elif coding == "deflate":
        data = zlib.decompress(data)
    return json.loads(data)


def exchange_of(client, response) -> dict:
    """The journal's record of an exchange: by its X-Sandbox-Exchange header, else the latest one."""
    exchange_id = response.headers.get("X-Sandbox-Exchange")
    if exchange_id is None:
        exchange_id = client.get("/_sandbox/exchanges?limit=1").get_json()["exchanges"][0]["id"]
    return client.get(f"/_sandbox/exchanges/{exchange_id}").get_json()
