"""SDS request checks, in the order the SDS API applies them (correlation id, parameter names and system prefixes,
required values, Accept): the first that rejects is the answer, and every problem is recorded."""

from __future__ import annotations

import uuid

from sandbox.conformance.checks import CheckContext, CheckSet, RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.services.sds.errors import UUID_PATTERN, bad_request
from sandbox.services.sds.query import (
    DEVICE_PARAMETERS,
    ENDPOINT_PARAMETERS,
    ODS_SYSTEM,
    PK_SYSTEM,
    SVC_SYSTEM,
    Query,
    Value,
    parse,
    token_of,
)

checks = CheckSet("sds")

DEVICE, ENDPOINT = "search-devices", "search-endpoints"
SEARCHES = (DEVICE, ENDPOINT)
QUERY_FACT = "sds_query"
ACCEPTABLE = ("*/*", "application/fhir+json", "application/json")

CORRELATION_TEXT = ("Invalid X-Correlation-ID header. Should be an UUIDv4 matching regex "
                    "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'")
PREFIX_TEXT = {
    "organization": "Missing or invalid 'organization' query parameter. Should be "
                    f"'organization={ODS_SYSTEM}|value'",
    "manufacturing-organization": "Missing or invalid 'manufacturing-organization' query parameter. Should be "
                                  f"'manufacturing-organization={ODS_SYSTEM}|value'",
    # (sic: the SDS API's message lacks the closing ']')
    "identifier": "Missing or invalid 'identifier' query parameter. Should be one or both of: "
                  f"['identifier={SVC_SYSTEM}|value', 'identifier={PK_SYSTEM}|value'",
}
DEVICE_SVC_TEXT = f"Missing or invalid 'identifier' query parameter. Should be 'identifier={SVC_SYSTEM}|value'"
_ORG, _SVC, _PK = f"organization={ODS_SYSTEM}|value", f"identifier={SVC_SYSTEM}|value", f"identifier={PK_SYSTEM}|value"
# (sic: "Should one of", and the options run together)
COMBINATION_TEXT = ("Missing or invalid query parameters. Should one of following combinations: "
                    f"['{_ORG}&{_SVC}&{_PK}''{_ORG}&{_SVC}''{_ORG}&{_PK}''{_SVC}&{_PK}']")
REQUIREMENT_OF = {"organization": "SDS-QRY-002", "identifier": "SDS-QRY-003", "manufacturing-organization": "SDS-QRY-004"}


def query_of(req: RequestView, ctx: CheckContext) -> Query:
    """The parsed query (from the raw query string, a fact the route adds); rebuilt from the view when re-judged."""
    found = ctx.facts.get(QUERY_FACT)
    if isinstance(found, Query):
        return found
    return Query({k: [Value(v) for v in values] for k, values in req.query.items()})


def facts(view: RequestView) -> dict:
    from flask import request

    return {QUERY_FACT: parse(request.query_string)}


@checks.register("SDS-HDR-001", "SDS-HDR-002", operations=SEARCHES)
def correlation_id(req: RequestView, ctx):
    values = [v for k, v in req.headers if k.lower() == "x-correlation-id"]
    sent = ",".join(values)
    where = "header:X-Correlation-ID"
    if not sent:
        yield Finding.warning("SDS-HDR-002", "No X-Correlation-ID sent: SDS answered with a fresh one; send your own "
                              "UUID so that your logs and SDS's can be matched.", where)
        return
    yield Finding.passed("SDS-HDR-002", "X-Correlation-ID is sent.", where)
    count = len(values) if len(values) > 1 else sent.count(",") + 1
    if count > 1:  # (a WSGI server joins repeated header lines with commas before we see them)
        yield Finding.failed("SDS-HDR-001", f"X-Correlation-ID holds {count} values ({sent[:120]!r}): sent more "
                             "than once, SDS reads the lines joined with commas, which is not a UUID. Send it once.",
                             where,
                             reject=bad_request(CORRELATION_TEXT))
    elif not UUID_PATTERN.match(sent):
        yield Finding.failed("SDS-HDR-001", f"X-Correlation-ID {sent[:80]!r} is not a UUID (expected 8-4-4-4-12 "
                             "hexadecimal digits with hyphens, no braces, e.g. "
                             f"{str(uuid.uuid4()).upper()}).", where, reject=bad_request(CORRELATION_TEXT))
    else:
        yield Finding.passed("SDS-HDR-001", f"X-Correlation-ID {sent!r} is a UUID.", where)


