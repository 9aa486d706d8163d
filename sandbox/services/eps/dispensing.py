"""The dispenser's operations over the session's prescriptions, with the state machine they drive:

  release            0001 -> 0002 With Dispenser (by group-identifier, or nominated: up to 25 of the pharmacy's)
  dispense           0002/0003 -> 0006 Dispensed (every item dispensed), 0003 With Dispenser - Active (some),
                     0007 Not Dispensed (none); with replacementOf, an amendment of the latest notification
  claim              0006 -> 0008 Claimed, 0007 -> 0009 No-Claimed; with replacementOf, an amendment of the claim
  return (rejected)  0002 -> 0001, available to other dispensers (a pending cancellation cancels it instead)
  withdraw           the latest dispense notification undone: back to the status before it

A repeat dispensing (eRD) prescription is issued one issue at a time: once the current issue is Dispensed (or
Claimed), releasing the prescription again starts the next issue, until numberOfRepeatsAllowed + 1 issues.
Each refusal is live's: the code, issue code and status of the specification's dispensing error tables."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sandbox.conformance.findings import Finding, SpineError
from sandbox.services.eps import orders, prescriptions, releases, resources, translation
from sandbox.services.eps.context import (
    CANCELLED,
    CLAIMED,
    DISPENSED,
    EXPIRED,
    ITEM_ID_SYSTEM,
    NO_CLAIMED,
    NOT_DISPENSED,
    ODS_SYSTEM,
    PRESCRIPTION_ID_SYSTEM,
    TO_BE_DISPENSED,
    UUID_SYSTEM,
    WITH_DISPENSER,
    WITH_DISPENSER_ACTIVE,
    Answer,
    EpsCall,
)
from sandbox.services.eps.errors import eps_error, informational, issue, outcome
from sandbox.web.pipeline import ExchangeContext

REQ_RELEASE = "EPS-DSP-004"
REQ_NOMINATED = "EPS-DSP-005"
REQ_DISPENSE = "EPS-DSP-006"
REQ_ITEMS = "EPS-DSP-007"
REQ_AMEND = "EPS-DSP-008"
REQ_CLAIM = "EPS-DSP-009"
REQ_RETURN = "EPS-DSP-010"
REQ_WITHDRAW = "EPS-DSP-011"
REQ_REPEATS = "EPS-DSP-012"
REQ_ERD = "EPS-DSP-013"

NOMINATED_LIMIT = 25  # live releases at most 25 prescriptions per nominated download
ACTIVE = (WITH_DISPENSER, WITH_DISPENSER_ACTIVE)
NOTIFIED = (WITH_DISPENSER_ACTIVE, DISPENSED, NOT_DISPENSED)  # a dispense notification has been recorded
# medicationdispense-type codes that finish an item: fully dispensed, not dispensed, cancelled.
ITEM_DISPENSED, ITEM_NOT_DISPENSED, ITEM_CANCELLED = "0001", "0002", "0005"
ITEM_DONE = (ITEM_DISPENSED, ITEM_NOT_DISPENSED, ITEM_CANCELLED)
WITH_ANOTHER = ("PRESCRIPTION_WITH_ANOTHER_DISPENSER", "Prescription is with another dispenser")  # code, display
# Release refusals by status, as Spine's dispense error codes translate (spine-response-handler.ts).
RELEASE_REFUSALS = {
    EXPIRED: ("PRESCRIPTION_EXPIRED", "Prescription has expired"),
    CANCELLED: ("PRESCRIPTION_CANCELLED", "Prescription has been cancelled"),
    DISPENSED: ("PRESCRIPTION_DISPENSED", "Prescription has been dispensed"),
    CLAIMED: ("PRESCRIPTION_DISPENSED", "Prescription has been dispensed"),
}
REPLACEMENT_OF = "replacementOf"  # Extension-replacementOf: an amendment names the message it replaces


# --- who dispenses --------------------------------------------------------------------------------------------
def _organization_of(resource: dict | None) -> dict | None:
    if not isinstance(resource, dict):
        return None
    ods = resources.identifier_value(resource.get("identifier"), ODS_SYSTEM)
    if not ods:
        return None
    name = resource.get("name") if isinstance(resource.get("name"), str) else None
    return {"ods": ods, "name": name, "organization": resource}


def _contained_organization(body: dict) -> dict | None:
    for resource in body.get("contained") or []:
        if isinstance(resource, dict) and resource.get("resourceType") == "Organization":
            found = _organization_of(resource)
            if found:
                return found
    return None


def dispenser(call: EpsCall) -> dict | None:
    """The pharmacy acting: release's owner, a Task's owner or contained Organization, a dispense notification's
    sender, a claim's contained Organization."""
    body = call.body if isinstance(call.body, dict) else {}
    kind = body.get("resourceType")
    if kind == "Parameters":
        owner = resources.parameter(body, "owner")
        return _organization_of(owner.get("resource") if owner else None)
    if kind == "Task":
        owner = body.get("owner")
        ods = resources.identifier_value(owner.get("identifier") if isinstance(owner, dict) else None, ODS_SYSTEM)
        contained = _contained_organization(body)
        if ods and (contained is None or contained["ods"] != ods):
            return {"ods": ods, "name": None, "organization": None}
        return contained
    if kind == "Claim":
        return _contained_organization(body)
    header = resources.first(body, "MessageHeader") or {}
    sender = header.get("sender") if isinstance(header.get("sender"), dict) else {}
    ods = resources.identifier_value(sender.get("identifier"), ODS_SYSTEM)
    if not ods:
        return None
    named = next((o for o in map(_organization_of, resources.entries(body, "Organization"))
                  if o and o["ods"] == ods), None)
    return named or {"ods": ods, "name": sender.get("display"), "organization": None}


