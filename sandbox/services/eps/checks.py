"""STUB (helper B replaces): EPS request checks."""

from sandbox.conformance.checks import CheckSet

checks = CheckSet("eps")
