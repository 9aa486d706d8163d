"""Assurance: plans, sessions bound to plans, verdicts, reports in several renderings, integrity, CI mode."""
