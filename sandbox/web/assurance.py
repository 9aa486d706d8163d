"""The control API for assurance: plans, sessions bound to plans, progress, attestations and reports."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from sandbox.assurance.binding import MAX_BOUND, create_bound_session, release
from sandbox.assurance.reports import make_report, render, report_zip
from sandbox.assurance.sessions import (
    SessionError,
    attest,
    credentials,
    find_plan,
    progress,
    session_and_plan,
    session_summary,
)
from sandbox.assurance.signing import SigningKeyError, key_info, signing_key
from sandbox.assurance.verdicts import assess, attestation_dict
from sandbox.hosting import Denied, bind, current_caller, quotas, visible
from sandbox.hosting.caller import attester
from sandbox.hosting.keys import get_tenant
from sandbox.runtime import current_sandbox
from sandbox.web.control import FieldError, body_object, control_error, field, query_int
from sandbox.web.sessions import require_visible

assurance = Blueprint("assurance", __name__, url_prefix="/_sandbox")
CONTENT_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8",
                 "junit": "application/xml", "markdown": "text/markdown; charset=utf-8",
                 "zip": "application/zip"}  # zip: every rendering and the signed manifest


@assurance.errorhandler(SessionError)
def _session_error(exc: SessionError):
    names = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}
    return control_error(names.get(exc.status, "Internal Server Error"), str(exc), exc.status)


@assurance.errorhandler(SigningKeyError)
def _signing_key_error(exc: SigningKeyError):
    return control_error("Service Unavailable", f"reports cannot be signed: {exc}", 503)


@assurance.get("/report-key")
def report_key():
    """The public key that signs this sandbox's reports; public, so anyone can verify a report."""
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "pem"):
        return control_error("Bad Request", f"format={fmt[:40]!r} is not one of json, pem", 400, "format")
    info = key_info(signing_key(current_sandbox().settings).public_key())
    if fmt == "pem":
        return Response(info["public_key"], content_type="application/x-pem-file")
    return jsonify(info)


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
    caller = current_caller()
    tenant = _tenant_named(data, caller) or caller.tenant
    quotas.admit_new_session(sandbox, caller.tenant)  # hosted: 429 over the tenant's sessions per minute
    record, token, mailboxes = create_bound_session(
        sandbox, field(data, "plan", str, max_length=200), field(data, "supplier", str), field(data, "system", str),
        _mailbox_ids(data), sandbox.settings.hosted)
    if tenant is not None:  # the tenant's own: no other tenant sees it
        bind(sandbox.store, record.id, tenant)
    return jsonify({**credentials(record, token, sandbox.settings.hosted), "mailboxes": mailboxes}), 201


def _mailbox_ids(data: dict) -> list[str]:
    """{"mailboxes": ["X26ABC1", …]}: MESH mailboxes whose traffic lands in the new session (mesh.mailboxes)."""
    ids = field(data, "mailboxes", list, default=[], max_length=MAX_BOUND)
    if not all(isinstance(i, str) and 0 < len(i) <= 40 for i in ids):
        raise FieldError("field 'mailboxes' must be a list of MESH mailbox ids (e.g. [\"X26ABC1\"])", "mailboxes")
    return ids


@assurance.delete("/sessions/<session_id>/mailboxes")
def release_mailboxes(session_id: str):
    """End the session's MESH mailbox bindings (`spine-sandbox sessions release`); its evidence stays."""
    require_visible(session_id)
    sandbox = current_sandbox()
    return jsonify(session=session_id, released=release(sandbox.store, session_id, sandbox.services.values()))


def _tenant_named(data: dict, caller) -> str | None:
    """The admin may create a session for a tenant ({"tenant": "tnt-…"}); nobody else names one."""
    tenant = field(data, "tenant", str, max_length=80)
    if tenant is None:
        return None
    if not caller.is_admin:
        raise Denied("only the admin key creates sessions for a tenant (\"tenant\"); a tenant's own sessions are "
                     "its own without it")
    found = get_tenant(current_sandbox().store, tenant)
    if found is None or not found.active:
        raise FieldError(f"no active tenant {tenant[:80]!r} (GET /_sandbox/tenants lists them)", "tenant")
    return found.id


@assurance.get("/sessions")
def sessions():
    store, caller = current_sandbox().store, current_caller()
    return jsonify(sessions=[session_summary(r) for r in store.sessions.all() if visible(caller, store, r.id)])


@assurance.get("/sessions/<session_id>")
def session_progress(session_id: str):
    sandbox = current_sandbox()
    require_visible(session_id)
    record, plan_ = session_and_plan(sandbox.store, sandbox.plans, session_id, request.args.get("plan"))
    return jsonify(progress(assess(sandbox.store, plan_, record)))


@assurance.post("/sessions/<session_id>/attestations")
def new_attestation(session_id: str):
    """Suppliers cannot certify themselves: a tenant key may not attest (403), even on its own session; an
    assessor's attestation records the assessor's name from its key, whatever the body's "by" says."""
    sandbox = current_sandbox()
    caller = current_caller()
    require_visible(session_id)
    if not caller.may_attest:
        raise Denied("a tenant key may not attest: suppliers cannot certify themselves; an assessor or the admin "
                     "attests (spine-sandbox assessors create)")
    data = body_object(example='{"requirement": "…", "verdict": "pass", "by": "…", "note": "…"}')
    made = attest(sandbox.store, sandbox.plans, session_id, field(data, "requirement", str, default=""),
                  field(data, "verdict", str, default=""), attester(caller, field(data, "by", str)),
                  field(data, "note", str, default=""))
    return jsonify(session=session_id, requirement=made.requirement, **attestation_dict(made)), 201


@assurance.get("/sessions/<session_id>/report")
def report(session_id: str):
    fmt = request.args.get("format", "json")
    if fmt not in CONTENT_TYPES:
        raise SessionError(f"format={fmt[:40]!r} is not one of {', '.join(CONTENT_TYPES)}")
    evidence = query_int("evidence", 3, 1, 50)
    require_visible(session_id)
    sandbox = current_sandbox()
    key = signing_key(sandbox.settings)
    sealed = make_report(sandbox, session_id, request.args.get("plan"), evidence=evidence, key=key)
    if fmt == "zip":
        return Response(report_zip(sealed, key), content_type=CONTENT_TYPES[fmt], headers={
            "Content-Disposition": f'attachment; filename="report-{session_id}.zip"'})
    return Response(render(sealed, fmt), content_type=CONTENT_TYPES[fmt])
