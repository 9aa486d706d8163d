"""The package list, which setup.cfg cannot express: the built-in scenario packs stay in scenarios/ but install
inside the sandbox namespace (sandbox.scenarios), so the installed package has no top-level module that a
supplier's own `scenarios` could shadow."""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["sandbox", "sandbox.*"]),
                *(f"sandbox.{name}" for name in find_namespace_packages(include=["scenarios", "scenarios.*"]))])
