"""What Spine does with a message its checks accepted, per messaging pattern (each at its live address):

- synchronous (POST /sync-service): the business answer in the HTTP response, a SOAP envelope whose Body holds
  the answer in its wrapper element (e.g. SOAP-ENV:Body/hl7:retrievalQueryResponse/QUPA_IN050000UK32), HTTP 200.
- asynchronous express (POST /reliablemessaging/queryrequest): HTTP 202 at once, empty; the business answers are
  delivered later to the sender's MHS (its SDS registration for the answer's interaction).
- asynchronous reliable (POST /reliablemessaging/reliablerequest): as express, plus Spine's eb:Acknowledgment:
  in the HTTP 202 answer when the message asks for eb:SyncReply (as the MHS adaptor's reliable messages do), else
  delivered to the sender's endpoint. A re-sent message (same From party and MessageId within the persist
  duration) is answered as the first time and not processed again.
- forward reliable / express (POST /reliablemessaging/intermediary): passed on unchanged to the receiving party
  when it is a supplier system registered in the session (its acknowledgement is relayed back to the sender);
  otherwise the sandbox plays the receiver: its business handler answers and it acknowledges.
- acknowledgements and MessageErrors a supplier sends back for what the sandbox delivered: HTTP 202, and the
  delivery they name is complete (relayed on to the original sender when Spine forwarded it).
"""

from __future__ import annotations

import logging
import re

from flask import Response, request

from sandbox.conformance.findings import Finding
from sandbox.messaging import SPINE_ASID, SPINE_PARTY_KEY, ebxml, hl7, interactions, new_id, soap
from sandbox.messaging.business import InteractionReply, InteractionRequest
from sandbox.runtime import Sandbox, current_sandbox
from sandbox.services.spine import delivery, dispatch, errors, reliability
from sandbox.services.spine.inbound import ACKNOWLEDGMENT, MESSAGE_ERROR, Inbound
from sandbox.services.spine.parties import Parties

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/xml; charset=UTF-8"
ACK_SOAP_ACTION = "urn:oasis:names:tc:ebxml-msg:service/Acknowledgment"
DEFAULT_PERSIST_S = 300.0  # nhsMHSPersistDuration PT5M, when SDS does not say
UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def base_url(sandbox: Sandbox) -> str:
    return (sandbox.settings.public_url or request.host_url).rstrip("/")


def answer(ex, inbound: Inbound) -> Response:
    sandbox = current_sandbox()
    if inbound.kind in (ACKNOWLEDGMENT, MESSAGE_ERROR):
        return acknowledgment(ex, inbound, sandbox)
    if inbound.interaction is None or inbound.wrapper is None:  # the checks refuse these; never answer them
        raise errors.refusal(inbound.transport, "ValueNotRecognized", "The message cannot be processed")
    pattern = inbound.interaction.pattern
    if pattern == "sync":
        return synchronous(ex, inbound, sandbox)
    if pattern == "async-express":
        return express(ex, inbound, sandbox)
    if pattern == "async-reliable":
        return reliable(ex, inbound, sandbox)
    return forwarded(ex, inbound, sandbox)


def _request(ex, inbound: Inbound, sandbox: Sandbox) -> InteractionRequest:
    attachments = inbound.ebxml.attachments if inbound.ebxml is not None else ()
    return InteractionRequest(interaction=inbound.interaction.id, wrapper=inbound.wrapper, session=ex.session,
                              sandbox=sandbox, exchange=ex, attachments=attachments,
                              conversation_id=inbound.conversation_id, from_party=inbound.from_party)


def _business_answer(ex, inbound: Inbound, sandbox: Sandbox, sender_asid: str = SPINE_ASID) -> dispatch.Answer:
    spine_service = inbound.header.service if inbound.header is not None else None
    result = dispatch.answer(_request(ex, inbound, sandbox), ex.scenario, sender_asid=sender_asid,
                             spine_service=spine_service)
    if result.source == "handler" and ex.scenario is None:
        # The business service names its answers in its own scenarios, by the facts its handler set.
        owner = dispatch.owner_of(sandbox, inbound.interaction.id, spine_service)
        if owner is not None:
            ex.scenario = sandbox.scenarios.select(owner, inbound.interaction.id, ex.view, ex.facts)
    if result.source == "default":
        ex.add(Finding.info("SPINE-HL7-010", f"The sandbox has no business answer for {inbound.interaction.id} "
                            f"({inbound.interaction.title}); it answered with the {inbound.interaction.pattern} "
                            "transport and, where one is due, an application acknowledgement AA. Script the answer "
                            "with a scenario's response.hl7 (see scenarios/spine/)."))
    return result


# --- synchronous -----------------------------------------------------------------------------------------------

