"""Spine Sandbox: a local mock NHS Spine for supplier conformance testing."""

__version__ = "0.1.0"
