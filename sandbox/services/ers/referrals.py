"""The session's own referrals: where they are kept, who may act on them, and the shared steps of every change.

A referral is one record in session state (`NAMESPACE`, keyed by UBRN) with every version kept beside it
(`VERSIONS`, keyed `<ubrn>/<version>`), so `_history/<v>` reads and ETags come from what was stored. Every change
raises the version by one and is written with the exchange (`ExchangeContext.write_with_record`), compare-and-set
on the record read, so two changes racing on one referral cannot both win.

Advice and guidance (advice.py) shares the UBRN counter: `next_ubrn(session)`. A module that changes a referral
reads it with `require`, checks with `require_state` / `check_if_match` / `check_relationship`, then `save`s a
changed copy (`changed(record)`), which bumps the version."""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.conformance.findings import Finding, Refusal, SpineError
from sandbox.conformance.parsing import parse_int
from sandbox.journal.store import VersionConflict
from sandbox.runtime import current_sandbox
from sandbox.services.ers import errors
from sandbox.services.ers.context import PROVIDERS, REFERRERS, ErsCall
from sandbox.services.ers.world import World, current_world
from sandbox.web.pipeline import ExchangeContext

NAMESPACE = "ers.referral"  # UBRN -> the current record
VERSIONS = "ers.referral.version"  # "<ubrn>/<version>" -> the record as it was at that version
APPOINTMENTS = "ers.appointment"  # appointment id -> {"ubrn": ...}
BOOKED_SLOTS = "ers.slot.booked"  # slot id -> UBRN holding it
UBRN_COUNTER = "ers.ubrn"
FIRST_UBRN = 200_000_000_001  # 12 digits, far from the published examples' 0000000700xx
APPOINTMENT_COUNTER = "ers.appointment"
FIRST_APPOINTMENT = 800_001  # the published examples use 70000-70009

# Referral states (eRS-ReferralState-1) and their displays.
NOT_BOOKED = "NOT_BOOKED"
BOOKED = "BOOKED"
DEFERRED_TO_PROVIDER = "DEFERRED_TO_PROVIDER"
AWAITING_TRIAGE = "AWAITING_TRIAGE"
TRIAGED_PROVIDER_TO_ACTION = "TRIAGED_PROVIDER_TO_ACTION"
TRIAGE_RESPONSE = "TRIAGE_RESPONSE"
REJECTED = "REJECTED"
CANCELLED_REFERRAL = "CANCELLED_REFERRAL"
APP_CANCELLED_BY_PATIENT = "APP_CANCELLED_BY_PATIENT"
STATE_DISPLAY = {NOT_BOOKED: "Not Booked", BOOKED: "Booked", DEFERRED_TO_PROVIDER: "Deferred To Provider",
                 AWAITING_TRIAGE: "Awaiting Triage", TRIAGED_PROVIDER_TO_ACTION: "Triaged - Provider To Action",
                 TRIAGE_RESPONSE: "Triage Response", REJECTED: "Rejected", CANCELLED_REFERRAL: "Cancelled Referral",
                 APP_CANCELLED_BY_PATIENT: "Appointment Cancelled By Patient"}
# States from which the referrer may change the shortlist, book or send for triage: nothing is booked or pending.
UNBOOKED = (NOT_BOOKED, TRIAGE_RESPONSE, REJECTED, APP_CANCELLED_BY_PATIENT)

# Requirement ids (requirements.yaml, the referral lifecycle's block).
REQ_PATIENT = "ERS-REF-001"
REQ_SHORTLIST = "ERS-REF-002"
REQ_KNOWN = "ERS-REF-003"
REQ_RELATIONSHIP = "ERS-REF-004"
REQ_STATE = "ERS-REF-005"
REQ_IF_MATCH = "ERS-REF-006"
REQ_VERSION = "ERS-REF-007"
REQ_BOOKING = "ERS-REF-008"
REQ_CANCEL = "ERS-REF-009"
REQ_REVIEW = "ERS-REF-010"
REQ_WORKLIST = "ERS-REF-011"
REQ_TASKS = "ERS-REF-012"
REQ_SLOTS = "ERS-REF-013"
REQ_SEARCH = "ERS-REF-014"
REQ_BODY = "ERS-REF-015"

