"""The path of one request: session, safe parse, checks, scenario, record, tell (see DESIGN.md)."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Request, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sandbox.conformance.checks import CheckContext, Claim, RequestView, headers_from, query_from
from sandbox.conformance.findings import Finding, Refusal, SpineError, defect, summarise
from sandbox.conformance.history import NO_KEYS, crashed
from sandbox.conformance.history import judge as judge_history
from sandbox.hosting import quotas
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.journal.redaction import redact_headers
from sandbox.journal.space import RETRY_AFTER_S, out_of_space
from sandbox.journal.store import ClaimTaken, SessionState, VersionConflict
from sandbox.runtime import Sandbox, current_sandbox
from sandbox.scripting.scenarios import Scenario
from sandbox.scripting.scripted import apply_fault, scripted_response
from sandbox.services import Service
from sandbox.web import current
from sandbox.web.access import Access, resolve_access
from sandbox.web.limits import check_head
from sandbox.web.sessions import resolve_session

log = logging.getLogger(__name__)

SCENARIO_HEADER = "X-Sandbox-Scenario"
SCENARIO_USES = "scenario-uses"  # state namespace: how often each `times:` scenario answered the session
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
    # Exchanges the service derived from this one (e.g. the HL7v3 message EPS would send Spine), journaled right
    # after it, so the evidence shows them side by side.
    derived: list[Exchange] = field(default_factory=list)
    held: AbstractContextManager | None = None  # the store held for this request (Store.held), let go at teardown
    used: str | None = None  # the `times:` scenario this request took one use of (given back if it answers otherwise)

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
    app.teardown_request(_close)
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
    held = sandbox.store.held()
    held.__enter__()
    ex.held = held  # only once entered: teardown lets go of what was taken
    limit = max(sandbox.settings.max_body_bytes, ex.service.max_body_bytes if ex.service else 0)
    req.max_content_length = limit
    try:
        ex.body = _body(req)
    except RequestEntityTooLarge:
        raise SpineError(413, _code(ex, 413), f"The request body is larger than this sandbox accepts "
                         f"({limit} bytes; setting SANDBOX_MAX_BODY_BYTES).") from None
    ex.session = resolve_session(req, sandbox)
    if sandbox.settings.hosted:  # per-tenant quotas: over one, answered without being journaled
        refused = quotas.admit_exchange(sandbox, ex)
        if refused is not None:
            return refused
    check_head(req, ex.service)  # a URL or headers longer than the live service takes: refused, and journaled
    return None


def _body(req: Request) -> bytes:
    """The request's body (cached by the request). In HTTP/1 a request without a length or a transfer coding has
    none (RFC 9112, 6.3): nothing is read (Werkzeug's stream costs about 5 µs to find it empty). In HTTP/2 a body needs
    neither."""
    env = req.environ
    if (env.get("CONTENT_LENGTH", "") in ("", "0") and "HTTP_TRANSFER_ENCODING" not in env
            and env.get("SERVER_PROTOCOL", "").startswith("HTTP/1")):
        return b""
    return req.get_data(cache=True)


def _close(error: BaseException | None) -> None:
    ex = current.exchange()
    current.set_exchange(None)
    if ex is not None and ex.held is not None:
        ex.held.__exit__(None, None, None)


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
            view = ex.view = RequestView(req.method, req.path, query_from(req.args), headers_from(req.headers.items()),
                                         ex.body, dict(params))
            if resolve is not None:
                ex.operation = resolve(view)
            ex.access = _guarded(ex, resolve_access, req, sandbox)
            ex.facts.update(access=ex.access, access_mode=ex.access.mode)
            if facts is not None:
                ex.facts.update(_guarded(ex, facts, view))
            ex.add(*ex.service.checks.run(view, CheckContext(ex.operation, ex.session, ex.facts, ex.writes,
                                                             ex.claims)))
            _refuse_if_crashed(ex)
            refusal = next((f for f in ex.findings if f.reject is not None), None)
            ex.scenario = _choose_scenario(sandbox, ex, view, refusal)
            spec = ex.scenario.response if ex.scenario else {}
            if spec.get("delay_ms"):
                time.sleep(spec["delay_ms"] / 1000)
            if refusal is not None:
                raise refusal.reject
            if ex.scenario and ex.scenario.scripted:
                response = scripted_response(ex.scenario, ex.service, view)
            else:
                response = handler(ex, **params)
            return apply_fault(spec, response)

        wrapper.sandbox_operation = name  # checked against the service's declared operations at start (create_app)
        return wrapper

    return decorate


def _guarded(ex: ExchangeContext, step: Callable, *args):
    """A step that prepares the checks (the caller's access, a service's facts): if it crashes, the request fails
    closed as when a check crashes (a sandbox-defect finding, the service's 500)."""
    try:
        return step(*args)
    except SpineError:
        raise
    except Exception as exc:
        log.exception("%s failed on %s %s", step.__qualname__, request.method, request.path)
        found = defect("request step", f"{step.__module__}.{step.__qualname__}", exc)
        ex.add(found)
        raise ex.service.http_error(500, found.reject.diagnostics) from None


def _refuse_if_crashed(ex: ExchangeContext) -> None:
    """Fail closed: when a check crashed (a sandbox-defect finding), the request is refused with the service's own 500
    rather than answered half-checked; it is journaled with the finding, and no scenario or handler answers it."""
    crash = crashed(ex.findings)
    if crash is not None:
        raise ex.service.http_error(500, crash.reject.diagnostics)


def _choose_scenario(sandbox: Sandbox, ex: ExchangeContext, view: RequestView,
                     refusal: Finding | None) -> Scenario | None:
    """The scenario that answers, if the request reaches one. A request a check refuses reaches only a scenario that
    describes that refusal (one naming the refusing requirement, such as the access-mode ones): any other is neither
    journaled on the exchange (so no plan step counts as exercised) nor used up."""
    forced = view.header(SCENARIO_HEADER)
    if forced:
        scenario = sandbox.scenarios.get(forced.strip())
        if scenario is None or scenario.service != ex.service.name or ex.operation not in scenario.trigger.operations:
            known = [s.id for s in sandbox.scenarios.for_service(ex.service.name) if ex.operation in s.trigger.operations]
            raise SpineError(400, "INVALID_VALUE", f"{SCENARIO_HEADER} {forced!r} is not a {ex.service.name} "
                             f"scenario for operation {ex.operation}; choose one of: {', '.join(known) or 'none'} "
                             f"(see /_sandbox/scenarios)")
        return scenario if _reached(scenario, refusal) else None
    scenario = sandbox.scenarios.select(ex.service.name, ex.operation, view, ex.facts)
    if scenario is None or not _reached(scenario, refusal):
        return None
    times = scenario.response.get("times")
    if times:
        if not _take_use(sandbox.store.state, ex.session, scenario.id, times):
            return None  # used up for this session: the service answers normally from now on
        ex.used = scenario.id  # taken now, so that concurrent requests never answer it more than `times` in all
    return scenario


def _reached(scenario: Scenario, refusal: Finding | None) -> bool:
    return refusal is None or refusal.requirement in scenario.requirements


def _take_use(state: SessionState, session: str, scenario_id: str, times: int) -> bool:
    """One use of a `times:` scenario, if it has one left: a compare-and-set, so that of requests racing for the
    last use (on any replica) exactly one gets it."""
    while True:
        used = state.get(session, SCENARIO_USES, scenario_id)
        if used is not None and used.value >= times:
            return False
        try:
            state.put(session, SCENARIO_USES, scenario_id, (used.value if used else 0) + 1,
                      expect_version=used.version if used else None, create_only=used is None)
            return True
        except VersionConflict:
            continue  # another request took a use meanwhile: count again


def _give_back_use(ex: ExchangeContext) -> None:
    """The use a request took of a `times:` scenario, given back when the request is answered otherwise (it failed
    on the way, or was refused after all): a request that does not answer with the scenario uses nothing up."""
    if ex.used is None:
        return
    scenario_id, ex.used = ex.used, None
    state = current_sandbox().store.state
    try:
        with state.transaction(ex.session):
            used = state.get(ex.session, SCENARIO_USES, scenario_id)
            if used is not None and used.value > 0:
                state.put(ex.session, SCENARIO_USES, scenario_id, used.value - 1)
    except Exception:  # the answer being given is about a failure already; the use stays taken
        log.exception("could not give back a use of scenario %s taken by exchange %s", scenario_id, ex.id)


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
    service = ex.service if ex else None
    status = exc.code or 500
    allowed = sorted(set(getattr(exc, "valid_methods", None) or ()) - {"HEAD", "OPTIONS"})
    if status == 405:
        text = f"{request.method} is not supported on {request.path}" + (f"; use {', '.join(allowed)}." if allowed
                                                                          else ".")
    elif status == 404 and service is not None:
        text = f"No {service.title} resource at {request.path}: see /_sandbox/services for the operations."
    elif status == 404 and request.path.startswith(CONTROL_PREFIX):
        text = (f"No control API endpoint at {request.path} (the control API is under {CONTROL_PREFIX}/: health, "
                f"services, sessions, exchanges, scenarios, patients, requirements, plans).")
    elif status == 404:
        bases = ", ".join(b for s in current_sandbox().services.values() for b in s.base_paths)
        text = f"No Spine service is mounted at {request.path}; services are at {bases} (see /_sandbox/services)."
    else:
        text = exc.description or exc.name
    error = (service.http_error(status, text) if service is not None
             else SpineError(status, (exc.name or "error").upper().replace(" ", "_"), text))
    if allowed:
        error.headers["Allow"] = ", ".join(allowed)
    return _spine_error(error)


def _unexpected(exc: Exception) -> Response:
    ex = current.exchange()
    if ex is not None:
        ex.writes.clear()  # a request that failed halfway changes nothing
        _give_back_use(ex)
    if out_of_space(exc):
        log.warning("no room to store what %s %s changes: %s", request.method, request.path, exc)
        return _storage_full_response(ex)
    log.exception("unexpected error answering %s %s", request.method, request.path)
    return _unexpected_response(ex, "failed to answer this request")


def _storage_full_response(ex: ExchangeContext | None) -> Response:
    """503 with Retry-After, in the service's own shape: what live Spine answers when it cannot serve for now."""
    return _spine_error(_unavailable(ex, "it could not store what this request changes."))


def _unavailable(ex: ExchangeContext | None, what: str) -> SpineError:
    message = (f"The sandbox's disk is full (data directory {current_sandbox().settings.data_dir}): {what} Free some "
               f"space there; the sandbox recovers by itself. Retry after {RETRY_AFTER_S} s.")
    error = ex.service.http_error(503, message) if ex and ex.service else SpineError(503, "SERVICE_UNAVAILABLE", message)
    error.headers["Retry-After"] = str(RETRY_AFTER_S)
    return error


def _not_journaled(ex: ExchangeContext, error: Exception) -> Response:
    """The answer when the exchange itself could not be journaled: without an exchange id anywhere in it (there is no
    journal entry for one to name), saying why in the body and in X-Sandbox-Journal."""
    if out_of_space(error):
        log.warning("exchange %s could not be journaled: %s", ex.id, error)
        refusal = _unavailable(ex, "the answer to this request could not be journaled, so it is not given, and there "
                                   "is no exchange id for it (the request may have taken effect).")
        why = "the disk is full"
    else:
        log.error("exchange %s could not be journaled", ex.id, exc_info=error)
        message = ("The sandbox could not journal this exchange; this is a sandbox defect, not your error. It is "
                   "answered without an exchange id; the server log has the details.")
        refusal = (ex.service.http_error(500, message) if ex.service
                   else SpineError(500, "INTERNAL_SERVER_ERROR", message))
        why = "a sandbox defect"
    current.set_exchange(None)  # rendered as if outside an exchange: MESH, for one, would quote its id
    try:
        response = ex.service.render_error(refusal) if ex.service else _spine_error(refusal)
    finally:
        current.set_exchange(ex)
    for key, value in refusal.headers.items():
        response.headers[key] = value
    response.headers["X-Sandbox-Journal"] = f"not journaled: {why}"
    return _whole(response)


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
        response=RecordedResponse(response.status_code, list(response.headers.items()), _journal_body(response)),
        findings=ex.findings, scenario=ex.scenario.id if ex.scenario else None)
    history = ex.service.history if ex.service else None
    keys = judge_history(history, sandbox.store, exchange)
    crash = crashed(exchange.findings)
    if crash is not None and response.status_code < 500:  # fail closed: a behavioural check crashed
        return _answer_instead(ex, exchange, _spine_error(ex.service.http_error(500, crash.reject.diagnostics)))
    for name, value in redact_headers(_tell(response, ex)):  # journaled as sent, with X-Sandbox-*
        _set_header(exchange.response.headers, name, value)
    if ex.writes or ex.claims:
        # All or nothing: a refused or failed request uses nothing up. A lone claim is atomic by itself: it needs no
        # transaction (nor its lock, on a shared database), which matters to requests that only use up a token.
        alone = not ex.writes and len(ex.claims) == 1
        try:
            with nullcontext() if alone else sandbox.store.state.transaction(ex.session):
                _claim(sandbox, ex)
                for write in ex.writes:
                    write()
        except (Refusal, ClaimTaken) as refused:  # e.g. a single-use token used already
            finding = refused.finding if isinstance(refused, Refusal) else _claim_refusal(ex.claims, refused)
            ex.findings[:] = [f for f in ex.findings if f.requirement != finding.requirement]
            ex.add(finding)
            return _answer_instead(ex, exchange, _spine_error(finding.reject))
        except Exception as error:
            if out_of_space(error):
                log.warning("no room for the state changes of exchange %s: %s", ex.id, error)
                return _answer_instead(ex, exchange, _storage_full_response(ex))
            log.exception("the state changes of exchange %s failed", ex.id)
            return _answer_instead(ex, exchange,
                                   _unexpected_response(ex, "could not store the changes this request makes"))
    # Journaled before the response leaves: an answered exchange is never missing from the evidence.
    try:
        sandbox.store.journal.record(exchange, keys.deep, history=history is not None, newest_only=keys.newest_only)
    except Exception as error:  # nothing is answered with an exchange id the journal does not have
        return _not_journaled(ex, error)
    for derived in ex.derived:
        try:
            sandbox.store.journal.record(derived, keys.deep, history=history is not None,
                                         newest_only=keys.newest_only)
        except Exception:  # the answered exchange is journaled; what it derived is evidence beside it, not the answer
            log.exception("could not journal exchange %s derived from %s", derived.id, ex.id)
    return _whole(response)


def _journal_body(response: Response) -> bytes:
    """The body the journal keeps: what was sent, or, where a service compressed its answer itself, the body before
    its Content-Encoding (`response.journal_body`), so the evidence and the checks over history can read it."""
    identity = getattr(response, "journal_body", None)
    if identity is not None:
        return identity
    return b"" if response.is_streamed else response.get_data()


def _claim(sandbox: Sandbox, ex: ExchangeContext) -> None:
    """Use the exchange's single-use keys up, with its writes; one used already refuses the exchange with its
    claim's finding, whatever else the checks found (the claim's check runs first, as live services check a token
    before the rest of the request)."""
    state = sandbox.store.state
    if ex.scenario is not None and ex.scenario.scripted:
        # A scripted answer stands for the service refusing at its front door: nothing is used up, but a key used
        # already is refused before any scenario answers.
        used = next((claim for claim in ex.claims if state.claimed(ex.session, claim.namespace, claim.key)), None)
        if used is not None:
            raise Refusal(used.refusal)
        return
    for claim in ex.claims:
        state.use(ex.session, claim.namespace, claim.key, claim.expires_at)


def _claim_refusal(claims: list[Claim], taken: ClaimTaken) -> Finding:
    """The finding of the claim found taken (the first claim's, when the store could not say which)."""
    return next((c.refusal for c in claims if (c.namespace, c.key) == (taken.namespace, taken.key)), claims[0].refusal)


def _answer_instead(ex: ExchangeContext, exchange: Exchange, response: Response) -> Response:
    """Journal and answer `response` rather than the one whose deferred writes could not be made (none of them are)."""
    ex.writes.clear()
    ex.claims.clear()
    _give_back_use(ex)
    ex.scenario = exchange.scenario = None  # its answer is not the one given: the request exercised no scenario
    _tell(response, ex)
    exchange.response = RecordedResponse(response.status_code, list(response.headers.items()), response.get_data())
    history = ex.service.history if ex.service else None
    keys = history.keys_of(exchange) if history else NO_KEYS
    try:
        current_sandbox().store.journal.record(exchange, keys.deep, history=history is not None,
                                               newest_only=keys.newest_only)
    except Exception as error:
        return _not_journaled(ex, error)
    return _whole(response)


def _whole(response: Response) -> Response:
    """A body already in memory goes to the server as the list it is, which it sends in one write (an iterator it
    would step through from Python, chunk by chunk)."""
    if not response.is_streamed:
        response.direct_passthrough = True
    return response


def _tell(response: Response, ex: ExchangeContext) -> list[tuple[str, str]]:
    """Add the X-Sandbox-* headers to the response; return them."""
    if current_sandbox().settings.response_headers == "published":
        return []  # exactly the published sandbox's headers; the exchange is still journaled (/_sandbox/exchanges)
    counts = summarise(ex.findings)
    told = [("X-Sandbox-Exchange", ex.id),
            ("X-Sandbox-Findings", f"fail={counts['fail']} warning={counts['warning']} pass={counts['pass']}; "
                                   f"{CONTROL_PREFIX}/exchanges/{ex.id}")]
    if ex.scenario:
        told.append((SCENARIO_HEADER, ex.scenario.id))
    for name, value in told:
        response.headers[name] = value
    return told


def _set_header(headers: list[tuple[str, str]], name: str, value: str) -> None:
    """As Werkzeug's Headers.set does on the response: the first of that name replaced, any others dropped, else
    added at the end."""
    lower = name.lower()
    at = [n for n, (key, _) in enumerate(headers) if key.lower() == lower]
    if not at:
        headers.append((name, value))
        return
    headers[at[0]] = (name, value)
    for n in reversed(at[1:]):
        del headers[n]
