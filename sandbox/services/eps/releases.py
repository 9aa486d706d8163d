"""The release response as live answers it: a Parameters of two searchset Bundles, passedPrescriptions (each released
prescription's order message, as the prescriber sent it, signature included) and failedPrescriptions (prescriptions
Spine released but EPS could not pass on, e.g. a signature that does not verify: none in the sandbox, whose orders
are verified when they are made). An empty nominated release is answered NO_MORE_PRESCRIPTIONS, informational."""

from __future__ import annotations

import uuid
from datetime import datetime

from sandbox.services.eps.context import EPS_ISSUE_CODES, UUID_SYSTEM
from sandbox.services.eps.errors import outcome
from sandbox.services.eps.prescriptions import stamp

SELF_URL = "https://sandbox.api.service.nhs.uk/fhir-dispensing/Task/$release"


def searchset(moment: datetime, entries: list[dict], self_url: str | None = None) -> dict:
    """A searchset Bundle as live EPS answers one (the release's halves, the tracker's answer)."""
    bundle_id = str(uuid.uuid4())
    bundle = {"resourceType": "Bundle", "id": bundle_id, "meta": {"lastUpdated": stamp(moment)},
              "identifier": {"system": UUID_SYSTEM, "value": bundle_id}, "type": "searchset"}
    if self_url:
        bundle["link"] = [{"relation": "self", "url": self_url}]
    return {**bundle, "total": len(entries), "entry": entries}


def _entry(record: dict) -> dict:
    bundle = record["bundle"]
    bundle_id = str(bundle.get("id") or record.get("uuid") or uuid.uuid4())
    return {"fullUrl": f"urn:uuid:{bundle_id}", "search": {"mode": "match"}, "resource": bundle}


def response(records: list[dict], moment: datetime) -> dict:
    """passedPrescriptions holding each released record's order Bundle, and an empty failedPrescriptions."""
    return {"resourceType": "Parameters", "id": str(uuid.uuid4()), "parameter": [
        {"name": "passedPrescriptions", "resource": searchset(moment, [_entry(r) for r in records], SELF_URL)},
        {"name": "failedPrescriptions", "resource": searchset(moment, [], SELF_URL)},
    ]}


def no_more_prescriptions() -> dict:
    """Live's answer to a nominated release with nothing to release (Spine's dispense code 0006)."""
    return outcome({"severity": "information", "code": "informational", "details": {"coding": [
        {"system": EPS_ISSUE_CODES, "code": "NO_MORE_PRESCRIPTIONS", "display": "No more prescriptions available"}]}})