NHS_NUMBER = "http://fhir.nhs.net/Id/nhs-number"
ERS_SERVICE = "http://fhir.nhs.net/Id/ers-service"
SDS_USER = "http://fhir.nhs.net/Id/sds-user-id"
_UBRN_IN_REFERENCE = re.compile(r"^ReferralRequest/(\d{12})(?:/_history/(\d+))?$")


def now() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def refuse(ex: ExchangeContext, requirement: str, status: int, code: str, diagnostics: str,
           location: str = "") -> SpineError:
    """A live e-RS refusal, recorded as a failing finding of `requirement` (raise what this returns)."""
    ex.add(Finding.failed(requirement, diagnostics, location))
    return errors.ers_error(status, code, diagnostics)


# --- who is calling ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Caller:
    business_function: str
    ods: str  # '' when not sent (application-restricted calls may not send it)
    user: str

    @property
    def provider(self) -> bool:
        return self.business_function in PROVIDERS

    @property
    def referrer(self) -> bool:
        return self.business_function in REFERRERS


def caller(call: ErsCall, ex: ExchangeContext, record: dict | None = None) -> Caller:
    """Who acts: the business function sent, else the one the operation implies (only referrers, or only providers
    may use it), else for a referral the side whose organisation the caller's ODS code is."""
    function = call.business_function.strip()
    ods = call.ods_code.strip().upper()
    if not function:
        allowed = call.operation.allowed or ()
        if allowed and all(f in PROVIDERS for f in allowed):
            function = PROVIDERS[0]
        elif allowed and all(f in REFERRERS for f in allowed):
            function = REFERRERS[0]
        elif record is not None and ods and ods != record["referrer"]["ods"]:
            function = PROVIDERS[0]
        else:
            function = REFERRERS[0]
    user = call.on_behalf_of.strip() or (ex.access.user_id if ex.access is not None and ex.access.user_id else "")
    if not user and ods:
        default = current_world().default_user(ods, function)
        user = default.user_id if default is not None else ""
    return Caller(function, ods, user)


def provider_organisations(record: dict, world: World) -> set[str]:
    """The organisations that may act as provider on a referral: the one of the service it is booked or sent into,
    else those of its shortlisted services."""
    ids = [record["service"]] if record.get("service") else list(record.get("shortlist", []))
    return {s.ods for s in (world.service(i) for i in ids) if s is not None}


def check_relationship(ex: ExchangeContext, who: Caller, record: dict) -> None:
    """NO_RELATIONSHIP: a referrer of another organisation than the referring one, a provider whose organisation
    runs none of the referral's services. An unknown organisation (no ODS header) is not checked."""
    if not who.ods:
        return
    if who.referrer and who.ods != record["referrer"]["ods"]:
        raise refuse(ex, REQ_RELATIONSHIP, 422, "NO_RELATIONSHIP", f"Organisation {who.ods} did not make referral "
                     f"{record['ubrn']} (the referring organisation is {record['referrer']['ods']})",
                     "NHSD-End-User-Organisation-ODS")
    if who.provider and who.ods not in provider_organisations(record, current_world()):
        raise refuse(ex, REQ_RELATIONSHIP, 422, "NO_RELATIONSHIP", f"Organisation {who.ods} runs no service referral "
                     f"{record['ubrn']} is booked, sent or shortlisted into", "NHSD-End-User-Organisation-ODS")
    ex.add(Finding.passed(REQ_RELATIONSHIP, f"{who.business_function} of {who.ods} acts on {record['ubrn']}"))


# --- the store ----------------------------------------------------------------------------------------------------
def next_ubrn(session: str) -> str:
    """A new UBRN from the session's counter (shared by referrals and advice and guidance requests)."""
    return f"{current_sandbox().store.state.next_counter(session, UBRN_COUNTER, FIRST_UBRN):012d}"


def next_appointment_id(session: str) -> str:
    return str(current_sandbox().store.state.next_counter(session, APPOINTMENT_COUNTER, FIRST_APPOINTMENT))


def find(session: str, ubrn: str) -> dict | None:
    item = current_sandbox().store.state.get(session, NAMESPACE, ubrn)
    return item.value if item is not None else None


