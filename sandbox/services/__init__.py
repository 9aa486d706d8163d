"""The service contract, and the registry that finds every service package by convention."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Blueprint, Response

from sandbox.conformance.checks import CheckSet
from sandbox.conformance.findings import SpineError
from sandbox.conformance.history import HistoryCheckSet
from sandbox.conformance.requirements import RequirementCatalogue

if TYPE_CHECKING:
    import click
    from flask import Request

    from sandbox.messaging.business import InteractionHandler, PlayedParty
    from sandbox.runtime import Sandbox
    from sandbox.web.access import Access

# What a generic HTTP failure (no route, wrong method, body too large) is called, unless a service says otherwise.
HTTP_ERROR_CODES = {400: "INVALID_VALUE", 404: "RESOURCE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                    406: "NOT_ACCEPTABLE", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
                    500: "INTERNAL_SERVER_ERROR"}


@dataclass
class Service:
    """Everything the engine knows about one mocked Spine service; the rest stays inside its folder."""

    name: str
    title: str
    base_paths: tuple[str, ...]  # where the live service is mounted, so suppliers change only the host name
    blueprint: Blueprint
    operations: dict[str, str]  # operation id -> "METHOD /path" as a supplier reads it
    checks: CheckSet
    render_error: Callable[[SpineError], Response]  # the service's own error body shape
    package_dir: Path
    specification: dict[str, str] = field(default_factory=dict)  # spec name -> version, for reports
    http_error_codes: dict[int, str] = field(default_factory=dict)
    max_body_bytes: int = 0  # a larger request body limit than SANDBOX_MAX_BODY_BYTES, where the live service has one
    # Optional hooks: warm-up at start, headers every response carries, caller identity -> session,
    # service-specific control endpoints (mounted at /_sandbox/<name>/), CLI commands (`spine-sandbox <name> …`),
    # bearer token -> who the request acts for (sandbox.web.access; offered by the service that issues tokens).
    start: Callable[[Sandbox], None] | None = None
    finish_response: Callable[[Response], None] | None = None
    resolve_session: Callable[[Request, Sandbox], str | None] | None = None
    control: Blueprint | None = None
    cli: click.Group | None = None
    resolve_access: Callable[[str, Sandbox], Access | None] | None = None
    # Behavioural checks over the session's earlier exchanges (retries, back-off, ETags), run at record time.
    history: HistoryCheckSet | None = None
    # HL7v3 interactions this service answers over Spine core messaging (interaction id -> handler); the spine
    # service dispatches to them, so one domain answers both its FHIR API and its HL7v3 messages.
    hl7v3: dict[str, InteractionHandler] = field(default_factory=dict)
    # Systems this service plays in the directory besides Spine (SDS lists them; the spine service routes to them).
    parties: tuple[PlayedParty, ...] = ()

    @cached_property
    def requirements(self) -> RequirementCatalogue:
        path = self.package_dir / "requirements.yaml"
        return RequirementCatalogue.load(path, self.name) if path.exists() else RequirementCatalogue()

    @property
    def schema_dir(self) -> Path:
        return self.package_dir / "schemas"

    def http_error(self, status: int, diagnostics: str) -> SpineError:
        code = self.http_error_codes.get(status) or HTTP_ERROR_CODES.get(status, "INTERNAL_SERVER_ERROR")
        return SpineError(status, code, diagnostics, issue_code="not-found" if status == 404 else "invalid")

    def owns(self, path: str) -> bool:
        return any(path == base or path.startswith(base + "/") for base in self.base_paths)


def discover() -> list[Service]:
    """Every sandbox.services.<name> package that defines SERVICE; adding a service needs no engine edits."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.ispkg:
            module = importlib.import_module(f"{__name__}.{info.name}")
            service = getattr(module, "SERVICE", None)
            if isinstance(service, Service):
                found.append(service)
    return found
