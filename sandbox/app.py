"""create_app(settings): one Flask app, every service mounted at its real path, the control API beside them."""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import Flask, Request, Response
from flask.ctx import AppContext, RequestContext
from flask.globals import _cv_app, _cv_request
from werkzeug._internal import _wsgi_decoding_dance
from werkzeug.exceptions import HTTPException
from werkzeug.routing import MapAdapter, Rule

from sandbox import hosting
from sandbox.runtime import Sandbox, StartupError
from sandbox.services import source_of, unknown_operation
from sandbox.settings import Settings
from sandbox.web import pipeline
from sandbox.web.assurance import assurance
from sandbox.web.control import control

PRESERVE_CONTEXT = "werkzeug.debug.preserve_context"  # set by Flask's test client when used as a context manager
# What Werkzeug's bind_to_environ reads of a request besides its path, method and query (the host, the scheme, a
# WebSocket upgrade, the mount point): requests alike in these share one binding of the URL map.
BINDING_KEYS = ("HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "wsgi.url_scheme", "HTTP_CONNECTION", "HTTP_UPGRADE",
                "SCRIPT_NAME")
BINDINGS_KEPT = 64
MATCHES_KEPT = 4096  # routes found, by binding, method and path; all forgotten when more (the paths are the client's)


class SandboxFlask(Flask):
    """Flask, with the request path cut to what the sandbox uses (about 165,000 fewer instructions a request, 9-11% of
    a PDS retrieval or a MESH inbox read or send: benchmarks/request_path.py --instructions):
    - no Flask signals (nothing here listens) and no Flask session (no cookie is read or set);
    - each blueprint's hooks are gathered once, not looked up per request by name;
    - the URL map is bound once per host (create_url_adapter), and a path matched once is not matched again (_match);
    - whether a view or hook is a coroutine is asked once per function.
    Everything else is Flask's own: the request, the URL map's matching, error handlers, after_this_request, `g`, and
    the request and app contexts (`request`, `current_app`, an app context a test has pushed already). A request whose
    contexts are to outlive it (Flask's test client used as a context manager) goes through Flask's own path."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._callable: dict[Callable, Callable] = {}
        self._hooks: dict[str | None, _Hooks] = {}  # by blueprint
        self._bindings: dict[tuple, MapAdapter] = {}  # the URL map bound to a host (create_url_adapter)
        self._matches: dict[tuple, tuple[Rule, dict]] = {}  # (binding, method, path) -> rule and view args (_match)

    def ensure_sync(self, func: Callable) -> Callable:
        ready = self._callable.get(func)
        if ready is None:
            ready = self._callable[func] = super().ensure_sync(func)
        return ready

    def wsgi_app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if PRESERVE_CONTEXT in environ:
            return super().wsgi_app(environ, start_response)
        self._got_first_request = True  # as Flask does: no hook may be added from now on, so _hooks stays true
        ctx = self.request_context(environ)
        ctx._session = self._null_session
        outer = _cv_app.get(None)
        app_ctx = None if outer is not None and outer.app is self else AppContext(self)
        app_token = _cv_app.set(app_ctx) if app_ctx is not None else None
        request_token = _cv_request.set(ctx)
        error: BaseException | None = None
        try:
            if ctx.url_adapter is not None:
                self._match(ctx)
            try:
                try:
                    response = self.preprocess_request()
                    if response is None:
                        response = self.dispatch_request()
                except Exception as e:
                    response = self.handle_user_exception(e)
                response = self.process_response(self.make_response(response))
            except Exception as e:
                error = e
                response = self.handle_exception(e)
            except BaseException as e:
                error = e
                raise
            return response(environ, start_response)
        finally:
            try:
                self.do_teardown_request(None if error is not None and self.should_ignore_error(error) else error)
                ctx.request.close()
            finally:
                ctx.request.environ["werkzeug.request"] = None  # as Flask: no cycle left for the collector
                _cv_request.reset(request_token)
                if app_ctx is not None:
                    try:
                        for func in reversed(self.teardown_appcontext_funcs):
                            self.ensure_sync(func)(error)
                    finally:
                        _cv_app.reset(app_token)

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        """Binding the URL map to a request costs more than matching in it, and every request to one host binds alike:
        the binding is kept per host and scheme (a few), and each request gets a copy with its own path, method and
        query, as Werkzeug's bind_to_environ gives them."""
        if request is None or self.config["SERVER_NAME"] is not None or self.config["TRUSTED_HOSTS"] is not None:
            return super().create_url_adapter(request)
        env = request.environ
        key = tuple(env.get(name) for name in BINDING_KEYS)
        bound = self._bindings.get(key)
        if bound is None:
            adapter = super().create_url_adapter(request)
            if len(self._bindings) < BINDINGS_KEPT:  # the Host header is the client's: no more than this are kept
                self._bindings[key] = copy.copy(adapter)
            return adapter
        adapter = MapAdapter.__new__(MapAdapter)  # a shallow copy, as copy.copy makes (a quarter of its time)
        adapter.__dict__.update(bound.__dict__)
        path = env.get("PATH_INFO")
        adapter.path_info = _wsgi_decoding_dance(path) if path is not None else "/"
        adapter.default_method = env["REQUEST_METHOD"]
        query = env.get("QUERY_STRING")
        adapter.query_args = _wsgi_decoding_dance(query) if query is not None else None
        adapter.sandbox_binding = key  # what _match keeps a route under, with the method and path
        return adapter

    def _match(self, ctx: RequestContext) -> None:
        """As RequestContext.match_request, with each route found kept for the binding, method and path that found it
        (matching walks the URL map's state machine, path segment by path segment). Only matches are kept: a path
        that redirects, is not found or not allowed raises from the map each time, as Werkzeug gives it."""
        adapter = ctx.url_adapter
        binding = getattr(adapter, "sandbox_binding", None)
        if binding is None:  # bound by Flask itself (the first request to a host, or a SERVER_NAME set)
            ctx.match_request()
            return
        key = (binding, adapter.default_method, adapter.path_info)
        found = self._matches.get(key)
        if found is None:
            try:
                found = adapter.match(return_rule=True)
            except HTTPException as e:
                ctx.request.routing_exception = e
                return
            if len(self._matches) >= MATCHES_KEPT:
                self._matches.clear()
            self._matches[key] = found
        ctx.request.url_rule, ctx.request.view_args = found[0], dict(found[1])  # a dict of its own: a view may change it

    def _hooks_of(self, req: Request) -> _Hooks:
        hooks = self._hooks.get(req.blueprint)
        if hooks is None:
            names = [None, *reversed(req.blueprints)]  # the app's, then each blueprint's from the outermost, as Flask
            hooks = self._hooks[req.blueprint] = _Hooks(
                preprocessors=tuple(f for n in names for f in self.url_value_preprocessors.get(n, ())),
                before=tuple(self.ensure_sync(f) for n in names for f in self.before_request_funcs.get(n, ())),
                after=tuple(self.ensure_sync(f) for n in reversed(names)
                            for f in reversed(self.after_request_funcs.get(n, ()))),
                teardown=tuple(self.ensure_sync(f) for n in reversed(names)
                               for f in reversed(self.teardown_request_funcs.get(n, ()))))
        return hooks

    def preprocess_request(self):
        req = _cv_request.get().request
        hooks = self._hooks_of(req)
        for func in hooks.preprocessors:
            func(req.endpoint, req.view_args)
        for func in hooks.before:
            answer = func()
            if answer is not None:
                return answer
        return None

    def process_response(self, response: Response) -> Response:
        ctx = _cv_request.get()
        for func in ctx._after_request_functions:  # after_this_request
            response = self.ensure_sync(func)(response)
        for func in self._hooks_of(ctx.request).after:
            response = func(response)
        return response

    def do_teardown_request(self, exc: BaseException | None = None) -> None:
        for func in self._hooks_of(_cv_request.get().request).teardown:
            func(exc)

    @functools.cached_property
    def _null_session(self):
        return self.session_interface.make_null_session(self)


@dataclass(frozen=True)
class _Hooks:
    """A blueprint's hooks, with the app's and its parents', in the order Flask calls them."""

    preprocessors: tuple[Callable, ...]
    before: tuple[Callable, ...]
    after: tuple[Callable, ...]
    teardown: tuple[Callable, ...]


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
