"""Checking a translation: the order against the official schema (PORX_IN020101UK31, the only EPS interaction in
the published schema set: live's PORX_IN020101SM31 is Spine's internal name for the same message), every other
interaction against the sandbox's own structural rules: what live's translator always writes."""

from __future__ import annotations

import re

from lxml import etree

from sandbox.messaging import Problem, xmlsafe
from sandbox.messaging.schemas import schema_set
from sandbox.runtime import current_sandbox
from sandbox.services.eps.translation.common import ROOT_SHORT_FORM_ID, H

_HL7_TIME = re.compile(r"^\d{14}$")
_SHORT_FORM = re.compile(r"^[0-9A-F]{6}-[0-9A-Z]{6}-[0-9A-F]{5}[0-9A-Z+]$")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_UUID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")


def schema_problems(xml: bytes, schema: str) -> list[Problem]:
    """The official schema's problems with the message (as journaled, so the lines are its lines), validated
    under the schema's own root name."""
    renamed = etree.fromstring(xml, _PARSER)
    original = etree.QName(renamed).localname
    renamed.tag = f"{H}{schema}"
    interaction_id = renamed.find(f"{H}interactionId")
    if interaction_id is not None:
        interaction_id.set("extension", schema)
    problems = schema_set(current_sandbox().settings.hl7v3_schemas or None).validate(schema, renamed)
    return [Problem(p.code, p.message.replace(schema, original) if p.code != "schema.unavailable" else p.message,
                    p.where.replace(f"hl7:{schema}", f"hl7:{original}")) for p in problems]


def structure_problems(message: etree._Element, interaction: str) -> list[Problem]:
    """What every message live sends carries: its id (a UUID), a creation time, the interaction id, both ASIDs,
    the sending system as author1, one subject with an id and an effective time, and (except a nominated release)
    the short-form prescription id it is about."""
    problems: list[Problem] = []
    where = xmlsafe.xpath_of(message)

    def need(condition: bool, text: str, at: etree._Element | None = None) -> None:
        if not condition:
            problems.append(Problem("hl7.structure", text, xmlsafe.xpath_of(at) if at is not None else where))

    need(etree.QName(message).localname == interaction, f"the root element must be {interaction}")
    message_id = message.find(f"{H}id")
    need(message_id is not None and bool(_UUID.match(message_id.get("root", ""))), "the message id must be a UUID")
    created = message.find(f"{H}creationTime")
    need(created is not None and bool(_HL7_TIME.match(created.get("value", ""))),
         "creationTime must be an HL7v3 time (YYYYMMDDHHMMSS)")
    interaction_id = message.find(f"{H}interactionId")
    need(interaction_id is not None and interaction_id.get("extension") == interaction,
         f"interactionId must name {interaction}")
    for tag in ("communicationFunctionRcv", "communicationFunctionSnd"):
        device_id = message.find(f"{H}{tag}/{H}device/{H}id")
        need(device_id is not None and bool(device_id.get("extension")), f"{tag} must carry an ASID")
    control = message.find(f"{H}ControlActEvent")
    need(control is not None and control.find(f"{H}author1/{H}AgentSystemSDS") is not None,
         "ControlActEvent must name the sending system (author1)")
    subject = control.find(f"{H}subject") if control is not None else None
    payload = subject[0] if subject is not None and len(subject) else None
    need(payload is not None, "ControlActEvent/subject must carry the message's act")
    if payload is None:
        return problems
    payload_id = payload.find(f"{H}id")
    need(payload_id is not None and bool(payload_id.get("root")), "the act must have an id", payload)
    effective = payload.find(f"{H}effectiveTime")
    need(effective is not None and bool(_HL7_TIME.match(effective.get("value", ""))),
         "the act must have an effectiveTime (YYYYMMDDHHMMSS)", payload)
    if not etree.QName(payload).localname.startswith("Nominated"):
        ids = [e.get("extension", "") for e in payload.iter(f"{H}value", f"{H}id")
               if e.get("root") == ROOT_SHORT_FORM_ID]
        need(bool(ids) and all(_SHORT_FORM.match(i) for i in ids),
             "the act must name the short-form prescription id it is about", payload)
    return problems