def all_records(session: str) -> list[dict]:
    items = current_sandbox().store.state.items(session, NAMESPACE)
    return [items[key].value for key in sorted(items)]


def at_version(session: str, ubrn: str, version: int) -> dict | None:
    item = current_sandbox().store.state.get(session, VERSIONS, f"{ubrn}/{version}")
    return item.value if item is not None else None


def owns_ubrn(session: str, ubrn: str) -> bool:
    return bool(ubrn) and find(session, ubrn) is not None


def appointment_ubrn(session: str, appointment_id: str) -> str | None:
    item = current_sandbox().store.state.get(session, APPOINTMENTS, appointment_id)
    return item.value.get("ubrn") if item is not None else None


def appointment_current(session: str, appointment_id: str) -> dict | None:
    """The current version of an appointment the session made: {appointment, ubrn, referralVersion, patient}."""
    item = current_sandbox().store.state.get(session, APPOINTMENTS, appointment_id)
    return appointment_at(session, appointment_id, item.value["version"]) if item is not None else None


def require(call: ErsCall, ex: ExchangeContext, ubrn: str | None = None) -> dict:
    """The session's referral the request names, or 404 (an unknown UBRN)."""
    ubrn = call.params.get("ubrn", "") if ubrn is None else ubrn
    item = current_sandbox().store.state.get(call.session, NAMESPACE, ubrn)  # one read: the record and its version
    if item is None:
        raise refuse(ex, REQ_KNOWN, 404, "REFERENCE_NOT_FOUND", f"No referral with UBRN {ubrn!r}: create one with "
                     "A011 or A021, or use a published example UBRN", "ubrn")
    ex.cache[f"ers.referral.item:{ubrn}"] = item.version  # what save() compares and sets against
    return item.value


def require_state(ex: ExchangeContext, record: dict, allowed: tuple[str, ...], action: str) -> None:
    if record["state"] not in allowed:
        raise refuse(ex, REQ_STATE, 422, "INVALID_REQUEST_STATE", f"Cannot {action}: referral {record['ubrn']} is "
                     f"{record['state']} (allowed: {', '.join(allowed)})")
    ex.add(Finding.passed(REQ_STATE, f"{action}: referral {record['ubrn']} is {record['state']}"))


def whole_number(text: str | None, maximum: int = 10**9) -> int | None:
    """A non-negative whole number in ASCII digits, or None (never raises)."""
    if text is None:
        return None
    try:
        return parse_int(text, minimum=0, maximum=maximum)
    except ValueError:
        return None


def etag(version: int) -> str:
    return f'W/"{version}"'


def check_if_match(call: ErsCall, ex: ExchangeContext, current: int, what: str) -> None:
    """If-Match (required where the specification lists it): 412 when absent, 409 when it is not the current
    version of the resource being changed."""
    sent = call.header("If-Match").strip()
    if not sent:
        raise refuse(ex, REQ_IF_MATCH, 412, "MISSING_HEADER", f"If-Match is required: the version of {what} being "
                     f"changed, as W/\"<version>\" (the current version is {current})", "If-Match")
    match = re.fullmatch(r'(?:W/)?"?(\d+)"?', sent)
    if match is None:
        raise refuse(ex, REQ_IF_MATCH, 412, "INVALID_HEADER", f"If-Match {sent!r} is not of the form W/\"<version>\"",
                     "If-Match")
    if int(match.group(1)) != current:
        raise refuse(ex, REQ_IF_MATCH, 409, "VERSION_MISMATCH", f"If-Match names version {match.group(1)} of {what}, "
                     f"but the current version is {current}: read it again before changing it", "If-Match")
    ex.add(Finding.passed(REQ_IF_MATCH, f"If-Match names the current version {current} of {what}"))


def changed(record: dict) -> dict:
    """A copy of the record to change: one version later, updated now."""
    new = copy.deepcopy(record)
    new["version"] = record["version"] + 1
    new["updated"] = now()
    return new