def synchronous(ex, inbound: Inbound, sandbox: Sandbox) -> Response:
    result = _business_answer(ex, inbound, sandbox)
    if not result.replies:
        raise errors.soap_fault("200", errors.TMS_DESCRIPTIONS["200"])
    reply = result.replies[0]
    message = reply.message
    reply_interaction = dispatch.interaction_of(message)
    id_element = message.find("{urn:hl7-org:v3}id")
    reply_id = (id_element.get("root") if id_element is not None else None) or new_id()
    body = soap.build_response(action=f"{inbound.interaction.service}/{reply_interaction}", message_id=reply_id,
                               relates_to=inbound.message_id or "", from_service=inbound.interaction.service,
                               sender_asid=SPINE_ASID, receiver_asid=inbound.sender_asid or "",
                               wrapper=reply.wrapper, hl7=hl7.to_bytes(message))
    return Response(body, status=200, content_type=CONTENT_TYPE)


# --- asynchronous express and reliable ---------------------------------------------------------------------------

def express(ex, inbound: Inbound, sandbox: Sandbox) -> Response:
    result = _business_answer(ex, inbound, sandbox)
    _deliver_answers(ex, inbound, sandbox, result)
    return Response(b"", status=202)


def reliable(ex, inbound: Inbound, sandbox: Sandbox) -> Response:
    header = inbound.header
    persist_s = _persist_seconds(ex, inbound)
    first = reliability.duplicate(sandbox, ex.session, header.from_party, header.message_id, persist_s,
                                  body=inbound.hl7)
    if first is not None:
        return first.response()
    result = _business_answer(ex, inbound, sandbox)
    _deliver_answers(ex, inbound, sandbox, result)
    response = _acknowledge(ex, inbound, sandbox, from_party=SPINE_PARTY_KEY)
    reliability.remember(sandbox, ex.session, header.from_party, header.message_id, persist_s,
                         reliability.StoredAnswer.of(response, ex.id), body=inbound.hl7)
    return response


def _persist_seconds(ex, inbound: Inbound) -> float:
    parties: Parties | None = ex.facts.get("parties")
    registration = parties.registration(inbound.from_party) if parties is not None else None
    value = getattr(registration, "persist_duration", None)
    if not value:
        return DEFAULT_PERSIST_S
    return delivery.duration_seconds(value, DEFAULT_PERSIST_S)


def _acknowledge(ex, inbound: Inbound, sandbox: Sandbox, *, from_party: str) -> Response:
    """Spine's eb:Acknowledgment of a reliable message: in the HTTP answer with eb:SyncReply, else delivered."""
    header = inbound.header
    ack_id = new_id()
    ack = ebxml.build_acknowledgment(header, from_party=from_party, message_id=ack_id)
    if header.sync_reply:
        return Response(ack, status=202, content_type=CONTENT_TYPE)
    parties: Parties | None = ex.facts.get("parties")
    registration = parties.registration(header.from_party) if parties is not None else None
    if registration is None:
        ex.add(Finding.failed("SPINE-EBX-015", f"Spine cannot send its eb:Acknowledgment of {header.message_id}: "
                              f"party {header.from_party} has no endpoint registered in SDS (or send eb:SyncReply "
                              "to have it in the HTTP answer)."))
        return Response(b"", status=202)
    delivery.enqueue(sandbox, delivery.Delivery(
        session=ex.session, to_party=header.from_party, endpoint=registration.endpoint, interaction="Acknowledgment",
        message_id=ack_id, conversation_id=header.conversation_id or ack_id, content_type=CONTENT_TYPE, body=ack,
        reliable=False, ref_to_message_id=header.message_id, soap_action=ACK_SOAP_ACTION))
    ex.add(Finding.passed("SPINE-EBX-015", f"Spine's eb:Acknowledgment {ack_id} of {header.message_id} is queued "
                          f"for delivery to {registration.endpoint} (the message asked for no eb:SyncReply)."))
    return Response(b"", status=202)


def _deliver_answers(ex, inbound: Inbound, sandbox: Sandbox, result: dispatch.Answer) -> None:
    if result.never:
        ex.add(Finding.info("SPINE-EBX-015", f"Scenario {ex.scenario.id if ex.scenario else '-'}: the business "
                            f"answer to {inbound.message_id} is never sent (your system must time out)."))
        return
    if result.source == "default" and (inbound.wrapper.accept_ack or "NE") == "NE":
        return  # no handler and no acknowledgement asked for: nothing to send
    for reply in result.replies:
        _deliver(ex, inbound, sandbox, reply)


def _deliver(ex, inbound: Inbound, sandbox: Sandbox, reply: InteractionReply) -> None:
    interaction = dispatch.interaction_of(reply.message)
    to_party = reply.to_party or inbound.from_party
    sender = reply.from_party or SPINE_PARTY_KEY
    try:
        sent = delivery.send_message(
            sandbox, ex.session, to_party=to_party, interaction=interaction, hl7=hl7.to_bytes(reply.message),
            base_url=base_url(sandbox), ref_to_message_id=inbound.message_id,
            conversation_id=inbound.conversation_id, attachments=tuple(reply.attachments), delay_s=reply.delay_s,
            message_id=_message_id(delivery, sandbox, ex.session, reply), from_party=reply.from_party,
            service=_service_of_answer(inbound, interaction))
    except delivery.NoRoute as exc:
        ex.add(Finding.failed("SPINE-EBX-015", f"Spine cannot deliver the answer {interaction} to party {to_party}: "
                              f"{exc}."))
        return
    when = f" in {reply.delay_s:g} s" if reply.delay_s else ""
    by = f" from party {sender}" if sender != SPINE_PARTY_KEY else ""
    ex.add(Finding.passed("SPINE-EBX-015", f"The answer {interaction} ({sent.message_id}){by} is queued for delivery"
                          f"{when} to party {to_party} at {sent.endpoint}, the endpoint its SDS registration gives."))


