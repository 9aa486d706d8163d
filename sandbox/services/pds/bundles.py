"""The Bundle and informational OperationOutcome shapes PDS answers searches with."""

from __future__ import annotations

from datetime import UTC, datetime

from sandbox.services.pds.outcome import issue, operation_outcome

# Live PDS names its resources by the production base URL in fullUrl, whichever environment answers.
LIVE_BASE = "https://api.service.nhs.uk/personal-demographics/FHIR/R4"


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def searchset(entries: list[dict], **extra) -> dict:
    """A searchset Bundle; with no entries PDS leaves out `entry` altogether."""
    bundle = {"resourceType": "Bundle", "type": "searchset", "timestamp": timestamp(), "total": len(entries), **extra}
    if entries:
        bundle["entry"] = entries
    return bundle


def patient_entry(resource: dict, score: float) -> dict:
    return {"fullUrl": f"{LIVE_BASE}/Patient/{resource['id']}", "search": {"score": score}, "resource": resource}


def too_many_matches() -> dict:
    """Not an error: PDS answers 200 with this when more patients match than _max-results allows."""
    return operation_outcome(issue("TOO_MANY_MATCHES", severity="information"))


def no_example_response(diagnostics: str) -> dict:
    """The published sandbox's answer to a search it has no example for: 200 with a warning, no coding, stamped."""
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "not-supported",
                                                           "diagnostics": diagnostics}], "timestamp": timestamp()}
