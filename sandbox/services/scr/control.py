"""SCR control endpoints at /_sandbox/scr/ (mounted by the SCR SERVICE):
  GET /summaries[?nhs_number=]     the GP summaries the session has uploaded, per NHS number, oldest first
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from sandbox.runtime import current_sandbox
from sandbox.services.scr.summaries import SUMMARIES
from sandbox.web.sessions import control_session

control = Blueprint("scr-control", __name__)


@control.get("/summaries")
def summaries():
    session, wrong = control_session(request)
    if wrong:
        return jsonify(error="bad_request", message=wrong), 400
    stored = current_sandbox().store.state.items(session, SUMMARIES)
    wanted = request.args.get("nhs_number")
    found = {number: item.value for number, item in sorted(stored.items()) if not wanted or number == wanted}
    return jsonify(session=session, summaries=found, count=sum(len(v) for v in found.values()))
