"""The session's prescriptions: one record per short-form prescription id (`NAMESPACE`), the state machine over the
EPS business statuses (context.BUSINESS_STATUS), the session clock expiry is judged by, and the shared steps of
every change.

A handler reads a record with `require` (remembering the version it read), decides, then `save`s a changed copy
(`changed`, which appends one history entry for the tracker). The write is made with the exchange and is a
compare-and-set on the version read, so two requests racing on one prescription cannot both win: the loser is
answered with the live refusal of the operation it attempted (`concurrent_refusal`), never a 500.

Expiry is not a write: an acute prescription (or the current issue of a repeat) still To be Dispensed or With
Dispenser whose validity period has ended by the session clock reads as 0004 Expired (`status_of`)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.conformance.findings import Finding, Refusal, SpineError
from sandbox.journal.store import VersionConflict
from sandbox.runtime import current_sandbox
from sandbox.services.eps.context import (
    BUSINESS_STATUS,
    EXPIRED,
    TO_BE_DISPENSED,
    WITH_DISPENSER,
    WITH_DISPENSER_ACTIVE,
    EpsCall,
)
from sandbox.services.eps.errors import eps_error
from sandbox.services.eps.resources import prescription_id
from sandbox.web.pipeline import ExchangeContext

NAMESPACE = "eps.prescription"  # short-form prescription id -> the record
CLOCK_NS = "eps.clock"  # "offset" -> seconds the session clock is ahead of real time
CLOCK_KEY = "offset"

# Requirement ids (requirements/lifecycle.yaml).
REQ_KNOWN = "EPS-DSP-001"
REQ_STATE = "EPS-DSP-002"
REQ_OWNER = "EPS-DSP-003"
REQ_EXPIRY = "EPS-RX-005"

# Statuses an unfinished issue may expire from (live expires what has not been dispensed in its validity period).
EXPIRABLE = (TO_BE_DISPENSED, WITH_DISPENSER, WITH_DISPENSER_ACTIVE)
INVALID_STATE_CODE = "PRESCRIPTION_INVALID_STATE_TRANSITION"
INVALID_STATE_DISPLAY = "Invalid State Transition for Prescription"


# --- the session clock -----------------------------------------------------------------------------------------
def clock_offset(session: str) -> float:
    item = current_sandbox().store.state.get(session, CLOCK_NS, CLOCK_KEY)
    return float(item.value) if item is not None else 0.0


def now(session: str) -> datetime:
    """The session's clock: real time plus what /_sandbox/eps/clock advanced it by."""
    return datetime.now(UTC) + timedelta(seconds=clock_offset(session))


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def parse_moment(text: Any) -> datetime | None:
    """An ISO date or dateTime (a date is read as its start, UTC), or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    value = text.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- reading -----------------------------------------------------------------------------------------------------
def find(session: str, short_form: str) -> dict | None:
    item = current_sandbox().store.state.get(session, NAMESPACE, short_form)
    return item.value if item is not None else None


def all_records(session: str) -> list[dict]:
    items = current_sandbox().store.state.items(session, NAMESPACE)
    return [items[key].value for key in sorted(items)]


def holds(call: EpsCall) -> bool:
    """Whether the request is about a prescription the session holds (resources.prescription_id of its body)."""
    short_form = prescription_id(call.body)
    return bool(short_form) and find(call.session, short_form) is not None


def status_of(record: dict, moment: datetime) -> str:
    """The record's business status at `moment`: its stored status, or 0004 Expired once its validity has ended."""
    expires = parse_moment(record.get("expires"))
    if record["status"] in EXPIRABLE and expires is not None and moment >= expires:
        return EXPIRED
    return record["status"]


def display(status: str) -> str:
    return BUSINESS_STATUS.get(status, status)


def refuse(ex: ExchangeContext, requirement: str, error: SpineError, message: str = "") -> SpineError:
    """A live refusal, recorded as a failing finding of `requirement` (raise what this returns)."""
    ex.add(Finding.failed(requirement, message or error.diagnostics or error.display or error.code))
    return error


def not_found(ex: ExchangeContext, short_form: str | None, *, code: str = "PRESCRIPTION_NOT_FOUND",
              display_text: str = "Prescription not found") -> SpineError:
    what = f"Prescription {short_form}" if short_form else "The prescription (no short-form id in the message)"
    return refuse(ex, REQ_KNOWN, eps_error(
        400, "not-found", code, display_text,
        f"{what} is not one this session holds: order it first with $process-message (prescription-order)."))


