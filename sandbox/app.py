"""create_app(settings): one Flask app, every service mounted at its real path, the control API beside them."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask

from sandbox.runtime import Sandbox
from sandbox.settings import Settings
from sandbox.web import pipeline
from sandbox.web.assurance import assurance
from sandbox.web.control import control


def create_app(settings: Settings | None = None, *, sandbox: Sandbox | None = None,
               progress: Callable[[str], None] | None = None) -> Flask:
    settings = settings or Settings.load()
    sandbox = sandbox or Sandbox.build(settings, progress)
    sandbox.started_at = time.time()
    app = Flask("sandbox")
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    app.extensions["sandbox"] = sandbox
    pipeline.install(app, sandbox)
    for service in sandbox.services.values():
        for n, base in enumerate(service.base_paths):
            app.register_blueprint(service.blueprint, url_prefix=base, name=f"{service.name}{n or ''}")
        if service.control is not None:
            app.register_blueprint(service.control, url_prefix=f"/_sandbox/{service.name}",
                                   name=f"{service.name}-control")
    app.register_blueprint(control)
    app.register_blueprint(assurance)
    return app
