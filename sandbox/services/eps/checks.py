"""EPS request checks, in the order live EPS meets a request: the API platform (access token, X-Request-ID, the
user's role), reading the body, its resourceType, what the access mode and role may call, the specification's
verification errors (validation.py), the short-form prescription id's check character, then the request profile
(schemas/requests.yaml). The first finding that carries a rejection is the answer, in the live shape.

Access modes: EPS is user-restricted (a healthcare worker through NHS CIS2 at AAL3). Application-restricted tokens
are refused on prescribing and dispensing messages, as live (unattended nominated release and the tracker excepted);
patient tokens are refused. The role rule (context.PRESCRIBING_ROLES / DISPENSING_ROLES) is the sandbox's model of
national RBAC: live answers it through the user's RBAC rights, the sandbox by the role code of the selected role."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from sandbox.conformance.checks import CheckContext, CheckSet, RequestView
from sandbox.conformance.findings import Finding, Outcome, SpineError
from sandbox.conformance.parsing import Malformed, is_ascii_digits, parse_json
from sandbox.conformance.schemas import (
    REMEMBERED_BODY_BYTES,
    SchemaProblem,
    definition_validator,
    problems_in,
    schema_findings,
)
from sandbox.services.eps import validation
from sandbox.services.eps.context import (
    CANCEL,
    CLAIM,
    CONVERT,
    CORRELATION_ID,
    DISPENSE,
    DISPENSING_ROLES,
    METADATA,
    OPERATIONS,
    ORDER,
    PING,
    PREPARE,
    PRESCRIBING_ROLES,
    PROCESS_UNKNOWN,
    RELEASE,
    REQUEST_ID,
    RETURN,
    ROLE_ID,
    STATUS,
    TASK_UNKNOWN,
    TRACKER,
    VERIFY,
    WITHDRAW,
)
from sandbox.services.eps.errors import FHIR_JSON, eps_error, issue
from sandbox.services.eps.prescription_ids import short_form_problem
from sandbox.services.eps.resources import parameter, prescription_id
from sandbox.web.access import APPLICATION, HEALTHCARE_WORKER, PATIENT, Access, access_findings

checks = CheckSet("eps")

SCHEMA_FILE = Path(__file__).with_name("schemas") / "requests.yaml"

# ---- requirement ids (requirements/checks.yaml)
REQ_TOKEN, REQ_MODE, REQ_ROLE, REQ_PATIENT, REQ_AAL = (
    "EPS-AUTH-001", "EPS-AUTH-002", "EPS-AUTH-003", "EPS-AUTH-004", "EPS-AUTH-005")
REQ_REQUEST_ID, REQ_REQUEST_ID_UUID, REQ_REQUEST_ID_V4, REQ_URID, REQ_URID_ROLE, REQ_CORRELATION, REQ_CONTENT_TYPE = (
    "EPS-HDR-001", "EPS-HDR-002", "EPS-HDR-003", "EPS-HDR-004", "EPS-HDR-005", "EPS-HDR-006", "EPS-HDR-007")
REQ_JSON, REQ_RESOURCE_TYPE, REQ_PRESCRIPTION_ID = "EPS-BODY-001", "EPS-BODY-003", "EPS-BODY-004"

# ---- operations, by what live EPS asks of them
OPEN = (METADATA, PING, STATUS)  # the API platform's open endpoints: no token
AUTHENTICATED = tuple(op for op in OPERATIONS if op not in OPEN)
PRESCRIBING_OPS = (PREPARE, ORDER, CANCEL)
DISPENSING_OPS = (DISPENSE, RELEASE, RETURN, WITHDRAW, CLAIM, TASK_UNKNOWN)
# Bodies the checks read (the stateless $convert takes any message; $validate answers problems itself).
BODY_OPS = (*PRESCRIBING_OPS, *DISPENSING_OPS, PROCESS_UNKNOWN, VERIFY, CONVERT)
TYPED_OPS = (*PRESCRIBING_OPS, *DISPENSING_OPS, PROCESS_UNKNOWN, VERIFY)
VERIFIED_OPS = tuple(validation.RULES)
# Messages live EPS sends on to Spine, which refuses a short-form id whose check character is wrong.
ID_CHECKED_OPS = (ORDER, CANCEL, RELEASE, DISPENSE, CLAIM, RETURN, WITHDRAW)
# Request body -> (our schema definition, requirement), from each operation's request profile.
BODY_SCHEMAS: dict[str, tuple[str, str]] = {
    PREPARE: ("prescription-bundle", "EPS-BODY-010"), ORDER: ("order-bundle", "EPS-BODY-011"),
    CANCEL: ("cancel-bundle", "EPS-BODY-012"), DISPENSE: ("dispense-bundle", "EPS-BODY-013"),
    RELEASE: ("release-parameters", "EPS-BODY-014"), RETURN: ("return-task", "EPS-BODY-015"),
    WITHDRAW: ("withdraw-task", "EPS-BODY-016"), CLAIM: ("claim", "EPS-BODY-017"),
}

UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
USER_RESTRICTED_AAL = "AAL3"
AUTHORIZATION = "header:Authorization"
FEATURE = {**{op: "Prescribing" for op in PRESCRIBING_OPS}, **{op: "Dispensing" for op in DISPENSING_OPS},
           TRACKER: "Tracker"}


def access_of(ctx: CheckContext) -> Access:
    return ctx.facts.get("access") or Access()


def applied(access: Access) -> bool:
    """Whether the access-mode rules apply: a valid token (or a session token standing in for one), unless
    SANDBOX_AUTH=off."""
    return access.valid and access.strictness != "off"


def strict(access: Access) -> bool:
    """Live's header rules refuse only outside the open sandbox: SANDBOX_AUTH=strict."""
    return access.strictness == "strict"


