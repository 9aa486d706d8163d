"""A well-behaved PDS client that runs every step of the pds-application-restricted plan.

Run it under CI mode:  spine-sandbox run --plan pds-application-restricted -- python examples/pds_client.py
It reads PDS_BASE_URL, SPINE_SANDBOX_URL and SPINE_SANDBOX_SESSION_TOKEN from the environment, retries
transient failures with the same X-Request-ID after Retry-After (or a one second back-off), gives up after
MAX_ATTEMPTS, follows superseded NHS numbers, and searches for a single unique match (_max-results=1).
"""

from __future__ import annotations

import os
import sys
import time
import uuid

import requests

PDS = os.environ["PDS_BASE_URL"]
CONTROL = os.environ["SPINE_SANDBOX_URL"] + "/_sandbox"
HEADERS = {"Authorization": f"Bearer {os.environ['SPINE_SANDBOX_SESSION_TOKEN']}",
           "Accept": "application/fhir+json"}
TRANSIENT = {408, 429, 503}
MAX_ATTEMPTS = 4
MIN_BACK_OFF_S = 1.0


def get_patient(number: str) -> requests.Response:
    request_id = str(uuid.uuid4())  # one id per request, re-sent on every retry of it
    for attempt in range(1, MAX_ATTEMPTS + 1):
        answer = requests.get(f"{PDS}/Patient/{number}", headers={**HEADERS, "X-Request-ID": request_id},
                              timeout=30)
        if answer.status_code not in TRANSIENT:
            return answer
        # Wait before the retry; after a 429 wait even when giving up, as the rate limit is for the whole app.
        if attempt < MAX_ATTEMPTS or answer.status_code == 429:
            time.sleep(max(float(answer.headers.get("Retry-After", 0)), MIN_BACK_OFF_S))
    return answer


def find_one(**params: str) -> str | None:
    """Application-restricted search: one unique match or none (TOO_MANY_MATCHES means refine the search)."""
    answer = requests.get(f"{PDS}/Patient", params={**params, "_max-results": "1"},
                          headers={**HEADERS, "X-Request-ID": str(uuid.uuid4())}, timeout=30).json()
    entries = answer.get("entry", []) if answer.get("resourceType") == "Bundle" else []
    return entries[0]["resource"]["id"] if entries else None


def synthetic(kind: str) -> str:
    return requests.get(f"{CONTROL}/patients", params={"kind": kind, "limit": 1}, timeout=30).json()[
        "patients"][0]["nhs_number"]


def main() -> int:
    for number in ("9000000009", "9000000025", "9111231130", synthetic("invalidated"), "9999000010",
                   "9999000045", "9999000002", "9999000029"):
        print(number, get_patient(number).status_code)
    merged = synthetic("superseded")
    current = get_patient(merged).json()["id"]  # PDS answers with the superseding record
    print(merged, "->", current, get_patient(current).status_code)  # and from now on we use the new number
    print("search:", find_one(family="Smith", gender="female", birthdate="eq2010-10-22"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
