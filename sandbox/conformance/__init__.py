"""Requirements, checks and findings: how the sandbox judges what a supplier sends."""

from sandbox.conformance.checks import CheckSet, RequestView
from sandbox.conformance.findings import Finding, Outcome, SpineError
from sandbox.conformance.requirements import Requirement, RequirementCatalogue

__all__ = ["CheckSet", "Finding", "Outcome", "RequestView", "Requirement", "RequirementCatalogue", "SpineError"]