def with_another_dispenser(ex: ExchangeContext, record: dict) -> Answer:
    """PRESCRIPTION_WITH_ANOTHER_DISPENSER, the other dispenser's Organization contained (as the example)."""
    owner = record.get("owner") or {}
    org_id = str(uuid.uuid4())
    organization = copy.deepcopy(owner.get("organization")) or {
        "resourceType": "Organization", "identifier": [{"system": ODS_SYSTEM, "value": owner.get("ods", "")}]}
    if owner.get("name") and "name" not in organization:
        organization["name"] = owner["name"]
    organization["id"] = org_id
    ex.add(Finding.failed(prescriptions.REQ_OWNER, f"Prescription {record['id']} is with another dispenser "
                          f"({owner.get('ods')})"))
    body = outcome(issue("business-rule", *WITH_ANOTHER),
                   contained=[organization],
                   extension=[{"url": "https://fhir.nhs.uk/StructureDefinition/Extension-Spine-supportingInfo",
                               "valueReference": {"reference": f"#{org_id}"}}])
    return Answer(400, body)


def _owned_by_other(record: dict, who: dict | None) -> bool:
    owner = record.get("owner") or {}
    return bool(owner.get("ods")) and who is not None and owner["ods"] != who["ods"]


def _accepted(call: EpsCall, body: dict | None = None) -> Answer:
    return Answer(200, body if body is not None else informational(), translation=translation.translate(call))


# --- release ----------------------------------------------------------------------------------------------------
def _releasable(record: dict, moment: datetime) -> bool:
    status = prescriptions.status_of(record, moment)
    return status == TO_BE_DISPENSED or _next_issue_due(record, status)


def _next_issue_due(record: dict, status: str) -> bool:
    return status in (DISPENSED, CLAIMED) and record.get("issue", 1) < record.get("issues", 1)


def _released(record: dict, who: dict, moment: datetime) -> dict:
    """The record with the dispenser holding it: the next eRD issue when the current one is finished."""
    if _next_issue_due(record, record["status"]):
        record = copy.deepcopy(record)
        record["previous_issues"] = record.get("previous_issues", []) + [{
            "issue": record.get("issue", 1), "status": record["status"], "owner": (record.get("owner") or {}).get(
                "ods"), "dispenses": record.get("dispenses", []), "claim": record.get("claim")}]
        record["issue"] = record.get("issue", 1) + 1
        record["items"] = [{"id": item["id"], "status": orders.ITEM_TO_BE_DISPENSED} for item in record["items"]]
        record["dispenses"], record["claim"] = [], None
    new = prescriptions.changed(record, "release", WITH_DISPENSER, moment, who={"ods": who["ods"]})
    new["owner"] = dict(who)
    return new


