"""What a referrer does to a referral request, and its reads: A011 create, A021 create and send for triage, A031
change shortlist, A032 change shortlist and send for triage, A036 cancel (referrers and providers), A005 read (and
versioned), A007 clinical information summary PDF, A019 patient letter PDF."""

from __future__ import annotations

from datetime import UTC, datetime

from sandbox.conformance.findings import Finding
from sandbox.runtime import current_sandbox
from sandbox.services.ers import referrals as R
from sandbox.services.ers.context import COMM_RULE_ORG, Answer, ErsCall
from sandbox.services.ers.documents import pdf
from sandbox.services.ers.resources import (
    PRIORITIES,
    param,
    param_code,
    param_identifier,
    param_string,
    referral_resource,
    shortlist_of,
    updated_parameters,
)
from sandbox.services.ers.world import ADVICE, RAS, World, current_world
from sandbox.synthetic.identifiers import is_valid_nhs_number
from sandbox.web.pipeline import ExchangeContext

MAX_SHORTLIST = 20
REVIEW_REASON_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/eRS-ReviewReason-1"
CANCELLATION_SYSTEM = "_baseUrl_/STU3/CodeSystem/REFERRAL-CANCELLATION-REASON"

# REFERRAL-CANCELLATION-REASON: code -> (display, comment mandatory, may cancel an appointment, who may use it:
# "R" referrers, "P" providers).
CANCELLATION_REASONS: dict[str, tuple[str, bool, bool, str]] = {
    "BOOKED_CLINICAL_NEED": ("Booked more urgently due to clinical need", True, False, "P"),
    "BOOKED_OUTSIDE_CAB": ("Patient booked outside NHS e-Referral Service", False, True, "P"),
    "COMMUNITY_SERVICE_NA": ("Sent to community service not available in this system", True, False, "P"),
    "COMPLEX_PATHWAY": ("Complex pathway, multiple appointments needed", True, False, "P"),
    "INTEND_PRIVATE": ("Patient will go to a private clinic", False, True, "RP"),
    "NO_LONGER_REQUIRED": ("Referral is no longer required", True, False, "P"),
    "OTHER_OTHER": ("Other reason", True, False, "P"),
    "OUTPATIENT_CLINICIAN_NA": ("Sent to outpatient service as named clinician is not available in this system", True,
                                False, "P"),
    "OUTPATIENT_SERVICE_NA": ("Sent to outpatient service not available in this system", True, False, "P"),
    "PATIENT_DIED": ("Patient died", False, True, "RP"),
    "PATIENT_REQUEST_CANCELLATION_OTHER": ("Other", True, True, "RP"),
    "RAISED_IN_ERROR": ("Referral created by mistake", False, True, "R"),
    "REFERRER_CANCELLATION": ("Other - Referrer request cancellation", False, True, "R"),
    "STRAIGHT_TO_TEST": ("Sent straight to test / procedure", True, False, "P"),
    "TREATMENT_NO_LONGER_REQUIRED": ("Referral no longer needed", False, True, "RP"),
    "TRIAGE_ENDED": ("Triage Ended", False, False, "P"),
}


# --- reading the body ---------------------------------------------------------------------------------------------
def require_parameters(call: ErsCall, ex: ExchangeContext) -> dict:
    body = call.body
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise R.refuse(ex, R.REQ_BODY, 422, "INVALID_FHIR_STRUCTURE", "The body must be a FHIR Parameters resource "
                       f"(application/fhir+json) for {call.operation.api}", "body")
    return body


def require_patient(call: ErsCall, ex: ExchangeContext, body: dict) -> str:
    number = param_identifier(body, "patient")
    if number is None:
        raise R.refuse(ex, R.REQ_PATIENT, 422, "MISSING_VALUE", "The 'patient' parameter (valueIdentifier with the "
                       "patient's NHS number) is required", "parameter[patient]")
    population = current_sandbox().population
    if not is_valid_nhs_number(number) or population.by_nhs_number(number) is None:
        raise R.refuse(ex, R.REQ_PATIENT, 422, "PATIENT_ERROR", f"NHS number {number} is not a patient this sandbox "
                       "knows: use an NHS number of the synthetic population", "parameter[patient]")
    ex.add(Finding.passed(R.REQ_PATIENT, f"Patient {number} found"))
    return number


