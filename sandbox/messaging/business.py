"""The business contract of Spine core messaging: the spine service hands a parsed HL7v3 request to the service that
answers its interaction (Service.hl7v3), and sends back what that service replies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree

if TYPE_CHECKING:
    from sandbox.messaging.hl7 import Hl7Wrapper
    from sandbox.messaging.mime import Part
    from sandbox.runtime import Sandbox
    from sandbox.web.pipeline import ExchangeContext


@dataclass
class InteractionRequest:
    interaction: str  # e.g. "QUPA_IN040000UK32"
    wrapper: Hl7Wrapper  # the parsed HL7 message; wrapper.root is the interaction element
    session: str
    sandbox: Sandbox
    exchange: ExchangeContext  # .add(*findings), .write_with_record(write), .facts
    attachments: tuple[Part, ...] = ()
    conversation_id: str | None = None
    from_party: str | None = None  # the sender's party key (ebXML); None over synchronous SOAP


@dataclass
class InteractionReply:
    message: etree._Element  # a complete HL7 message, built with sandbox.messaging.hl7
    attachments: tuple[Part, ...] = ()
    wrapper: str | None = None  # synchronous only: the SOAP body element around it, e.g. "retrievalQueryResponse"
    delay_s: float = 0.0  # asynchronous only: deliver this long after the request
    to_party: str | None = None  # asynchronous only: the sender when None
    from_party: str | None = None  # asynchronous only: the party key it comes from; Spine (YES-0000806) when None


@dataclass(frozen=True)
class PlayedParty:
    """A system the sandbox plays besides Spine (e.g. the GP2GP sending practice), declared by the service that
    answers for it (Service.parties): SDS lists its accredited system and a routing record per interaction, at this
    sandbox's forward reliable address, and routes to it like any supplier's MHS."""

    ods: str
    asid: str
    party_key: str
    cpa_id: str
    service: str  # the Spine service its interactions travel under, e.g. "urn:nhs:names:services:gp2gp"
    interactions: tuple[str, ...]  # bare interaction ids
    manufacturer: str = "Spine Sandbox"


InteractionHandler = Callable[[InteractionRequest], list[InteractionReply]]
