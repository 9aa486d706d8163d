"""POST /Coverage: what can be judged from the request alone - its Content-Type and the EHIC Coverage it sends.

PDS looks at a coverage update in this order: the card number, the status, the subscriber's and the beneficiary's
identifiers and the period must be there; then the expiry date, the card number, the personal identification number
and the institution must be well formed, and the status active. Then the sandbox's own schema and the NHS number.
"""

from __future__ import annotations

import re

from sandbox.conformance.checks import RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import Malformed, dig
from sandbox.services.pds.new_patient import absent, at, invalid, missing, shown
from sandbox.services.pds.problems import Problem, schema_problems
from sandbox.synthetic.identifiers import is_valid_nhs_number

REQ_BODY = "PDS-COV-004"
EHIC_TEXT = re.compile(r"^[a-zA-Z0-9\-,/:'. ]*$")
EXPIRY = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])-[0-9]{2}$")
JSON_TYPES = ("application/json", "application/json-patch+json", "application/fhir+json")


def unsupported_service() -> SpineError:
    return SpineError(400, "UNSUPPORTED_SERVICE")


def judge_body(req: RequestView) -> list[Finding]:
    if not req.header("Content-Type"):
        return [Finding.failed(REQ_BODY, "Content-Type is missing: send the Coverage as application/json (400 "
                               "UNSUPPORTED_SERVICE).", "header:Content-Type", unsupported_service())]
    found = []
    if req.content_type not in JSON_TYPES:
        found.append(Finding.failed(REQ_BODY, f"Content-Type {req.content_type!r}: send the Coverage as "
                                    "application/json.", "header:Content-Type"))
    problems = body_problems(req)
    return found + ([p.finding() for p in problems]
                    or [Finding.passed(REQ_BODY, "The body is a complete EHIC Coverage.", "body")])


def body_problems(req: RequestView) -> list[Problem]:
    """Every problem with the Coverage, the one PDS answers first at the top."""
    try:
        body = req.json()
    except Malformed as exc:
        error = SpineError(400, "INVALID_UPDATE", f"Invalid update with error - the request body is not valid JSON "
                           f"({exc.detail})")
        return [Problem(REQ_BODY, error, f"The body is not JSON: {exc}.", "body")]
    first = [Problem(REQ_BODY, error, f"The Coverage: {error.diagnostics}.", pointer)
             for error, pointer in _first_checks(body if isinstance(body, dict) else {})]
    said = {p.error.diagnostics for p in first}
    problems = first + [p for p in schema_problems("coverage", body, REQ_BODY, "The Coverage breaks the PDS schema")
                        if p.error.diagnostics not in said]
    number = subscriber_number(body) or ""
    if not problems and not is_valid_nhs_number(number):
        problems.append(Problem(REQ_BODY, SpineError(400, "INVALID_RESOURCE_ID"), f"subscriber NHS number {number!r} "
                                "fails the Modulus 11 check.", "/subscriber/identifier/value"))
    return problems


def _first_checks(body: dict) -> list[tuple[SpineError, str]]:
    found = []
    for field, steps in (("identifier/0/value", ("identifier", 0, "value")), ("status", ("status",)),
                         ("subscriber/identifier/value", ("subscriber", "identifier", "value")),
                         ("beneficiary/identifier/value", ("beneficiary", "identifier", "value")),
                         ("period", ("period",))):
        if absent(at(body, *steps)):
            found.append((missing(field), "/" + "/".join(map(str, steps))))
    period = at(body, "period")
    if not absent(period):
        end = at(period, "end")
        if absent(end):
            found.append((missing("period/end"), "/period/end"))
        elif not (isinstance(end, str) and EXPIRY.match(end)):
            found.append((invalid(shown(end), "period"), "/period/end"))
    for field, steps, longest in (("identifier/value", ("identifier", 0, "value"), 25),
                                  ("beneficiary/identifier/value", ("beneficiary", "identifier", "value"), 25),
                                  ("Institution id", ("payor", 0, "identifier", "value"), 30)):
        value = at(body, *steps)
        if not absent(value) and not _ehic_text(value, longest):
            found.append((invalid(shown(value), field), "/" + "/".join(map(str, steps))))
    status = at(body, "status")
    if not absent(status) and status != "active":
        found.append((invalid(shown(status), "status"), "/status"))
    return found


def _ehic_text(value, longest: int) -> bool:
    """Letters, digits, space and - , / : ' . only, at most `longest` characters (surrounding spaces aside)."""
    return isinstance(value, str) and len(value.strip()) <= longest and bool(EHIC_TEXT.match(value.strip()))


def subscriber_number(body) -> str | None:
    """The NHS number a Coverage body names (subscriber.identifier.value), when it is a string."""
    return dig(body, "subscriber", "identifier", "value", kind=str)
