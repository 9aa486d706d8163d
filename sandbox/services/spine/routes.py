"""Spine core messaging endpoints, each pattern at its live address: thin handlers; the message is parsed once
(inbound), judged by the checks, and answered by its pattern (patterns)."""

from __future__ import annotations

from flask import Blueprint, Request

from sandbox.conformance.checks import RequestView
from sandbox.conformance.findings import SpineError
from sandbox.runtime import Sandbox, current_sandbox
from sandbox.services.sds.directory import directory
from sandbox.services.spine import inbound as inbound_message
from sandbox.services.spine import patterns
from sandbox.services.spine.inbound import ENDPOINTS, Inbound
from sandbox.services.spine.parties import Parties
from sandbox.web.pipeline import current_exchange, operation

blueprint = Blueprint("spine", __name__)
CACHE_KEY = "spine.inbound"


def message_of(view: RequestView) -> Inbound:
    """The request parsed once per exchange (resolve_session may have parsed it already)."""
    ex = current_exchange()
    found = ex.cache.get(CACHE_KEY)
    if found is None:
        found = ex.cache[CACHE_KEY] = inbound_message.parse(view.path, view, view.body)
    return found


def resolve_operation(view: RequestView) -> str:
    if inbound_message.endpoint_of(view.path) is None:
        raise SpineError(404, "NotSupported", f"No Spine messaging endpoint at {view.path}: the endpoints are "
                         f"{', '.join(ENDPOINTS)}.")
    return message_of(view).operation


def message_facts(view: RequestView) -> dict:
    """What the checks read (the parsed message, SDS for the session, the schema folder) and what scenarios
    trigger on (interaction, pattern, parties, ids, the NHS number the HL7 names)."""
    sandbox = current_sandbox()
    ex = current_exchange()
    message = message_of(view)
    facts = {
        "message": message,
        "parties": Parties(sandbox, ex.session, patterns.base_url(sandbox)),
        "hl7v3_schemas": sandbox.settings.hl7v3_schemas or None,
        "pattern": message.pattern,
        "interaction": message.interaction_id,
    }
    for name in ("from_party", "to_party", "sender_asid", "message_id", "conversation_id"):
        value = getattr(message, name)
        if value:
            facts[name] = value
    number = message.nhs_number()
    if number:
        facts["nhs_number"] = number
    return facts


@blueprint.post("")
@blueprint.post("/<endpoint>")
@operation(resolve=resolve_operation, facts=message_facts)
def receive(ex, endpoint: str | None = None):
    return patterns.answer(ex, ex.facts["message"])


def resolve_session(request: Request, sandbox: Sandbox) -> str | None:
    """Service traffic belongs to the session that registered its sender in SDS: the From party key (ebXML) or the
    sender ASID (SOAP). Otherwise the usual X-Sandbox-Session header or the default session."""
    if inbound_message.endpoint_of(request.path) is None:
        return None
    ex = current_exchange()
    body = ex.body if ex is not None else request.get_data(cache=True)
    message = inbound_message.parse(request.path, list(request.headers.items()), body)
    if ex is not None:
        ex.cache[CACHE_KEY] = message
    sds = directory(sandbox)
    if message.from_party:
        return sds.session_for_party_key(message.from_party)
    if message.transport == "soap" and message.sender_asid:
        return sds.session_for_asid(message.sender_asid)
    return None
