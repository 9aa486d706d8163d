"""STUB (helper E replaces): the dispenser's operations over the session's prescriptions."""

from __future__ import annotations

from sandbox.services.eps.context import Answer, EpsCall
from sandbox.web.pipeline import ExchangeContext


def release(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise NotImplementedError


def dispense(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise NotImplementedError


def claim(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise NotImplementedError


def return_(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise NotImplementedError


def withdraw(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise NotImplementedError