def release(call: EpsCall, ex: ExchangeContext) -> Answer:
    who = dispenser(call)
    if who is None:
        raise prescriptions.refuse(ex, REQ_RELEASE, eps_error(400, "invalid", diagnostics="Required parameter "
                                                                "owner is missing."))
    group = resources.parameter(call.body, "group-identifier")
    if group is None:
        return _nominated_release(call, ex, who)
    short_form = resources.identifier_value(group.get("valueIdentifier"), PRESCRIPTION_ID_SYSTEM)
    record = prescriptions.require(call, ex, short_form, code="RESOURCE_NOT_FOUND", display_text="Resource not found")
    if record["status"] in ACTIVE and _owned_by_other(record, who):
        return with_another_dispenser(ex, record)
    moment = prescriptions.now(call.session)
    if not _releasable(record, moment):
        code, text = RELEASE_REFUSALS.get(record["status"], (prescriptions.INVALID_STATE_CODE,
                                                             prescriptions.INVALID_STATE_DISPLAY))
        error = prescriptions.invalid_state(ex, record, "release", code, text)
        return Answer(error.status, outcome(issue(error.issue_code, error.code, error.display, error.diagnostics)))
    released = _released(record, who, moment)
    conflict = eps_error(400, "business-rule", *WITH_ANOTHER,
                         f"Prescription {record['id']} was released to another dispenser by a concurrent request.")
    prescriptions.save(call, ex, released, conflict=conflict, requirement=REQ_RELEASE)
    if released.get("issue", 1) > record.get("issue", 1):
        ex.add(Finding.passed(REQ_ERD, f"Issue {record.get('issue', 1)} of {record['id']} is dispensed: issue "
                              f"{released['issue']} of {released.get('issues', 1)} is released"))
    ex.add(Finding.passed(REQ_RELEASE, f"Prescription {record['id']} released to {who['ods']} "
                          f"(issue {released.get('issue', 1)} of {released.get('issues', 1)})"))
    return _accepted(call, releases.response([released], moment))


def _nominated_release(call: EpsCall, ex: ExchangeContext, who: dict) -> Answer:
    moment = prescriptions.now(call.session)
    waiting = [r for r in prescriptions.all_records(call.session)
               if r.get("performer") == who["ods"] and _releasable(r, moment)]
    waiting.sort(key=lambda r: (r.get("updated") or "", r["id"]))
    if not waiting:
        ex.add(Finding.info(REQ_NOMINATED, f"No prescriptions nominated to {who['ods']} are waiting: "
                            "NO_MORE_PRESCRIPTIONS"))
        return Answer(200, releases.no_more_prescriptions())
    released = []
    for record in waiting[:NOMINATED_LIMIT]:
        record = prescriptions.require(call, ex, record["id"])
        changed = _released(record, who, moment)
        prescriptions.save(call, ex, changed, requirement=REQ_NOMINATED, conflict=eps_error(
            400, "business-rule", *WITH_ANOTHER,
            f"Prescription {record['id']} was released by a concurrent request; download again."))
        released.append(changed)
    ex.add(Finding.passed(REQ_NOMINATED, f"Released {len(released)} prescription(s) nominated to {who['ods']}"
                          f"{' (at most 25 per request)' if len(waiting) > NOMINATED_LIMIT else ''}"))
    return _accepted(call, releases.response(released, moment))


# --- dispense notifications and claims ----------------------------------------------------------------------------
def _replaces(body: dict) -> str | None:
    """The message an amendment replaces (Extension-replacementOf on the MessageHeader or the Claim)."""
    holders = [resources.first(body, "MessageHeader") or {}, body]
    for holder in holders:
        for extension in holder.get("extension") or []:
            if isinstance(extension, dict) and str(extension.get("url", "")).endswith(REPLACEMENT_OF):
                value = extension.get("valueIdentifier")
                if isinstance(value, dict) and isinstance(value.get("value"), str):
                    return value["value"].lower()
    return None


def _message_id(body: dict) -> str:
    value = resources.identifier_value(body.get("identifier"), UUID_SYSTEM)
    return (value or str(body.get("id") or uuid.uuid4())).lower()


def _dispensed_items(body: dict) -> list[tuple[str | None, str]]:
    """(item id, medicationdispense-type code) of each MedicationDispense."""
    found = []
    for dispense in resources.entries(body, "MedicationDispense"):
        item = resources.find_identifier(dispense.get("contained"), ITEM_ID_SYSTEM) \
            or resources.find_identifier(dispense.get("authorizingPrescription"), ITEM_ID_SYSTEM)
        kind = dispense.get("type")
        codings = kind.get("coding") if isinstance(kind, dict) else None
        code = next((c.get("code") for c in codings or [] if isinstance(c, dict) and c.get("code")), "")
        found.append((item.lower() if item else None, str(code)))
    return found


def _claimed_items(body: dict) -> list[str]:
    found = []
    for item in body.get("item") or []:
        for detail in (item.get("detail") or []) if isinstance(item, dict) else []:
            value = resources.find_identifier(detail.get("extension") if isinstance(detail, dict) else None,
                                              ITEM_ID_SYSTEM)
            if value:
                found.append(value.lower())
    return found