def save(call: ErsCall, ex: ExchangeContext, record: dict, *, new: bool = False,
         appointment: dict | None = None, free_slot: str | None = None, take_slot: str | None = None) -> None:
    """Write the record (and its version) with the exchange; compare-and-set against the version read by `require`.
    `appointment` also stores that appointment's version; slots are taken or freed with it."""
    store = current_sandbox().store
    session = call.session
    ubrn = record["ubrn"]
    expected = None if new else ex.cache.get(f"ers.referral.item:{ubrn}")
    snapshot = copy.deepcopy(record)

    def write() -> None:
        try:
            _write_referral(store, session, snapshot, new, expected)
        except VersionConflict:  # another request changed this referral first: the live service's 409
            raise concurrent_refusal(REQ_IF_MATCH, 409, "VERSION_MISMATCH", f"Referral {ubrn} was changed by another "
                              "request while this one was answered; read it again and retry.") from None
        store.state.put(session, VERSIONS, f"{ubrn}/{snapshot['version']}", snapshot)
        if appointment is not None:
            store.state.put(session, APPOINTMENTS, appointment["id"], {"ubrn": ubrn, "version": appointment["version"]})
            store.state.put(session, VERSIONS, f"appointment:{appointment['id']}/{appointment['version']}",
                            {"appointment": copy.deepcopy(appointment), "ubrn": ubrn,
                             "referralVersion": snapshot["version"], "patient": snapshot["patient"]})
        if free_slot:
            store.state.delete(session, BOOKED_SLOTS, free_slot)
        if take_slot:
            try:
                store.state.put(session, BOOKED_SLOTS, take_slot, {"ubrn": ubrn}, create_only=True)
            except VersionConflict:  # booked by another request a moment ago
                raise concurrent_refusal(REQ_BOOKING, 422, "SLOT_NOT_AVAILABLE",
                                  f"Slot {take_slot} was booked by another request; choose another slot.") from None

    ex.write_with_record(write)


def _write_referral(store, session: str, snapshot: dict, new: bool, expected: int | None) -> None:
    if new:
        store.state.put(session, NAMESPACE, snapshot["ubrn"], snapshot, create_only=True)
    else:
        store.state.put(session, NAMESPACE, snapshot["ubrn"], snapshot, expect_version=expected)


def concurrent_refusal(requirement: str, status: int, code: str, diagnostics: str) -> Refusal:
    """A change a concurrent request made first, found when this one's writes commit: answered as the live service
    refuses it, with none of this request's writes made."""
    return Refusal(Finding.failed(requirement, diagnostics, reject=errors.ers_error(status, code, diagnostics)))


def appointment_at(session: str, appointment_id: str, version: int) -> dict | None:
    item = current_sandbox().store.state.get(session, VERSIONS, f"appointment:{appointment_id}/{version}")
    return item.value if item is not None else None


def slot_taken(session: str, slot_id: str) -> str | None:
    item = current_sandbox().store.state.get(session, BOOKED_SLOTS, slot_id)
    return item.value.get("ubrn") if item is not None else None


def new_record(ubrn: str, patient: str, who: Caller, shortlist: list[str], criteria: dict,
               params: dict[str, Any]) -> dict:
    """A referral as A011/A021 create it (version 1)."""
    moment = now()
    return {
        "ubrn": ubrn, "version": 1, "state": NOT_BOOKED, "reason": None, "comments": None, "status": "active",
        "patient": patient, "referrer": {"ods": who.ods, "user": who.user, "businessFunction": who.business_function},
        "created": moment, "updated": moment, "pathwayStart": params.get("pathwayStart") or moment,
        "priority": criteria.get("priority") or "ROUTINE", "specialty": criteria.get("specialty"),
        "clinicType": criteria.get("clinicType"), "criteria": criteria, "shortlist": shortlist, "service": None,
        "intention": params.get("intention"), "reminderDays": params.get("reminderDays"),
        "requestId": f"r.{uuid.uuid4()}", "appointment": None, "accepted": False, "reviewed": False,
        "clinicalInfoFirstSubmitted": None, "documents": [], "lettersPrinted": False, "commRuleOrg": params.get(
            "commRuleOrg"),
    }


def reference_ubrn(reference: Any) -> tuple[str, int | None] | None:
    """`ReferralRequest/<ubrn>[/_history/<v>]` -> (ubrn, version or None)."""
    if not isinstance(reference, str):
        return None
    match = _UBRN_IN_REFERENCE.match(reference.strip())
    if match is None:
        return None
    return match.group(1), int(match.group(2)) if match.group(2) else None
