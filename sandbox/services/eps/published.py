"""STUB (helper A replaces): the specification's examples and their paired answers."""

from __future__ import annotations

from typing import Any

from sandbox.services.eps.context import Answer, EpsCall


def match(call: EpsCall) -> Any:
    """The specification example the request equals (an `Example`), or None."""
    return None


def answer(call: EpsCall, example: Any) -> Answer:
    raise NotImplementedError
