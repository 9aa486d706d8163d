"""Interaction id -> the business answer: the handler a business service declares in its SERVICE.hl7v3 (PDS answers
QUPA_IN040000UK32 from the same records as its FHIR API), or what a scenario scripts.

A scenario scripts an HL7v3 answer with `response.hl7` (the transport of its pattern stays as it is: the HTTP
answer, the ebXML acknowledgement and the delivery of the answer to the sender's registered endpoint):

    response:
      hl7:
        ack: AE                      # answer with an application acknowledgement MCCI_IN010000UK13 (AA, AE or AR)
        errors:                      #   of the request, with these acknowledgementDetail / reason codes
          - {code: "0", text: "Unexpected Error"}
        template: "<QUPA_IN050000UK32 xmlns='urn:hl7-org:v3'>…"   # or: a whole HL7 message, a Jinja template
        wrapper: retrievalQueryResponse  # synchronous only: the SOAP Body element around the answer
        delay_s: 30                  # asynchronous only: deliver the answer this long after the request
        never: true                  # asynchronous only: accept (and acknowledge) but never send an answer

A template sees: message_id (a new upper-case UUID for the answer), request_id (the request's HL7 id), interaction
(the request's), sender_asid (the supplier's), spine_asid, nhs_number (the first the request names), now (HL7 TS).
Without `ack` or `template`, the business handler answers and `delay_s` / `never` apply to its answer.

An interaction with no handler and no scripted answer gets the transport behaviour of its pattern and an
acknowledgement: synchronous, an MCCI_IN010000UK13 AA in the SOAP answer; asynchronous, an AA delivered to the
sender when the request asks for one (acceptAckCode AL); and an info finding saying how to script the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2.sandbox import SandboxedEnvironment
from lxml import etree

from sandbox.conformance.parsing import Malformed, parse_xml
from sandbox.messaging import SPINE_ASID, hl7, interactions, new_id
from sandbox.messaging.business import InteractionHandler, InteractionReply, InteractionRequest
from sandbox.scripting.scenarios import Scenario

HL7_KEYS = {"ack", "errors", "template", "wrapper", "delay_s", "never"}
ACK_TYPES = ("AA", "AE", "AR")
_JINJA = SandboxedEnvironment(autoescape=False)


class ScriptError(ValueError):
    """A scenario's response.hl7 cannot be used; the message names the field."""


def handler_for(sandbox, interaction: str, spine_service: str | None = None) -> InteractionHandler | None:
    """The business handler of an interaction, from every service's SERVICE.hl7v3."""
    owner = _owner(sandbox, interaction, spine_service)
    return owner.hl7v3[_key(owner, interaction, spine_service)] if owner is not None else None


def owner_of(sandbox, interaction: str, spine_service: str | None = None) -> str | None:
    """The name of the service whose handler answers an interaction."""
    owner = _owner(sandbox, interaction, spine_service)
    return owner.name if owner is not None else None


def _owner(sandbox, interaction: str, spine_service: str | None):
    """A SERVICE.hl7v3 key is a bare interaction id, meaning the interaction under the service the catalogue gives
    it (so GP2GP's "MCCI_IN010000UK13" answers only eb:Service urn:nhs:names:services:gp2gp), or a whole
    "<service>:<id>". `spine_service` None (synchronous SOAP, no eb:Service): any handler of the id."""
    for service in sandbox.services.values():
        if _key(service, interaction, spine_service) is not None:
            return service
    return None


def _key(service, interaction: str, spine_service: str | None) -> str | None:
    if spine_service and f"{spine_service}:{interaction}" in service.hl7v3:
        return f"{spine_service}:{interaction}"
    if interaction not in service.hl7v3:
        return None
    known = interactions.find(interaction)
    if spine_service is None or known is None or known.service == spine_service:
        return interaction
    return None


def scripted_spec(scenario: Scenario | None) -> dict:
    return dict(scenario.response.get("hl7") or {}) if scenario is not None else {}


