"""FHIR -> HL7v3 as live EPS translates it (coordinator/src/services/translation/request): the message Spine would
receive for each accepted message, checked against the official schema where one exists, the signature fragments
$prepare digests, and $convert."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lxml import etree

from sandbox.conformance.findings import Finding
from sandbox.messaging import Problem
from sandbox.services.eps.context import (
    CANCEL,
    CLAIM,
    DISPENSE,
    ORDER,
    RELEASE,
    RETURN,
    WITHDRAW,
    EpsCall,
    Translation,
)
from sandbox.services.eps.translation import cancellation, dispensing, prescription
from sandbox.services.eps.translation.common import (
    Untranslatable,
    iso_from_hl7,
    message_id,
    send_message_payload,
)
from sandbox.services.eps.translation.convert import convert
from sandbox.services.eps.translation.prescription import signature_fragments
from sandbox.services.eps.translation.validate import schema_problems, structure_problems
from sandbox.web.access import HEALTHCARE_WORKER

SCHEMA_REQUIREMENT = "EPS-HL7-001"
STRUCTURE_REQUIREMENT = "EPS-HL7-002"
TRANSLATABLE_REQUIREMENT = "EPS-HL7-003"
SCHEMA_UNAVAILABLE_REQUIREMENT = "EPS-HL7-004"

INTERACTIONS = {ORDER: prescription.INTERACTION, CANCEL: cancellation.INTERACTION, RELEASE: dispensing.NOMINATED_RELEASE,
                DISPENSE: dispensing.DISPENSE_NOTIFICATION, CLAIM: dispensing.DISPENSE_CLAIM,
                RETURN: dispensing.DISPENSE_PROPOSAL_RETURN, WITHDRAW: dispensing.DISPENSER_WITHDRAW}
SCHEMAS = {prescription.INTERACTION: prescription.SCHEMA}


def _payload(operation: str, body: Any, now: datetime) -> tuple[str, str, etree._Element]:
    if operation == ORDER:
        return prescription.INTERACTION, message_id(body, "Bundle.identifier"), prescription.parent_prescription(body, now)
    if operation == CANCEL:
        return cancellation.INTERACTION, message_id(body, "Bundle.identifier"), cancellation.cancellation_request(
            body, now)
    if operation in dispensing.BUILDERS:
        return dispensing.BUILDERS[operation](body, now)
    raise Untranslatable(f"{operation} is not a message EPS sends to Spine.", "")


def message_of(call: EpsCall, body: Any | None = None, now: datetime | None = None) -> tuple[str, etree._Element]:
    """The whole HL7v3 message (wrapper, ControlActEvent, payload); raises Untranslatable."""
    now = now or datetime.now(UTC)
    interaction, message_uuid, payload = _payload(call.operation, call.body if body is None else body, now)
    access = call.access
    worker = access is not None and access.mode == HEALTHCARE_WORKER
    message, subject = send_message_payload(interaction, message_uuid, now,
                                            user_id=access.user_id if worker else None,
                                            role_id=access.role_id if worker else None)
    subject.append(payload)
    return interaction, message


def translate(call: EpsCall, body: Any | None = None) -> Translation:
    """The HL7v3 message an accepted message becomes, with its problems: the official schema's (the order), or the
    sandbox's structural rules' (the rest). Total: a message that cannot be translated gives one problem."""
    try:
        interaction, message = message_of(call, body)
    except (Untranslatable, ValueError, TypeError, KeyError, AttributeError) as exc:
        where = getattr(exc, "path", "") or call.operation
        interaction = INTERACTIONS.get(call.operation, call.operation)
        return Translation(interaction, SCHEMAS.get(interaction), b"",
                           [Problem("hl7.untranslatable", f"the message cannot be translated to HL7v3: {exc}", where)])
    schema = SCHEMAS.get(interaction)
    xml = etree.tostring(message, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    problems = schema_problems(xml, schema) if schema else structure_problems(message, interaction)
    return Translation(interaction, schema, xml, problems)


def findings_of(translation: Translation) -> list[Finding]:
    """A pass naming what checked the translation, or one finding per problem (location: its XPath)."""
    checked_by = (f"the official schema {translation.schema}.xsd" if translation.schema
                  else "the sandbox's structural rules (no official schema is published for it)")
    requirement = SCHEMA_REQUIREMENT if translation.schema else STRUCTURE_REQUIREMENT
    if not translation.problems:
        return [Finding.passed(requirement, f"{translation.interaction} is valid against {checked_by}.")]
    findings = []
    for problem in translation.problems:
        if problem.code == "schema.unavailable":
            findings.append(Finding.info(SCHEMA_UNAVAILABLE_REQUIREMENT, problem.message, problem.where))
        elif problem.code == "hl7.untranslatable":
            findings.append(Finding.failed(TRANSLATABLE_REQUIREMENT, problem.message, problem.where))
        else:
            findings.append(Finding.failed(requirement, f"{translation.interaction}: {problem.message}", problem.where))
    return findings


def prepare_parts(bundle: dict, when: datetime | None = None) -> tuple[bytes, str]:
    """What $prepare needs from one translation: the signature fragments and the ISO timestamp they carry (the
    Provenance signature's `when` for a signed Bundle, else `when`, else now)."""
    parent = prescription.parent_prescription(bundle, when or datetime.now(UTC))
    return prescription.fragments_of(parent), iso_from_hl7(prescription.author_time(parent))


__all__ = ["Untranslatable", "convert", "findings_of", "message_of", "prepare_parts", "signature_fragments",
           "translate"]
