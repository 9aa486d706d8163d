"""PDS's access modes: what each mode may do, and how live PDS refuses the rest.

| operation                  | application-restricted      | healthcare worker  | patient                        |
|----------------------------|-----------------------------|--------------------|--------------------------------|
| search                     | one unique match at most    | up to 50 matches   | refused                        |
| retrieval, related people  | yes                         | yes                | own record only                |
| PATCH                      | refused                     | yes                | own record, limited fields     |
| create, record at birth    | refused                     | yes                | refused                        |
| Coverage GET and POST      | refused                     | refused            | own record only                |

Healthcare workers are authenticated to AAL2 or AAL3 and NHSD-Session-URID, when sent, names one of their roles
(the header is ignored in the other modes); patients are NHS login P9 users with one of three vectors of trust.

The rules apply when the request carries a valid access token, or a session token standing in for one, and
SANDBOX_AUTH is strict or lenient; a refusal is then the answer in both. Without a valid token (only answered when
SANDBOX_AUTH is lenient) the sandbox behaves as the open published sandbox does and records that the rules were
not applied; with SANDBOX_AUTH=off it records nothing. A session token carries no user identity, so the rules that
need one (own record, vector of trust, AAL, the worker's roles) are recorded as not checked; one issued for a patient
(mock_spine(access="patient", nhs_number=…)) names the NHS number, so the own-record rule applies to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from sandbox.conformance.checks import RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.services.pds.search_params import SearchQuery
from sandbox.web.access import ACCESS_DENIED_TEXT, APPLICATION, HEALTHCARE_WORKER, NONE, PATIENT, Access

# PDS-ACC-005 (a patient's updates) is judged against the record, in patient_updates.py.
REQ_OPERATION, REQ_SINGLE, REQ_OWN, REQ_VOT, REQ_ROLE, REQ_AAL = (
    "PDS-ACC-001", "PDS-ACC-002", "PDS-ACC-003", "PDS-ACC-004", "PDS-ACC-006", "PDS-ACC-007")
REQ_COVERAGE = "PDS-COV-002"
REQUIREMENTS = (REQ_OPERATION, REQ_SINGLE, REQ_OWN, REQ_VOT, REQ_ROLE, REQ_COVERAGE)
COVERAGE = ("search-coverage", "update-coverage")
ON_A_PATIENT = ("get-patient", "patch-patient", "get-related-people", *COVERAGE)
PDS_VECTORS = ("P9.Cp.Cd", "P9.Cp.Ck", "P9.Cm")
STRONG_AAL = ("AAL2", "AAL3")
NAMES = {APPLICATION: "application-restricted", HEALTHCARE_WORKER: "healthcare worker", PATIENT: "patient"}
PLATFORM_NAMES = {APPLICATION: "application-restricted", HEALTHCARE_WORKER: "user-restricted",
                  PATIENT: "patient-access"}  # as the API platform names the modes in its refusals
ALLOWED = {
    "search-patients": "application-restricted access (one unique match) and healthcare worker access",
    "get-patient": "every access mode (patient access: the patient's own record only)",
    "get-related-people": "every access mode (patient access: the patient's own record only)",
    "patch-patient": "healthcare worker access, and patient access for the patient's own record (limited fields)",
    "create-patient": "healthcare worker access only",
    "process-birth-details": "healthcare worker access only",
    "search-coverage": "patient access only (for the specific use cases agreed at onboarding)",
    "update-coverage": "patient access only (for the specific use cases agreed at onboarding)",
}

# Live wording (the API platform's PDS proxy and PDS's own tests); see requirements.yaml for where it is ours.
DOCS = "https://digital.nhs.uk/developer/api-catalogue/personal-demographics-service-fhir"
PATIENT_DENIED = SpineError(403, "ACCESS_DENIED", "Your access token has insufficient permissions. See documentation "
                            f"regarding Patient access restrictions {DOCS}",
                            display="Patient cannot perform this action", issue_code="forbidden")
SEARCH_TOO_WIDE = SpineError(403, "INVALID_VALUE", "Your app has insufficient permissions to perform this search. "
                             "Please contact support.", display="Cannot retrieve more than one result with "
                             "Application Restricted access token", issue_code="token")
WEAK_AUTHENTICATION = SpineError(401, "ACCESS_DENIED", ACCESS_DENIED_TEXT)


def _method_refused(display: str) -> SpineError:
    return SpineError(403, "INVALID_METHOD", "Your app has insufficient permissions to use this method. Please "
                      "contact support.", display=display, issue_code="forbidden")


UPDATE_REFUSED = _method_refused("Cannot update resource with application-restricted access token")
CREATE_REFUSED = _method_refused("Cannot update resource without Healthcare Worker access token")


def resource_refused(method: str, mode: str) -> SpineError:
    return SpineError(403, "ACCESS_DENIED", "Your app has insufficient permissions to use this operation. Please "
                      "contact support.", display=f"Cannot {method} resource with {PLATFORM_NAMES[mode]} access token",
                      issue_code="forbidden")


def urid_invalid(value: str) -> SpineError:
    return SpineError(400, "INVALID_VALUE", f"Invalid value - '{value}' in header 'NHSD-Session-URID'. Refer to the "
                      f"guidance for this header in our API Specification {DOCS}", issue_code="value")


def applied(access: Access | None) -> bool:
    """Whether PDS's access-mode rules apply to a request: a valid token and SANDBOX_AUTH strict or lenient."""
    return access is not None and access.valid and access.strictness != "off"