# ================= 1. The API platform: the token, X-Request-ID, the user's role =================

@checks.register(REQ_TOKEN, operations=AUTHENTICATED)
def authorization(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    for found in access_findings(REQ_TOKEN, ctx):  # honours SANDBOX_AUTH: strict refuses, lenient records
        if found.reject is not None:
            found = replace(found, reject=eps_error(401, "forbidden", "ACCESS_DENIED", "Access Denied - Unauthorised",
                                                    found.reject.diagnostics))
        yield found


@checks.register(REQ_REQUEST_ID, REQ_REQUEST_ID_UUID, REQ_REQUEST_ID_V4, operations=AUTHENTICATED)
def request_id(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    """X-Request-ID: required in every environment but the open sandbox, a UUID (ideally version 4, lower case)."""
    value, where, refuse = req.header(REQUEST_ID), f"header:{REQUEST_ID}", strict(access_of(ctx))
    if value is None:
        message = f"{REQUEST_ID} is not sent; every request needs a new UUID in it (live EPS refuses with 400)."
        yield Finding.failed(REQ_REQUEST_ID, message if refuse else message + " Accepted because the sandbox is open "
                             "(SANDBOX_AUTH is not strict).", where, reject=eps_error(
                                 400, "value", "MISSING_FIELD", "X-Request-ID header missing or malformed")
                             if refuse else None)
        return
    yield Finding.passed(REQ_REQUEST_ID, f"{REQUEST_ID} is sent.", where)
    if not UUID_PATTERN.match(value):
        yield Finding.failed(REQ_REQUEST_ID_UUID, f"{REQUEST_ID} {value[:80]!r} is not a UUID (8-4-4-4-12 "
                             "hexadecimal digits, e.g. 60e0b220-8136-4ca5-ae46-1d97ef59d068).", where,
                             reject=eps_error(400, "value", "INVALID_VALUE", "Provided value is invalid",
                                              f"Invalid value - '{value}' in header '{REQUEST_ID}'")
                             if refuse else None)
        return
    yield Finding.passed(REQ_REQUEST_ID_UUID, f"{REQUEST_ID} {value} is a UUID.", where)
    version = uuid.UUID(value).version
    if version != 4 or value != value.lower():
        yield Finding.warning(REQ_REQUEST_ID_V4, f"{REQUEST_ID} {value} is a version {version} UUID"
                              f"{' with upper-case letters' if value != value.lower() else ''}; EPS asks for a "
                              "version 4 UUID in numbers and lower-case letters.", where)
    else:
        yield Finding.passed(REQ_REQUEST_ID_V4, f"{REQUEST_ID} is a lower-case version 4 UUID.", where)


def role_code_of(access: Access, role_id: str | None) -> str | None:
    """The national RBAC role code (its last part, e.g. R8000) of the role the request acts in: the token's
    selected role, or another role of the same user named by NHSD-Session-URID (from the identity service's
    synthetic workers)."""
    if role_id is None or role_id == access.role_id:
        code = access.role_code
    else:
        from sandbox.services.oauth.idp import worker  # here: the identity service is optional to the checks

        person = worker(access.user_id or "")
        code = next((r.code for r in person.roles if r.id == role_id), None) if person else None
    return code.split(":")[-1] if code else None


@checks.register(REQ_URID, REQ_URID_ROLE, operations=AUTHENTICATED)
def session_role(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    """NHSD-Session-URID: the user's role for this session, digits, one of the role profiles the user holds."""
    value, access, where = req.header(ROLE_ID), access_of(ctx), f"header:{ROLE_ID}"
    worker = applied(access) and access.mode == HEALTHCARE_WORKER and access.session is None
    if value is None:
        if worker:
            yield Finding.info(REQ_URID, f"{ROLE_ID} is not sent; the role selected at login ({access.role_id}) is "
                               "used. Send it when the user chose a role in your system.", where)
        return
    if applied(access) and access.mode != HEALTHCARE_WORKER:
        yield Finding.info(REQ_URID, f"{ROLE_ID} is ignored with {access.describe()}; only healthcare workers act in "
                           "a role.", where)
        return
    refusal = eps_error(400, "value", "INVALID_VALUE", "Provided value is invalid",
                        f"Invalid value - '{value}' in header '{ROLE_ID}'")
    if not is_ascii_digits(value, most=64):
        yield Finding.failed(REQ_URID, f"{ROLE_ID} {value[:40]!r} is not a role profile id (digits only, e.g. "
                             "555254240100).", where, reject=refusal if worker or strict(access) else None)
        return
    yield Finding.passed(REQ_URID, f"{ROLE_ID} {value} is a role profile id.", where)
    if not worker or access.roles is None:
        return
    if value in access.roles:
        yield Finding.passed(REQ_URID_ROLE, f"{ROLE_ID} {value} is one of the user's role profiles.", where)
    else:
        yield Finding.failed(REQ_URID_ROLE, f"{ROLE_ID} {value} is not one of the role profiles CIS2 user "
                             f"{access.user_id} holds ({', '.join(access.roles)}).", where, reject=refusal)


@checks.register(REQ_CORRELATION, operations=AUTHENTICATED)
def correlation_id(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    value, where = req.header(CORRELATION_ID), f"header:{CORRELATION_ID}"
    if value is None:
        return
    if "." in value:
        yield Finding.warning(REQ_CORRELATION, f"{CORRELATION_ID} {value[:80]!r} contains '.', which EPS recommends "
                              "avoiding.", where)
    else:
        yield Finding.passed(REQ_CORRELATION, f"{CORRELATION_ID} has no '.' characters; it is mirrored back.", where)


# ================= 2. Reading the body, and its resourceType =================

@checks.register(REQ_CONTENT_TYPE, REQ_JSON, operations=BODY_OPS)
def body_reading(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    yield from reading_findings(req)


def reading_findings(req: RequestView) -> Iterator[Finding]:
    kind, where = req.content_type, "header:Content-Type"
    if kind and not (kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))):
        yield Finding.failed(REQ_CONTENT_TYPE, f"Content-Type {kind!r} is not JSON; EPS takes {FHIR_JSON}.", where,
                             reject=eps_error(415, "invalid", diagnostics="Unsupported Media Type"))
        return
    if kind == FHIR_JSON:
        yield Finding.passed(REQ_CONTENT_TYPE, f"The body is sent as {FHIR_JSON}.", where)
    else:
        yield Finding.warning(REQ_CONTENT_TYPE, f"The body is sent as {kind or 'no Content-Type'}; the specification "
                              f"takes {FHIR_JSON}.", where)
    if req.body.strip() and document(req) is _UNREADABLE:
        yield Finding.failed(REQ_JSON, "The body is not valid JSON.", "body",
                             reject=eps_error(400, "invalid", diagnostics="Invalid request payload JSON format"))


_UNREADABLE = object()


def document(req: RequestView) -> Any:
    """The body as JSON: {} when empty (live reads no body as an empty resource), _UNREADABLE when not JSON."""
    if not req.body.strip():
        return {}
    try:
        return req.json()
    except Malformed:
        return _UNREADABLE


def _typed_body(req: RequestView, operation: str) -> Any:
    """The body as JSON when it has the resourceType the operation takes; else None (it was refused while reading
    the body, or for its resourceType)."""
    body = document(req)
    if body is _UNREADABLE or validation.resource_type_problem(operation, body) is not None:
        return None
    return body


@checks.register(REQ_RESOURCE_TYPE, operations=TYPED_OPS)
def resource_type(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    body = document(req)
    if body is _UNREADABLE:
        return
    yield from type_findings(ctx.operation, body)


def type_findings(operation: str, body: Any) -> Iterator[Finding]:
    operation = PREPARE if operation == VERIFY else operation  # $verify-signature takes a prescription's Bundle
    problem = validation.resource_type_problem(operation, body)
    if problem is None:
        yield Finding.passed(REQ_RESOURCE_TYPE, f"The body is a {validation.EXPECTED_TYPE.get(operation)}.",
                             "/resourceType")
    else:
        yield Finding.failed(REQ_RESOURCE_TYPE, problem.diagnostics, problem.location, reject=problem.error())


# ================= 3. What the access mode and the user's role may call =================

@checks.register(REQ_MODE, REQ_PATIENT, REQ_AAL, REQ_ROLE, operations=AUTHENTICATED)
def access_mode(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    access, op = access_of(ctx), ctx.operation
    if not applied(access):
        return
    feature, where = FEATURE.get(op), AUTHORIZATION
    if access.session is not None:
        yield Finding.info(REQ_MODE, f"The request carries a {access.describe()}: the access mode and role rules "
                           "are not applied to it.", where)
        return
    if access.mode == PATIENT:
        yield Finding.failed(REQ_PATIENT, f"{op} was called with a patient (NHS login) token; EPS is used by "
                             "healthcare workers only.", where, reject=_no_permission(feature or "Prescribing"))
        return
    if access.mode == APPLICATION:
        yield from _application(req, op, feature)
        return
    if access.mode != HEALTHCARE_WORKER:
        return
    yield Finding.passed(REQ_MODE, f"{op} is called with {access.describe()}.", where)
    if feature in ("Prescribing", "Dispensing"):
        yield from _authentication_level(access, feature)
        yield from _role(access, req.header(ROLE_ID), op, feature)


def _no_permission(feature: str) -> SpineError:
    return eps_error(403, "forbidden", diagnostics=f"Your app does not have permission to access {feature.lower()} "
                     "functionality.")


def _application(req: RequestView, op: str, feature: str | None) -> Iterator[Finding]:
    where = AUTHORIZATION
    if op == RELEASE and not _names_prescription(req):
        yield Finding.passed(REQ_MODE, "A nominated release (no group-identifier) may be made unattended, with an "
                             "application-restricted token.", where)
    elif feature in ("Prescribing", "Dispensing"):
        yield Finding.failed(REQ_MODE, f"{op} needs a healthcare worker (NHS CIS2, user-restricted) token; it was "
                             "called with an application-restricted token.", where, reject=eps_error(
                                 403, "forbidden", diagnostics=f"{feature} functionality can only be accessed using "
                                 "the user-restricted access mode."))
    else:
        yield Finding.passed(REQ_MODE, f"{op} may be called with an application-restricted token.", where)


def _names_prescription(req: RequestView) -> bool:
    body = document(req)
    return body is not _UNREADABLE and parameter(body, "group-identifier") is not None


def _authentication_level(access: Access, feature: str) -> Iterator[Finding]:
    if access.aal == USER_RESTRICTED_AAL:
        yield Finding.passed(REQ_AAL, f"The user authenticated at {access.aal}.", AUTHORIZATION)
    else:
        yield Finding.failed(REQ_AAL, f"The user authenticated at {access.aal or 'an unknown level'}; EPS needs "
                             "AAL3 (a smartcard or an equivalent authenticator), so the token carries no EPS scope.",
                             AUTHORIZATION, reject=_no_permission(feature))


def _role(access: Access, session_role: str | None, op: str, feature: str) -> Iterator[Finding]:
    role_id = session_role or access.role_id
    code = role_code_of(access, role_id)
    allowed = PRESCRIBING_ROLES if feature == "Prescribing" else DISPENSING_ROLES
    where = f"header:{ROLE_ID}" if session_role else AUTHORIZATION
    if code is None:
        yield Finding.info(REQ_ROLE, f"The role of this request ({role_id or 'none selected'}) has no known RBAC "
                           f"role code, so whether it may use {feature.lower()} functionality is not judged.", where)
    elif code in allowed:
        yield Finding.passed(REQ_ROLE, f"Role {role_id} ({code}) may use {feature.lower()} functionality.", where)
    else:
        needed = ", ".join(allowed)
        yield Finding.failed(REQ_ROLE, f"Role {role_id} ({code}) may not use {feature.lower()} functionality "
                             f"({op}); it needs one of the RBAC roles {needed}.", where, reject=eps_error(
                                 403, "forbidden", "ACCESS_DENIED", "Access has been denied to process this request",
                                 f"The user's role {role_id} ({code}) does not permit {feature.lower()}: it needs one "
                                 f"of the national RBAC roles {needed}."))


# ================= 4. The specification's verification errors, the prescription id =================

@checks.register(*validation.REQUIREMENTS, operations=VERIFIED_OPS)
def verification(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    body = _typed_body(req, ctx.operation)
    if body is not None:
        yield from verification_findings(ctx.operation, body)


def verification_findings(operation: str, body: Any) -> Iterator[Finding]:
    problems = validation.verification_problems(operation, body)
    for problem in problems:
        yield Finding.failed(problem.requirement, problem.diagnostics or problem.display, problem.location,
                             reject=problem.error())
    if not problems:
        yield Finding.passed(validation.RULE_OF[operation], "The message passes every verification rule of the "
                             f"specification for {operation}.", "body")


@checks.register(REQ_PRESCRIPTION_ID, operations=(PREPARE, *ID_CHECKED_OPS))
def prescription_id_check(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    body = document(req)
    if body is not _UNREADABLE:
        yield from id_findings(ctx.operation, body)


def id_findings(operation: str, body: Any) -> Iterator[Finding]:
    """The short-form prescription id (24F5DA-A83008-7EFE6Z) and its check character, as Spine checks it."""
    value = prescription_id(body)
    if value is None:
        return
    problem = short_form_problem(value)
    if problem is None:
        yield Finding.passed(REQ_PRESCRIPTION_ID, f"Prescription id {value} has the right check character.", "body")
    elif operation == PREPARE:
        yield Finding.warning(REQ_PRESCRIPTION_ID, f"{problem} $prepare does not check it; Spine refuses the order.",
                              "body")
    else:
        what = "checksum" if "check character" in problem else "ID"
        yield Finding.failed(REQ_PRESCRIPTION_ID, problem, "body", reject=eps_error(
            400, "processing", "FAILURE_TO_PROCESS_MESSAGE", "Failure to process message",
            f"Invalid prescription {what}. {problem}"))


# ================= 5. The request profile (schemas/requests.yaml): findings =================

@checks.register(*(requirement for _, requirement in BODY_SCHEMAS.values()), operations=tuple(BODY_SCHEMAS))
def request_profile(req: RequestView, ctx: CheckContext) -> Iterator[Finding]:
    body = _typed_body(req, ctx.operation)
    if body is not None:
        yield from profile_findings(ctx.operation, req.body, body)


def profile_findings(operation: str, raw: bytes, body: Any) -> Iterator[Finding]:
    if operation not in BODY_SCHEMAS:
        return
    definition, requirement = BODY_SCHEMAS[operation]
    problems = _remembered_problems(operation, raw) if len(raw) <= REMEMBERED_BODY_BYTES else \
        request_problems(operation, body)
    yield from schema_findings(problems, requirement, definition)


@functools.lru_cache(maxsize=512)
def _remembered_problems(operation: str, raw: bytes) -> tuple[SchemaProblem, ...]:
    try:
        body = parse_json(raw) if raw.strip() else {}
    except Malformed:
        return ()
    return tuple(request_problems(operation, body))


def validator(definition: str) -> Draft202012Validator:
    return definition_validator(SCHEMA_FILE, definition)


def request_problems(operation: str, body: Any) -> list[SchemaProblem]:
    """Every way a body breaks its operation's request profile, each with a JSON pointer."""
    if operation not in BODY_SCHEMAS:
        return []
    check = validator(BODY_SCHEMAS[operation][0])
    return [] if check.is_valid(body) else problems_in(check, body)


# ================= $validate: the body checks over one message =================

def body_findings(raw: bytes, operation: str | None) -> list[Finding]:
    """What the checks find in a message body ($validate): reading it, its type, the verification errors, the
    prescription id and the request profile."""
    view = RequestView("POST", "/$validate", headers=[("Content-Type", FHIR_JSON)], body=raw)
    found = list(reading_findings(view))
    body = document(view)
    if body is _UNREADABLE:
        return found
    if operation is None:
        found.append(Finding.failed(REQ_RESOURCE_TYPE, "Incorrect FHIR resource type. Expected Bundle.",
                                    "/resourceType"))
        return found
    found += type_findings(operation, body)
    if validation.resource_type_problem(operation, body) is None:
        found += verification_findings(operation, body)
        found += id_findings(operation, body)
        found += profile_findings(operation, raw, body)
    return found


def as_issue(finding: Finding) -> dict:
    """A finding as an OperationOutcome issue: the live issue it refuses with, or one naming the requirement."""
    severity = "warning" if finding.outcome == Outcome.WARNING else "error"
    if finding.reject is not None:
        error = finding.reject
        return issue(error.issue_code, error.code, error.display, error.diagnostics or finding.message, severity)
    return issue("invalid" if severity == "error" else "informational",
                 diagnostics=f"{finding.message} [{finding.location}] ({finding.requirement})", severity=severity)
