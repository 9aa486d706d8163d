"""$convert as live answers it: a FHIR message (a prescription-order, -update or dispense-notification Bundle,
release Parameters, a return or withdraw Task, a Claim) in; its HL7v3, pretty-printed, application/xml, 200 out."""

from __future__ import annotations

from lxml import etree

from sandbox.services.eps.context import (
    CLAIM,
    EVENTS,
    RELEASE,
    TASK_STATUSES,
    Answer,
    EpsCall,
)
from sandbox.services.eps.errors import eps_error
from sandbox.services.eps.resources import event_code
from sandbox.services.eps.translation.common import Untranslatable
from sandbox.web.pipeline import ExchangeContext


def operation_of(body: object) -> str | None:
    """Which message a $convert body is, as live's routes decide from the resource type."""
    if not isinstance(body, dict):
        return None
    kind = body.get("resourceType")
    if kind == "Bundle":
        return EVENTS.get(event_code(body) or "")
    if kind == "Parameters":
        return RELEASE
    if kind == "Task":
        status = body.get("status")
        return TASK_STATUSES.get(status) if isinstance(status, str) else None
    if kind == "Claim":
        return CLAIM
    return None


def convert(call: EpsCall, ex: ExchangeContext) -> Answer:
    from sandbox.services.eps.translation import message_of

    operation = operation_of(call.body)
    if operation is None:
        raise eps_error(400, "value", "INVALID_VALUE", "Invalid value",
                        "Unsupported message: $convert takes a prescription-order, prescription-order-update or "
                        "dispense-notification Bundle, release Parameters, a return or withdraw Task, or a Claim.")
    converted = EpsCall(**{**call.__dict__, "operation": operation})
    try:
        _, message = message_of(converted)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # Untranslatable, or text XML cannot hold
        path = exc.path if isinstance(exc, Untranslatable) else ""
        raise eps_error(400, "value", "INVALID_VALUE", "Invalid value",
                        f"{exc} ({path})" if path else f"The message cannot be translated: {exc}") from exc
    xml = etree.tostring(message, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return Answer(200, xml, content_type="application/xml")
