"""The prescription tracker (GET Task?focus:identifier=<short-form id>, or ?identifier=<...>), answered from the
session's prescriptions: a searchset Bundle of one Task per prescription found (none: an empty Bundle), carrying its
business status, requester (the prescribing organisation), owner (the dispenser holding it), when it was authored,
dispensing information (input: the status and when it was last dispensed), release information (output) and, for
repeat dispensing, the repeat information. The query error's text is live's (examples/spec/errors/task)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sandbox.conformance.findings import Finding
from sandbox.services.eps import orders, prescriptions, releases
from sandbox.services.eps.context import (
    BUSINESS_STATUS_SYSTEM,
    MESSAGE_EVENT_SYSTEM,
    NHS_NUMBER_SYSTEM,
    ODS_SYSTEM,
    PRESCRIPTION_ID_SYSTEM,
    TO_BE_DISPENSED,
    UUID_SYSTEM,
    Answer,
    EpsCall,
)
from sandbox.services.eps.errors import eps_error
from sandbox.web.pipeline import ExchangeContext

REQ_QUERY = "EPS-TRK-001"
REQ_FOUND = "EPS-TRK-002"
QUERY_PARAMETERS = ("identifier", "focus:identifier")
# Task.status by business status: still to do, being done, or finished.
TASK_STATUS = {TO_BE_DISPENSED: "requested", "0002": "in-progress", "0003": "in-progress", "0004": "failed",
               "0005": "cancelled", "0006": "completed", "0007": "completed", "0008": "completed",
               "0009": "completed"}
COURSE_DISPLAY = {orders.ACUTE: "Short course (acute) therapy", orders.REPEAT: "Continuous long term therapy",
                  orders.ERD: "Continuous long term (repeat dispensing)"}


def _coding(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _ods_reference(ods: str | None, name: str | None) -> dict:
    reference: dict = {"identifier": {"system": ODS_SYSTEM, "value": ods or ""}}
    if name:
        reference["display"] = name
    return reference


def _status_coding(status: str) -> dict:
    return {"system": BUSINESS_STATUS_SYSTEM, "code": status, "display": prescriptions.display(status)}


def task(record: dict, moment: datetime) -> dict:
    """The tracker's Task for one prescription, as of `moment` (expiry applied)."""
    status = prescriptions.status_of(record, moment)
    course = record.get("course") or orders.ACUTE
    prescriber = record.get("prescriber") or {}
    resource: dict = {
        "resourceType": "Task", "id": str(uuid.uuid4()),
        "extension": [{"url": "https://fhir.nhs.uk/StructureDefinition/Extension-EPS-Prescription", "extension": [
            {"url": "courseOfTherapyType", "valueCoding": {
                "system": "https://fhir.nhs.uk/CodeSystem/medicationrequest-course-of-therapy",
                "code": course, "display": COURSE_DISPLAY.get(course, "")}}]}],
        "identifier": [{"system": UUID_SYSTEM, "value": record.get("uuid") or str(uuid.uuid4())}],
        "status": TASK_STATUS.get(status, "in-progress"), "businessStatus": {"coding": [_status_coding(status)]},
        "intent": "order", "code": _coding(MESSAGE_EVENT_SYSTEM, "prescription-order", "Prescription Order"),
        "focus": {"identifier": {"system": PRESCRIPTION_ID_SYSTEM, "value": record["id"]}},
        "for": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": record.get("patient") or ""}},
        "requester": _ods_reference(prescriber.get("ods"), prescriber.get("name")),
        "authoredOn": record.get("authoredOn"),
    }
    if record.get("course") == orders.ERD:
        resource["extension"].append({
            "url": "https://fhir.nhs.uk/StructureDefinition/Extension-EPS-RepeatInformation", "extension": [
                {"url": "numberOfRepeatsAllowed", "valueUnsignedInt": record.get("issues", 1) - 1},
                {"url": "numberOfRepeatsIssued", "valueUnsignedInt": record.get("issue", 1) - 1}]})
    owner = record.get("owner") or {}
    if owner.get("ods"):
        resource["owner"] = _ods_reference(owner["ods"], owner.get("name"))
    resource["input"] = [_dispensing_information(record, status)]
    released = [entry for entry in record.get("history", []) if entry.get("event") == "release"]
    if released:
        resource["output"] = [_release_information(record, released[-1])]
    return resource


def _dispensing_information(record: dict, status: str) -> dict:
    """Task.input: the prescription's status and when it was last dispensed."""
    information: list[dict] = [{"url": "dispenseStatus", "valueCoding": _status_coding(status)}]
    if record.get("last_dispensed"):
        information.append({"url": "dateLastDispensed", "valueDateTime": record["last_dispensed"]})
    return {
        "extension": [{"url": "https://fhir.nhs.uk/StructureDefinition/Extension-EPS-DispensingInformation",
                       "extension": information}],
        "type": _coding("http://snomed.info/sct", "16076005", "Prescription"),
        "valueReference": {"identifier": {"system": UUID_SYSTEM, "value": record.get("uuid") or record["id"]}}}


def _release_information(record: dict, release: dict) -> dict:
    """Task.output: when it was last released, and the latest dispense notification (else the prescription)."""
    latest = (record.get("dispenses") or [{}])[-1].get("id")
    return {
        "extension": [{"url": "https://fhir.nhs.uk/StructureDefinition/Extension-EPS-DispensingReleaseInformation",
                       "extension": [{"url": "dateLastIssuedDispensed", "valueDate": release["at"][:10]}]}],
        "type": _coding("http://snomed.info/sct", "373784005", "Dispensing medication"),
        "valueReference": {"identifier": {"system": UUID_SYSTEM,
                                          "value": latest or record.get("uuid") or record["id"]}}}


def _query(call: EpsCall, ex: ExchangeContext) -> str:
    unknown = [name for name in call.query if name not in QUERY_PARAMETERS]
    values = [value for name in QUERY_PARAMETERS for value in call.query.get(name, [])]
    if unknown or len(values) != 1:
        ex.add(Finding.failed(REQ_QUERY, "The tracker takes exactly one of identifier, focus:identifier "
                              f"(sent: {', '.join(sorted(call.query)) or 'none'})"))
        raise eps_error(400, "invalid", diagnostics="Query parameter must be one of: identifier, focus:identifier.")
    ex.add(Finding.passed(REQ_QUERY, "The tracker query names one prescription"))
    value = values[0].strip()
    return value.split("|", 1)[1] if "|" in value else value  # token form: system|value


def track(call: EpsCall, ex: ExchangeContext) -> Answer:
    wanted = _query(call, ex)  # the short-form id, or the long-form (uuid) one
    moment = prescriptions.now(call.session)
    record = prescriptions.find(call.session, wanted.upper()) or next(
        (r for r in prescriptions.all_records(call.session) if (r.get("uuid") or "").lower() == wanted.lower()),
        None)
    found = [task(record, moment)] if record is not None else []
    ex.add(Finding.passed(REQ_FOUND, f"Tracker: prescription {wanted} "
                          f"{'is ' + prescriptions.status_of(record, moment) if record else 'is not held'}"))
    return Answer(200, releases.searchset(moment, [{"resource": resource} for resource in found]))
