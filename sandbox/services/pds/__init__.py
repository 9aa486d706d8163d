"""Personal Demographics Service (PDS) FHIR R4 API."""

from pathlib import Path

from sandbox.services import Service
from sandbox.services.pds.behaviour import history
from sandbox.services.pds.checks import checks
from sandbox.services.pds.hl7v3 import HANDLERS as HL7V3_HANDLERS
from sandbox.services.pds.outcome import render_error
from sandbox.services.pds.routes import blueprint, echo_request_headers

SERVICE = Service(
    name="pds",
    title="Personal Demographics Service (FHIR R4)",
    base_paths=("/personal-demographics/FHIR/R4",),
    blueprint=blueprint,
    operations={
        "get-patient": "GET /Patient/{id}",
        "search-patients": "GET /Patient",
        "patch-patient": "PATCH /Patient/{id}",
        "create-patient": "POST /Patient",
        "process-birth-details": "POST /Patient/$process-birth-details",
        "get-related-people": "GET /Patient/{id}/RelatedPerson",
        "search-coverage": "GET /Coverage",
        "update-coverage": "POST /Coverage",
    },
    checks=checks,
    render_error=render_error,
    package_dir=Path(__file__).parent,
    specification={"PDS FHIR API": "NHSDigital/personal-demographics-service-api@f57f5839 (2026-03-13)"},
    finish_response=echo_request_headers,
    history=history,
    hl7v3=HL7V3_HANDLERS,  # PDS over Spine core messaging: the same records (hl7v3.py)
)
