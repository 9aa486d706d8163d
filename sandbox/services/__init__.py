"""The service contract, and the registry that finds every service package by convention."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable
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

    from sandbox.assurance.plans import Plan
    from sandbox.journal.store import Store
    from sandbox.messaging.business import InteractionHandler, PlayedParty
    from sandbox.runtime import Sandbox
    from sandbox.web.access import Access

# What a generic HTTP failure (no route, wrong method, body too large) is called, unless a service says otherwise.
HTTP_ERROR_CODES = {400: "INVALID_VALUE", 404: "RESOURCE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                    406: "NOT_ACCEPTABLE", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
                    500: "INTERNAL_SERVER_ERROR", 503: "SERVICE_UNAVAILABLE"}


@dataclass(frozen=True)
class SessionBinding:
    """Credentials of a service's own (MESH mailbox ids) bound to a session, so that a client that can send no session
    header lands in it (sandbox.assurance.binding makes and ends them). `check(sandbox, plan, ids, hosted)`: the ids,
    cleaned, when a new session of the plan may take them all, else SessionError saying why; `bind(store, session,
    ids)`: all or none (SessionError); `release(store, session)`: ends the session's bindings, returning the ids;
    `defaults(sandbox, plan, hosted)`: the ids `spine-sandbox run` binds when none are named."""

    check: Callable[[Sandbox, Plan, list[str], bool], list[str]]
    bind: Callable[[Store, str, list[str]], None]
    release: Callable[[Store, str], list[str]]
    defaults: Callable[[Sandbox, Plan, bool], list[str]]


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
    stop: Callable[[Sandbox], None] | None = None  # undoes start (background threads), before the store closes
    # Retention: drop what the service keeps about these (purged) sessions outside their own state (shared indexes).
    forget: Callable[[Sandbox, list[str]], None] | None = None
    finish_response: Callable[[Response], None] | None = None
    resolve_session: Callable[[Request, Sandbox], str | None] | None = None
    # Whether resolve_session rests on a secret the caller holds (a token, a password, an API key) rather than on
    # published identifiers (party keys, ASIDs): a hosted sandbox binds service traffic to a tenant only by those.
    session_by_secret: bool = False
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
    binding: SessionBinding | None = None  # credentials of its own a session may be bound to (MESH mailboxes)

    @cached_property
    def requirements(self) -> RequirementCatalogue:
        """`requirements.yaml`, or for a large service one catalogue per area in `requirements/*.yaml`."""
        catalogue = RequirementCatalogue()
        folder = self.package_dir / "requirements"
        for path in [self.package_dir / "requirements.yaml", *sorted(folder.glob("*.yaml"))]:
            if path.exists():
                catalogue.merge(RequirementCatalogue.load(path, self.name))
        return catalogue

    @property
    def schema_dir(self) -> Path:
        return self.package_dir / "schemas"

    def http_error(self, status: int, diagnostics: str) -> SpineError:
        code = self.http_error_codes.get(status) or HTTP_ERROR_CODES.get(status, "INTERNAL_SERVER_ERROR")
        return SpineError(status, code, diagnostics, issue_code="not-found" if status == 404 else "invalid")

    def owns(self, path: str) -> bool:
        return any(path == base or path.startswith(base + "/") for base in self.base_paths)

    def undeclared_operations(self) -> list[str]:
        """Where the service's own code names an operation it does not declare in `operations` (a check registered
        for it) or an HL7v3 interaction missing from the interaction catalogue (`hl7v3`): one line each, naming the
        file. A typo there would silently switch the check (or the answer) off, so the start stops instead."""
        from sandbox.messaging import interactions

        problems = []
        for check in self.checks:
            for name in sorted(check.operations or ()):
                if name not in self.operations:
                    problems.append(f"{source_of(check.func)}: check {check.name}: "
                                    + unknown_operation(name, self.name, self.operations))
        catalogue = interactions.catalogue()
        for interaction in self.hl7v3:  # Spine's operations are the catalogue's interaction ids, so these are too
            if interaction not in catalogue:
                problems.append(f"{source_of(self.package_dir / '__init__.py')}: hl7v3: interaction {interaction!r} "
                                f"is not in the interaction catalogue (sandbox/messaging/interactions.yaml; "
                                f"`spine-sandbox spine interactions` lists it)")
        return problems


def unknown_operation(operation: str, service: str, known: Iterable[str]) -> str:
    """The sentence every start-up check uses for an operation id a service does not declare."""
    known = sorted(known)
    listed = ", ".join(known[:KNOWN_LISTED]) + (f", … ({len(known)} in all)" if len(known) > KNOWN_LISTED else "")
    return f"operation {operation!r} is not a {service} operation; known: {listed or '(none)'}"


KNOWN_LISTED = 40  # Spine declares every interaction of the catalogue: the line says how many rather than all


def source_of(thing) -> str:
    """A function's (or a path's) file, relative to the project when it is inside it."""
    path = Path(thing if isinstance(thing, (str, Path)) else inspect.getsourcefile(inspect.unwrap(thing)) or "?")
    root = Path(__file__).resolve().parent.parent.parent
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


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
