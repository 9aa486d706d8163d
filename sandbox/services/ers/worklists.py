"""A008 worklists over the session's own referrals, as live e-RS builds them: each list type of
eRS-FetchWorklist-Parameters-1 selects referrals by state, for the caller's organisation (a provider sees referrals
into its own services, a referrer those its organisation made), filtered by specialty, service and clinician."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sandbox.conformance.findings import Finding
from sandbox.services.ers import referrals as R
from sandbox.services.ers.context import Answer, ErsCall
from sandbox.services.ers.referral_requests import require_parameters
from sandbox.services.ers.resources import (
    CS,
    ERS_SERVICE,
    NHS_NUMBER,
    PRIORITY_SYSTEM,
    PROFILE,
    SDS_USER,
    SPECIALTY_SYSTEM,
    STATE_SYSTEM,
    param,
    param_code,
    param_identifier,
)
from sandbox.services.ers.world import World, current_world
from sandbox.web.pipeline import ExchangeContext

LETTERS_PRINTED = "ers.letter.printed"  # UBRN -> when its patient letter was generated (A019)
LIST_SYSTEM = CS + "eRS-ReferralListSelector-1"


def _reviewable(r: dict) -> bool:
    return (r["state"] == R.BOOKED and not r.get("accepted")) or r["state"] == R.AWAITING_TRIAGE


def _slot_issue(r: dict) -> bool:
    return r["state"] in (R.DEFERRED_TO_PROVIDER, R.TRIAGED_PROVIDER_TO_ACTION)


def _returned(r: dict) -> bool:
    return r["state"] in (R.REJECTED, R.TRIAGE_RESPONSE)


def _returned_or_cancelled(r: dict) -> bool:
    """Cancelled by the provider (the referrer learns of it here); a referrer's own cancellation is not listed."""
    return r["state"] == R.CANCELLED_REFERRAL and r.get("cancelledBy") == "provider"


def _awaiting_booking(r: dict) -> bool:
    return r["state"] in (R.NOT_BOOKED, R.APP_CANCELLED_BY_PATIENT)


# list type -> (provider list?, selects, item extension name)
LISTS: dict[str, tuple[bool, Callable[[dict], bool], str]] = {
    "REFERRALS_FOR_REVIEW": (True, _reviewable, "ReferralsforReview"),
    "APPOINTMENT_SLOT_ISSUES": (True, _slot_issue, "AppointmentSlotIssues"),
    "REJECTED_TRIAGE_RESPONSE": (False, _returned, "RejectedTriageResponse"),
    "ASSESSMENT_RETURNED_CANCELLED_DNA": (False, _returned_or_cancelled, "AssessmentReturnedCancelledDna"),
    "AWAITING_BOOKING": (False, _awaiting_booking, "AwaitingBooking"),
    "LETTERS_OUTSTANDING": (False, lambda r: r["state"] != R.CANCELLED_REFERRAL, "LettersOutstanding"),
}


