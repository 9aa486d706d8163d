"""The path of one request: session, safe parse, checks, scenario, record, tell (see DESIGN.md)."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sandbox.conformance.checks import CheckContext, Claim, RequestView, query_from
from sandbox.conformance.findings import Finding, Refusal, SpineError, first_rejection, summarise
from sandbox.conformance.history import judge as judge_history
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.runtime import Sandbox, current_sandbox
from sandbox.scripting.scenarios import Scenario
from sandbox.scripting.scripted import apply_fault, scripted_response
from sandbox.services import Service
from sandbox.web import current
from sandbox.web.access import Access, resolve_access
from sandbox.web.sessions import resolve_session

log = logging.getLogger(__name__)

SCENARIO_HEADER = "X-Sandbox-Scenario"
CONTROL_PREFIX = "/_sandbox"
UNROUTED = "unrouted"


@dataclass
class ExchangeContext:
    """One exchange while it is being answered; becomes a journal Exchange in after_request."""

    id: str
    started: float
    clock: float
    service: Service | None
    session: str = "default"
    operation: str = UNROUTED
    scenario: Scenario | None = None
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""
    view: RequestView | None = None
    access: Access | None = None  # who the request acts for, resolved from its bearer token
    writes: list[Callable[[], None]] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)  # what a service reads once per request (its session, …)

    def add(self, *findings: Finding) -> None:
        self.findings.extend(findings)

    def write_with_record(self, write: Callable[[], None]) -> None:
        """Make `write` (state changes) in one transaction with the exchange's other writes, committed just before the
        exchange is journaled and answered. If they fail, the client is answered (and the journal keeps) a 500
        instead."""
        self.writes.append(write)


def current_exchange() -> ExchangeContext:
    return current.exchange()


def install(app: Flask, sandbox: Sandbox) -> None:
    app.before_request(_open)
    app.after_request(_record)
    app.teardown_request(lambda error: current.set_exchange(None))
    app.register_error_handler(SpineError, _spine_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def _open():
    req = request._get_current_object()  # the request itself, not its context-local proxy: read on every request
    if req.path.startswith(CONTROL_PREFIX):
        return None
    sandbox = current_sandbox()
    ex = ExchangeContext(new_exchange_id(), time.time(), time.perf_counter(), sandbox.service_for_path(req.path))
    current.set_exchange(ex)
    limit = max(sandbox.settings.max_body_bytes, ex.service.max_body_bytes if ex.service else 0)
    req.max_content_length = limit
    try:
        ex.body = req.get_data(cache=True)
    except RequestEntityTooLarge:
        raise SpineError(413, _code(ex, 413), f"The request body is larger than this sandbox accepts "
                         f"({limit} bytes; setting SANDBOX_MAX_BODY_BYTES).") from None
    ex.session = resolve_session(req, sandbox)
    return None


def operation(name: str | None = None, facts=None, resolve: Callable[[RequestView], str] | None = None):
    """Wrap a service handler: run the service's checks, answer as Spine would refuse, or let the scenario answer,
    or call the handler with the exchange context. `facts(view)` adds service facts scenarios can trigger on; the
    caller's access (sandbox.web.access) is always there, as facts "access" and "access_mode". Instead of a fixed
    `name`, `resolve(view)` may name the operation from the request itself (e.g. the interaction id a Spine message
    carries); it must answer for any request (or raise SpineError)."""
    if (name is None) == (resolve is None):
        raise TypeError("operation() takes either a fixed name or a resolve function")

    def decorate(handler):
        @functools.wraps(handler)
        def wrapper(**params):
            sandbox = current_sandbox()
            ex = current_exchange()
            ex.operation = name or UNROUTED
            req = request._get_current_object()
            view = ex.view = RequestView(req.method, req.path, query_from(req.args), list(req.headers.items()),
                                         ex.body, dict(params))
            if resolve is not None:
                ex.operation = resolve(view)
            ex.access = resolve_access(req, sandbox)
            ex.facts.update(access=ex.access, access_mode=ex.access.mode)
            if facts is not None:
                ex.facts.update(facts(view))
            ex.add(*ex.service.checks.run(view, CheckContext(ex.operation, ex.session, ex.facts, ex.writes,
                                                             ex.claims)))
            ex.scenario = _choose_scenario(sandbox, ex, view)
            spec = ex.scenario.response if ex.scenario else {}
            if spec.get("delay_ms"):
                time.sleep(spec["delay_ms"] / 1000)
            rejection = first_rejection(ex.findings)
            if rejection is not None:
                raise rejection
            if ex.scenario and ex.scenario.scripted:
                response = scripted_response(ex.scenario, ex.service, view)
            else:
                response = handler(ex, **params)
            return apply_fault(spec, response)

        return wrapper

    return decorate


def _choose_scenario(sandbox: Sandbox, ex: ExchangeContext, view: RequestView) -> Scenario | None:
    forced = view.header(SCENARIO_HEADER)
    if forced:
        scenario = sandbox.scenarios.get(forced.strip())
        if scenario is None or scenario.service != ex.service.name or ex.operation not in scenario.trigger.operations:
            known = [s.id for s in sandbox.scenarios.for_service(ex.service.name) if ex.operation in s.trigger.operations]
            raise SpineError(400, "INVALID_VALUE", f"{SCENARIO_HEADER} {forced!r} is not a {ex.service.name} "
                             f"scenario for operation {ex.operation}; choose one of: {', '.join(known) or 'none'} "
                             f"(see /_sandbox/scenarios)")
        return scenario
    scenario = sandbox.scenarios.select(ex.service.name, ex.operation, view, ex.facts)
    times = scenario.response.get("times") if scenario else None
    if times and sandbox.store.next_counter(ex.session, f"scenario:{scenario.id}") >= times:
        return None  # used up for this session: the service answers normally from now on
    return scenario


def _code(ex: ExchangeContext, status: int) -> str:
    return ex.service.http_error(status, "").code if ex.service else "ERROR"


def _spine_error(error: SpineError) -> Response:
    ex = current.exchange()
    service = ex.service if ex else None
    if service is None:
        response = Response(json.dumps({"error": error.code, "message": error.diagnostics}),
                            status=error.status, mimetype="application/json")
    else:
        response = service.render_error(error)
    for key, value in error.headers.items():
        response.headers[key] = value
    return response


def _http_error(exc: HTTPException) -> Response:
    ex = current.exchange()
    if ex is None or ex.service is None:
        bases = ", ".join(b for s in current_sandbox().services.values() for b in s.base_paths)
        text = (f"No Spine service is mounted at {request.path}; services are at {bases} "
                f"(see /_sandbox/services)." if exc.code == 404 else exc.description)
        return _spine_error(SpineError(exc.code or 500, (exc.name or "error").upper().replace(" ", "_"), text))
    if exc.code == 405:
        text = f"{request.method} is not supported on {request.path}."
    elif exc.code == 404:
        text = f"No {ex.service.title} resource at {request.path}: see /_sandbox/services for the operations."
    else:
        text = exc.description or exc.name
    return _spine_error(ex.service.http_error(exc.code or 500, text))


def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error answering %s %s", request.method, request.path)
    ex = current.exchange()
    if ex is not None:
        ex.writes.clear()  # a request that failed halfway changes nothing
    return _unexpected_response(ex, "failed to answer this request")


def _unexpected_response(ex: ExchangeContext | None, what: str) -> Response:
    message = (f"The sandbox {what}; this is a sandbox defect, not your error. "
               f"Exchange {ex.id if ex else '-'} has the details.")
    if ex and ex.service:
        return _spine_error(ex.service.http_error(500, message))
    return _spine_error(SpineError(500, "INTERNAL_SERVER_ERROR", message))


def _record(response: Response) -> Response:
    ex: ExchangeContext | None = current.exchange()
    if ex is None:
        return response
    if ex.service and ex.service.finish_response:
        ex.service.finish_response(response)
    sandbox = current_sandbox()
    req = request._get_current_object()
    exchange = Exchange(
        id=ex.id, session=ex.session, service=ex.service.name if ex.service else "-", operation=ex.operation,
        started_at=ex.started, duration_ms=(time.perf_counter() - ex.clock) * 1000,
        request=RecordedRequest(req.method, req.path, req.query_string.decode("latin-1"),
                                ex.view.headers if ex.view else list(req.headers.items()), ex.body,
                                req.remote_addr or ""),
        response=RecordedResponse(response.status_code, list(response.headers.items()),
                                  b"" if response.is_streamed else response.get_data()),
        findings=ex.findings, scenario=ex.scenario.id if ex.scenario else None)
    keys = judge_history(ex.service.history if ex.service else None, sandbox.store, exchange)
    _tell(response, ex)
    exchange.response.headers = list(response.headers.items())  # as sent: with the X-Sandbox-* headers
    if ex.writes or ex.claims:
        try:
            with sandbox.store.transaction():  # all or nothing: a refused or failed request uses nothing up
                _claim(sandbox, ex)
                for write in ex.writes:
                    write()
        except Refusal as refusal:  # e.g. a single-use token a concurrent request used first
            ex.findings[:] = [f for f in ex.findings if f.requirement != refusal.finding.requirement]
            ex.add(refusal.finding)
            return _answer_instead(ex, exchange, _spine_error(refusal.finding.reject))
        except Exception:
            log.exception("the state changes of exchange %s failed", ex.id)
            return _answer_instead(ex, exchange,
                                   _unexpected_response(ex, "could not store the changes this request makes"))
    # Journaled before the response leaves: an answered exchange is never missing from the evidence.
    sandbox.store.record(exchange, keys)
    return _whole(response)


def _claim(sandbox: Sandbox, ex: ExchangeContext) -> None:
    if ex.scenario is not None and ex.scenario.scripted:
        return  # a scripted answer stands for the service refusing at its front door: nothing is used up
    for claim in ex.claims:
        if not sandbox.store.claim(ex.session, claim.namespace, claim.key, claim.expires_at):
            raise Refusal(claim.refusal)


def _answer_instead(ex: ExchangeContext, exchange: Exchange, response: Response) -> Response:
    """Journal and answer `response` rather than the one whose deferred writes could not be made (none of them are)."""
    ex.writes.clear()
    ex.claims.clear()
    _tell(response, ex)
    exchange.response = RecordedResponse(response.status_code, list(response.headers.items()), response.get_data())
    history = ex.service.history if ex.service else None
    current_sandbox().store.record(exchange, history.keys_of(exchange) if history else ())
    return _whole(response)


def _whole(response: Response) -> Response:
    """A body already in memory goes to the server as the list it is, which it sends in one write (an iterator it
    would step through from Python, chunk by chunk)."""
    if not response.is_streamed:
        response.direct_passthrough = True
    return response


def _tell(response: Response, ex: ExchangeContext) -> None:
    response.headers["X-Sandbox-Exchange"] = ex.id
    counts = summarise(ex.findings)
    response.headers["X-Sandbox-Findings"] = (
        f"fail={counts['fail']} warning={counts['warning']} pass={counts['pass']}; "
        f"{CONTROL_PREFIX}/exchanges/{ex.id}")
    if ex.scenario:
        response.headers[SCENARIO_HEADER] = ex.scenario.id
