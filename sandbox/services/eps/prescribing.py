"""The prescriber's operations over the session's prescriptions: $prepare (the digest to sign), the order (signature
checked, then 0001 To be Dispensed) and the cancellation (answered as live: cancelled, marked for cancellation, or
refused with the cancellation status of the prescription's state)."""

from __future__ import annotations

from sandbox.conformance.findings import Finding, SpineError
from sandbox.runtime import current_sandbox
from sandbox.services.eps import cancellations, orders, prescriptions, resources, signatures, translation
from sandbox.services.eps.context import (
    CANCELLED,
    ITEM_ID_SYSTEM,
    ROLE_PROFILE_SYSTEM,
    USER_ID_SYSTEM,
    Answer,
    EpsCall,
)
from sandbox.services.eps.errors import eps_error, informational
from sandbox.web.pipeline import ExchangeContext

REQ_DUPLICATE = "EPS-RX-001"
REQ_ORDER = "EPS-RX-002"
REQ_CANCEL = "EPS-RX-003"
REQ_CANCEL_PATIENT = "EPS-RX-004"
REQ_CANCEL_PENDING = "EPS-RX-006"


def prepare(call: EpsCall, ex: ExchangeContext) -> Answer:
    """$prepare: the Parameters (digest, timestamp, algorithm) of signatures.prepare."""
    return Answer(200, signatures.prepare(call))


def _duplicate(short_form: str) -> SpineError:
    return eps_error(400, "duplicate", "DUPLICATE_PRESCRIPTION_ID", "Duplicate prescription ID exists",
                     f"A prescription with id {short_form} already exists in this session: each order needs a new "
                     "prescription id.")


def order(call: EpsCall, ex: ExchangeContext) -> Answer:
    """A signed prescription order: its signature verified, then stored as 0001 To be Dispensed."""
    short_form = orders.short_form(call.body)
    if not short_form or not isinstance(call.body, dict):
        raise prescriptions.refuse(ex, REQ_ORDER, eps_error(
            400, "value", "MISSING_VALUE", "Required value missing",
            "The order's MedicationRequest carries no groupIdentifier with system "
            "https://fhir.nhs.uk/Id/prescription-order-number."))
    check = signatures.verify(call.body, current_sandbox().store, trusted_example=call.example is not None)
    ex.add(check.finding())
    if not check.valid:
        raise check.error or eps_error(400, "invalid", "INVALID_VALUE", "Signature is invalid.", check.message)
    if prescriptions.find(call.session, short_form) is not None:
        raise prescriptions.refuse(ex, REQ_DUPLICATE, _duplicate(short_form))
    moment = prescriptions.now(call.session)
    record = orders.record_of(call.body, moment)
    prescriptions.save(call, ex, record, new=True, conflict=_duplicate(short_form), requirement=REQ_DUPLICATE)
    ex.add(Finding.passed(REQ_ORDER, f"Prescription {short_form} ordered: 0001 To be Dispensed, "
                          f"{record['issues']} issue(s), expires {record['expires']}"))
    return Answer(200, informational(), translation=translation.translate(call))


def _canceller(call: EpsCall, request: dict) -> str | None:
    """Who asks for the cancellation: the CIS2 user, else the cancellation's requester role profile."""
    if call.access is not None and call.access.user_id:
        return call.access.user_id
    for role in resources.entries(call.body, "PractitionerRole"):
        value = resources.identifier_value(role.get("identifier"), ROLE_PROFILE_SYSTEM)
        if value:
            return value
    return resources.find_identifier(request.get("requester"), USER_ID_SYSTEM)


def cancel(call: EpsCall, ex: ExchangeContext) -> Answer:
    moment = prescriptions.now(call.session)
    request = resources.first(call.body, "MedicationRequest")
    short_form = orders.short_form(call.body)
    if request is None or not short_form:
        ex.add(Finding.failed(REQ_CANCEL, "The cancellation names no prescription (MedicationRequest "
                              "groupIdentifier): Spine answers R-5888 Invalid Message"))
        return cancellations.answer("R-5888", None, moment)
    if prescriptions.find(call.session, short_form) is None:
        ex.add(Finding.failed(REQ_CANCEL, f"Prescription {short_form} is not one this session holds: R-0008"))
        return cancellations.answer("R-0008", call.body, moment)
    record = prescriptions.require(call, ex, short_form)
    item_id = resources.identifier_value(request.get("identifier"), ITEM_ID_SYSTEM)
    known_items = {entry["id"] for entry in record.get("items", [])}
    if item_id and known_items and item_id.lower() not in known_items:
        ex.add(Finding.failed(REQ_CANCEL, f"Item {item_id} is not an item of prescription {short_form}: R-0008"))
        return cancellations.answer("R-0008", call.body, moment)
    patient = orders.nhs_number(call.body)
    if patient != record.get("patient"):
        ex.add(Finding.failed(REQ_CANCEL_PATIENT, f"The cancellation's NHS number {patient} is not prescription "
                              f"{short_form}'s ({record.get('patient')}): R-5000"))
        return cancellations.answer("R-5000", call.body, moment)
    ex.add(Finding.passed(REQ_CANCEL_PATIENT, f"The cancellation's NHS number matches prescription {short_form}"))
    canceller = _canceller(call, request)
    pending = record.get("pending_cancellation")
    if pending and pending.get("by") != canceller:
        ex.add(Finding.failed(REQ_CANCEL_PENDING, f"Prescription {short_form} is already marked for cancellation "
                              f"by another prescriber ({pending.get('by')}): R-0007"))
        return cancellations.answer("R-0007", call.body, moment, record.get("owner"))
    code = cancellations.BY_STATUS.get(record["status"], "R-5888")
    owner = record.get("owner")
    if code == "R-0001":
        record = prescriptions.changed(record, "cancel", CANCELLED, moment, who={"user": canceller})
        prescriptions.save(call, ex, record, requirement=REQ_CANCEL)
        ex.add(Finding.passed(REQ_CANCEL, f"Prescription {short_form} cancelled (R-0001)"))
        result = cancellations.answer(code, call.body, moment)
        result.translation = translation.translate(call)
        return result
    if code in cancellations.MARKS_PENDING and not pending:
        record["pending_cancellation"] = {"by": canceller, "at": prescriptions.stamp(moment), "code": code}
        record["history"].append(prescriptions.history_entry(record, "cancellation-pending", record["status"],
                                                             moment, who={"user": canceller}))
        prescriptions.save(call, ex, record, requirement=REQ_CANCEL)
    ex.add(Finding.info(REQ_CANCEL, f"Prescription {short_form} is {record['status']}: Spine answers {code}"))
    return cancellations.answer(code, call.body, moment, owner)