def rules_fact(access: Access | None) -> dict[str, str]:
    """For scenario triggers: the mode whose rules this request is judged by, or "none"."""
    return {"access_rules": access.mode if applied(access) else NONE}


def judge_authentication(facts: dict) -> Iterator[Finding]:
    """A healthcare worker's authentication level: the platform judges it with the token, before the headers."""
    access: Access = facts.get("access") or Access()
    if not applied(access) or access.mode != HEALTHCARE_WORKER:
        return
    if access.session is not None:
        yield Finding.info(REQ_AAL, "Not checked: a session token stands in for a healthcare worker token without "
                           "a CIS2 identity; exchange a CIS2 ID token to exercise the AAL and role rules.",
                           "header:Authorization")
    elif access.aal in STRONG_AAL:
        yield Finding.passed(REQ_AAL, f"The healthcare worker authenticated to {access.aal}.", "header:Authorization")
    else:
        yield Finding.failed(REQ_AAL, f"The healthcare worker authenticated to {access.aal or 'an unknown level'}; "
                             f"PDS healthcare worker access needs {' or '.join(STRONG_AAL)} (live: 401 "
                             "ACCESS_DENIED).", "header:Authorization", WEAK_AUTHENTICATION)


def judge(req: RequestView, operation: str, facts: dict) -> Iterator[Finding]:
    """The access mode's rules for one operation, in the order the API platform refuses."""
    access: Access = facts.get("access") or Access()
    if access.strictness == "off":
        return
    permission = REQ_COVERAGE if operation in COVERAGE else REQ_OPERATION
    if not access.valid:
        yield Finding.info(permission, f"Access-mode rules not applied: there is no valid access token, so the sandbox "
                           "answers as the open published sandbox does. Live PDS refuses the request with 401 first "
                           f"(PDS-HDR-005); with a token, {operation} is open to {ALLOWED[operation]}.",
                           "header:Authorization")
        return
    if access.mode == HEALTHCARE_WORKER:
        yield from _role(req, access)
    yield _permission(req, operation, access, permission)
    if access.mode == APPLICATION and operation == "search-patients":
        yield _single_result(req)
    if access.mode == PATIENT:
        yield from _patient(operation, access, _subject(req, operation, facts))


def search_query(access: Access | None, query: SearchQuery) -> SearchQuery:
    """Application-restricted searches return a single unique match: PDS sets _max-results to 1."""
    return replace(query, max_results=1) if applied(access) and access.mode == APPLICATION else query


def limits_updates(access: Access | None) -> bool:
    """Whether a PATCH is held to the fields patient access may change (patient_updates.py)."""
    return applied(access) and access.mode == PATIENT


def _permission(req: RequestView, operation: str, access: Access, requirement: str) -> Finding:
    mode, who = access.mode, access.describe()
    error = _refusal(operation, mode, req.method)
    if error is None:
        return Finding.passed(requirement, f"{operation} is open to {NAMES[mode]} access ({who}).",
                              "header:Authorization")
    return Finding.failed(requirement, f"{operation} is open to {ALLOWED[operation]}, not to {NAMES[mode]} access "
                          f"({who}); live PDS refuses it ({error.status} {error.code} '{error.display}').",
                          "header:Authorization", error)


def _refusal(operation: str, mode: str, method: str) -> SpineError | None:
    if operation in COVERAGE:
        return None if mode == PATIENT else resource_refused(method, mode)
    if operation == "create-patient":
        return None if mode == HEALTHCARE_WORKER else CREATE_REFUSED
    if operation == "process-birth-details":
        return None if mode == HEALTHCARE_WORKER else _method_refused(
            f"Cannot create resource with {PLATFORM_NAMES[mode]} access token")
    if operation == "patch-patient" and mode == APPLICATION:
        return UPDATE_REFUSED
    if operation == "search-patients" and mode == PATIENT:
        return PATIENT_DENIED
    return None


