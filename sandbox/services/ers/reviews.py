"""What a service provider does with a referral into its own services: A013 accept, A014 reject (back to the
referrer), A028 record the triage outcome, A022 cancel the appointment and action later."""

from __future__ import annotations

from sandbox.conformance.findings import Finding
from sandbox.services.ers import referrals as R
from sandbox.services.ers.context import Answer, ErsCall
from sandbox.services.ers.referral_requests import referral_answer, require_parameters
from sandbox.services.ers.resources import CS, param_code, param_string
from sandbox.services.ers.world import BOOKABLE, current_world
from sandbox.web.pipeline import ExchangeContext

APPOINTMENT_CANCELLATION_SYSTEM = "_baseurl_/STU3/CodeSystem/APPOINTMENT-CANCELLATION-REASON"
REVIEW_OUTCOME_SYSTEM = CS + "eRS-ReviewOutcome-1"
# APPOINTMENT-CANCELLATION-REASON codes a provider may reject with.
REJECTION_REASONS = {
    "FURTHER_INFORMATION_REQUIRED": "Further information required",
    "OTHER": "Other reason",
    "OUTPATIENT_APPT_NOT_REQUIRED": "Outpatient appointment not required",
    "SERVICE_INAPPROPRIATE": "Inappropriate service",
    "SERVICE_PREREQUISITES_NOT_COMPLETE": "Pre-requisites for service not complete",
}
ACCEPT_REFER_BOOK_LATER = "ACCEPT_REFER_BOOK_LATER"
RETURN_TO_REFERRER_WITH_ADVICE = "RETURN_TO_REFERRER_WITH_ADVICE"
REVIEW_OUTCOMES = {ACCEPT_REFER_BOOK_LATER: "Accept Refer Book Later",
                   RETURN_TO_REFERRER_WITH_ADVICE: "Return to Referrer With Advice"}
CAAL = "CANCEL_APPOINTMENT_ACTION_LATER"
PRIORITIES = ("ROUTINE", "URGENT", "TWO_WEEK_WAIT")


def _provider_change(call: ErsCall, ex: ExchangeContext, allowed: tuple[str, ...], action: str) -> dict:
    record = R.require(call, ex)
    R.check_relationship(ex, R.caller(call, ex, record), record)
    R.check_if_match(call, ex, record["version"], f"referral {record['ubrn']}")
    R.require_state(ex, record, allowed, action)
    return record


def _cancel_appointment(record: dict) -> tuple[dict | None, str | None]:
    """The referral's appointment, cancelled (a new version), and the slot it frees."""
    appointment = record.get("appointment")
    if appointment is None or appointment["status"] == "cancelled":
        return None, None
    freed = appointment.get("slot") if appointment["status"] == "booked" else None
    cancelled = dict(appointment, status="cancelled", version=appointment["version"] + 1)
    record["appointment"] = cancelled
    return cancelled, freed


def _required_text(ex: ExchangeContext, body: dict, name: str, requirement: str) -> str:
    text = param_string(body, name)
    if text is None or not text.strip():
        raise R.refuse(ex, requirement, 422, "VALUE_IS_REQUIRED", f"The '{name}' parameter is required",
                       f"parameter[{name}]")
    return text


# --- A013 accept ------------------------------------------------------------------------------------------------
def accept_referral(call: ErsCall, ex: ExchangeContext) -> Answer:
    record = _provider_change(call, ex, (R.BOOKED,), "accept the referral")
    service = current_world().service(record.get("service") or "")
    if service is None or service.kind not in BOOKABLE:
        raise R.refuse(ex, R.REQ_STATE, 422, "INVALID_REQUEST_STATE", f"Referral {record['ubrn']} is not booked into "
                       "a bookable service: triage referrals are reviewed with A028")
    if record.get("accepted"):
        raise R.refuse(ex, R.REQ_STATE, 422, "INVALID_REQUEST_STATE", f"Referral {record['ubrn']} has already been "
                       "accepted")
    new = R.changed(record)
    new.update(accepted=True, reviewed=True)
    R.save(call, ex, new)
    ex.add(Finding.info(R.REQ_STATE, f"Referral {new['ubrn']} accepted by {call.ods_code or 'the provider'}"))
    return referral_answer(new, current_world())


# --- A014 reject ------------------------------------------------------------------------------------------------
def reject_referral(call: ErsCall, ex: ExchangeContext) -> Answer:
    record = _provider_change(call, ex, (R.BOOKED, R.DEFERRED_TO_PROVIDER), "reject the referral")
    if record.get("accepted"):
        raise R.refuse(ex, R.REQ_STATE, 422, "INVALID_REQUEST_STATE", f"Referral {record['ubrn']} has been accepted: "
                       "it can no longer be rejected")
    body = require_parameters(call, ex)
    code = param_code(body, "rejectionReason")
    if code is None:
        raise R.refuse(ex, R.REQ_REVIEW, 422, "MISSING_VALUE", "The 'rejectionReason' parameter is required",
                       "parameter[rejectionReason]")
    if code not in REJECTION_REASONS:
        raise R.refuse(ex, R.REQ_REVIEW, 422, "INAPPROPRIATE_VALUE", f"{code!r} is not an APPOINTMENT-CANCELLATION-"
                       f"REASON a provider may reject with ({', '.join(REJECTION_REASONS)})",
                       "parameter[rejectionReason]")
    comments = _required_text(ex, body, "rejectionComments", R.REQ_REVIEW)
    ex.add(Finding.passed(R.REQ_REVIEW, f"Rejected with {code}"))
    new = R.changed(record)
    appointment, freed = _cancel_appointment(new)
    new.update(state=R.REJECTED, comments=comments, reviewed=True,
               reason={"system": APPOINTMENT_CANCELLATION_SYSTEM, "code": code, "display": REJECTION_REASONS[code]})
    R.save(call, ex, new, appointment=appointment, free_slot=freed)
    return referral_answer(new, current_world())