def require_shortlist(call: ErsCall, ex: ExchangeContext, body: dict, triage: bool) -> tuple[list[str], dict]:
    """The shortlisted services and search criteria, checked against the world: known services, no duplicates, at
    most 20; for triage exactly one referral assessment service; never an advice service."""
    entry = param(body, "shortlist")
    parsed = shortlist_of(entry.get("resource")) if entry is not None else None
    if parsed is None:
        raise R.refuse(ex, R.REQ_SHORTLIST, 422, "MISSING_VALUE", "The 'shortlist' parameter (an eRS-Shortlist-List-1 "
                       "whose entries identify ers-service ids) is required", "parameter[shortlist]")
    ids, criteria = parsed
    world = current_world()
    if not ids:
        raise R.refuse(ex, R.REQ_SHORTLIST, 422, "MISSING_VALUE", "The shortlist names no service",
                       "parameter[shortlist]")
    if len(ids) > MAX_SHORTLIST:
        raise R.refuse(ex, R.REQ_SHORTLIST, 422, "TOO_MANY_ITEMS", f"The shortlist names {len(ids)} services: at most "
                       f"{MAX_SHORTLIST}", "parameter[shortlist]")
    if len(set(ids)) != len(ids):
        raise R.refuse(ex, R.REQ_SHORTLIST, 422, "DUPLICATE_SERVICE", "A service is shortlisted twice",
                       "parameter[shortlist]")
    for service_id in ids:
        service = world.service(service_id)
        if service is None:
            raise R.refuse(ex, R.REQ_SHORTLIST, 422, "SHORTLISTED_SERVICE_NOT_IN_RESULTS", f"Service {service_id} is "
                           "not one a service search (A010) returns for this patient", "parameter[shortlist]")
        if service.kind == ADVICE:
            raise R.refuse(ex, R.REQ_SHORTLIST, 422, "INAPPROPRIATE_VALUE", f"Service {service_id} is an advice and "
                           "guidance service: use A044 to ask it for advice", "parameter[shortlist]")
    if triage and (len(ids) != 1 or world.service(ids[0]).kind != RAS):
        raise R.refuse(ex, R.REQ_SHORTLIST, 422, "INAPPROPRIATE_VALUE", "Sending for triage needs a shortlist of "
                       "exactly one referral assessment (triage) service", "parameter[shortlist]")
    if criteria.get("priority") not in (None, *PRIORITIES):
        raise R.refuse(ex, R.REQ_SHORTLIST, 422, "INVALID_CODE", f"Priority {criteria['priority']!r} is not one of "
                       f"{', '.join(PRIORITIES)}", "parameter[shortlist].contained.priority")
    first = world.service(ids[0])
    criteria.setdefault("specialty", first.specialty)
    criteria.setdefault("clinicType", first.clinic_type)
    criteria.setdefault("priority", "ROUTINE")
    ex.add(Finding.passed(R.REQ_SHORTLIST, f"Shortlist of {len(ids)} known service(s)"))
    return ids, criteria


def _creation_params(call: ErsCall, body: dict) -> dict:
    start = param(body, "eReferralPathwayStart")
    return {"pathwayStart": start.get("valueInstant") if start is not None else None,
            "intention": param_code(body, "intentionToAddReferralLetter"),
            "reminderDays": (param(body, "firstReminderLetterFollowUpDays") or {}).get("valueUnsignedInt"),
            "commRuleOrg": call.header(COMM_RULE_ORG).strip() or None}


def triage_appointment(call: ErsCall, service_id: str, referral_version: int) -> dict:
    """The proposed appointment of a referral sent for triage (reason TRIAGE), as live e-RS keeps one."""
    return {"id": R.next_appointment_id(call.session), "version": 1, "status": "proposed", "service": service_id,
            "reason": {"system": REVIEW_REASON_SYSTEM, "code": "TRIAGE"}, "created": R.now(), "slot": None,
            "start": None, "end": None, "kind": "triage", "referralVersion": referral_version}


def send_for_triage(call: ErsCall, record: dict) -> dict:
    appointment = triage_appointment(call, record["shortlist"][0], record["version"])
    record.update(state=R.AWAITING_TRIAGE, service=record["shortlist"][0], appointment=appointment,
                  reason={"system": REVIEW_REASON_SYSTEM, "code": "TRIAGE"}, comments=None, accepted=False,
                  reviewed=False)
    record["clinicalInfoFirstSubmitted"] = record.get("clinicalInfoFirstSubmitted") or R.now()
    return appointment


def referral_answer(record: dict, world: World, status: int = 200) -> Answer:
    return Answer(status, referral_resource(record, world), etag=R.etag(record["version"]))


