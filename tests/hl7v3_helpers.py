"""Calling a business service's HL7v3 handlers as the spine service calls them, on a sandbox holding only PDS and
that service, and holding replies against the official schemas."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from lxml import etree

from sandbox.conformance.requirements import RequirementCatalogue
from sandbox.journal.store import open_store
from sandbox.messaging import hl7
from sandbox.messaging.business import InteractionRequest
from sandbox.runtime import Sandbox
from sandbox.scripting.scenarios import ScenarioCatalogue
from sandbox.services import pds
from sandbox.web.pipeline import ExchangeContext


def new_id() -> str:
    return str(uuid.uuid4()).upper()


def handler_sandbox(settings, service) -> Iterator[Sandbox]:
    """What the handlers use (the store, the population, PDS and `service`) without starting every other service;
    the whole app is exercised by the end-to-end tests. Use as a generator fixture: the store closes after."""
    services = {s.name: s for s in (pds.SERVICE, service)}
    requirements = RequirementCatalogue()
    for each in services.values():
        requirements.merge(each.requirements)
    store = open_store(settings.journal_url)
    try:
        yield Sandbox(settings, store, _population(settings), services, requirements, ScenarioCatalogue())
    finally:
        store.close()


def _population(settings):
    from sandbox.synthetic.population import Population

    return Population.shared(settings.seed, settings.population)


def call(handler, sandbox: Sandbox, xml: bytes, *, service: str, from_party: str, session: str = "default",
         conversation_id: str | None = None):
    """As the spine service calls a business handler; the exchange's deferred writes are made as at record time."""
    wrapper = hl7.parse_wrapper(xml)
    exchange = ExchangeContext(id=new_id(), started=time.time(), clock=time.perf_counter(),
                               service=sandbox.services[service], session=session)
    request = InteractionRequest(interaction=wrapper.interaction, wrapper=wrapper, session=session, sandbox=sandbox,
                                 exchange=exchange, conversation_id=conversation_id, from_party=from_party)
    replies = handler(request)
    with sandbox.store.state.transaction():
        for write in exchange.writes:
            write()
    return replies, exchange.findings


def assert_valid(schemas, message) -> None:
    interaction = etree.QName(message).localname
    problems = schemas.validate(interaction, etree.fromstring(hl7.to_bytes(message)))
    assert not problems, f"{interaction} does not validate: {problems}"


def outcome(findings, requirement: str) -> set[str]:
    return {str(f.outcome) for f in findings if f.requirement == requirement}
