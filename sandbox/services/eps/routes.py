"""EPS endpoints at /electronic-prescriptions, /fhir-prescribing and /fhir-dispensing (context.OPERATIONS).

One view per path; `$process-message` and `POST Task` name their operation from the body (the MessageHeader's event,
the Task's status). Each handler builds an `EpsCall`, then answers:
1. an operation the API it came in on does not serve: 404, as the API platform answers an unknown route;
2. a request equal to a specification example about a prescription the session does not hold: the example's paired
   answer (published.py), for the messages whose answer depends on a prescription's state;
3. otherwise the session's prescriptions, or the stateless operations.
An accepted message's HL7v3 translation is journaled beside the exchange (`ExchangeContext.derived`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from flask import Blueprint, Response, request

from sandbox.conformance.checks import RequestView
from sandbox.conformance.parsing import Malformed, parse_json
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.runtime import current_sandbox
from sandbox.services.eps import (
    dispensing,
    prescribing,
    prescriptions,
    published,
    tracker,
    validation,
    verify,
)
from sandbox.services.eps.context import (
    APIS,
    CANCEL,
    CLAIM,
    CONVERT,
    CORRELATION_ID,
    DISPENSE,
    EVENTS,
    HL7V3,
    METADATA,
    OPERATIONS,
    ORDER,
    PING,
    PREPARE,
    PROCESS_UNKNOWN,
    RELEASE,
    REQUEST_ID,
    RETURN,
    STATUS,
    TASK_UNKNOWN,
    TRACKER,
    VALIDATE,
    VERIFY,
    WITHDRAW,
    Answer,
    EpsCall,
    Translation,
)
from sandbox.services.eps.errors import eps_error
from sandbox.services.eps.resources import message_operation, prescription_id, task_operation
from sandbox.services.eps.translation import convert, findings_of
from sandbox.web.pipeline import ExchangeContext, operation

blueprint = Blueprint("eps", __name__)

SERVICE_NAME = "eps"
HL7V3_HEADER = "X-Sandbox-HL7v3"  # the id of the derived exchange holding the HL7v3 translation
# Messages whose answer depends on the prescription's state: a specification example about a prescription the session
# does not hold gets the example's paired answer. Orders, $prepare, $convert and $verify-signature are always worked
# out from the request itself (an example order's published signature is trusted: signatures.py).
STATEFUL_EXAMPLES = frozenset({CANCEL, RELEASE, DISPENSE, CLAIM, RETURN, WITHDRAW})


def _ping(call: EpsCall, ex: ExchangeContext) -> Answer:
    return Answer(200, {"status": "pass", "service": "spine-sandbox eps"}, content_type="application/json")


def _status(call: EpsCall, ex: ExchangeContext) -> Answer:
    return Answer(200, {"status": "pass", "checks": {"eps": {"status": "pass"}}}, content_type="application/json")


def _metadata(call: EpsCall, ex: ExchangeContext) -> Answer:
    """A CapabilityStatement of what the API this request came in on serves."""
    served = sorted({op.route.rsplit("$", 1)[1] for op in OPERATIONS.values()
                     if call.api in op.apis and "$" in op.route})
    return Answer(200, {
        "resourceType": "CapabilityStatement", "status": "active", "date": "2026-12-04", "kind": "instance",
        "fhirVersion": "4.0.1", "format": ["application/fhir+json"],
        "implementation": {"description": f"Spine Sandbox: EPS ({call.api})"},
        "rest": [{"mode": "server", "operation": [
            {"name": name, "definition": f"https://fhir.nhs.uk/OperationDefinition/{name}"} for name in served]}]})


def _unknown_event(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise eps_error(400, "value", diagnostics=f"MessageHeader.eventCoding.code must be one of: {', '.join(EVENTS)}.")


def _unknown_task(call: EpsCall, ex: ExchangeContext) -> Answer:
    raise eps_error(400, "value", diagnostics="Task.status must be one of: 'in-progress', 'rejected'.")


HANDLERS: dict[str, Callable[[EpsCall, ExchangeContext], Answer]] = {
    PREPARE: prescribing.prepare, ORDER: prescribing.order, CANCEL: prescribing.cancel,
    DISPENSE: dispensing.dispense, RELEASE: dispensing.release, RETURN: dispensing.return_,
    WITHDRAW: dispensing.withdraw, CLAIM: dispensing.claim, TRACKER: tracker.track,
    VERIFY: verify.verify_signature, CONVERT: convert, VALIDATE: validation.validate,
    PROCESS_UNKNOWN: _unknown_event, TASK_UNKNOWN: _unknown_task,
    METADATA: _metadata, PING: _ping, STATUS: _status,
}


def _json(view: RequestView):
    try:
        return view.json()
    except Malformed:
        return None


def _process_message(view: RequestView) -> str:
    return message_operation(_json(view))


def _task(view: RequestView) -> str:
    if view.method == "GET":
        return TRACKER
    return task_operation(_json(view))


def api_of_request() -> str:
    """Which of the three APIs the request came in on (the blueprint is registered once per base path)."""
    suffix = (request.blueprint or SERVICE_NAME)[len(SERVICE_NAME):]
    return APIS[int(suffix) if suffix.isdigit() else 0]


def build_call(op_id: str, ex: ExchangeContext) -> EpsCall:
    raw = ex.body or b""
    try:
        body = parse_json(raw) if raw.strip() else None
    except Malformed:
        body = None  # refused by the checks; a handler reached anyway (SANDBOX_AUTH off) sees no body
    return EpsCall(operation=op_id, session=ex.session, api=api_of_request(),
                   headers={name.lower(): value for name, value in request.headers.items()},
                   query={name: request.args.getlist(name) for name in request.args},
                   body=body, raw=raw, access=ex.access)


def _facts(view: RequestView) -> dict:
    """What scenarios can trigger on besides the access mode: the prescription a message is about, and the API."""
    return {"prescription_id": prescription_id(_json(view)) if view.body else None, "api": api_of_request()}


def _answer(call: EpsCall, ex: ExchangeContext) -> Answer:
    if call.api not in OPERATIONS[call.operation].apis:
        raise eps_error(404, "not-found", "NOT_FOUND", "Route not found",
                        f"{OPERATIONS[call.operation].route} is not an operation of the {call.api} API.")
    call.example = published.match(call)
    if call.example is not None and call.operation in STATEFUL_EXAMPLES and not prescriptions.holds(call):
        return published.answer(call, call.example)
    return HANDLERS[call.operation](call, ex)


def respond(call: EpsCall, answer: Answer, ex: ExchangeContext) -> Response:
    body = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
    response = Response(body, answer.status, content_type=answer.content_type)
    for name, value in answer.headers.items():
        response.headers[name] = value
    if answer.published and current_sandbox().settings.response_headers != "published":
        response.headers["X-Sandbox-Published"] = answer.published
    if answer.translation is not None and answer.status < 300:
        derived = derived_exchange(ex, answer.translation)
        ex.derived.append(derived)
        response.headers[HL7V3_HEADER] = derived.id
    return response


def derived_exchange(ex: ExchangeContext, translation: Translation) -> Exchange:
    """The HL7v3 message Spine would have received for this exchange, as an exchange of its own: the message as the
    request, and the verdict of its validation (against the official schema where one exists) as the answer."""
    if translation.schema is None:
        verdict = f"{translation.interaction}: no official schema is available; checked by the sandbox's own rules"
    else:
        verdict = f"{translation.interaction}: validated against {translation.schema}.xsd"
    verdict += f": {len(translation.problems)} problem(s)" if translation.problems else ": valid"
    headers = [("Content-Type", "application/xml; charset=utf-8"),
               ("SOAPAction", f"urn:nhs:names:services:mm/{translation.interaction}"),
               ("X-Sandbox-Derived-From", ex.id)]
    return Exchange(
        id=new_exchange_id(), session=ex.session, service=SERVICE_NAME, operation=HL7V3, started_at=time.time(),
        duration_ms=0.0, request=RecordedRequest("POST", "/reliablemessaging/reliablerequest", "", headers,
                                                 translation.xml, "spine-sandbox"),
        response=RecordedResponse(202, [("Content-Type", "text/plain; charset=utf-8")], verdict.encode()),
        findings=findings_of(translation))


def _route(path: str, methods: list[str], endpoint: str, op_id: str | None = None,
           resolve: Callable[[RequestView], str] | None = None) -> None:
    def handle(ex: ExchangeContext) -> Response:
        call = build_call(ex.operation, ex)
        return respond(call, _answer(call, ex), ex)

    handle.__name__ = handle.__qualname__ = f"eps_{endpoint}"
    wrapped = operation(op_id, facts=_facts) if resolve is None else operation(resolve=resolve, facts=_facts)
    blueprint.add_url_rule(path, endpoint, wrapped(handle), methods=methods, provide_automatic_options=False)


_route("/FHIR/R4/$prepare", ["POST"], "prepare", PREPARE)
_route("/FHIR/R4/$process-message", ["POST"], "process_message", resolve=_process_message)
_route("/FHIR/R4/Task/$release", ["POST"], "release", RELEASE)
_route("/FHIR/R4/Task", ["GET", "POST"], "task", resolve=_task)
_route("/FHIR/R4/Claim", ["POST"], "claim", CLAIM)
_route("/FHIR/R4/$verify-signature", ["POST"], "verify_signature", VERIFY)
_route("/FHIR/R4/$convert", ["POST"], "convert", CONVERT)
_route("/FHIR/R4/$validate", ["POST"], "validate", VALIDATE)
_route("/metadata", ["GET"], "metadata", METADATA)
_route("/_ping", ["GET"], "ping", PING)
_route("/_status", ["GET"], "status", STATUS)


def finish_response(response: Response) -> None:
    """Live EPS mirrors the request and correlation ids on every answer, errors included."""
    for name in (REQUEST_ID, CORRELATION_ID):
        value = request.headers.get(name)
        if value is not None and name not in response.headers:
            response.headers[name] = value