def fetch_worklist(call: ErsCall, ex: ExchangeContext) -> Answer:
    body = require_parameters(call, ex)
    if param(body, "listType") is None:
        raise R.refuse(ex, R.REQ_WORKLIST, 422, "MISSING_VALUE", "The 'listType' parameter is required",
                       "parameter[listType]")
    list_type = param_code(body, "listType")
    if list_type not in LISTS:
        raise R.refuse(ex, R.REQ_WORKLIST, 422, "INVALID_CODE", f"listType {list_type!r} is not one of "
                       f"{', '.join(LISTS)}", "parameter[listType]")
    for_providers, selects, item_name = LISTS[list_type]
    who = R.caller(call, ex)
    if who.provider != for_providers:
        raise R.refuse(ex, R.REQ_WORKLIST, 422, "INVALID_VALUE", f"{list_type} is a "
                       f"{'service provider' if for_providers else 'referrer'}'s worklist, not a "
                       f"{who.business_function}'s", "parameter[listType]")
    world = current_world()
    specialty = param_code(body, "specialty")
    service = param_identifier(body, "service")
    clinician = param_identifier(body, "clinician")
    if service is not None and world.service(service) is None:
        raise R.refuse(ex, R.REQ_WORKLIST, 422, "REFERENCE_NOT_FOUND", f"No service {service}", "parameter[service]")
    printed = _printed(call.session) if list_type == "LETTERS_OUTSTANDING" else set()
    chosen = []
    for record in R.all_records(call.session):
        if not selects(record) or record["ubrn"] in printed:
            continue
        if for_providers:
            if who.ods and who.ods not in R.provider_organisations(record, world):
                continue
        elif who.ods and who.ods != record["referrer"]["ods"]:
            continue
        if specialty is not None and record.get("specialty") != specialty:
            continue
        if service is not None and service != record.get("service") and service not in record["shortlist"]:
            continue
        if clinician is not None and (record.get("appointment") or {}).get("clinician") != clinician:
            continue
        chosen.append(record)
    ex.add(Finding.passed(R.REQ_WORKLIST, f"{list_type}: {len(chosen)} referral(s)"))
    entries = [_entry(record, item_name, world) for record in chosen]
    patients = sorted({r["patient"] for r in chosen}) if list_type == "REFERRALS_FOR_REVIEW" else []
    contained = [{"id": f"Patient-{p}", "meta": {"profile": [PROFILE + "eRS-Patient-1"]}, "resourceType": "Patient",
                  "identifier": [{"system": NHS_NUMBER, "value": p}]} for p in patients]
    answer: dict = {"meta": {"profile": [PROFILE + "eRS-FetchWorklist-List-1"]}, "resourceType": "List"}
    if contained:
        answer["contained"] = contained
    answer.update(status="current", mode="snapshot", entry=entries)
    return Answer(200, answer)


def _printed(session: str) -> set[str]:
    from sandbox.runtime import current_sandbox

    return set(current_sandbox().store.state.items(session, LETTERS_PRINTED))


def mark_letter_printed(call: ErsCall, ex: ExchangeContext, ubrn: str) -> None:
    from sandbox.runtime import current_sandbox

    store = current_sandbox().store
    when = R.now()
    ex.write_with_record(lambda: store.state.put(call.session, LETTERS_PRINTED, ubrn, {"printed": when}))


def _coded(url: str, system: str, code: str, display: str | None = None) -> dict:
    coding = {"system": system, "code": code, **({"display": display} if display else {})}
    return {"url": url, "valueCodeableConcept": {"coding": [coding]}}


# How a worklist item names a referral's state (Extension-WorklistItem-Status: its own displays).
STATUS_DISPLAY = {"REJECTED": "Rejected", "CANCELLED_REFERRAL": "Cancelled referral", "NOT_BOOKED": "Not booked",
                  "BOOKED": "Booked", "AWAITING_TRIAGE": "Awaiting triage", "DEFERRED_TO_PROVIDER": "Deferred to provider",
                  "APP_CANCELLED_BY_PATIENT": "Appointment cancelled by patient",
                  "APP_CANCELLED_BY_PROVIDER": "Appointment cancelled by provider",
                  "TRIAGED_PROVIDER_TO_ACTION": "Triaged - provider to action", "TRIAGE_RESPONSE": "Triage Response"}
REVIEW_REASON = CS + "eRS-ReviewReason-1"
# The code system of the reason each referrer's list may show.
REASON_SYSTEM = {"RejectedTriageResponse": "APPOINTMENT-CANCELLATION-REASON",
                 "AssessmentReturnedCancelledDna": "REFERRAL-CANCELLATION-REASON",
                 "AwaitingBooking": "APPOINTMENT-CANCELLATION-REASON"}
LETTER_DUE_DAYS = 14


def _service(record: dict, world: World) -> list[dict]:
    service = world.service(record.get("service") or "") or world.service(record["shortlist"][0])
    if service is None:
        return []
    return [{"url": "service", "valueReference": {"identifier": {"system": ERS_SERVICE, "value": service.id},
                                                  "display": service.name}}]