def require(call: EpsCall, ex: ExchangeContext, short_form: str | None, **not_found_args: str) -> dict:
    """The session's prescription, remembering the version read for `save`; expiry applied as of now."""
    item = current_sandbox().store.state.get(call.session, NAMESPACE, short_form) if short_form else None
    if item is None:
        raise not_found(ex, short_form, **not_found_args)
    ex.cache[_version_key(short_form)] = item.version
    record = copy.deepcopy(item.value)
    moment = now(call.session)
    effective = status_of(record, moment)
    if effective != record["status"]:
        record = changed(record, "expire", effective, moment, who={"note": "validity period ended"})
        ex.add(Finding.info(REQ_EXPIRY, f"Prescription {short_form} expired at {record['expires']} "
                            "(session clock) and is now 0004 Expired"))
    ex.add(Finding.passed(REQ_KNOWN, f"Prescription {short_form} is held by this session ({record['status']})"))
    return record


def invalid_state(ex: ExchangeContext, record: dict, action: str, code: str = INVALID_STATE_CODE,
                  display_text: str = INVALID_STATE_DISPLAY) -> SpineError:
    status = record["status"]
    return refuse(ex, REQ_STATE, eps_error(
        400, "business-rule", code, display_text,
        f"Cannot {action} prescription {record['id']}: it is {status} {display(status)}."))


def require_state(ex: ExchangeContext, record: dict, allowed: tuple[str, ...], action: str) -> None:
    if record["status"] not in allowed:
        raise invalid_state(ex, record, action)
    ex.add(Finding.passed(REQ_STATE, f"{action}: prescription {record['id']} is {record['status']}"))


# --- changing ----------------------------------------------------------------------------------------------------
def history_entry(record: dict, event: str, status: str, moment: datetime, *, who: dict | None = None,
                  message: str | None = None) -> dict:
    """One change of the record's history: from its status to `status`."""
    entry = {"at": stamp(moment), "event": event, "from": record.get("status"), "status": status,
             "issue": record.get("issue", 1)}
    if who:
        entry["by"] = who
    if message:
        entry["message"] = message
    return entry


def changed(record: dict, event: str, status: str, moment: datetime, *, who: dict | None = None,
            message: str | None = None) -> dict:
    """A copy of the record in `status`, with the change appended to its history (what the tracker shows)."""
    new = copy.deepcopy(record)
    new["status"] = status
    new["updated"] = stamp(moment)
    new.setdefault("history", []).append(history_entry(record, event, status, moment, who=who, message=message))
    return new


def _version_key(short_form: str) -> str:
    return f"eps.prescription.version:{short_form}"


def save(call: EpsCall, ex: ExchangeContext, record: dict, *, new: bool = False,
         conflict: SpineError | None = None, requirement: str = REQ_STATE) -> None:
    """Write the record with the exchange: created only if absent (`new`), else compare-and-set on the version
    `require` read. A concurrent change that committed first answers this request with `conflict` (the live refusal
    of what it attempted) and none of its writes."""
    store = current_sandbox().store
    session = call.session
    snapshot = copy.deepcopy(record)
    expected = None if new else ex.cache.get(_version_key(record["id"]))
    refusal = conflict or eps_error(400, "business-rule", INVALID_STATE_CODE, INVALID_STATE_DISPLAY,
                                    f"Prescription {record['id']} was changed by another request while this one "
                                    "was answered.")

    def write() -> None:
        try:
            if new:
                store.state.put(session, NAMESPACE, snapshot["id"], snapshot, create_only=True)
            else:
                store.state.put(session, NAMESPACE, snapshot["id"], snapshot, expect_version=expected)
        except VersionConflict:
            raise concurrent_refusal(requirement, refusal) from None

    ex.write_with_record(write)


def concurrent_refusal(requirement: str, error: SpineError) -> Refusal:
    reason = error.diagnostics or error.display or error.code
    return Refusal(Finding.failed(requirement, f"{reason} (a concurrent request changed the prescription first)",
                                  reject=error))


def summary(record: dict, moment: datetime) -> dict:
    """One prescription for the developers' listing (/_sandbox/eps/prescriptions)."""
    status = status_of(record, moment)
    return {"id": record["id"], "uuid": record.get("uuid"), "status": status, "display": display(status),
            "patient": record.get("patient"), "prescriber": record.get("prescriber", {}).get("ods"),
            "nominated": record.get("performer"), "owner": (record.get("owner") or {}).get("ods"),
            "course": record.get("course"), "issue": record.get("issue", 1), "issues": record.get("issues", 1),
            "pendingCancellation": bool(record.get("pending_cancellation")), "expires": record.get("expires"),
            "items": record.get("items", []), "history": record.get("history", [])}
