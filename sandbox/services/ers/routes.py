"""e-RS endpoints at /referrals/FHIR/STU3/... and /referrals/FHIR/R4/... (context.OPERATIONS), the object store,
_ping and _status, CORS preflights, and the catch-all 404 of the published sandbox.

Each operation's handler builds an `ErsCall`, then answers with the published sandbox's scripted answer when the
request matches one (published.py); else, in `SANDBOX_ERS_MODE=published`, the route's no-match answer; else from
the session's referral lifecycle (lifecycle.py), which is asked first whether the request is about something the
session itself created."""

from __future__ import annotations

from flask import Blueprint, Response, request

from sandbox.conformance.parsing import Malformed, parse_json
from sandbox.runtime import current_sandbox
from sandbox.services.ers import attachments, errors, lifecycle, published, transport
from sandbox.services.ers.context import OPERATIONS, Answer, ErsCall, Operation
from sandbox.web.pipeline import ExchangeContext, current_exchange, operation

blueprint = Blueprint("ers", __name__)

EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
LIVE = "live"
OBJECT_STORE = "object-store"
PING = "ping"
STATUS = "status"
# Operations beyond the API's own: what the published sandbox's app serves besides the FHIR routes.
EXTRA_OPERATIONS = {OBJECT_STORE: "GET /ObjectStore/<file_id>", PING: "GET /_ping", STATUS: "GET /_status"}


def build_call(op: Operation, ex: ExchangeContext, params: dict[str, str]) -> ErsCall:
    """One request as the answering code sees it. The body is JSON for JSON content types (no content type counts as
    JSON) and for text that parses as JSON; anything else is left in `raw` (section 3: bodies by content type)."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    content_type = request.headers.get("Content-Type", "")
    raw = ex.body or b""
    return ErsCall(operation=op, session=ex.session, params=dict(params),
                   query={name: request.args.getlist(name) for name in request.args},
                   headers=headers, body=_json_body(raw, content_type), raw=raw, content_type=content_type)


def _json_body(raw: bytes, content_type: str):
    kind = content_type.split(";")[0].strip().lower()
    readable = kind in ("", "application/json") or (kind.startswith("application/") and kind.endswith("+json"))
    if not raw.strip() or not (readable or kind.startswith("text/")):
        return None
    try:
        return parse_json(raw)
    except Malformed:
        return None  # refused by the body checks where that matters; a text body may be anything


# Scenario fact: who answers a request, "published" (a published-sandbox example, or its no-match answer in
# published mode) or "session" (the session's lifecycle), so workflow scenarios tag only the session's own work.
ANSWERED_BY = "answered_by"
_PUBLISHED = "ers.published-answer"  # ex.cache: the published answer (or None), worked out once per request
_CALL = "ers.call"


def _live() -> bool:
    return current_sandbox().settings.ers_mode == LIVE


def _call(op: Operation, ex: ExchangeContext, params: dict[str, str]) -> ErsCall:
    """The request's ErsCall, built once (the scenario facts and the handler both read it)."""
    if _CALL not in ex.cache:
        ex.cache[_CALL] = build_call(op, ex, params)
    return ex.cache[_CALL]


def _published_answer(call: ErsCall, ex: ExchangeContext) -> Answer | None:
    if _PUBLISHED not in ex.cache:
        ex.cache[_PUBLISHED] = None if _live() and lifecycle.owns(call) else published.answer(call)
    return ex.cache[_PUBLISHED]


def _facts(op: Operation):
    def facts(view) -> dict:
        ex = current_exchange()
        session = _live() and _published_answer(_call(op, ex, view.params), ex) is None
        return {ANSWERED_BY: "session" if session else "published"}

    return facts


def answer_call(call: ErsCall, ex: ExchangeContext) -> Answer:
    answer = _published_answer(call, ex)
    if answer is None:
        answer = lifecycle.answer(call, ex) if _live() else published.no_match(call)
    if answer.published and current_sandbox().settings.response_headers != "published":
        answer.headers.setdefault("X-Sandbox-Published", answer.published)
    return answer


