"""STUB (helper C replaces): $verify-signature."""

from __future__ import annotations

from sandbox.services.eps.context import Answer, EpsCall
from sandbox.web.pipeline import ExchangeContext


def verify_signature(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise NotImplementedError
