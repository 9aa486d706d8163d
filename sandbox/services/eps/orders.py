"""What a prescription order Bundle says, read into the record prescriptions.py keeps: the ids, patient, prescriber,
nominated pharmacy, items, course of therapy (acute, repeat, eRD with its number of issues) and validity period.
Total over any JSON: what is absent reads as None (B's checks refuse a malformed order before it gets here)."""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from typing import Any

from sandbox.services.eps import resources
from sandbox.services.eps.context import (
    ITEM_ID_SYSTEM,
    NHS_NUMBER_SYSTEM,
    ODS_SYSTEM,
    PRESCRIPTION_ID_SYSTEM,
    PRESCRIPTION_UUID_SYSTEM,
    ROLE_PROFILE_SYSTEM,
    TO_BE_DISPENSED,
    UUID_SYSTEM,
)
from sandbox.services.eps.prescriptions import parse_moment, stamp

ERD = "continuous-repeat-dispensing"
REPEAT = "continuous"
ACUTE = "acute"
ITEM_TO_BE_DISPENSED = "0007"  # medicationdispense-type: Item to be dispensed
_CONTROLLED_SCHEDULE = re.compile(r"^CD[234]")  # Schedule 2-4 controlled drugs: 28 days' validity
CONTROLLED_VALIDITY = timedelta(days=28)


def medication_requests(bundle: Any) -> list[dict]:
    return resources.entries(bundle, "MedicationRequest")


def short_form(bundle: Any) -> str | None:
    for request in medication_requests(bundle):
        value = resources.identifier_value(request.get("groupIdentifier"), PRESCRIPTION_ID_SYSTEM)
        if value:
            return value
    return None


def long_form(request: dict) -> str | None:
    group = request.get("groupIdentifier")
    return resources.find_identifier(group.get("extension"), PRESCRIPTION_UUID_SYSTEM) \
        if isinstance(group, dict) else None


def nhs_number(bundle: Any) -> str | None:
    patient = resources.first(bundle, "Patient")
    return resources.identifier_value(patient.get("identifier"), NHS_NUMBER_SYSTEM) if patient else None


def item_ids(bundle: Any) -> list[str]:
    found = (resources.identifier_value(r.get("identifier"), ITEM_ID_SYSTEM) for r in medication_requests(bundle))
    return [value.lower() for value in found if value]


def _code(concept: Any) -> str | None:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            return coding["code"]
    return None


def controlled(request: dict) -> bool:
    """The order marks the item a Schedule 2-4 controlled drug (Extension-DM-ControlledDrug's schedule)."""
    for extension in request.get("extension") or []:
        if isinstance(extension, dict) and "ControlledDrug" in str(extension.get("url", "")):
            for inner in extension.get("extension") or [extension]:
                code = _code({"coding": [resources.as_dict(inner).get("valueCoding")]})
                if code and _CONTROLLED_SCHEDULE.match(code):
                    return True
    return False


def add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def expiry(request: dict, fallback: datetime) -> datetime:
    """When the prescription expires: dispenseRequest.validityPeriod.end, else 28 days (Schedule 2-4 controlled
    drugs) or six months after authoredOn."""
    dispense = resources.as_dict(request.get("dispenseRequest"))
    end = parse_moment(resources.as_dict(dispense.get("validityPeriod")).get("end"))
    authored = parse_moment(request.get("authoredOn")) or fallback
    if controlled(request):
        limit = authored + CONTROLLED_VALIDITY
        return min(end + timedelta(days=1), limit) if end else limit
    if end is not None:
        return end + timedelta(days=1)  # the end date is the last day it may be dispensed
    return add_months(authored, 6)


def _referenced(bundle: Any, reference: Any, resource_type: str) -> list[dict]:
    """The Bundle's resources of this type that a Reference points at (its reference ends with their id)."""
    target = resources.as_dict(reference).get("reference")
    if not isinstance(target, str):
        return []
    return [r for r in resources.entries(bundle, resource_type) if target.endswith(str(r.get("id")))]


def prescriber(bundle: Any, request: dict) -> dict:
    """Who prescribed: the requester's role profile, and the organisation (ODS, name) that sent the order."""
    header = resources.first(bundle, "MessageHeader") or {}
    sender = resources.as_dict(header.get("sender"))
    ods = resources.identifier_value(sender.get("identifier"), ODS_SYSTEM)
    name = sender.get("display") if isinstance(sender.get("display"), str) else None
    role = None
    for resource in _referenced(bundle, request.get("requester"), "PractitionerRole"):
        role = resources.identifier_value(resource.get("identifier"), ROLE_PROFILE_SYSTEM)
        organizations = _referenced(bundle, resource.get("organization"), "Organization")
        if organizations:
            ods = ods or resources.identifier_value(organizations[0].get("identifier"), ODS_SYSTEM)
            name = name or organizations[0].get("name")
    return {"ods": ods, "name": name, "role": role}


def performer(request: dict) -> tuple[str | None, str | None]:
    """The nominated pharmacy (ODS, name), or (None, None) when the patient nominated none."""
    who = resources.as_dict(resources.as_dict(request.get("dispenseRequest")).get("performer"))
    ods = resources.identifier_value(who.get("identifier"), ODS_SYSTEM)
    return ods, who.get("display") if isinstance(who.get("display"), str) else None


def issues(request: dict, course: str) -> int:
    """How many issues the prescription has: eRD numberOfRepeatsAllowed + 1 (the first issue and its repeats)."""
    allowed = resources.as_dict(request.get("dispenseRequest")).get("numberOfRepeatsAllowed")
    if course == ERD and isinstance(allowed, int) and not isinstance(allowed, bool) and 0 <= allowed <= 98:
        return allowed + 1
    return 1


def record_of(bundle: dict, moment: datetime) -> dict:
    """The record of a new prescription (0001 To be Dispensed), its order Bundle kept for releasing it."""
    requests = medication_requests(bundle)
    request = requests[0] if requests else {}
    course = _code(request.get("courseOfTherapyType")) or ACUTE
    ods, name = performer(request)
    return {
        "id": short_form(bundle), "uuid": long_form(request), "status": TO_BE_DISPENSED,
        "patient": nhs_number(bundle), "prescriber": prescriber(bundle, request),
        "performer": ods, "performer_name": name,
        "items": [{"id": item, "status": ITEM_TO_BE_DISPENSED} for item in item_ids(bundle)],
        "authoredOn": request.get("authoredOn") if isinstance(request.get("authoredOn"), str) else stamp(moment),
        "expires": stamp(expiry(request, moment)), "course": course, "issue": 1, "issues": issues(request, course),
        "owner": None, "pending_cancellation": None, "dispenses": [], "claim": None, "last_dispensed": None,
        "created": stamp(moment), "updated": stamp(moment), "bundle": bundle,
        "history": [{"at": stamp(moment), "event": "order", "from": None, "status": TO_BE_DISPENSED, "issue": 1,
                     "message": resources.identifier_value(bundle.get("identifier"), UUID_SYSTEM)}],
    }