def _handler(op: Operation):
    def handle(ex: ExchangeContext, **params: str) -> Response:
        call = _call(op, ex, params)
        return transport.respond(call, answer_call(call, ex))

    handle.__name__ = handle.__qualname__ = "ers_" + op.id.replace("-", "_").replace("&", "and")
    return operation(op.id, facts=_facts(op))(handle)


HANDLERS = {op.id: _handler(op) for op in OPERATIONS.values()}


def _add_routes() -> None:
    by_path: dict[str, dict[str, str]] = {}  # path -> method -> operation id
    for op in OPERATIONS.values():
        by_path.setdefault(op.path, {})[op.method] = op.id
    for path, methods in by_path.items():
        if "GET" in methods and "HEAD" not in methods:
            methods["HEAD"] = methods["GET"]  # HEAD is answered by the GET route, without a body

        def view(_methods: dict[str, str] = methods, **params: str) -> Response:
            return HANDLERS[_methods[request.method]](**params)

        endpoint = "route_" + "_".join(sorted(methods.values())).replace("-", "_").replace("&", "and")
        blueprint.add_url_rule(f"/FHIR{path}", endpoint, view, methods=sorted(methods),
                               provide_automatic_options=False, merge_slashes=False)


_add_routes()


@blueprint.before_request
def _preflight() -> Response | None:
    return transport.preflight()


@blueprint.route("/ObjectStore/<file_id>", methods=["GET", "HEAD"], provide_automatic_options=False, merge_slashes=False)
def object_store_route(file_id: str) -> Response:
    return object_store(file_id=file_id)


@operation(OBJECT_STORE)
def object_store(ex: ExchangeContext, file_id: str) -> Response:
    """A downloaded attachment (where A042 redirects): the session's own uploads in live mode, else the published
    sandbox's one file. No header checks, as the published sandbox makes none."""
    call = ErsCall(operation=_OBJECT_STORE_OP, session=ex.session, params={"file_id": file_id},
                   query={name: request.args.getlist(name) for name in request.args},
                   headers={k.lower(): v for k, v in request.headers.items()})
    live = current_sandbox().settings.ers_mode == LIVE
    if live and attachments.owns(call):
        return transport.respond(call, attachments.object_store(call))
    if live and file_id != published.OBJECT_STORE_FILE:  # where the published sandbox crashes, a plain 404
        return transport.respond(call, Answer(404, b"Not Found\n", content_type="text/plain; charset=utf-8"))
    return transport.respond(call, published.object_store(call))


# The object store is no FHIR operation; its calls name this stand-in (no business functions are checked).
_OBJECT_STORE_OP = Operation(OBJECT_STORE, "-", "GET", "/ObjectStore/<file_id>", "-", None)


@blueprint.route("/_ping", methods=["GET", "HEAD"], provide_automatic_options=False, merge_slashes=False)
def ping_route() -> Response:
    return ping()


@operation(PING)
def ping(ex: ExchangeContext) -> Response:
    """The published sandbox app's own ping: `{status: 200}` as text (not JSON), as it sends it."""
    body = b"{status: 200}"
    return transport.plain(200, [("content-type", transport.HTML_UTF8), ("content-length", str(len(body))),
                                     ("accept-ranges", "bytes")], b"" if request.method == "HEAD" else body)


@blueprint.route("/_status", methods=["GET", "HEAD"], provide_automatic_options=False, merge_slashes=False)
def status_route() -> Response:
    return status()


@operation(STATUS)
def status(ex: ExchangeContext) -> Response:
    return transport.plain(200, [("content-length", "0")], b"")


@blueprint.route("", methods=EVERY_METHOD, provide_automatic_options=False, merge_slashes=False)
@blueprint.route("/", methods=EVERY_METHOD, provide_automatic_options=False, merge_slashes=False)
@blueprint.route("/<path:anything>", methods=EVERY_METHOD, provide_automatic_options=False, merge_slashes=False)
def not_found(anything: str = "") -> Response:
    """Any other path or method: the published sandbox's catch-all (kind J). Paths no rule can take (an empty
    segment right after /referrals) get the same answer through the service's http_error_codes."""
    return transport.plain(404, [("content-type", transport.JSON_UTF8),
                                 ("content-length", str(len(errors.NO_ROUTE_BODY)))],
                           b"" if request.method == "HEAD" else errors.NO_ROUTE_BODY)
