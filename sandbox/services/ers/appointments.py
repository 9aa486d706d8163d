"""Appointments of the session's referrals: A016 book a slot or defer to the provider (or send for triage), A034
cancel an appointment (the referrer, for the patient), A038 read an appointment (and versioned)."""

from __future__ import annotations

from typing import Any

from sandbox.conformance.findings import Finding
from sandbox.services.ers import referrals as R
from sandbox.services.ers.context import Answer, ErsCall
from sandbox.services.ers.referral_requests import REVIEW_REASON_SYSTEM, send_for_triage
from sandbox.services.ers.resources import ERS_SERVICE, NHS_NUMBER, appointment_resource, coding_code
from sandbox.services.ers.slots import find_slot, service_slots
from sandbox.services.ers.world import BOOKABLE, RAS, current_world
from sandbox.web.pipeline import ExchangeContext

APPOINTMENT_CANCELLATION_SYSTEM = "_baseUrl_/STU3/CodeSystem/APPOINTMENT-CANCELLATION-REASON"
# APPOINTMENT-CANCELLATION-REASON codes a referrer may cancel with: code -> (display, comment mandatory).
PATIENT_CANCELLATION_REASONS = {
    "PATIENT_APPOINTMENT_CANCELLATION_OTHER": ("Other", True),
    "PATIENT_HOLIDAY": ("Patient on holiday", False),
    "PATIENT_ILL": ("Patient is sick", False),
    "PATIENT_OTHER_ENGAGEMENT": ("Patient - Other more pressing engagement", True),
}
# Review reasons (eRS-ReviewReason-1) a referrer may defer a booking with.
DEFERRAL_REASONS = ("NO_SLOTS_AT_SERVICE", "SLOT_NOT_AVAILABLE", "BOOKING_ATTEMPT_PROBLEM", "TRIAGE")


def _require_appointment_body(call: ErsCall, ex: ExchangeContext) -> dict:
    body = call.body
    if not isinstance(body, dict) or body.get("resourceType") != "Appointment":
        raise R.refuse(ex, R.REQ_BODY, 422, "INVALID_VALUE", "The body must be an eRS-Appointment-1 resource", "body")
    return body


def _participant(body: dict, system: str) -> str | None:
    for participant in body.get("participant", []) if isinstance(body.get("participant"), list) else []:
        actor = participant.get("actor") if isinstance(participant, dict) else None
        ident = actor.get("identifier") if isinstance(actor, dict) else None
        if isinstance(ident, dict) and ident.get("system") == system and isinstance(ident.get("value"), str):
            return ident["value"]
    return None


def _first_reference(body: dict, name: str) -> Any:
    items = body.get(name)
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return items[0].get("reference")
    return None


def _reason_code(body: dict) -> str | None:
    reasons = body.get("reason")
    return coding_code(reasons[0]) if isinstance(reasons, list) and reasons else None


# --- A016 book or defer ---------------------------------------------------------------------------------------------
def book_or_defer(call: ErsCall, ex: ExchangeContext) -> Answer:
    body = _require_appointment_body(call, ex)
    referred = R.reference_ubrn(_first_reference(body, "incomingReferral"))
    if referred is None:
        raise R.refuse(ex, R.REQ_BOOKING, 422, "MISSING_VALUE", "incomingReferral[0].reference must name the referral "
                       "as ReferralRequest/<ubrn>/_history/<version>", "incomingReferral")
    ubrn, version = referred
    record = R.find(call.session, ubrn)
    if record is None:
        raise R.refuse(ex, R.REQ_KNOWN, 422, "REFERENCE_NOT_FOUND", f"No referral with UBRN {ubrn}", "incomingReferral")
    record = R.require(call, ex, ubrn)
    R.check_relationship(ex, R.caller(call, ex, record), record)
    if version is not None and version != record["version"]:
        raise R.refuse(ex, R.REQ_IF_MATCH, 409, "VERSION_MISMATCH", f"incomingReferral names version {version} of "
                       f"{ubrn}, but the current version is {record['version']}", "incomingReferral")
    R.require_state(ex, record, R.UNBOOKED, "book or defer an appointment")
    service_id = _participant(body, ERS_SERVICE)
    if service_id is None:
        raise R.refuse(ex, R.REQ_BOOKING, 422, "MISSING_VALUE", "A participant must identify the service (ers-service)",
                       "participant")
    if service_id not in record["shortlist"]:
        raise R.refuse(ex, R.REQ_BOOKING, 422, "INAPPROPRIATE_VALUE", f"Service {service_id} is not on the referral's "
                       f"shortlist ({', '.join(record['shortlist'])}): change the shortlist first (A031)", "participant")
    patient = _participant(body, NHS_NUMBER)
    if patient is not None and patient != record["patient"]:
        raise R.refuse(ex, R.REQ_BOOKING, 422, "INAPPROPRIATE_VALUE", f"The patient participant {patient} is not the "
                       f"referral's patient", "participant")
    service = current_world().service(service_id)
    status = body.get("status")
    new = R.changed(record)
    if status == "booked":
        appointment, slot = _book(call, ex, body, new, service)
        R.save(call, ex, new, appointment=appointment, take_slot=slot)
    elif status == "proposed":
        appointment = _defer(call, ex, body, new, service)
        R.save(call, ex, new, appointment=appointment)
    else:
        raise R.refuse(ex, R.REQ_BOOKING, 422, "INVALID_VALUE", f"status {status!r}: 'booked' books a slot, 'proposed' "
                       "defers to the provider", "status")
    world = current_world()
    resource = appointment_resource(appointment, ubrn, new["version"], new["patient"], world)
    return Answer(201, resource, etag=R.etag(appointment["version"]))


