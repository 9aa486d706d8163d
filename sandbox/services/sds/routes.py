"""SDS FHIR R4 endpoints at /spine-directory/FHIR/R4: GET /Device, GET /Endpoint, the health checks, and what the
API gateway in front adds (CORS, /_ping, /_status). Every other path is a 404 OperationOutcome; any method but GET
on /Device and /Endpoint a 405 (HEAD and OPTIONS included)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, g, request

import sandbox
from sandbox.conformance.findings import SpineError
from sandbox.runtime import current_sandbox
from sandbox.services.sds import fhir
from sandbox.services.sds.checks import DEVICE, ENDPOINT, QUERY_FACT, facts
from sandbox.services.sds.directory import PUBLISHED, SPINE_ODS, directory, select
from sandbox.services.sds.errors import FHIR_JSON, RESPONSE_HEADER, correlation_id
from sandbox.services.sds.query import ODS_SYSTEM, PK_SYSTEM, SVC_SYSTEM, Query
from sandbox.web.pipeline import current_exchange, operation

blueprint = Blueprint("sds", __name__)

BASE_PATH = "/spine-directory/FHIR/R4"
EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HTML_405 = "<html><title>405: Method Not Allowed</title><body>405: Method Not Allowed</body></html>"
HTML = "text/html; charset=UTF-8"
# The gateway's CORS headers (the request's Origin is echoed as the allowed origin).
CORS = {"Access-Control-Allow-Headers": "origin, x-requested-with, accept, content-type, if-match, "
                                        "nhsd-session-urid, apikey, x-correlation-id",
        "Access-Control-Max-Age": "3628800",
        "Access-Control-Allow-Methods": "GET, PUT, POST, PATCH, DELETE"}
# /_status needs the platform's private status key; the sandbox's is this (the live one is not published).
STATUS_KEY = "spine-sandbox-status"


def base_url() -> str:
    """Where suppliers reach this sandbox: SANDBOX_PUBLIC_URL, else the request's own scheme and host."""
    return current_sandbox().settings.public_url.rstrip("/") or request.host_url.rstrip("/")


def _published_mode() -> bool:
    return current_sandbox().settings.sds_addresses == PUBLISHED


def _no_correlation() -> None:
    g.sds_no_correlation = True


def _preflight() -> Response | None:
    """The gateway answers a CORS preflight itself, before the service sees it."""
    if request.method == "OPTIONS" and request.headers.get("Origin") and request.headers.get(
            "Access-Control-Request-Method"):
        _no_correlation()
        return Response("", 200)
    return None


def _only_get(operation_name: str) -> None:
    current_exchange().operation = operation_name
    raise SpineError(405, "NOT_IMPLEMENTED", "HTTP operation not supported", issue_code="not-supported",
                     headers={"Allow": "GET"})


@blueprint.route("/Device", methods=EVERY_METHOD, provide_automatic_options=False)
def device_route():
    answer = _preflight()
    if answer is not None:
        return answer
    if request.method != "GET":
        _only_get(DEVICE)
    return search_devices()


@blueprint.route("/Endpoint", methods=EVERY_METHOD, provide_automatic_options=False)
def endpoint_route():
    answer = _preflight()
    if answer is not None:
        return answer
    if request.method != "GET":
        _only_get(ENDPOINT)
    return search_endpoints()


@operation(DEVICE, facts=facts)
def search_devices(ex):
    query: Query = ex.facts[QUERY_FACT]
    systems = directory(current_sandbox()).devices(
        ex.session, ods=query.token("organization", ODS_SYSTEM), interaction=query.token("identifier", SVC_SYSTEM),
        party_key=query.token("identifier", PK_SYSTEM),
        manufacturer=query.token("manufacturing-organization", ODS_SYSTEM), strict=True)
    return _searchset([fhir.device(s) for s in systems], "Device")


@operation(ENDPOINT, facts=facts)
def search_endpoints(ex):
    query: Query = ex.facts[QUERY_FACT]
    everything = directory(current_sandbox()).entries(ex.session, base_url=base_url())
    entries = select(everything, ods=query.token("organization", ODS_SYSTEM),
                     interaction=query.token("identifier", SVC_SYSTEM), party_key=query.token("identifier", PK_SYSTEM),
                     strict=True)

    def intermediary(service_interaction: str) -> str | None:
        spine = select(everything, ods=SPINE_ODS, interaction=service_interaction, strict=True)
        return spine[0].endpoint if len(spine) == 1 else None

    return _searchset(fhir.endpoint_resources(entries, intermediary), "Endpoint")