# --- A028 triage outcome ------------------------------------------------------------------------------------------
def record_triage_outcome(call: ErsCall, ex: ExchangeContext) -> Answer:
    record = _provider_change(call, ex, (R.AWAITING_TRIAGE,), "record a triage outcome")
    body = require_parameters(call, ex)
    outcome = param_code(body, "reviewOutcome")
    if outcome is None:
        raise R.refuse(ex, R.REQ_REVIEW, 422, "MISSING_VALUE", "The 'reviewOutcome' parameter is required",
                       "parameter[reviewOutcome]")
    if outcome not in REVIEW_OUTCOMES:
        raise R.refuse(ex, R.REQ_REVIEW, 422, "INVALID_CODE", f"{outcome!r} is not a review outcome "
                       f"({', '.join(REVIEW_OUTCOMES)})", "parameter[reviewOutcome]")
    comments = _required_text(ex, body, "reviewComments", R.REQ_REVIEW)
    priority = param_code(body, "reviewPriority")
    if priority is not None and priority not in PRIORITIES:
        raise R.refuse(ex, R.REQ_REVIEW, 422, "INVALID_CODE", f"{priority!r} is not a priority", "reviewPriority")
    if outcome == RETURN_TO_REFERRER_WITH_ADVICE and priority is not None:
        raise R.refuse(ex, R.REQ_REVIEW, 422, "INAPPROPRIATE_VALUE", "A priority is set only when accepting the "
                       "referral (ACCEPT_REFER_BOOK_LATER)", "reviewPriority")
    new = R.changed(record)
    _link_provider_file(call, ex, body, new, "reviewAttachmentFile")
    new.update(comments=comments, reviewed=True,
               reason={"system": REVIEW_OUTCOME_SYSTEM, "code": outcome, "display": REVIEW_OUTCOMES[outcome]})
    appointment = None
    if outcome == RETURN_TO_REFERRER_WITH_ADVICE:
        appointment, _ = _cancel_appointment(new)
        new["state"] = R.TRIAGE_RESPONSE
    else:
        new["state"] = R.TRIAGED_PROVIDER_TO_ACTION
        new["priority"] = priority or new["priority"]
    ex.add(Finding.passed(R.REQ_REVIEW, f"Triage outcome {outcome} recorded"))
    R.save(call, ex, new, appointment=appointment)
    return referral_answer(new, current_world())


# --- A022 cancel appointment, action later ---------------------------------------------------------------------
def cancel_appointment_action_later(call: ErsCall, ex: ExchangeContext) -> Answer:
    record = _provider_change(call, ex, (R.BOOKED, R.DEFERRED_TO_PROVIDER), "cancel the appointment and action later")
    body = require_parameters(call, ex)
    comments = _required_text(ex, body, "comments", R.REQ_REVIEW)
    priority = param_code(body, "priority")
    if priority is not None and priority not in PRIORITIES:
        raise R.refuse(ex, R.REQ_REVIEW, 422, "INVALID_CODE", f"{priority!r} is not a priority", "priority")
    new = R.changed(record)
    _link_provider_file(call, ex, body, new, "providerAttachmentFile")
    appointment, freed = _cancel_appointment(new)
    new.update(state=R.TRIAGED_PROVIDER_TO_ACTION, comments=comments, reviewed=True, accepted=False,
               reason={"system": REVIEW_OUTCOME_SYSTEM, "code": CAAL, "display": "Cancel Appointment Action Later"})
    if priority is not None:
        new["priority"] = priority
    ex.add(Finding.passed(R.REQ_REVIEW, "Appointment cancelled, to be actioned later"))
    R.save(call, ex, new, appointment=appointment, free_slot=freed)
    return referral_answer(new, current_world())


def _link_provider_file(call: ErsCall, ex: ExchangeContext, body: dict, record: dict, name: str) -> None:
    """A provider's file sent with the outcome (uploaded with A020), linked to the referral as a PROVIDER
    DocumentReference."""
    from sandbox.services.ers import attachments  # here: attachments reads referrals, as this module does
    from sandbox.services.ers.resources import param

    entries = [p for p in body.get("parameter", []) if isinstance(p, dict) and p.get("name") == name]
    if not entries or param(body, name) is None:
        return
    linked = [d["content"][0]["attachment"]["title"] for d in record.get("documents", [])
              if isinstance(d, dict) and d.get("content")]  # the sandbox's own DocumentReferences
    records = []
    for entry in entries:
        found, resource = attachments.linked_document(ex, call.session, entry.get("resource"), "PROVIDER",
                                                      record["ubrn"], R.REQ_REVIEW, f"parameter[{name}]")
        records.append(found)
        record.setdefault("documents", []).append(resource)
    attachments.check_unique_names(ex, records, linked, R.REQ_REVIEW)
