"""$verify-signature: a dispensing (or prescribing) system asks EPS whether prescriptions' signatures hold.

As live (coordinator routes/dispense/verify-signature.ts): the body is a Bundle — one prescription, or a release
response whose entries are prescription Bundles — and the answer is 200 Parameters with one part per prescription,
named by its index: `messageIdentifier` (the prescription Bundle's identifier) and `result`, an OperationOutcome of
one informational issue when the signature holds, else one issue per problem {severity error, code invalid, coding
Spine-ErrorOrWarningCode INVALID with the problem as display, expression Provenance.signature.data}. A body that is
not a Bundle is refused 400 "Incorrect FHIR resource type. Expected Bundle.".

Live verifies the signature of the prescription as Spine holds it (fetched from the tracker) and compares it with the
one in the request. The sandbox does the same for a prescription the session holds (the order Bundle it stored), and
verifies the request's own signature for one it does not (so a prescribing system can check a signed order before
sending it)."""

from __future__ import annotations

from typing import Any

from sandbox.conformance.findings import Finding
from sandbox.runtime import current_sandbox
from sandbox.services.eps import prescriptions, resources, signatures
from sandbox.services.eps.context import (
    NHS_NUMBER_SYSTEM,
    PRESCRIPTION_UUID_SYSTEM,
    SPINE_CODES,
    Answer,
    EpsCall,
)
from sandbox.services.eps.errors import outcome
from sandbox.web.pipeline import ExchangeContext

REQUIREMENT = "EPS-SIG-005"


def _not_a_bundle() -> Answer:
    return Answer(400, outcome({"severity": "fatal", "code": "value",
                                "diagnostics": "Incorrect FHIR resource type. Expected Bundle."}))


def prescriptions_of(body: dict) -> list[dict]:
    """The prescription Bundles of a request: a release response's inner Bundles, or the Bundle itself."""
    inner = resources.entries(body, "Bundle")
    return inner if inner else [body]


def _held_order(session: str, prescription: dict) -> dict | None:
    """The order Bundle the session stored for this prescription (None: the session does not hold it)."""
    short_form = resources.prescription_id(prescription)
    if not short_form:
        return None
    record = prescriptions.find(session, short_form)
    held = record.get("bundle") if isinstance(record, dict) else None
    return held if isinstance(held, dict) else None


def _compared(held: dict, requested: dict) -> list[str]:
    """What differs between the prescription the session holds and the one in the request, as live names it."""
    problems = []
    for label, system in (("Prescription Id", PRESCRIPTION_UUID_SYSTEM), ("Nhs Number", NHS_NUMBER_SYSTEM)):
        if resources.find_identifier(held, system) != resources.find_identifier(requested, system):
            problems.append(f"{label} does not match")
    return problems


def _issue(problem: str) -> dict:
    return {"severity": "error", "code": "invalid",
            "details": {"coding": [{"system": SPINE_CODES, "code": "INVALID", "display": problem}]},
            "expression": ["Provenance.signature.data"]}


def _result(index: int, prescription: dict, problems: list[str]) -> dict:
    issues = [_issue(problem) for problem in problems] or [{"severity": "information", "code": "informational"}]
    identifier: Any = prescription.get("identifier")
    return {"name": str(index), "part": [
        {"name": "messageIdentifier", "valueReference": {"identifier": identifier}},
        {"name": "result", "resource": {"resourceType": "OperationOutcome", "issue": issues}}]}


def verify_signature(call: EpsCall, ex: ExchangeContext) -> Answer:
    body = call.body
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        ex.add(Finding.failed(REQUIREMENT, "The $verify-signature body is not a FHIR Bundle."))
        return _not_a_bundle()
    store = current_sandbox().store
    parameters = []
    for index, prescription in enumerate(prescriptions_of(body)):
        held = _held_order(call.session, prescription)
        check = signatures.verify(held or prescription, store, trusted_example=call.example is not None)
        # live reads a prescription without a signature as one whose signature it cannot read
        problems = [signatures.INVALID_FORMAT if p == signatures.MISSING_SIGNATURE else p for p in check.problems]
        if held is not None:
            problems += _compared(held, prescription)
        short_form = resources.prescription_id(prescription) or f"entry {index}"
        verdict = "; ".join(problems) if problems else check.message
        ex.add(Finding.info(check.requirement if problems else REQUIREMENT,
                            f"$verify-signature, prescription {short_form}: {verdict}"))
        parameters.append(_result(index, prescription, problems))
    return Answer(200, {"resourceType": "Parameters", "parameter": parameters})
