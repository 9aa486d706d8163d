"""The control API for assurance: plans, sessions bound to plans, progress, attestations and reports."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from sandbox.assurance.reports import make_report, render
from sandbox.assurance.sessions import (
    SessionError,
    attest,
    create_session,
    credentials,
    find_plan,
    progress,
    session_and_plan,
    session_summary,
)
from sandbox.assurance.verdicts import assess, attestation_dict
from sandbox.runtime import current_sandbox
from sandbox.web.control import FieldError, body_object, control_error, field, query_int

assurance = Blueprint("assurance", __name__, url_prefix="/_sandbox")
CONTENT_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8",
                 "junit": "application/xml", "markdown": "text/markdown; charset=utf-8"}


@assurance.errorhandler(SessionError)
def _session_error(exc: SessionError):
    names = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}
    return control_error(names.get(exc.status, "Internal Server Error"), str(exc), exc.status)


@assurance.errorhandler(FieldError)
def _field_error(exc: FieldError):
    return control_error(exc.name, exc.description, exc.code, exc.field)


@assurance.get("/plans")
def plans():
    return jsonify(plans=[p.to_dict() for p in current_sandbox().plans])


@assurance.get("/plans/<plan_id>")
def plan(plan_id: str):
    return jsonify(find_plan(current_sandbox().plans, plan_id).to_dict())


@assurance.post("/sessions")
def new_session():
    sandbox = current_sandbox()
    data = body_object(example='{"plan": "pds-healthcare-worker", "supplier": "…", "system": "…"}')
    record, token = create_session(sandbox.store, sandbox.plans, field(data, "plan", str, max_length=200),
                                   field(data, "supplier", str), field(data, "system", str))
    return jsonify(credentials(record, token)), 201


@assurance.get("/sessions")
def sessions():
    return jsonify(sessions=[session_summary(r) for r in current_sandbox().store.list_sessions()])


@assurance.get("/sessions/<session_id>")
def session_progress(session_id: str):
    sandbox = current_sandbox()
    record, plan_ = session_and_plan(sandbox.store, sandbox.plans, session_id, request.args.get("plan"))
    return jsonify(progress(assess(sandbox.store, plan_, record)))


@assurance.post("/sessions/<session_id>/attestations")
def new_attestation(session_id: str):
    sandbox = current_sandbox()
    data = body_object(example='{"requirement": "…", "verdict": "pass", "by": "…", "note": "…"}')
    made = attest(sandbox.store, sandbox.plans, session_id, field(data, "requirement", str, default=""),
                  field(data, "verdict", str, default=""), field(data, "by", str), field(data, "note", str, default=""))
    return jsonify(session=session_id, requirement=made.requirement, **attestation_dict(made)), 201


@assurance.get("/sessions/<session_id>/report")
def report(session_id: str):
    fmt = request.args.get("format", "json")
    if fmt not in CONTENT_TYPES:
        raise SessionError(f"format={fmt[:40]!r} is not one of {', '.join(CONTENT_TYPES)}")
    evidence = query_int("evidence", 3, 1, 50)
    sealed = make_report(current_sandbox(), session_id, request.args.get("plan"), evidence=evidence)
    return Response(render(sealed, fmt), content_type=CONTENT_TYPES[fmt])