def _service_of_answer(inbound: Inbound, interaction: str) -> str | None:
    """The eb:Service of an answer: the service of the message it answers when that service carries it (an
    application acknowledgement MCCI_IN010000UK13 to a PDS update travels in urn:nhs:names:services:pds); else
    the directory's or the catalogue's."""
    service = inbound.header.service if inbound.header is not None else None
    known = interactions.find(interaction)
    return service if known is not None and service and known.carried_by(service) else None


def _message_id(delivery, sandbox: Sandbox, session: str, reply: InteractionReply) -> str | None:
    """The reply's HL7 message id as its ebXML MessageId (a requester links a GP2GP extract to its fragments by id),
    unless it is no UUID or the session already sent that id (a scripted template with a fixed id): then a new one."""
    element = reply.message.find("{urn:hl7-org:v3}id")
    hl7_id = (element.get("root") or "").strip() if element is not None else ""
    if not UUID.match(hl7_id) or delivery.sent(sandbox, session, hl7_id):
        return None
    return hl7_id


# --- forward reliable / express ----------------------------------------------------------------------------------

def forwarded(ex, inbound: Inbound, sandbox: Sandbox) -> Response:
    header = inbound.header
    is_reliable = inbound.interaction.pattern == "forward-reliable"
    persist_s = _persist_seconds(ex, inbound)
    if is_reliable:
        first = reliability.duplicate(sandbox, ex.session, header.from_party, header.message_id, persist_s,
                                      body=inbound.hl7)
        if first is not None:
            return first.response()
    parties: Parties | None = ex.facts.get("parties")
    receiver = parties.registration(header.to_party) if parties is not None else None
    if receiver is not None:
        response = _pass_on(ex, inbound, sandbox, is_reliable)
    else:
        # The receiving party is the sandbox's own (a published record): it answers and acknowledges as that party.
        receiver_asid = inbound.wrapper.receiver_asids[0] if inbound.wrapper.receiver_asids else SPINE_ASID
        result = _business_answer(ex, inbound, sandbox, sender_asid=receiver_asid)
        _deliver_answers(ex, inbound, sandbox, result)
        response = (_acknowledge(ex, inbound, sandbox, from_party=header.to_party) if is_reliable
                    else Response(b"", status=202))
    if is_reliable:
        reliability.remember(sandbox, ex.session, header.from_party, header.message_id, persist_s,
                             reliability.StoredAnswer.of(response, ex.id), body=inbound.hl7)
    return response


def _pass_on(ex, inbound: Inbound, sandbox: Sandbox, is_reliable: bool) -> Response:
    header = inbound.header
    parties: Parties | None = ex.facts.get("parties")
    sender = parties.registration(header.from_party) if parties is not None else None
    try:
        sent = delivery.forward(
            sandbox, ex.session, from_party=header.from_party, from_endpoint=getattr(sender, "endpoint", None),
            to_party=header.to_party, interaction=inbound.interaction.id, message_id=header.message_id,
            conversation_id=header.conversation_id or header.message_id, content_type=inbound.content_type,
            body=inbound.body, base_url=base_url(sandbox), reliable=is_reliable, service=header.service)
    except delivery.NoRoute as exc:
        ex.add(Finding.failed("SPINE-EBX-015", f"Spine cannot pass {header.message_id} on to party "
                              f"{header.to_party}: {exc}."))
        raise errors.message_error("DeliveryFailure", f"No route to party {header.to_party}") from None
    ex.add(Finding.passed("SPINE-EBX-015", f"{inbound.interaction.id} {header.message_id} is passed on unchanged "
                          f"to party {header.to_party} at {sent.endpoint}; its acknowledgement will be relayed back."))
    return Response(b"", status=202)


# --- what suppliers send back --------------------------------------------------------------------------------------

def acknowledgment(ex, inbound: Inbound, sandbox: Sandbox) -> Response:
    header = inbound.header
    what = "eb:Acknowledgment" if inbound.kind == ACKNOWLEDGMENT else "ebXML MessageError"
    ref = header.acknowledgment_of or header.ref_to_message_id
    if delivery.acknowledged(sandbox, ex.session, header):
        ex.add(Finding.passed("SPINE-EBX-013", f"The {what} names {ref}, a message the sandbox delivered to party "
                              f"{header.from_party}.", "/soap:Envelope/soap:Header"))
    return Response(b"", status=202)
