"""create_app(settings): one Flask app, every service mounted at its real path, the control API beside them."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask

from sandbox import hosting
from sandbox.runtime import Sandbox, StartupError
from sandbox.services import source_of, unknown_operation
from sandbox.settings import Settings
from sandbox.web import pipeline
from sandbox.web.assurance import assurance
from sandbox.web.control import control


class SandboxFlask(Flask):
    """Flask asks of every view and hook, on every request, whether it is a coroutine; here the answer is kept."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._callable: dict[Callable, Callable] = {}

    def ensure_sync(self, func: Callable) -> Callable:
        ready = self._callable.get(func)
        if ready is None:
            ready = self._callable[func] = super().ensure_sync(func)
        return ready


def create_app(settings: Settings | None = None, *, sandbox: Sandbox | None = None,
               progress: Callable[[str], None] | None = None) -> Flask:
    """The app. Whoever made it closes its sandbox when done (`app.extensions["sandbox"].close()`): the store holds
    file handles that nothing else releases."""
    settings = settings or Settings.load()
    built = sandbox is None  # then its store is ours to close if the app cannot be made (else the caller's)
    sandbox = sandbox or Sandbox.build(settings, progress)
    sandbox.started_at = time.time()
    app = SandboxFlask("sandbox")
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    app.extensions["sandbox"] = sandbox
    pipeline.install(app, sandbox)
    hosting.install(app, sandbox)
    for service in sandbox.services.values():
        for n, base in enumerate(service.base_paths):
            app.register_blueprint(service.blueprint, url_prefix=base, name=f"{service.name}{n or ''}")
        if service.control is not None:
            app.register_blueprint(service.control, url_prefix=f"/_sandbox/{service.name}",
                                   name=f"{service.name}-control")
    app.register_blueprint(control)
    app.register_blueprint(assurance)
    undeclared = _undeclared_routes(app, sandbox)
    if undeclared:
        if built:
            sandbox.close()
        raise StartupError(undeclared[0])
    return app


def _undeclared_routes(app: Flask, sandbox: Sandbox) -> list[str]:
    """Routes whose operation() names an operation their service does not declare: their scenarios could never
    match. (Spine's route resolves the operation per message, from the interaction catalogue.)"""
    by_blueprint = {f"{s.name}{n or ''}": s for s in sandbox.services.values() for n in range(len(s.base_paths))}
    problems = []
    for endpoint, view in app.view_functions.items():
        service = by_blueprint.get(endpoint.rpartition(".")[0])
        name = getattr(view, "sandbox_operation", None)
        if service is not None and name is not None and name not in service.operations:
            problems.append(f"{source_of(view)}: route {endpoint}: "
                            + unknown_operation(name, service.name, service.operations))
    return problems
