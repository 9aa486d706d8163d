"""Spine core messaging: the endpoints a supplier's MHS talks to (synchronous SOAP, asynchronous express and
reliable ebXML, forward reliable through the intermediary), with every message checked against the published
specifications and answered, delivered and acknowledged as the live Spine does."""

from __future__ import annotations

from pathlib import Path

from sandbox.messaging import interactions
from sandbox.services import Service
from sandbox.services.spine import delivery, outbox
from sandbox.services.spine.behaviour import history
from sandbox.services.spine.checks import MAX_MESSAGE_BYTES, checks
from sandbox.services.spine.cli import spine as spine_cli
from sandbox.services.spine.control import control
from sandbox.services.spine.dispatch import validate_spec
from sandbox.services.spine.errors import render_error
from sandbox.services.spine.inbound import ACKNOWLEDGMENT, ENDPOINT_OF_PATTERN, MESSAGE_ERROR, UNRECOGNISED
from sandbox.services.spine.routes import blueprint, resolve_session


def _catalogue() -> dict[str, tuple[str, str]]:
    """interaction id -> (pattern, title), from the messaging catalogue."""
    return {i.id: (i.pattern, i.title) for i in interactions.catalogue().values()}


def _operations() -> dict[str, str]:
    operations = {iid: f"POST {ENDPOINT_OF_PATTERN[pattern]} ({title})"
                  for iid, (pattern, title) in sorted(_catalogue().items())}
    operations[ACKNOWLEDGMENT] = "POST /reliablemessaging/* (an eb:Acknowledgment of what the sandbox delivered)"
    operations[MESSAGE_ERROR] = "POST /reliablemessaging/* (an ebXML MessageError for what the sandbox delivered)"
    operations[UNRECOGNISED] = "POST /sync-service, /reliablemessaging/* (a message whose interaction is unknown)"
    # What the sandbox itself sends (journaled by the delivery worker of the spine-out part).
    operations["deliver"] = "POST <your MHS endpoint> (a message the sandbox delivers, and your answer)"
    operations["delivery-outcome"] = "(what the sandbox concluded about a delivery: given up, a late ack)"
    return operations


def start(sandbox) -> None:
    """Check the HL7v3 schema folder and every spine scenario's scripted HL7 answer, then start the delivery
    worker."""
    from sandbox.runtime import StartupError

    folder = sandbox.settings.hl7v3_schemas
    if folder and not (Path(folder) / "Schemas").is_dir():
        raise StartupError(f"SANDBOX_HL7V3_SCHEMAS / --hl7v3-schemas {folder}: not the MIM's schema folder (it holds "
                           "Schemas/, dt/ and voc/, e.g. .../omvt)")
    for scenario in sandbox.scenarios.for_service("spine"):
        spec = scenario.response.get("hl7")
        if spec is not None:
            problems = validate_spec(spec) if isinstance(spec, dict) else ["hl7: a mapping"]
            if problems:
                raise StartupError(f"{scenario.source}: field 'response.{problems[0].split(':')[0]}': "
                                   + "; ".join(problems))
    delivery.start(sandbox)


SERVICE = Service(
    name="spine",
    title="Spine core messaging (MHS: synchronous SOAP, ebXML express, reliable and forward reliable)",
    base_paths=("/sync-service", "/reliablemessaging"),
    blueprint=blueprint,
    operations=_operations(),
    checks=checks,
    render_error=render_error,
    package_dir=Path(__file__).parent,
    specification={"Spine External Interface Specification (ebXML / SOAP / HL7v3 transport)":
                   "as profiled by the NHS MHS adaptor (integration-adaptors @ ba121c1f; integration-adaptor-mhs "
                   "@ 5824b84d)"},
    max_body_bytes=MAX_MESSAGE_BYTES + 64 * 1024,  # Spine's 5,000,000 bytes, and room to refuse more as Spine does
    start=start,
    stop=delivery.stop,
    forget=outbox.forget,
    resolve_session=resolve_session,
    control=control,
    history=history,
    cli=spine_cli,
)
