"""STUB (helper D replaces): FHIR -> HL7v3 as live EPS translates, $convert, and the signature fragments."""

from __future__ import annotations

from typing import Any

from sandbox.conformance.findings import Finding
from sandbox.services.eps.context import Answer, EpsCall, Translation
from sandbox.web.pipeline import ExchangeContext


def translate(call: EpsCall, body: Any | None = None) -> Translation:
    """The HL7v3 message `call` (an accepted message of context.MESSAGES) becomes, validated."""
    raise NotImplementedError


def findings_of(translation: Translation) -> list[Finding]:
    return []


def signature_fragments(bundle: dict) -> bytes:
    """The canonical (exclusive c14n) XML of a prescription's signed fragments, which $prepare's digest is over."""
    raise NotImplementedError


def convert(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise NotImplementedError
