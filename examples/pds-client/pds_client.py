"""A small PDS FHIR client, written as a supplier would: the Spine Sandbox example's system under test.

It behaves as the PDS specification asks of an application-restricted client: a fresh version 4 X-Request-ID
for every request and the same one on every retry of it; NHS numbers checked before they are sent; retries after
503, 429 and 408 that wait for Retry-After (or a second) and stop after a bounded number of attempts; and a
superseded NHS number replaced by the one PDS answers with; searches that ask for one unique match.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import requests

INT_BASE_URL = "https://int.api.service.nhs.uk/personal-demographics/FHIR/R4"
TRANSIENT = {408, 429, 503}  # PDS asks for the same request again, later
DEFAULT_WAIT_S = 1.0  # when a transient answer carries no Retry-After


class PdsError(Exception):
    """PDS refused the request; `code` is the Spine error code from the OperationOutcome."""

    def __init__(self, status: int, code: str, diagnostics: str = ""):
        super().__init__(f"PDS answered {status} {code}: {diagnostics}")
        self.status, self.code = status, code


class PdsUnavailable(Exception):
    """PDS did not answer in time, or kept asking us to come back later."""


@dataclass
class Patient:
    nhs_number: str
    family_name: str
    given_names: list[str]
    version: str  # the ETag, needed to update the record later
    restricted: bool
    superseded_from: str | None = None  # the NHS number we asked for, when PDS answered with its replacement


def valid_nhs_number(value: str) -> bool:
    """Ten digits whose last is the Modulus 11 check digit of the other nine."""
    if len(value) != 10 or not value.isdigit():
        return False
    check = 11 - sum(int(d) * w for d, w in zip(value[:9], range(10, 1, -1), strict=True)) % 11
    return check != 10 and check % 11 == int(value[9])


class PdsClient:
    def __init__(self, base_url: str = INT_BASE_URL, access_token: str = "", ods_code: str | None = None,
                 timeout: tuple[float, float] = (5, 10), max_attempts: int = 3,
                 sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers.update({"Accept": "application/fhir+json", "Authorization": f"Bearer {access_token}"})
        if ods_code:
            self.http.headers["NHSD-End-User-Organisation-ODS"] = ods_code
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.sleep = sleep

    def get_patient(self, nhs_number: str) -> Patient:
        if not valid_nhs_number(nhs_number):
            raise ValueError(f"{nhs_number!r} is not an NHS number (ten digits with a Modulus 11 check digit)")
        response = self._get(f"/Patient/{nhs_number}")
        record = response.json()
        name = next((n for n in record.get("name", []) if n.get("use") == "usual"), (record.get("name") or [{}])[0])
        security = record.get("meta", {}).get("security", [])
        return Patient(nhs_number=record["id"], family_name=name.get("family", ""), given_names=name.get("given", []),
                       version=response.headers.get("ETag", ""),
                       restricted=any(s.get("code") == "R" for s in security),
                       superseded_from=nhs_number if record["id"] != nhs_number else None)

    def find_one(self, **criteria: str) -> str | None:
        """Application-restricted search: the NHS number of the one unique match, or None (no match, or
        TOO_MANY_MATCHES, which PDS answers with 200: the criteria must be refined)."""
        bundle = self._get("/Patient", params={**criteria, "_max-results": "1"}).json()
        entries = bundle.get("entry", []) if bundle.get("resourceType") == "Bundle" else []
        return entries[0]["resource"]["id"] if entries else None

    def _get(self, path: str, params: dict | None = None) -> requests.Response:
        # One X-Request-ID for every attempt: a retry is the same request, and PDS de-duplicates on it.
        request_id = str(uuid.uuid4())
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.http.get(self.base_url + path, params=params, headers={"X-Request-ID": request_id},
                                         timeout=self.timeout)
            except requests.Timeout as exc:
                raise PdsUnavailable(f"PDS did not answer within {self.timeout[1]} s") from exc
            if response.status_code not in TRANSIENT:
                if not response.ok:
                    raise _error(response)
                return response
            wait = _retry_after(response)
            # The rate limit is the whole application's: after a 429 the next request waits, even one not retried.
            if attempt < self.max_attempts or response.status_code == 429:
                self.sleep(wait)
        raise PdsUnavailable(f"PDS still answered {response.status_code} after {self.max_attempts} attempts")


def _retry_after(response: requests.Response) -> float:
    try:
        return max(float(response.headers.get("Retry-After", DEFAULT_WAIT_S)), 0.0)
    except ValueError:  # an HTTP date: not sent by PDS; wait the default rather than guess
        return DEFAULT_WAIT_S


def _error(response: requests.Response) -> PdsError:
    try:
        issue = response.json()["issue"][0]
        code = issue["details"]["coding"][0]["code"]
        return PdsError(response.status_code, code, issue.get("diagnostics", ""))
    except (ValueError, KeyError, IndexError):
        return PdsError(response.status_code, "UNKNOWN", response.text[:200])
