"""The interaction catalogue as users see it (GET /_sandbox/spine/interactions, `spine-sandbox spine
interactions`): each interaction's service, pattern, endpoint and reliability, and what in this sandbox answers it
(a business service's handler, else only the transport's acknowledgement or a scenario's scripted answer)."""

from __future__ import annotations

from collections.abc import Iterable

from sandbox.messaging.interactions import ANY_SERVICE, catalogue
from sandbox.services.spine.inbound import ENDPOINT_OF_PATTERN

NO_HANDLER = "scripted/acknowledged only"
RELIABILITY = {"sync": "synchronous", "async-express": "express", "async-reliable": "reliable",
               "forward-reliable": "reliable (forwarded)", "forward-express": "express (forwarded)"}


def handlers(services: Iterable) -> dict[str, list[tuple[str, str]]]:
    """interaction id -> [(the sandbox service whose handler answers it, the Spine service it answers it under)].
    A bare SERVICE.hl7v3 key answers the interaction under the service the catalogue gives it."""
    known = catalogue()
    found: dict[str, list[tuple[str, str]]] = {}
    for service in services:
        for key in service.hl7v3:
            spine_service, _, iid = key.rpartition(":") if ":" in key else ("", "", key)
            if not spine_service:
                spine_service = known[iid].service if iid in known else ""
            found.setdefault(iid, []).append((service.name, spine_service))
    return found


def rows(services: Iterable, scenarios: Iterable, pattern: str | None = None) -> list[dict]:
    """One row per catalogue interaction (of one pattern when given), by id."""
    answered = handlers(services)
    triggered: dict[str, list[dict]] = {}
    for scenario in scenarios:
        for operation in scenario.trigger.operations:
            triggered.setdefault(operation, []).append(
                {"id": scenario.id, "service": scenario.service, "title": scenario.title})
    result = []
    for interaction in sorted(catalogue().values(), key=lambda i: i.id):
        if pattern not in (None, interaction.pattern):
            continue
        by = answered.get(interaction.id, [])
        result.append({
            "id": interaction.id, "title": interaction.title, "service": interaction.service,
            "also_under": "any Spine service" if ANY_SERVICE in interaction.also_under
            else list(interaction.also_under),
            "pattern": interaction.pattern, "pattern_elsewhere": interaction.pattern_elsewhere,
            "endpoint": ENDPOINT_OF_PATTERN[interaction.pattern], "reliability": RELIABILITY[interaction.pattern],
            "response": interaction.response, "schema": interaction.schema,
            "answered_by": ", ".join(sorted({name for name, _ in by})) or NO_HANDLER,
            "answered_under": sorted({spine_service for _, spine_service in by if spine_service}),
            "scenarios": triggered.get(interaction.id, []),
        })
    return result