def _searchset(resources: list[dict], resource_type: str) -> Response:
    if _published_mode():
        # As the published container writes it: plain http, the Host header as sent, the path below the gateway's.
        scheme_host = "http://" + (request.headers.get("Host") or "127.0.0.1")
        path = request.path.removeprefix(BASE_PATH)
    else:
        scheme_host, path = base_url(), request.path
    body = fhir.bundle(resources, fhir.self_url(scheme_host, path, request.query_string),
                       f"{scheme_host}{path.rsplit('/', 1)[0]}/{resource_type}")
    data = fhir.serialise(body)
    tag = fhir.etag(data)
    headers = {RESPONSE_HEADER: correlation_id(), "Etag": tag}
    wanted = request.headers.get("If-None-Match")
    if wanted and (wanted.strip() == "*" or tag in [t.strip() for t in wanted.split(",")]):
        return Response(status=304, headers=headers)
    return Response(data, 200, headers=headers, content_type=_content_type())


def _content_type() -> str:
    pieces = [p.strip() for p in ",".join(request.headers.getlist("Accept") or ["application/fhir+json"])
              .lower().split(",")]
    if "*/*" in pieces or FHIR_JSON in pieces:
        return FHIR_JSON
    return "application/json"


def _health(answer):
    """The health checks as the adaptor's web framework serves them: any other method is its HTML 405 page."""
    refused = _preflight()
    if refused is not None:
        return refused
    _no_correlation()
    if request.method != "GET":
        return Response(HTML_405, 405, content_type=HTML)
    return answer()


@blueprint.route("/healthcheck", methods=EVERY_METHOD, provide_automatic_options=False)
def healthcheck_route():
    return _health(healthcheck)


@operation("healthcheck")
def healthcheck(ex):
    return Response(b"", 200, headers={"Etag": fhir.etag(b"")}, content_type=HTML)


@blueprint.route("/healthcheck/deep", methods=EVERY_METHOD, provide_automatic_options=False)
def deep_healthcheck_route():
    return _health(deep_healthcheck)


@operation("healthcheck-deep")
def deep_healthcheck(ex):
    body = {"status": "pass", "details": {"ldap": {"status": "pass", "links": {"ldap": None}, "output": ""}}}
    return Response(json.dumps(body, indent=4), 200, content_type="application/json")


def _gateway(answer):
    """What the API gateway answers itself (_ping, _status): GET and HEAD only, no correlation id."""
    refused = _preflight()
    if refused is not None:
        return refused
    if request.method not in ("GET", "HEAD"):
        return not_found()
    _no_correlation()
    return answer()


@blueprint.route("/_ping", methods=EVERY_METHOD, provide_automatic_options=False)
def ping_route():
    return _gateway(ping)


@operation("ping")
def ping(ex):
    return Response(json.dumps(_release()), 200, content_type="application/json")


@blueprint.route("/_status", methods=EVERY_METHOD, provide_automatic_options=False)
def status_route():
    return _gateway(status)


@operation("status")
def status(ex):
    if request.headers.get("apikey") != STATUS_KEY:
        return Response("", 401, content_type="text/plain")
    check = {"status": "pass", "timeout": "false", "responseCode": 200, "outcome": "",
             "links": {"self": f"{base_url()}{BASE_PATH}/healthcheck"}}
    return Response(json.dumps({"status": "pass", **_release(),
                                "checks": {"healthcheckService:status": [check]}}), 200,
                    content_type="application/json")


def _release() -> dict:
    version = f"spine-sandbox-{sandbox.__version__}"
    return {"version": version, "revision": version, "releaseId": version, "commitId": version}


@blueprint.route("", methods=EVERY_METHOD, provide_automatic_options=False)
@blueprint.route("/", methods=EVERY_METHOD, provide_automatic_options=False)
@blueprint.route("/<path:anything>", methods=EVERY_METHOD, provide_automatic_options=False)
def not_found(anything: str = ""):
    answer = _preflight()
    if answer is not None:
        return answer
    raise SpineError(404, "NO_RECORD_FOUND", "HTTP endpoint not found", issue_code="not-found")


def resolve_session(req, sandbox) -> str | None:
    """The Service.resolve_session hook: an SDS request's apikey, when it is the API key of an application registered
    with the sandbox (`spine-sandbox apps register --session S`), selects that application's session, as live SDS
    knows the caller by its API key."""
    if not (req.path == BASE_PATH or req.path.startswith(BASE_PATH + "/")):
        return None
    key = (req.headers.get("apikey") or "").strip()
    if not key:
        return None
    try:
        from sandbox.services.oauth.registry import Registry
    except ImportError:  # no identity service: sessions come from the headers only
        return None
    app = Registry(sandbox.store).get(key)
    return app.session if app is not None and not app.revoked else None


def finish_response(response: Response) -> None:
    """Every answer carries its correlation id (not the health checks) and the gateway's CORS headers."""
    if not g.get("sds_no_correlation") and RESPONSE_HEADER not in response.headers:
        response.headers[RESPONSE_HEADER] = correlation_id()
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    for key, value in CORS.items():
        response.headers.setdefault(key, value)
