"""SDS control endpoints at /_sandbox/sds/: a session's registrations of suppliers' own systems (their MHS address
and the interactions they receive), which the SDS answers and Spine's routing then include."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from sandbox.runtime import current_sandbox
from sandbox.services.sds.directory import Registration, RegistrationError, directory, validate
from sandbox.web.control import FieldError, body_object, control_error
from sandbox.web.sessions import control_session

control = Blueprint("sds-control", __name__)


@control.errorhandler(RegistrationError)
def _refused(exc: RegistrationError):
    return jsonify(error="bad_request" if exc.status == 400 else "conflict", field=exc.field,
                   message=str(exc)), exc.status


@control.errorhandler(FieldError)
def _malformed(exc: FieldError):
    return control_error("bad_request", exc.description, 400, exc.field or "body")


def _session() -> str:
    session, wrong = control_session(request)
    if wrong:
        raise RegistrationError("session", wrong)
    return session


def shown(registration: Registration, session: str) -> dict:
    return {"session": session, **registration.to_dict()}


@control.get("/registrations")
def list_registrations():
    session = _session()
    found = directory(current_sandbox()).registrations(session)
    return jsonify(session=session, registrations=[shown(r, session) for r in found], count=len(found))


@control.post("/registrations")
def register():
    session = _session()
    data = body_object(example='{"ods": …, "asid": …, "party_key": …, "endpoint": …, "interactions": [ … ]}')
    registration = directory(current_sandbox()).register(session, validate(data))
    return jsonify(shown(registration, session)), 201


@control.get("/registrations/<party_key>")
def get_registration(party_key: str):
    session = _session()
    found = directory(current_sandbox()).registration(session, party_key)
    if found is None:
        return jsonify(error="not_found", message=f"no registration for party key {party_key[:80]!r} in session "
                       f"{session}"), 404
    return jsonify(shown(found, session))


@control.delete("/registrations/<party_key>")
def remove_registration(party_key: str):
    session = _session()
    if not directory(current_sandbox()).remove(session, party_key):
        return jsonify(error="not_found", message=f"no registration for party key {party_key[:80]!r} in session "
                       f"{session}"), 404
    return jsonify(session=session, party_key=party_key, removed=True)
