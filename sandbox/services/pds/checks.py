"""PDS request checks, in the order live PDS applies them: the first one that rejects is the answer."""

from __future__ import annotations

import re

from sandbox.conformance.checks import CheckSet, RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import is_ascii_digits
from sandbox.services.pds import access as access_rules
from sandbox.services.pds import (
    birth,
    birth_request,
    coverage,
    coverage_request,
    create,
    patch_request,
    search_params,
)
from sandbox.synthetic.identifiers import is_valid_nhs_number
from sandbox.web.access import HEALTHCARE_WORKER, access_findings

checks = CheckSet("pds")

UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ODS_PATTERN = re.compile(r"^[A-Z0-9]{3,10}$")
TEN_DIGITS = re.compile(r"[0-9]{10}")  # ASCII only: str.isdigit() admits other scripts' digits
ON_PATIENT = ("get-patient", "patch-patient", "get-related-people")


# First: the API platform checks the access token before PDS sees the request.
@checks.register("PDS-HDR-005")
def authorization(req: RequestView, ctx):
    yield from access_findings("PDS-HDR-005", ctx)  # honours SANDBOX_AUTH: strict refuses with 401 ACCESS_DENIED


@checks.register(access_rules.REQ_AAL)
def authentication_level(req: RequestView, ctx):
    yield from access_rules.judge_authentication(ctx.facts)


@checks.register("PDS-HDR-001", "PDS-HDR-002", "PDS-HDR-003")
def x_request_id(req: RequestView, ctx):
    value = req.header("X-Request-ID")
    if value is None:
        yield Finding.failed("PDS-HDR-001", "X-Request-ID header is missing; PDS refuses requests without it "
                             "(400 MISSING_VALUE).", "header:X-Request-ID", reject=SpineError(
                                 400, "MISSING_VALUE", "Invalid request with error - X-Request-ID header must be "
                                 "supplied to access this resource"))
        return
    yield Finding.passed("PDS-HDR-001", "X-Request-ID header is present.", "header:X-Request-ID")
    if not UUID_PATTERN.match(value):
        yield Finding.failed("PDS-HDR-002", f"X-Request-ID {value[:80]!r} is not a UUID (expected 8-4-4-4-12 "
                             "hexadecimal digits, e.g. 60E0B220-8136-4CA5-AE46-1D97EF59D068).",
                             "header:X-Request-ID", reject=SpineError(
                                 400, "INVALID_VALUE", f"Invalid value - '{value}' in header 'X-Request-ID'"))
        return
    yield Finding.passed("PDS-HDR-002", f"X-Request-ID {value!r} is a UUID.", "header:X-Request-ID")
    # As uuid.UUID(value).version says, read off the matched text: the version digit, for the RFC 4122 variant only.
    version = int(value[14], 16) if value[19] in "89abAB" else None
    if version == 4:
        yield Finding.passed("PDS-HDR-003", "X-Request-ID is a version 4 UUID.", "header:X-Request-ID")
    else:
        yield Finding.warning("PDS-HDR-003", f"X-Request-ID {value!r} is a version {version} UUID; PDS asks for "
                              "version 4 (random) so that ids never collide across systems.", "header:X-Request-ID")


@checks.register("PDS-HDR-004")
def x_correlation_id(req: RequestView, ctx):
    value = req.header("X-Correlation-ID")
    if value is None:
        return
    if "." in value:
        yield Finding.warning("PDS-HDR-004", f"X-Correlation-ID {value[:80]!r} contains '.', which PDS recommends "
                              "avoiding.", "header:X-Correlation-ID")
    else:
        yield Finding.passed("PDS-HDR-004", "X-Correlation-ID has no '.' characters.", "header:X-Correlation-ID")


@checks.register("PDS-HDR-006")
def end_user_organisation(req: RequestView, ctx):
    value = req.header("NHSD-End-User-Organisation-ODS")
    if value is None:
        yield Finding.info("PDS-HDR-006", "NHSD-End-User-Organisation-ODS not sent: required if your application "
                           "serves more than one end-user organisation.", "header:NHSD-End-User-Organisation-ODS")
    elif not ODS_PATTERN.match(value):
        yield Finding.failed("PDS-HDR-006", f"NHSD-End-User-Organisation-ODS {value[:40]!r} is not an ODS code "
                             "(3-10 upper-case letters and digits, e.g. Y12345).",
                             "header:NHSD-End-User-Organisation-ODS")
    else:
        yield Finding.passed("PDS-HDR-006", f"NHSD-End-User-Organisation-ODS {value!r} is an ODS code.",
                             "header:NHSD-End-User-Organisation-ODS")


