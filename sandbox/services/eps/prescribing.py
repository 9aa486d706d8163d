"""STUB (helper E replaces): the prescriber's operations over the session's prescriptions."""

from __future__ import annotations

from sandbox.services.eps.context import Answer, EpsCall
from sandbox.web.pipeline import ExchangeContext


def prepare(call: EpsCall, ex: ExchangeContext) -> Answer:
    """$prepare: the Parameters (digest, timestamp, algorithm) of signatures.prepare."""
    raise NotImplementedError


def order(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise NotImplementedError


def cancel(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise NotImplementedError
