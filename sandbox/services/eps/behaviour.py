"""STUB (helper B replaces): EPS checks over the session's history."""

from sandbox.conformance.history import HistoryCheckSet

history = HistoryCheckSet("eps")