@checks.register("SDS-HDR-003", operations=SEARCHES)
def api_key(req: RequestView, ctx):
    if req.header("apikey"):
        yield Finding.passed("SDS-HDR-003", "apikey header is sent.", "header:apikey")
    else:
        yield Finding.warning("SDS-HDR-003", "No apikey header: the sandbox accepts that, but live SDS refuses a "
                              "request without your application's API key (401).", "header:apikey")


@checks.register("SDS-QRY-001", "SDS-QRY-002", "SDS-QRY-003", "SDS-QRY-004", "SDS-QRY-010", operations=SEARCHES)
def parameters(req: RequestView, ctx):
    allowed = DEVICE_PARAMETERS if ctx.operation == DEVICE else ENDPOINT_PARAMETERS
    query = query_of(req, ctx)
    judged: set[str] = set()
    for name, values in query.parameters.items():
        if name not in allowed:
            hint = (" (manufacturing-organization is a /Device parameter only)" if name == "manufacturing-organization"
                    else "")
            yield Finding.failed("SDS-QRY-001", f"Query parameter {name[:60]!r} is not allowed on "
                                 f"{'/Device' if ctx.operation == DEVICE else '/Endpoint'}{hint}; allowed: "
                                 f"{', '.join(allowed)}.", f"query:{name[:60]}",
                                 reject=bad_request(f"Illegal query parameter '{name}'"))
            continue
        requirement = REQUIREMENT_OF[name]
        for n, value in enumerate(values, start=1):
            where = f"query:{name}[{n}]"
            if not value.valid_utf8:
                yield Finding.failed("SDS-QRY-010", f"{name} value {value.text[:60]!r} is not UTF-8 after "
                                     "percent-decoding (the published sandbox answers this with a 500; live SDS "
                                     "cannot match it either). Percent-encode UTF-8 bytes.", where,
                                     reject=bad_request(f"Query parameter '{name}' is not valid UTF-8"))
                judged.add("SDS-QRY-010")
                continue
            prefixes = allowed[name]
            if not value.text.startswith(tuple(p + "|" for p in prefixes)):
                yield Finding.failed(requirement, _prefix_message(name, value.text, prefixes), where,
                                     reject=bad_request(PREFIX_TEXT[name]))
                judged.add(requirement)
        if requirement not in judged:
            judged.add(requirement)
            yield Finding.passed(requirement, f"Every {name} value starts with its system "
                                 f"({' or '.join(p + '|' for p in allowed[name])}).", f"query:{name}")
    if not any(n not in allowed for n in query.parameters):
        yield Finding.passed("SDS-QRY-001", f"Every query parameter is one {req.path.rsplit('/', 1)[-1]} accepts.",
                             "query")


def _prefix_message(name: str, value: str, prefixes: tuple[str, ...]) -> str:
    shown = value[:80]
    if value[:1].isspace():
        why = "starts with whitespace"
    elif "|" not in value:
        why = "has no system"
    else:
        why = f"has the system {value.partition('|')[0][:80]!r}"
    examples = {ODS_SYSTEM: f"{name}={ODS_SYSTEM}|<ODS code>", SVC_SYSTEM: f"{name}={SVC_SYSTEM}|<service interaction>",
                PK_SYSTEM: f"{name}={PK_SYSTEM}|<party key>"}
    bare = value.partition("|")[2] if "|" in value else value.strip()
    return (f"{name} value {shown!r} {why}; SDS wants the system prefix: "
            f"{' or '.join(examples[p] for p in prefixes)} (e.g. {name}={prefixes[0]}|{bare[:60]}).")