def _single_result(req: RequestView) -> Finding:
    sent = req.query.get("_max-results")
    if sent is None:
        return Finding.passed(REQ_SINGLE, "_max-results is not sent: PDS sets it to 1 for application-restricted "
                              "access, so the search answers one unique match at most.", "query:_max-results")
    if sent == ["1"]:
        return Finding.passed(REQ_SINGLE, "_max-results is 1, as application-restricted access requires.",
                              "query:_max-results")
    shown = ", ".join(repr(v[:20]) for v in sent)
    return Finding.failed(REQ_SINGLE, f"_max-results is {shown}: application-restricted access returns a single unique "
                          "match, so send _max-results=1 or leave it out (live PDS: 403 INVALID_VALUE).",
                          "query:_max-results", SEARCH_TOO_WIDE)


def _role(req: RequestView, access: Access) -> Iterator[Finding]:
    urid = req.header("NHSD-Session-URID")
    if access.session is not None:
        if urid is not None:
            yield Finding.info(REQ_ROLE, f"Not checked: NHSD-Session-URID {urid[:40]!r} cannot be matched to a role, "
                               "as a session token carries no CIS2 identity.", "header:NHSD-Session-URID")
        return
    roles = access.roles or ((access.role_id,) if access.role_id else ())
    if urid is None:
        yield Finding.info(REQ_ROLE, f"NHSD-Session-URID not sent: PDS acts in the role selected at sign-in "
                           f"({access.role_id}).", "header:NHSD-Session-URID")
    elif urid in roles:
        yield Finding.passed(REQ_ROLE, f"NHSD-Session-URID {urid} is one of the user's roles.",
                             "header:NHSD-Session-URID")
    else:
        yield Finding.failed(REQ_ROLE, f"NHSD-Session-URID {urid[:40]!r} is not a role of CIS2 user {access.user_id} "
                             f"(their roles: {', '.join(roles) or 'none'}); send the role the user selected, or leave "
                             "the header out (live: 400 INVALID_VALUE).", "header:NHSD-Session-URID",
                             urid_invalid(urid))


def _patient(operation: str, access: Access, subject: str | None) -> Iterator[Finding]:
    if access.session is not None and access.nhs_number is None:
        yield Finding.info(REQ_VOT, "Not checked: a session token stands in for a patient token without an NHS "
                           "login identity; exchange an NHS login ID token to exercise the vector of trust and "
                           "own-record rules.", "header:Authorization")
        if subject is not None:
            yield Finding.info(REQ_OWN, f"Not checked: whether {subject} is the patient's own record (a session token "
                               "carries no NHS number).", "header:Authorization")
        return
    if access.session is not None:  # issued for a patient (mock_spine(access="patient")): own record only
        yield Finding.info(REQ_VOT, f"Not checked: a session token stands in for the patient {access.nhs_number} "
                           "without an NHS login sign-in; exchange an NHS login ID token to exercise the vector of "
                           "trust.", "header:Authorization")
    elif access.vot in PDS_VECTORS:
        yield Finding.passed(REQ_VOT, f"The patient signed in to NHS login with vector of trust {access.vot}.",
                             "header:Authorization")
    else:
        yield Finding.failed(REQ_VOT, f"The patient's NHS login vector of trust is {access.vot}; PDS patient access "
                             f"needs P9 with one of {', '.join(PDS_VECTORS)} (live: 403 ACCESS_DENIED).",
                             "header:Authorization", PATIENT_DENIED)
    if operation not in ON_A_PATIENT or subject is None:
        return
    if subject == access.nhs_number:
        yield Finding.passed(REQ_OWN, f"{subject} is the patient's own NHS number.", "header:Authorization")
    else:
        yield Finding.failed(REQ_OWN, f"NHS number {subject[:20]!r} is not the signed-in patient's own "
                             f"({access.nhs_number}): in patient access a patient reaches only their own record "
                             "(live: 403 ACCESS_DENIED).", _where(operation), PATIENT_DENIED)


def _subject(req: RequestView, operation: str, facts: dict) -> str | None:
    """The NHS number the request is about, where it names one (the coverage checks judge a malformed one)."""
    if operation == "search-coverage":
        values = req.query.get("subscriber:identifier") or []
        return values[0] if len(values) == 1 else None
    if operation == "update-coverage":
        return facts.get("nhs_number")
    return req.params.get("nhs_number")


def _where(operation: str) -> str:
    return {"search-coverage": "query:subscriber:identifier", "update-coverage": "/subscriber/identifier/value"}.get(
        operation, "path:id")
