"""EPS control endpoints at /_sandbox/eps/ (mounted by the eps SERVICE), for developers and assessors:

  GET  /clock, POST /clock   the session's prescription clock: {"advance": "30d"} moves it forward, so validity
                             periods end (prescriptions expire) without waiting
  GET  /prescriptions        the session's prescriptions: status, owner, items, issues and every change (?status=)
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from sandbox.runtime import current_sandbox
from sandbox.services.eps import prescriptions
from sandbox.services.eps.context import BUSINESS_STATUS
from sandbox.web.control import FieldError, body_object, control_error, duration_field
from sandbox.web.sessions import control_session

control = Blueprint("eps-control", __name__)
MAX_ADVANCE_S = 3 * 366 * 86400.0  # one change: beyond any prescription's validity (eRD courses last a year)
MAX_OFFSET_S = 10 * 366 * 86400.0  # all changes together


@control.errorhandler(FieldError)
def _malformed(exc: FieldError):
    return control_error("bad_request", exc.description, 400, exc.field)


def _session() -> str:
    session, wrong = control_session(request)
    if wrong:
        raise FieldError(wrong)
    return session


def _clock(session: str, offset: float) -> dict:
    return {"session": session, "offset_seconds": offset, "now": prescriptions.stamp(prescriptions.now(session))}


@control.get("/clock")
def get_clock():
    session = _session()
    return jsonify(_clock(session, prescriptions.clock_offset(session)))


@control.post("/clock")
def advance_clock():
    """Move the session's prescription clock forward (it never goes back)."""
    session = _session()
    data = body_object(empty_ok=True)
    seconds = duration_field(data, "advance", MAX_ADVANCE_S, "")
    store = current_sandbox().store
    with store.state.transaction(session):
        offset = prescriptions.clock_offset(session) + seconds
        if offset > MAX_OFFSET_S:
            raise FieldError(f"advance {seconds / 86400:g} days would take the session's prescription clock "
                             f"{offset / 86400:g} days ahead, beyond {MAX_OFFSET_S / 86400:g} days in all", "advance")
        store.state.put(session, prescriptions.CLOCK_NS, prescriptions.CLOCK_KEY, offset)
    return jsonify(advanced_seconds=seconds, **_clock(session, offset))


@control.get("/prescriptions")
def list_prescriptions():
    session = _session()
    status = request.args.get("status")
    if status is not None and status not in BUSINESS_STATUS:
        raise FieldError(f"status {status[:20]!r} is not a business status ({', '.join(BUSINESS_STATUS)})")
    moment = prescriptions.now(session)
    rows = [prescriptions.summary(record, moment) for record in prescriptions.all_records(session)]
    if status is not None:
        rows = [row for row in rows if row["status"] == status]
    return jsonify(session=session, now=prescriptions.stamp(moment), prescriptions=rows, count=len(rows))