def _check_items(ex: ExchangeContext, record: dict, item_ids: list[str | None]) -> None:
    known = {item["id"] for item in record.get("items", [])}
    for item_id in item_ids:
        if known and item_id not in known:
            raise prescriptions.refuse(ex, REQ_ITEMS, eps_error(
                400, "not-found", "ITEM_NOT_FOUND", "Item not found",
                f"Item {item_id} is not an item of prescription {record['id']} (its items: "
                f"{', '.join(sorted(known))})."))
    ex.add(Finding.passed(REQ_ITEMS, f"Every item named is an item of prescription {record['id']}"))


def _check_repeats(ex: ExchangeContext, record: dict, body: dict) -> None:
    """An eRD message's numberOfRepeatsAllowed must be the prescription's."""
    if record.get("course") != orders.ERD:
        return
    for request in _all_dicts(body, "MedicationRequest"):
        dispense_request = request.get("dispenseRequest")
        allowed = dispense_request.get("numberOfRepeatsAllowed") if isinstance(dispense_request, dict) else None
        if isinstance(allowed, int) and allowed != record.get("issues", 1) - 1:
            raise prescriptions.refuse(ex, REQ_REPEATS, eps_error(
                400, "business-rule", "MISMATCH_AUTHORISED_REPEAT_COUNTS", "Mismatch in authorised repeat counts",
                f"numberOfRepeatsAllowed {allowed} is not prescription {record['id']}'s "
                f"({record.get('issues', 1) - 1})."))


def _all_dicts(value: Any, resource_type: str) -> list[dict]:
    found = []
    if isinstance(value, dict):
        if value.get("resourceType") == resource_type:
            found.append(value)
        for child in value.values():
            found.extend(_all_dicts(child, resource_type))
    elif isinstance(value, list):
        for child in value:
            found.extend(_all_dicts(child, resource_type))
    return found


def status_after(items: list[dict]) -> str:
    """The prescription's status once its items are as given: every item finished and one dispensed -> 0006,
    none dispensed -> 0007, else 0003 With Dispenser - Active."""
    codes = [item["status"] for item in items]
    if codes and all(code in ITEM_DONE for code in codes):
        return DISPENSED if ITEM_DISPENSED in codes else NOT_DISPENSED
    return WITH_DISPENSER_ACTIVE


def _amend_mismatch(ex: ExchangeContext, record: dict, replaced: str, last: str | None) -> SpineError:
    return prescriptions.refuse(ex, REQ_AMEND, eps_error(
        400, "business-rule", "DISPENSE_AMEND_IDENTIFIER_MISMATCH",
        "Dispense Amendment/Cancellation Request does not pertain to Last Dispense",
        f"replacementOf {replaced} is not the latest message of prescription {record['id']} "
        f"({last or 'none was sent'})."))


def _held(call: EpsCall, ex: ExchangeContext) -> tuple[dict, dict | None, Answer | None]:
    """The prescription a dispensing message is about, who sends it, and the refusal when another dispenser holds
    it."""
    record = prescriptions.require(call, ex, resources.prescription_id(call.body))
    who = dispenser(call)
    if _owned_by_other(record, who):
        return record, who, with_another_dispenser(ex, record)
    return record, who, None


def dispense(call: EpsCall, ex: ExchangeContext) -> Answer:
    record, who, refused = _held(call, ex)
    if refused is not None:
        return refused
    body = call.body
    replaced = _replaces(body)
    dispenses = record.get("dispenses", [])
    if replaced is not None:
        last = dispenses[-1]["id"] if dispenses else None
        prescriptions.require_state(ex, record, NOTIFIED, "amend a dispense notification of")
        if replaced != last:
            raise _amend_mismatch(ex, record, replaced, last)
        base_items, base_status = dispenses[-1]["items_before"], dispenses[-1]["before"]
    else:
        prescriptions.require_state(ex, record, ACTIVE, "send a dispense notification for")
        base_items, base_status = record["items"], record["status"]
    sent = _dispensed_items(body)
    _check_items(ex, record, [item for item, _ in sent])
    _check_repeats(ex, record, body)
    codes = dict(sent)
    items = [{"id": item["id"], "status": codes.get(item["id"], item["status"])} for item in base_items]
    moment = prescriptions.now(call.session)
    status = status_after(items)
    entry = {"id": _message_id(body), "before": base_status, "items_before": base_items, "after": status,
             "at": prescriptions.stamp(moment)}
    new = prescriptions.changed(record, "amend" if replaced else "dispense", status, moment,
                                who={"ods": (who or {}).get("ods")}, message=entry["id"])
    new["items"] = items
    new["dispenses"] = dispenses[:-1] + [entry] if replaced else dispenses + [entry]
    new["last_dispensed"] = prescriptions.stamp(moment)
    prescriptions.save(call, ex, new, requirement=REQ_DISPENSE)
    ex.add(Finding.passed(REQ_AMEND if replaced else REQ_DISPENSE,
                          f"Dispense notification for {record['id']}: {base_status} -> {status}"))
    return _accepted(call)