@checks.register("PDS-HDR-007")
def session_urid(req: RequestView, ctx):
    value = req.header("NHSD-Session-URID")
    if value is None:
        return
    access = ctx.facts.get("access")
    if access_rules.applied(access) and access.mode != HEALTHCARE_WORKER:
        yield Finding.info("PDS-HDR-007", f"NHSD-Session-URID is ignored in {access_rules.NAMES[access.mode]} access "
                           "mode; only healthcare worker access uses it.", "header:NHSD-Session-URID")
    elif is_ascii_digits(value, most=64):
        yield Finding.passed("PDS-HDR-007", "NHSD-Session-URID is numeric.", "header:NHSD-Session-URID")
    else:
        yield Finding.failed("PDS-HDR-007", f"NHSD-Session-URID {value[:40]!r} is not a numeric user role id.",
                             "header:NHSD-Session-URID", reject=access_rules.urid_invalid(value))


# Then the API platform's access-mode rules, before PDS itself looks at the path, parameters or body.
@checks.register(*access_rules.REQUIREMENTS)
def access_mode(req: RequestView, ctx):
    yield from access_rules.judge(req, ctx.operation, ctx.facts)


@checks.register("PDS-GET-001", operations=ON_PATIENT)
def nhs_number_in_path(req: RequestView, ctx):
    number = req.params.get("nhs_number", "")
    if is_valid_nhs_number(number):
        yield Finding.passed("PDS-GET-001", f"{number} is a valid NHS number.", "path:id")
    else:
        why = "fails the Modulus 11 check" if TEN_DIGITS.fullmatch(number) else "is not ten digits"
        yield Finding.failed("PDS-GET-001", f"NHS number {number[:20]!r} {why}.", "path:id",
                             reject=SpineError(400, "INVALID_RESOURCE_ID", ""))


@checks.register(*search_params.REQUIREMENTS, operations=("search-patients",))
def search_parameters(req: RequestView, ctx):
    yield from search_params.parse_search(req.query)[1]


@checks.register(patch_request.REQ_IF_MATCH, operations=("patch-patient",))
def if_match(req: RequestView, ctx):
    yield patch_request.judge_if_match(req.header("If-Match"))


@checks.register(patch_request.REQ_TYPE, operations=("patch-patient",))
def patch_content_type(req: RequestView, ctx):
    yield patch_request.judge_content_type(req)


@checks.register(*patch_request.BODY_REQUIREMENTS, operations=("patch-patient",))
def patch_operations(req: RequestView, ctx):
    yield from patch_request.judge_patch_body(req)


@checks.register(create.REQ_TYPE, operations=("create-patient",))
def create_content_type(req: RequestView, ctx):
    yield create.judge_content_type(req)


@checks.register(create.REQ_BODY, operations=("create-patient",))
def create_request(req: RequestView, ctx):
    problems = create.request_problems(req)
    yield from (p.finding() for p in problems)
    if not problems:
        yield Finding.passed(create.REQ_BODY, "The body is a valid Patient create request.", "body")


@checks.register(coverage.REQ_SEARCH, operations=("search-coverage",))
def coverage_search(req: RequestView, ctx):
    problems = coverage.search_problems(req)
    yield from (p.finding() for p in problems)
    if not problems:
        yield Finding.passed(coverage.REQ_SEARCH, f"{coverage.PARAMETER} is the one parameter, a valid NHS number.",
                             "query")


@checks.register(coverage.REQ_VERSION, coverage_request.REQ_BODY, operations=("update-coverage",))
def coverage_update(req: RequestView, ctx):
    yield patch_request.judge_if_match(req.header("If-Match"), coverage.REQ_VERSION)
    yield from coverage_request.judge_body(req)


@checks.register(birth_request.REQ_BODY, birth_request.REQ_REGISTRATION, operations=("process-birth-details",))
def birth_details(req: RequestView, ctx):
    yield from birth_request.judge(req, published=birth.published_path(req))