# --- A011 / A021 create ---------------------------------------------------------------------------------------
def _create(call: ErsCall, ex: ExchangeContext, triage: bool) -> Answer:
    body = require_parameters(call, ex)
    patient = require_patient(call, ex, body)
    ids, criteria = require_shortlist(call, ex, body, triage)
    who = R.caller(call, ex)
    if not who.ods:  # an unattended call acts for the patient's own practice
        person = current_sandbox().population.by_nhs_number(patient)
        who = R.Caller(who.business_function, (person.gp if person else "") or "", who.user)
    ubrn = R.next_ubrn(call.session)
    record = R.new_record(ubrn, patient, who, ids, criteria, _creation_params(call, body))
    appointment = send_for_triage(call, record) if triage else None
    R.save(call, ex, record, new=True, appointment=appointment)
    ex.add(Finding.info(R.REQ_STATE, f"Referral {ubrn} created for {patient} ({record['state']})"))
    return referral_answer(record, current_world(), 201)


def create_referral(call: ErsCall, ex: ExchangeContext) -> Answer:
    return _create(call, ex, triage=False)


def create_and_send_for_triage(call: ErsCall, ex: ExchangeContext) -> Answer:
    return _create(call, ex, triage=True)


# --- A005 read --------------------------------------------------------------------------------------------------
def retrieve(call: ErsCall, ex: ExchangeContext) -> Answer:
    record = R.require(call, ex)
    R.check_relationship(ex, R.caller(call, ex, record), record)
    wanted = call.params.get("version")
    if wanted is not None:
        version = R.whole_number(wanted)
        older = R.at_version(call.session, record["ubrn"], version) if version is not None else None
        if older is None:
            raise R.refuse(ex, R.REQ_VERSION, 404, "NOT_FOUND", f"Referral {record['ubrn']} has no version "
                           f"{wanted!r} (versions 1 to {record['version']})", "version")
        ex.add(Finding.passed(R.REQ_VERSION, f"Version {version} of {record['ubrn']} read"))
        record = older
    return referral_answer(record, current_world())


# --- A031 / A032 change shortlist ---------------------------------------------------------------------------------
def _change_shortlist(call: ErsCall, ex: ExchangeContext, triage: bool) -> dict:
    record = R.require(call, ex)
    who = R.caller(call, ex, record)
    R.check_relationship(ex, who, record)
    R.check_if_match(call, ex, record["version"], f"referral {record['ubrn']}")
    R.require_state(ex, record, R.UNBOOKED, "change the shortlist")
    body = require_parameters(call, ex)
    ids, criteria = require_shortlist(call, ex, body, triage)
    new = R.changed(record)
    new.update(shortlist=ids, criteria=criteria, priority=criteria["priority"], specialty=criteria["specialty"],
               clinicType=criteria["clinicType"], service=None, state=R.NOT_BOOKED, reason=None, comments=None)
    intention = param_code(body, "intentionToAddReferralLetter")
    if intention:
        new["intention"] = intention
    return new


def change_shortlist(call: ErsCall, ex: ExchangeContext) -> Answer:
    new = _change_shortlist(call, ex, triage=False)
    R.save(call, ex, new)
    return referral_answer(new, current_world())


def change_shortlist_and_send_for_triage(call: ErsCall, ex: ExchangeContext) -> Answer:
    new = _change_shortlist(call, ex, triage=True)
    appointment = send_for_triage(call, new)
    R.save(call, ex, new, appointment=appointment)
    body = updated_parameters("eRS-ChangeShortlistAndSendForTriage-Response-Parameters-1",
                              referral_resource(new, current_world()))
    return Answer(200, body, etag=R.etag(new["version"]))