def claim(call: EpsCall, ex: ExchangeContext) -> Answer:
    record, who, refused = _held(call, ex)
    if refused is not None:
        return refused
    body = call.body
    replaced = _replaces(body)
    moment = prescriptions.now(call.session)
    if replaced is not None:
        prescriptions.require_state(ex, record, (CLAIMED, NO_CLAIMED), "amend the claim of")
        last = (record.get("claim") or {}).get("id")
        if replaced != last:
            raise _amend_mismatch(ex, record, replaced, last)
        status = record["status"]
    else:
        prescriptions.require_state(ex, record, (DISPENSED, NOT_DISPENSED), "claim for")
        status = CLAIMED if record["status"] == DISPENSED else NO_CLAIMED
    _check_items(ex, record, _claimed_items(body))
    _check_repeats(ex, record, body)
    new = prescriptions.changed(record, "claim-amend" if replaced else "claim", status, moment,
                                who={"ods": (who or {}).get("ods")}, message=_message_id(body))
    new["claim"] = {"id": _message_id(body), "before": (record.get("claim") or {}).get("before", record["status"]),
                    "at": prescriptions.stamp(moment)}
    prescriptions.save(call, ex, new, requirement=REQ_CLAIM)
    ex.add(Finding.passed(REQ_CLAIM, f"Claim for {record['id']}: {record['status']} -> {status}"))
    return _accepted(call)


# --- Task: return and withdraw ------------------------------------------------------------------------------------
def _task(call: EpsCall, ex: ExchangeContext, action: str, allowed: Callable[[dict], bool],
          change: Callable[[dict, datetime], dict], requirement: str) -> Answer:
    record, who, refused = _held(call, ex)
    if refused is not None:
        return refused
    if not allowed(record):
        raise prescriptions.invalid_state(ex, record, action, "INVALID_STATE_TRANSITION",
                                          prescriptions.INVALID_STATE_DISPLAY)
    moment = prescriptions.now(call.session)
    new = change(record, moment)
    prescriptions.save(call, ex, new, requirement=requirement)
    ex.add(Finding.passed(requirement, f"{action} {record['id']}: {record['status']} -> {new['status']}"))
    return _accepted(call)


def return_(call: EpsCall, ex: ExchangeContext) -> Answer:
    """Task rejected: the dispenser gives the prescription back (0002 -> 0001); a cancellation pending on it is then
    made (0005)."""
    def change(record: dict, moment: datetime) -> dict:
        pending = record.get("pending_cancellation")
        new = prescriptions.changed(record, "return", CANCELLED if pending else TO_BE_DISPENSED, moment,
                                    who={"ods": (record.get("owner") or {}).get("ods")})
        new["owner"] = None
        if pending:
            new["history"].append(prescriptions.history_entry(record, "cancel", CANCELLED, moment,
                                                              who={"user": pending["by"]}))
            new["pending_cancellation"] = None
        return new

    return _task(call, ex, "return", lambda r: r["status"] == WITH_DISPENSER, change, REQ_RETURN)


def withdraw(call: EpsCall, ex: ExchangeContext) -> Answer:
    """Task in-progress: the latest dispense notification is withdrawn; the prescription goes back to the status
    it had before it (claims must not have been made)."""
    def change(record: dict, moment: datetime) -> dict:
        last = record["dispenses"][-1]
        new = prescriptions.changed(record, "withdraw", last["before"], moment, message=last["id"],
                                    who={"ods": (record.get("owner") or {}).get("ods")})
        new["items"] = last["items_before"]
        new["dispenses"] = record["dispenses"][:-1]
        return new

    return _task(call, ex, "withdraw a dispense notification of",
                 lambda r: r["status"] in NOTIFIED and bool(r.get("dispenses")), change, REQ_WITHDRAW)
