"""Spine Directory Service (SDS) FHIR R4 API at /spine-directory/FHIR/R4, and the directory behind it that Spine
core messaging routes every message by (sandbox.services.sds.directory)."""

from pathlib import Path

from sandbox.services import Service
from sandbox.services.sds.checks import checks
from sandbox.services.sds.cli import sds
from sandbox.services.sds.control import control
from sandbox.services.sds.directory import forget
from sandbox.services.sds.errors import render_error
from sandbox.services.sds.routes import BASE_PATH, blueprint, finish_response, resolve_session

SERVICE = Service(
    name="sds",
    title="Spine Directory Service (FHIR R4)",
    base_paths=(BASE_PATH,),
    blueprint=blueprint,
    operations={
        "search-devices": "GET /Device",
        "search-endpoints": "GET /Endpoint",
        "healthcheck": "GET /healthcheck",
        "healthcheck-deep": "GET /healthcheck/deep",
        "ping": "GET /_ping",
        "status": "GET /_status",
    },
    checks=checks,
    render_error=render_error,
    package_dir=Path(__file__).parent,
    specification={"SDS FHIR API": "NHSDigital/spine-directory-service-api@dc9c89d (2026-03-11)"},
    http_error_codes={400: "BAD_REQUEST", 404: "NO_RECORD_FOUND", 405: "NOT_IMPLEMENTED",
                      406: "MISSING_OR_INVALID_HEADER", 413: "BAD_REQUEST", 500: "INTERNAL_SERVER_ERROR"},
    finish_response=finish_response,
    resolve_session=resolve_session,
    session_by_secret=True,
    control=control,
    cli=sds,
    forget=forget,
)