def _book(call: ErsCall, ex: ExchangeContext, body: dict, record: dict, service) -> tuple[dict, str]:
    if service.kind not in BOOKABLE:
        raise R.refuse(ex, R.REQ_BOOKING, 422, "INAPPROPRIATE_VALUE", f"Service {service.id} is not bookable: send the "
                       "referral for triage instead", "participant")
    reference = _first_reference(body, "slot")
    slot_id = reference.removeprefix("Slot/") if isinstance(reference, str) else None
    if not slot_id:
        raise R.refuse(ex, R.REQ_BOOKING, 422, "MISSING_VALUE", "slot[0].reference (Slot/<id>) is required to book",
                       "slot")
    slot = find_slot(slot_id)
    if slot is None or slot["service"] != service.id:
        raise R.refuse(ex, R.REQ_BOOKING, 422, "INAPPROPRIATE_SLOT", f"Slot {slot_id} is not a slot of service "
                       f"{service.id} (A015 lists them)", "slot")
    if R.slot_taken(call.session, slot_id) is not None:
        raise R.refuse(ex, R.REQ_BOOKING, 422, "SLOT_NOT_AVAILABLE", f"Slot {slot_id} is already booked", "slot")
    ex.add(Finding.passed(R.REQ_BOOKING, f"Slot {slot_id} of service {service.id} booked"))
    appointment = {"id": R.next_appointment_id(call.session), "version": 1, "status": "booked", "service": service.id,
                   "slot": slot_id, "start": slot["start"], "end": slot["end"], "clinician": slot["clinician"],
                   "created": R.now(), "reason": None, "kind": "booking"}
    record.update(state=R.BOOKED, service=service.id, appointment=appointment, reason=None, comments=None,
                  accepted=False, reviewed=False)
    record["clinicalInfoFirstSubmitted"] = record.get("clinicalInfoFirstSubmitted") or R.now()
    return appointment, slot_id


def _defer(call: ErsCall, ex: ExchangeContext, body: dict, record: dict, service) -> dict:
    reason = _reason_code(body)
    if reason not in DEFERRAL_REASONS:
        raise R.refuse(ex, R.REQ_BOOKING, 422, "INVALID_CODE" if reason else "MISSING_VALUE",
                       f"A deferral needs reason[0] from eRS-ReviewReason-1 ({', '.join(DEFERRAL_REASONS)}), not "
                       f"{reason!r}", "reason")
    if reason == "TRIAGE":
        if service.kind != RAS:
            raise R.refuse(ex, R.REQ_BOOKING, 422, "INAPPROPRIATE_VALUE", f"Service {service.id} is not a triage "
                           "service", "participant")
        record["shortlist"] = [service.id] + [i for i in record["shortlist"] if i != service.id]
        appointment = send_for_triage(call, record)
        ex.add(Finding.passed(R.REQ_BOOKING, f"Sent for triage to service {service.id}"))
        return appointment
    if service.kind not in BOOKABLE:
        raise R.refuse(ex, R.REQ_BOOKING, 422, "INAPPROPRIATE_VALUE", f"Service {service.id} is not bookable: it "
                       "cannot take a deferral", "participant")
    if reason == "NO_SLOTS_AT_SERVICE" and any(R.slot_taken(call.session, s["id"]) is None
                                               for s in service_slots(service)):
        raise R.refuse(ex, R.REQ_BOOKING, 422, "SLOTS_CURRENTLY_AVAILABLE", f"Service {service.id} has free slots "
                       "(A015): book one rather than deferring", "reason")
    ex.add(Finding.passed(R.REQ_BOOKING, f"Deferred to the provider of service {service.id} ({reason})"))
    comment = body.get("comment") if isinstance(body.get("comment"), str) else None
    appointment = {"id": R.next_appointment_id(call.session), "version": 1, "status": "proposed",
                   "service": service.id, "slot": None, "start": None, "end": None, "created": R.now(),
                   "reason": {"system": REVIEW_REASON_SYSTEM, "code": reason}, "comment": comment, "kind": "deferral"}
    record.update(state=R.DEFERRED_TO_PROVIDER, service=service.id, appointment=appointment, comments=None,
                  reason={"system": REVIEW_REASON_SYSTEM, "code": reason}, accepted=False, reviewed=False)
    record["clinicalInfoFirstSubmitted"] = record.get("clinicalInfoFirstSubmitted") or R.now()
    return appointment


