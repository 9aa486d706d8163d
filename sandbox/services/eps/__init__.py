"""Electronic Prescription Service (EPS) FHIR API at /electronic-prescriptions, /fhir-prescribing and
/fhir-dispensing: prescribing, dispensing and the tracker over a prescription's whole life per session, signatures
checked against the sandbox's test CA, and every accepted message translated to the HL7v3 Spine would receive."""

from pathlib import Path

from sandbox.services import Service
from sandbox.services.eps import errors
from sandbox.services.eps.behaviour import history
from sandbox.services.eps.checks import checks
from sandbox.services.eps.cli import eps
from sandbox.services.eps.context import BASE_PATHS, HL7V3, OPERATIONS
from sandbox.services.eps.control import control
from sandbox.services.eps.routes import blueprint, finish_response

SERVICE = Service(
    name="eps",
    title="Electronic Prescription Service (FHIR R4)",
    base_paths=BASE_PATHS,
    blueprint=blueprint,
    operations={**{op.id: f"{op.method} {op.path}" for op in OPERATIONS.values()},
                HL7V3: "the HL7v3 message Spine would receive for an accepted message (journaled beside it)"},
    checks=checks,
    history=history,
    render_error=errors.render_error,
    package_dir=Path(__file__).parent,
    specification={"EPS FHIR API": "NHSDigital/electronic-prescription-service-api@77e80e11f (2026-04-30)"},
    http_error_codes={404: "NOT_FOUND", 405: "NOT_FOUND"},
    finish_response=finish_response,
    control=control,
    cli=eps,
)