@checks.register("SDS-QRY-005", operations=(DEVICE,))
def device_required(req: RequestView, ctx):
    query = query_of(req, ctx)
    if query.token("organization", ODS_SYSTEM) is None:
        yield Finding.failed("SDS-QRY-005", f"/Device needs organization={ODS_SYSTEM}|<ODS code> with a value.",
                             "query:organization", reject=bad_request(PREFIX_TEXT["organization"]))
    elif query.token("identifier", SVC_SYSTEM) is None:
        yield Finding.failed("SDS-QRY-005", f"/Device needs identifier={SVC_SYSTEM}|<service interaction> with a "
                             "value (a party key identifier alone is not enough).", "query:identifier",
                             reject=bad_request(DEVICE_SVC_TEXT))
    else:
        yield Finding.passed("SDS-QRY-005", "organization and a service interaction identifier are given.", "query")


@checks.register("SDS-QRY-006", operations=(ENDPOINT,))
def endpoint_combination(req: RequestView, ctx):
    query = query_of(req, ctx)
    given = tuple(name for name, present in (
        ("organization", query.token("organization", ODS_SYSTEM) is not None),
        ("service interaction", query.token("identifier", SVC_SYSTEM) is not None),
        ("party key", query.token("identifier", PK_SYSTEM) is not None)) if present)
    if len(given) >= 2:
        yield Finding.passed("SDS-QRY-006", f"/Endpoint is searched by {' + '.join(given)}.", "query")
    else:
        yield Finding.failed("SDS-QRY-006", f"/Endpoint was searched by {' + '.join(given) or 'nothing'}; it needs "
                             "two of organization, service interaction identifier and party key identifier "
                             "(organization + service interaction, organization + party key, or service interaction "
                             "+ party key).", "query", reject=bad_request(COMBINATION_TEXT))


@checks.register("SDS-HDR-004", operations=SEARCHES)
def accept(req: RequestView, ctx):
    values = [v for k, v in req.headers if k.lower() == "accept"]
    raw = ",".join(values) if values else "application/fhir+json"
    pieces = [p.strip() for p in raw.lower().split(",")]
    if any(p in ACCEPTABLE for p in pieces):
        yield Finding.passed("SDS-HDR-004", f"Accept {raw[:80]!r} names a type SDS answers.", "header:Accept")
    else:
        yield Finding.failed("SDS-HDR-004", f"Accept {raw[:80]!r} names no type SDS answers: it compares whole items, "
                             "without parameters, with application/fhir+json, application/json and */* (so "
                             "'application/fhir+json; charset=utf-8' is refused).", "header:Accept",
                             reject=SpineError(406, "MISSING_OR_INVALID_HEADER", "Accept type not supported"))


@checks.register("SDS-QRY-007", "SDS-QRY-008", operations=SEARCHES)
def query_advice(req: RequestView, ctx):
    from sandbox.services.sds.directory import find_interaction

    query = query_of(req, ctx)
    for name, values in query.parameters.items():
        texts = [v.text for v in values]
        for system in (ODS_SYSTEM, SVC_SYSTEM, PK_SYSTEM):
            usable = [t for t in texts if token_of([t], system) is not None]
            if len(usable) > 1:
                yield Finding.warning("SDS-QRY-008", f"{name} gives {len(usable)} values with the system {system}; "
                                      f"SDS silently uses the last ({usable[-1][:80]!r}) and ignores the others.",
                                      f"query:{name}")
    interaction = query.token("identifier", SVC_SYSTEM)
    if interaction is None:
        return
    where = "query:identifier"
    known = find_interaction(interaction)
    if interaction.startswith("urn:nhs:names:services:") and interaction.count(":") >= 5:
        yield Finding.passed("SDS-QRY-007", f"{interaction[:100]!r} is a full service interaction id.", where)
    elif known is not None:
        yield Finding.warning("SDS-QRY-007", f"{interaction[:80]!r} is not a full service interaction id: SDS "
                              f"matches the whole value, so live SDS finds nothing for it (the published sandbox "
                              f"matched substrings). Use {known.service_interaction}.", where)
    else:
        yield Finding.warning("SDS-QRY-007", f"{interaction[:80]!r} is not a service interaction id of the form "
                              "urn:nhs:names:services:<service>:<interaction> (e.g. "
                              "urn:nhs:names:services:psis:REPC_IN150016UK05); SDS matches the whole value.", where)
