"""STUB (helper E replaces): the prescription tracker (GET Task), answered from the session's prescriptions."""

from __future__ import annotations

from sandbox.services.eps.context import Answer, EpsCall
from sandbox.web.pipeline import ExchangeContext


def track(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise NotImplementedError