def validate_spec(spec: dict) -> list[str]:
    """What is wrong with a response.hl7 (field: problem), for a clear start-up error."""
    problems = [f"hl7.{key}: unknown field (use {', '.join(sorted(HL7_KEYS))})" for key in spec if key not in HL7_KEYS]
    if "ack" in spec and spec["ack"] not in ACK_TYPES:
        problems.append(f"hl7.ack: {spec['ack']!r} is not one of {', '.join(ACK_TYPES)}")
    if "ack" in spec and "template" in spec:
        problems.append("hl7: give ack or template, not both")
    errors = spec.get("errors", [])
    if not isinstance(errors, list) or not all(isinstance(e, dict) and "code" in e for e in errors):
        problems.append("hl7.errors: a list of {code, text}")
    if "template" in spec:
        if not isinstance(spec["template"], str):
            problems.append("hl7.template: an HL7 message as text")
        else:
            try:
                parse_xml(_render(spec["template"], _sample_context()).encode())
            except Malformed as exc:
                problems.append(f"hl7.template: {exc}")
            except Exception as exc:  # a template error (undefined syntax...)
                problems.append(f"hl7.template: {exc}")
    if "delay_s" in spec and (not isinstance(spec["delay_s"], int | float) or spec["delay_s"] < 0):
        problems.append("hl7.delay_s: a number of seconds, 0 or more")
    if "never" in spec and not isinstance(spec["never"], bool):
        problems.append("hl7.never: true or false")
    if "wrapper" in spec and not isinstance(spec["wrapper"], str):
        problems.append("hl7.wrapper: an element name")
    return problems


@dataclass
class Answer:
    replies: list[InteractionReply]
    source: str  # "handler", "scenario" or "default"
    never: bool = False  # asynchronous: the answer is not sent


def answer(request: InteractionRequest, scenario: Scenario | None, *, sender_asid: str = SPINE_ASID,
           spine_service: str | None = None) -> Answer:
    """The business answer to a request: scripted by the scenario, else the service's handler (for the Spine service
    that carried it, `spine_service`), else the default."""
    spec = scripted_spec(scenario)
    if spec.get("ack") or spec.get("template"):
        replies = [_scripted(spec, request, sender_asid)]
        source = "scenario"
    else:
        handler = handler_for(request.sandbox, request.interaction, spine_service)
        if handler is not None:
            replies = list(handler(request) or [])
            source = "handler"
        else:
            replies = default_replies(request, sender_asid)
            source = "default"
    delay = float(spec.get("delay_s") or 0)
    if delay:
        for reply in replies:
            reply.delay_s = max(reply.delay_s, delay)
    if spec.get("wrapper"):
        for reply in replies:
            reply.wrapper = spec["wrapper"]
    return Answer(replies, source, bool(spec.get("never")))


def default_replies(request: InteractionRequest, sender_asid: str) -> list[InteractionReply]:
    """No business handler: an application acknowledgement (AA) where one is due."""
    return [InteractionReply(hl7.application_ack(request.wrapper, type_code="AA", sender_asid=sender_asid,
                                                 message_id=new_id()))]


def _scripted(spec: dict, request: InteractionRequest, sender_asid: str) -> InteractionReply:
    if spec.get("ack"):
        errors = [(str(e["code"]), str(e.get("text", ""))) for e in spec.get("errors", [])]
        message = hl7.application_ack(request.wrapper, type_code=spec["ack"], errors=errors, sender_asid=sender_asid,
                                      message_id=new_id())
        return InteractionReply(message)
    text = _render(spec["template"], _context(request))
    return InteractionReply(parse_xml(text.encode("utf-8")))


def _render(template: str, context: dict) -> str:
    return _JINJA.from_string(template).render(context)


def _context(request: InteractionRequest) -> dict:
    wrapper = request.wrapper
    number = None
    for element in wrapper.root.iter():
        if element.get("root") == "2.16.840.1.113883.2.1.4.1" and element.get("extension"):
            number = element.get("extension")
            break
    return {"message_id": new_id(), "request_id": wrapper.message_id or "", "interaction": request.interaction,
            "sender_asid": wrapper.sender_asid or "", "spine_asid": SPINE_ASID, "nhs_number": number or "",
            "now": hl7.format_ts()}


def _sample_context() -> dict:
    return {"message_id": new_id(), "request_id": new_id(), "interaction": "QUPA_IN040000UK32",
            "sender_asid": "200000000001", "spine_asid": SPINE_ASID, "nhs_number": "9000000009",
            "now": hl7.format_ts()}


def interaction_of(message: etree._Element) -> str:
    """The interaction id of an HL7 message: its root element's name."""
    return etree.QName(message).localname
