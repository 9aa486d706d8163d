"""STUB (helper B replaces): $validate."""

from __future__ import annotations

from sandbox.services.eps.context import Answer, EpsCall
from sandbox.web.pipeline import ExchangeContext


def validate(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise NotImplementedError