# --- A038 read ---------------------------------------------------------------------------------------------------
def _require_appointment(call: ErsCall, ex: ExchangeContext) -> dict:
    appointment_id = call.params.get("appointment_id", "")
    current = R.appointment_current(call.session, appointment_id)
    if current is None:
        raise R.refuse(ex, R.REQ_KNOWN, 404, "REFERENCE_NOT_FOUND", f"No appointment {appointment_id!r}",
                       "appointment_id")
    return current


def retrieve_appointment(call: ErsCall, ex: ExchangeContext) -> Answer:
    current = _require_appointment(call, ex)
    record = R.require(call, ex, current["ubrn"])
    R.check_relationship(ex, R.caller(call, ex, record), record)
    wanted = call.params.get("version")
    if wanted is not None:
        version = R.whole_number(wanted)
        older = R.appointment_at(call.session, current["appointment"]["id"], version) if version is not None else None
        if older is None:
            raise R.refuse(ex, R.REQ_VERSION, 404, "NOT_FOUND", f"Appointment {current['appointment']['id']} has no "
                           f"version {wanted!r} (versions 1 to {current['appointment']['version']})", "version")
        ex.add(Finding.passed(R.REQ_VERSION, f"Version {version} of appointment read"))
        current = older
    appointment = current["appointment"]
    resource = appointment_resource(appointment, current["ubrn"], current["referralVersion"], current["patient"],
                                    current_world())
    return Answer(200, resource, etag=R.etag(appointment["version"]))


# --- A034 cancel (update) ------------------------------------------------------------------------------------------
def update_appointment(call: ErsCall, ex: ExchangeContext) -> Answer:
    current = _require_appointment(call, ex)
    record = R.require(call, ex, current["ubrn"])
    R.check_relationship(ex, R.caller(call, ex, record), record)
    appointment = current["appointment"]
    R.check_if_match(call, ex, appointment["version"], f"appointment {appointment['id']}")
    live = record.get("appointment") or {}
    if live.get("id") != appointment["id"] or appointment["status"] != "booked":
        raise R.refuse(ex, R.REQ_STATE, 422, "INVALID_REQUEST_STATE", f"Appointment {appointment['id']} is "
                       f"{appointment['status']}: only the referral's booked appointment can be cancelled")
    body = _require_appointment_body(call, ex)
    if body.get("status") != "cancelled":
        raise R.refuse(ex, R.REQ_CANCEL, 422, "INVALID_VALUE", f"status {body.get('status')!r}: an appointment is "
                       "updated only to cancel it ('cancelled')", "status")
    code = _reason_code(body)
    if code is None:
        raise R.refuse(ex, R.REQ_CANCEL, 422, "MISSING_VALUE", "'reason' is missing.", "reason")
    if code not in PATIENT_CANCELLATION_REASONS:
        raise R.refuse(ex, R.REQ_CANCEL, 422, "INVALID_VALUE", f"{code!r} is not an APPOINTMENT-CANCELLATION-REASON a "
                       f"referrer may use ({', '.join(PATIENT_CANCELLATION_REASONS)})", "reason")
    display, comment_needed = PATIENT_CANCELLATION_REASONS[code]
    comment = body.get("comment") if isinstance(body.get("comment"), str) else None
    if comment_needed and not (comment or "").strip():
        raise R.refuse(ex, R.REQ_CANCEL, 422, "MISSING_VALUE", "'comment' is missing.", "comment")
    ex.add(Finding.passed(R.REQ_CANCEL, f"Appointment cancelled with {code}"))
    cancelled = dict(appointment, status="cancelled", version=appointment["version"] + 1, comment=comment,
                     reason={"system": APPOINTMENT_CANCELLATION_SYSTEM, "code": code, "display": display})
    new = R.changed(record)
    new.update(state=R.APP_CANCELLED_BY_PATIENT, service=None, appointment=cancelled, accepted=False, reviewed=False,
               reason=cancelled["reason"], comments=comment)
    R.save(call, ex, new, appointment=cancelled, free_slot=appointment.get("slot"))
    resource = appointment_resource(cancelled, new["ubrn"], new["version"], new["patient"], current_world())
    return Answer(200, resource, etag=R.etag(cancelled["version"]))