def _provider_item(record: dict, item_name: str, world: World) -> list[dict]:
    parts: list[dict] = [_coded("priority", PRIORITY_SYSTEM, record["priority"]),
                         _coded("specialty", SPECIALTY_SYSTEM, record.get("specialty") or "")]
    if item_name == "ReferralsforReview":
        parts.append({"url": "patient", "valueReference": {"reference": f"#Patient-{record['patient']}"}})
    else:
        parts.append({"url": "patient", "valueReference": {"identifier": {"system": NHS_NUMBER,
                                                                          "value": record["patient"]}}})
    parts += [{"url": "eReferralPathwayStart", "valueDateTime": record["pathwayStart"]},
              {"url": "clinicalInfoPrinted", "valueBoolean": False}]
    appointment = record.get("appointment") or {}
    if item_name == "ReferralsforReview":
        parts.append(_coded("requestContextStatus", CS + "eRS-RequestContextStatus-1", "NEVER_REVIEWED",
                            "Never Reviewed"))
        if record.get("clinicalInfoFirstSubmitted"):
            parts.append({"url": "clinicalInfoFirstSubmitted", "valueDateTime": record["clinicalInfoFirstSubmitted"]})
        parts.append(_coded("referralType", CS + "eRS-ReferralType-1",
                            "TRIAGE_DEFERRAL" if record["state"] == R.AWAITING_TRIAGE else "APPOINTMENT"))
        if appointment.get("start") and appointment.get("status") == "booked":
            parts.append({"url": "appointmentStart", "valueDateTime": appointment["start"]})
        parts += _service(record, world)
        parts.append({"url": "referralRequestVersion", "valueInteger": record["version"]})
        return parts
    parts.append({"url": "ubrnReceived", "valueDateTime": record["created"]})
    reason = record.get("reason") or appointment.get("reason") or {}
    if reason.get("system") == REVIEW_REASON:
        parts.append(_coded("reason", REVIEW_REASON, reason["code"]))
    return parts + _service(record, world)


def _referrer_item(record: dict, item_name: str) -> list[dict]:
    context = "/".join(x for x in (record.get("specialty"), record.get("clinicType")) if x) or "UNSPECIFIED"
    parts = [{"url": "patient", "valueReference": {"identifier": {"system": NHS_NUMBER, "value": record["patient"]}}},
             _coded("priority", PRIORITY_SYSTEM, record["priority"]),
             {"url": "referralCreated", "valueDateTime": record["created"]},
             {"url": "clinicalContext", "valueString": context},
             {"url": "referrer", "valueReference": {"identifier": {"system": SDS_USER,
                                                                   "value": record["referrer"]["user"] or "-"}}}]
    if item_name == "LettersOutstanding":
        created = datetime.fromisoformat(record["created"].replace("Z", "+00:00"))
        return parts + [{"url": "letterDue", "valueDate": (created + timedelta(days=LETTER_DUE_DAYS)).date().isoformat()}]
    parts += [{"url": "referralLastUpdated", "valueDateTime": record["updated"]},
              _coded("status", STATE_SYSTEM, record["state"], STATUS_DISPLAY.get(record["state"]))]
    reason = record.get("reason") or {}
    if reason.get("system", "").endswith(REASON_SYSTEM.get(item_name, "-")):
        parts.append(_coded("reason", "_baseurl_/STU3/CodeSystem/" + REASON_SYSTEM[item_name], reason["code"],
                            reason.get("display") or reason["code"]))
    return parts


def _entry(record: dict, item_name: str, world: World) -> dict:
    provider = item_name in ("ReferralsforReview", "AppointmentSlotIssues")
    parts = _provider_item(record, item_name, world) if provider else _referrer_item(record, item_name)
    return {"extension": [{"extension": parts,
                           "url": f"{PROFILE}Extension-eRS-{item_name}-WorkListItem-1"}],
            "item": {"reference": f"ReferralRequest/{record['ubrn']}"}}
