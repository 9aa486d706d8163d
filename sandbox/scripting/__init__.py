"""Scenarios: which request gets which scripted answer, with what fault, exercising which requirements."""

from sandbox.scripting.scenarios import Scenario, ScenarioCatalogue, ScenarioError

__all__ = ["Scenario", "ScenarioCatalogue", "ScenarioError"]
