"""Spine control endpoints for what the sandbox sends, at /_sandbox/spine/ (mounted by the spine SERVICE):

  GET  /deliveries                 the session's deliveries: status, attempts with times and HTTP outcomes
  GET  /deliveries/<id>            one delivery, with the message sent
  POST /deliveries/<id>/retry      send it again now, with a fresh retry budget
  POST /flush                      every unfinished delivery of the session is due now; {"wait": s} waits for them
  GET  /clock, POST /clock         the session's delivery clock: {"advance": "60s"} brings retries that much nearer
  GET  /received                   reliable messages the sandbox remembers for duplicate elimination
  GET  /interactions               the interaction catalogue and what answers each (?pattern= to filter)
"""

from __future__ import annotations

import time

from flask import Blueprint, jsonify, request

from sandbox.journal.exchange import body_fields
from sandbox.runtime import current_sandbox
from sandbox.services.spine import delivery, reliability
from sandbox.web.control import FieldError, body_object, control_error, duration_field
from sandbox.web.sessions import control_session

control = Blueprint("spine-control", __name__)
MAX_WAIT_S = 120.0
MAX_ADVANCE_S = 366 * 86400.0  # one change of the clock: far beyond any retry interval or persist duration
MAX_OFFSET_S = 10 * 366 * 86400.0  # all changes together, so due times stay real times
CLOCK_NS = "spine.clock"


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@control.errorhandler(ControlError)
def _refused(exc: ControlError):
    return jsonify(error="bad_request" if exc.status == 400 else "not_found", message=str(exc)), exc.status


@control.errorhandler(FieldError)
def _malformed(exc: FieldError):
    return control_error("bad_request", exc.description, 400, exc.field)


def _session() -> str:
    session, wrong = control_session(request)
    if wrong:
        raise ControlError(wrong)
    return session


def _found(session: str, delivery_id: str) -> dict:
    record = delivery.get(current_sandbox(), session, delivery_id)
    if record is None:
        raise ControlError(f"no delivery {delivery_id[:80]!r} in session {session} (see "
                           f"/_sandbox/spine/deliveries?session={session})", 404)
    return record


@control.get("/deliveries")
def list_deliveries():
    session = _session()
    rows = [delivery.summary(r) for r in delivery.deliveries(current_sandbox(), session)]
    status = request.args.get("status")
    if status:
        rows = [r for r in rows if r["status"] == status]
    return jsonify(session=session, deliveries=rows, count=len(rows))


@control.get("/deliveries/<delivery_id>")
def one_delivery(delivery_id: str):
    session = _session()
    record = _found(session, delivery_id)
    body = delivery.body_of(current_sandbox(), session, delivery_id) or b""
    message = {"content_type": record["content_type"], "soap_action": record["soap_action"],
               **body_fields(body, [], None)}
    return jsonify(**delivery.summary(record), message=message)


@control.post("/deliveries/<delivery_id>/retry")
def retry_delivery(delivery_id: str):
    session = _session()
    _found(session, delivery_id)
    record = delivery.retry(current_sandbox(), session, delivery_id)
    return jsonify(delivery.summary(record)), 202


@control.post("/flush")
def flush():
    """Make every unfinished delivery of the session due now (retries and give-ups included); with {"wait": s},
    answer once they have gone (or the wait is over)."""
    session = _session()
    data = body_object(empty_ok=True)
    wait = min(MAX_WAIT_S, duration_field(data, "wait", MAX_OFFSET_S, request.args.get("wait", 0)))
    sandbox = current_sandbox()
    moved = delivery.advance(sandbox, session, None)
    settled = delivery.settle(sandbox, session, time.time(), wait) if wait else None
    rows = [delivery.summary(r) for r in delivery.deliveries(sandbox, session)]
    return jsonify(session=session, flushed=[r["id"] for r in moved], settled=settled, deliveries=rows)


@control.get("/clock")
def get_clock():
    session = _session()
    item = current_sandbox().store.state.get(session, CLOCK_NS, "offset")
    return jsonify(session=session, offset_seconds=item.value if item else 0.0)


@control.post("/clock")
def advance_clock():
    """Move the session's delivery clock forward: unfinished deliveries become due that much sooner."""
    session = _session()
    data = body_object(empty_ok=True)
    seconds = duration_field(data, "advance", MAX_ADVANCE_S, "")
    wait = min(MAX_WAIT_S, duration_field(data, "wait", MAX_OFFSET_S))
    sandbox = current_sandbox()
    store = sandbox.store
    with store.state.transaction(session):
        item = store.state.get(session, CLOCK_NS, "offset")
        offset = (item.value if item else 0.0) + seconds
        if offset > MAX_OFFSET_S:
            raise FieldError(f"advance {seconds / 86400:g} days would take the session's delivery clock "
                             f"{offset / 86400:g} days ahead, beyond {MAX_OFFSET_S / 86400:g} days in all", "advance")
        store.state.put(session, CLOCK_NS, "offset", offset)
    moved = delivery.advance(sandbox, session, seconds)
    settled = delivery.settle(sandbox, session, time.time(), wait) if wait else None
    return jsonify(session=session, advanced_seconds=seconds, offset_seconds=offset,
                   moved=[r["id"] for r in moved], settled=settled)


@control.get("/received")
def received():
    session = _session()
    rows = reliability.received(current_sandbox(), session)
    return jsonify(session=session, received=rows, count=len(rows))


@control.get("/interactions")
def interactions():
    """The interaction catalogue: service, pattern, reliability, response, schema, who answers, which scenarios."""
    from sandbox.services.spine import catalogue

    pattern = request.args.get("pattern") or None
    if pattern is not None and pattern not in catalogue.RELIABILITY:
        raise ControlError(f"pattern {pattern[:40]!r} is not one of {', '.join(catalogue.RELIABILITY)}")
    sandbox = current_sandbox()
    rows = catalogue.rows(sandbox.services.values(), sandbox.scenarios, pattern)
    return jsonify(interactions=rows, count=len(rows))
