"""The running sandbox's shared parts: settings, journal, population, services, requirements and scenarios."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from flask.globals import _cv_app

from sandbox import scenarios as builtin_scenarios
from sandbox.assurance.plans import PlanCatalogue, PlanError
from sandbox.conformance.requirements import SANDBOX_REQUIREMENTS, CatalogueError, RequirementCatalogue
from sandbox.journal.store import Store, open_store
from sandbox.scripting.scenarios import ScenarioCatalogue, ScenarioError
from sandbox.services import Service, discover
from sandbox.settings import Settings
from sandbox.synthetic.population import Population

log = logging.getLogger(__name__)


RETENTION = "retention"  # extensions: the retention rounds, with --retain-days


class StartupError(Exception):
    """The sandbox cannot start as configured; the message says which file or setting and why."""


@dataclass
class Sandbox:
    settings: Settings
    store: Store
    population: Population
    services: dict[str, Service]
    requirements: RequirementCatalogue
    scenarios: ScenarioCatalogue
    started_at: float = 0.0
    extensions: dict = field(default_factory=dict)  # per-service runtime objects, keyed by service name
    plans: PlanCatalogue = field(default_factory=PlanCatalogue)

    @classmethod
    def build(cls, settings: Settings, progress: Callable[[str], None] | None = None) -> Sandbox:
        say = progress or (lambda message: None)
        services = {s.name: s for s in discover()}
        requirements = RequirementCatalogue(SANDBOX_REQUIREMENTS)  # sandbox-defect, for every service
        try:
            for service in services.values():
                requirements.merge(service.requirements)
                named = service.checks.requirement_ids() | (service.history.requirement_ids()
                                                            if service.history else set())
                unknown = named - {r.id for r in service.requirements}
                if unknown:
                    raise CatalogueError(f"{service.name} checks name requirements missing from its "
                                         f"requirements.yaml: {', '.join(sorted(unknown))}")
        except CatalogueError as exc:
            raise StartupError(str(exc)) from None
        undeclared = [problem for service in services.values() for problem in service.undeclared_operations()]
        if undeclared:
            more = f" (and {len(undeclared) - 1} more)" if len(undeclared) > 1 else ""
            raise StartupError(undeclared[0] + more)
        folders = [Path(builtin_scenarios.__file__).parent, *settings.scenarios]
        for folder in settings.scenarios:
            if not Path(folder).is_dir():
                raise StartupError(f"scenario folder {folder} does not exist (SANDBOX_SCENARIOS / --scenarios)")
        try:
            catalogue = ScenarioCatalogue.load(
                folders, {name: set(s.operations) for name, s in services.items()}, requirements)
            plans = PlanCatalogue.load(folders, services, catalogue, requirements)
        except (ScenarioError, PlanError) as exc:
            raise StartupError(str(exc)) from None
        say(f"{len(services)} services, {len(requirements)} requirements, {len(catalogue)} scenarios, "
            f"{len(plans)} assurance plans")
        store = _open_store(settings)
        population = Population.shared(settings.seed, settings.population)
        sandbox = cls(settings, store, population, services, requirements, catalogue, plans=plans)
        try:
            for service in services.values():
                if service.start:
                    service.start(sandbox)
        except BaseException:
            sandbox.close()  # a start that stops here leaves no file handle open
            raise
        return sandbox

    def close(self) -> None:
        """Stop the services' background work (Spine deliveries), then close the store and with it every file handle
        it holds (its maintenance thread first). Whoever built the sandbox closes it (a server at exit, a
        mock_spine() block, a fixture); closing twice is harmless."""
        if self.store.closed:
            return
        retention = self.extensions.pop(RETENTION, None)
        if retention is not None:
            retention.stop()
        for service in self.services.values():
            if service.stop:
                service.stop(self)
        self.store.close()

    def reopen(self) -> None:
        """Open the store again after close(): a mock_spine() entered once more, or read after its block."""
        if self.store.closed:
            self.store = _open_store(self.settings)
            for service in self.services.values():
                if service.stop and service.start:  # what close() stopped starts again
                    service.start(self)

    def start_retention(self) -> None:
        """With --retain-days, purge idle sessions at once and then hourly while open (servers call this)."""
        if self.settings.retain_days and RETENTION not in self.extensions:
            from sandbox.retention import RetentionRounds

            self.extensions[RETENTION] = RetentionRounds(self)

    @contextmanager
    def opened(self) -> Iterator[Sandbox]:
        """The store open for the block: reopened for it, and closed again after, when close() had closed it."""
        if not self.store.closed:
            yield self
            return
        self.reopen()
        try:
            yield self
        finally:
            self.close()

    def service_for_path(self, path: str) -> Service | None:
        candidates = self._services_by_root.get(path[1:].partition("/")[0], ())
        return next((s for s in candidates if s.owns(path)), None)

    @functools.cached_property
    def _services_by_root(self) -> dict[str, list[Service]]:
        """Services by the first segment of their base paths: a request is matched against those only, in order."""
        by_root: dict[str, list[Service]] = {}
        for service in self.services.values():
            for base in service.base_paths:
                found = by_root.setdefault(base[1:].partition("/")[0], [])
                if not any(s is service for s in found):
                    found.append(service)
        return by_root

    def warm(self, progress: Callable[[int, int], None] | None = None, background: bool = True) -> None:
        """Build the population's search index now (in a thread by default) rather than on the first search."""
        if background:
            threading.Thread(target=self.population.index, args=(progress,), daemon=True,
                             name="population-index").start()
        else:
            self.population.index(progress)


def _open_store(settings: Settings) -> Store:
    try:
        return open_store(settings.journal_url, settings.threads)
    except Exception as exc:  # sqlite3 / psycopg errors: the message is what the user needs
        raise StartupError(f"cannot open the journal at {settings.journal_url_shown}: {exc}") from None


def current_sandbox() -> Sandbox:
    # The app context itself rather than Flask's current_app proxy: asked several times on every request.
    context = _cv_app.get(None)
    if context is None:
        raise RuntimeError("current_sandbox() needs an app context: inside a request, or in `with app.app_context()`")
    return context.app.extensions["sandbox"]
