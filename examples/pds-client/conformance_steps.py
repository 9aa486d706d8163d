"""Every step of the pds-application-restricted plan, run by the example's PdsClient: the example under CI mode.

    spine-sandbox run --plan pds-application-restricted -- python examples/pds-client/conformance_steps.py

CI mode gives the command PDS_BASE_URL, SPINE_SANDBOX_URL and SPINE_SANDBOX_SESSION_TOKEN (the session token
stands in for the access token and puts every request in the run's session).
"""

from __future__ import annotations

import os
import sys

import requests
from pds_client import PdsClient, PdsError, PdsUnavailable

STEPS = ("9000000009", "9000000025", "9111231130", "9999000010", "9999000045", "9999000002", "9999000029")


def main() -> int:
    pds = PdsClient(base_url=os.environ["PDS_BASE_URL"], access_token=os.environ["SPINE_SANDBOX_SESSION_TOKEN"])
    control = os.environ["SPINE_SANDBOX_URL"] + "/_sandbox"

    def synthetic(kind: str) -> str:
        answer = requests.get(f"{control}/patients", params={"kind": kind, "limit": 1}, timeout=30)
        return answer.json()["patients"][0]["nhs_number"]

    for number in (*STEPS, synthetic("invalidated"), synthetic("superseded")):
        try:
            patient = pds.get_patient(number)
        except (PdsError, PdsUnavailable) as exc:
            print(number, exc)
            continue
        print(number, "->", patient.nhs_number, "(restricted)" if patient.restricted else "")
        if patient.superseded_from:  # from now on we use the new number
            print(patient.nhs_number, "->", pds.get_patient(patient.nhs_number).nhs_number)
    print("search:", pds.find_one(family="Smith", gender="female", birthdate="eq2010-10-22"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