# --- A036 cancel ------------------------------------------------------------------------------------------------
def cancel_referral(call: ErsCall, ex: ExchangeContext) -> Answer:
    from sandbox.services.ers.resources import appointment_resource

    record = R.require(call, ex)
    who = R.caller(call, ex, record)
    R.check_relationship(ex, who, record)
    R.check_if_match(call, ex, record["version"], f"referral {record['ubrn']}")
    cancellable = tuple(s for s in R.STATE_DISPLAY if s != R.CANCELLED_REFERRAL)
    R.require_state(ex, record, cancellable, "cancel the referral")
    body = require_parameters(call, ex)
    code = param_code(body, "cancellationReason")
    comments = param_string(body, "cancellationComments")
    if code is None:
        raise R.refuse(ex, R.REQ_CANCEL, 422, "MISSING_VALUE", "The 'cancellationReason' parameter is required",
                       "parameter[cancellationReason]")
    reason = CANCELLATION_REASONS.get(code)
    side = "P" if who.provider else "R"
    if reason is None or side not in reason[3]:
        raise R.refuse(ex, R.REQ_CANCEL, 422, "INAPPROPRIATE_VALUE", f"{code!r} is not a REFERRAL-CANCELLATION-REASON "
                       f"a {who.business_function} may use", "parameter[cancellationReason]")
    display, comment_needed, may_cancel_appointment, _ = reason
    if comment_needed and not (comments or "").strip():
        raise R.refuse(ex, R.REQ_CANCEL, 422, "MISSING_VALUE", f"'cancellationComments' is mandatory with {code}",
                       "parameter[cancellationComments]")
    appointment = record.get("appointment")
    booked = appointment is not None and appointment["status"] == "booked"
    if booked and not may_cancel_appointment:
        raise R.refuse(ex, R.REQ_CANCEL, 422, "UNABLE_TO_CANCEL_APPOINTMENT", f"Referral {record['ubrn']} has a booked "
                       f"appointment, which {code} cannot cancel", "parameter[cancellationReason]")
    ex.add(Finding.passed(R.REQ_CANCEL, f"Cancellation reason {code} accepted"))
    new = R.changed(record)
    new.update(state=R.CANCELLED_REFERRAL, status="cancelled", comments=comments,
               cancelledBy="provider" if who.provider else "referrer",
               reason={"system": CANCELLATION_SYSTEM, "code": code, "display": display})
    changed_appointment = None
    if appointment is not None and appointment["status"] in ("booked", "proposed"):
        changed_appointment = dict(appointment, status="cancelled", version=appointment["version"] + 1)
        new["appointment"] = changed_appointment
    R.save(call, ex, new, appointment=changed_appointment,
           free_slot=appointment.get("slot") if booked else None)
    world = current_world()
    updated_appointment = (appointment_resource(changed_appointment, new["ubrn"], new["version"], new["patient"], world)
                           if changed_appointment is not None and booked else None)
    body = updated_parameters("eRS-CancelReferral-Response-Parameters-1", referral_resource(new, world),
                              updated_appointment)
    return Answer(200, body, etag=R.etag(new["version"]))


# --- A007 / A019 PDFs ---------------------------------------------------------------------------------------------
def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def _summary_lines(record: dict, world: World) -> list[str]:
    service = world.service(record.get("service") or "") if record.get("service") else None
    lines = [f"UBRN: {record['ubrn']}", f"Patient NHS number: {record['patient']}",
             f"Referring organisation: {record['referrer']['ods']}", f"Priority: {record['priority']}",
             f"Specialty: {record.get('specialty') or '-'}", f"State: {R.STATE_DISPLAY.get(record['state'])}"]
    if service is not None:
        lines.append(f"Service: {service.name} ({service.id}), provider {service.ods}")
    appointment = record.get("appointment")
    if appointment is not None and appointment.get("start"):
        lines.append(f"Appointment: {appointment['start']} to {appointment['end']} ({appointment['status']})")
    lines += [f"Shortlisted: {world.service(i).name if world.service(i) else i} ({i})" for i in record["shortlist"]]
    return lines


def clinical_information(call: ErsCall, ex: ExchangeContext) -> Answer:
    record = R.require(call, ex)
    R.check_relationship(ex, R.caller(call, ex, record), record)
    name = f"{record['ubrn']}_Clinical_Information_Summary_{_stamp()}.pdf"
    data = pdf(f"Clinical Information Summary - {record['ubrn']}", _summary_lines(record, current_world()))
    return Answer(200, data, content_type="application/pdf", disposition=f"attachment; filename={name}")


def patient_letter(call: ErsCall, ex: ExchangeContext) -> Answer:
    record = R.require(call, ex)
    R.check_relationship(ex, R.caller(call, ex, record), record)
    if record["state"] == R.CANCELLED_REFERRAL:
        raise R.refuse(ex, R.REQ_STATE, 422, "INVALID_REQUEST_STATE", f"Referral {record['ubrn']} is cancelled: there "
                       "is no letter to give the patient")
    booked = record["state"] == R.BOOKED
    kind = "Appointment_Confirmation" if booked else "Appointment_Request"
    name = f"{record['ubrn']}_{kind}_Summary_{_stamp()}.pdf"
    title = "Appointment Confirmation" if booked else "Your Appointment Request"
    from sandbox.services.ers.worklists import mark_letter_printed  # worklists reads this module

    mark_letter_printed(call, ex, record["ubrn"])
    lines = _summary_lines(record, current_world()) + [
        "", "Use your booking reference number (UBRN) and password to manage your appointment online."]
    return Answer(200, pdf(title, lines), content_type="application/pdf", disposition=f"attachment; filename={name}")
