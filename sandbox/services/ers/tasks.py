"""A029: the actions the caller may take on one of the session's referrals now, as a searchset of proposed Tasks
(eRS-AvailableActionsForUser-1), worked out from the referral's state and whether the caller refers or provides."""

from __future__ import annotations

import uuid

from sandbox.conformance.findings import Finding
from sandbox.services.ers import referrals as R
from sandbox.services.ers.context import Answer, ErsCall
from sandbox.services.ers.resources import CS
from sandbox.services.ers.world import BOOKABLE, current_world
from sandbox.web.pipeline import ExchangeContext

ACTIONS_SYSTEM = CS + "eRS-AvailableActionsForUser-1"
ACTION_DISPLAY = {
    "CANCEL_DIRECTLY_BOOKED_APPOINTMENT": "Cancel Directly Booked Appointment",
    "CANCEL_REFERRAL": "Cancel Referral",
    "CHANGE_SHORTLIST": "Change Shortlist",
    "CHANGE_SHORTLIST_AND_SEND_FOR_TRIAGE": "Change Shortlist and Send for Triage",
    "CREATE_APPOINTMENT": "Create Appointment",
    "RECORD_REVIEW_OUTCOME": "Record Review Outcome",
}
TASK_PROFILE = "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Task-1"


def available_actions(record: dict, who: R.Caller) -> list[str]:
    """What the caller may do next, in the order e-RS lists them."""
    state = record["state"]
    actions: list[str] = []
    world = current_world()
    if who.referrer:
        if state in R.UNBOOKED:
            actions.append("CHANGE_SHORTLIST")
            actions.append("CHANGE_SHORTLIST_AND_SEND_FOR_TRIAGE")
            if any((s := world.service(i)) is not None and s.kind in BOOKABLE for i in record["shortlist"]):
                actions.append("CREATE_APPOINTMENT")
        appointment = record.get("appointment") or {}
        if state == R.BOOKED and appointment.get("status") == "booked" and appointment.get("slot"):
            actions.append("CANCEL_DIRECTLY_BOOKED_APPOINTMENT")
    elif state == R.AWAITING_TRIAGE:
        actions.append("RECORD_REVIEW_OUTCOME")
    if state != R.CANCELLED_REFERRAL:
        actions.append("CANCEL_REFERRAL")
    return actions


def _one(call: ErsCall, ex: ExchangeContext, name: str) -> str:
    values = call.query.get(name, [])
    if len(values) != 1:
        raise R.refuse(ex, R.REQ_TASKS, 400, "MISSING_PARAMETER" if not values else "INVALID_VALUE",
                       f"The query parameter {name!r} is required, once", name)
    return values[0]


def actions_for_user(call: ErsCall, ex: ExchangeContext) -> Answer:
    focus = _one(call, ex, "focus")
    for name, wanted in (("intent", "proposal"), ("status", "ready")):
        if _one(call, ex, name) != wanted:
            raise R.refuse(ex, R.REQ_TASKS, 400, "INVALID_VALUE", f"{name} must be {wanted!r}", name)
    referred = R.reference_ubrn(focus)
    if referred is None:
        raise R.refuse(ex, R.REQ_TASKS, 400, "INVALID_VALUE", "focus must be ReferralRequest/<ubrn>/_history/<version>",
                       "focus")
    ubrn, version = referred
    record = R.find(call.session, ubrn)
    if record is None:
        raise R.refuse(ex, R.REQ_TASKS, 400, "REFERENCE_NOT_FOUND", f"No referral with UBRN {ubrn}", "focus")
    if version is not None and version != record["version"]:
        raise R.refuse(ex, R.REQ_TASKS, 400, "HISTORY_NOT_SUPPORTED", f"Version {version} of {ubrn} is not the current "
                       f"one ({record['version']}): actions are given for the current version only", "focus")
    who = R.caller(call, ex, record)
    R.check_relationship(ex, who, record)
    actions = available_actions(record, who)
    ex.add(Finding.passed(R.REQ_TASKS, f"{len(actions)} action(s) for {who.business_function} on {ubrn}"))
    focus_reference = f"ReferralRequest/{ubrn}/_history/{record['version']}"
    entries = []
    for code in actions:
        task_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{call.session}/{focus_reference}/{code}"))
        entries.append({"fullUrl": f"_baseUrl_/STU3/Task/{task_id}", "resource": {
            "id": task_id, "meta": {"profile": [TASK_PROFILE]}, "resourceType": "Task", "status": "ready",
            "intent": "proposal", "focus": {"reference": focus_reference},
            "code": {"coding": [{"system": ACTIONS_SYSTEM, "code": code, "display": ACTION_DISPLAY[code]}]}},
            "search": {"mode": "match"}})
    body = {"id": str(uuid.uuid4()), "meta": {"lastUpdated": R.now(),
                                              "profile": ["http://hl7.org/fhir/STU3/StructureDefinition/Bundle"]},
            "resourceType": "Bundle", "type": "searchset",
            "link": [{"relation": "self", "url": f"_baseUrl_/STU3/Task?focus={focus_reference}&intent=proposal"
                                                 "&status=ready"}],
            "entry": entries}
    return Answer(200, body)
