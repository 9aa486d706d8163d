"""STUB (helper E replaces): the session's prescriptions and their state machine."""

from __future__ import annotations

from sandbox.services.eps.context import EpsCall


def holds(call: EpsCall) -> bool:
    """Whether the request is about a prescription the session holds (resources.prescription_id of its body)."""
    return False
