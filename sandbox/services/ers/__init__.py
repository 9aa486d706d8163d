"""e-Referral Service (e-RS) FHIR API at /referrals/FHIR/STU3 and /referrals/FHIR/R4: the NHS's published sandbox
answers (published.py) and, behind them, a referral lifecycle per session (lifecycle.py)."""

from pathlib import Path

from sandbox.services import Service
from sandbox.services.ers import errors
from sandbox.services.ers.behaviour import history
from sandbox.services.ers.checks import checks
from sandbox.services.ers.context import BASE_PATH, OPERATIONS
from sandbox.services.ers.routes import EXTRA_OPERATIONS, blueprint
from sandbox.services.ers.transport import finish_response

SERVICE = Service(
    name="ers",
    title="e-Referral Service (FHIR STU3 and R4)",
    base_paths=(BASE_PATH,),
    blueprint=blueprint,
    operations={**{op.id: f"{op.method} /FHIR{op.path}" for op in OPERATIONS.values()}, **EXTRA_OPERATIONS},
    checks=checks,
    history=history,
    render_error=errors.render_error,
    package_dir=Path(__file__).parent,
    specification={"e-RS FHIR API": "NHSDigital/e-referrals-service-api@c2761d38 (2026-06-26)"},
    # Failures of the web framework in front of the published sandbox are its own JSON objects (kind H); a path or
    # method no route takes is its catch-all 404 (kind J), whatever the router says.
    http_error_codes={413: errors.FRAMEWORK, 404: errors.NO_ROUTE, 405: errors.NO_ROUTE},
    max_body_bytes=5 * 1024 * 1024 + 64 * 1024,  # A020 takes 5 MiB; room for the checks to refuse more themselves
    finish_response=finish_response,
)
