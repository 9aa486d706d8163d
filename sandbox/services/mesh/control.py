"""MESH control endpoints at /_sandbox/mesh/: a session's configuration, its clock, its messages, a reset, tokens."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from sandbox.conformance.parsing import Malformed, parse_json
from sandbox.hosting import require_change
from sandbox.journal.redaction import is_redacted, redacted
from sandbox.runtime import current_sandbox
from sandbox.services.mesh import auth, mailboxes
from sandbox.services.mesh import session as mesh_session
from sandbox.services.mesh.config import DAY, ConfigError, MeshConfig, parse
from sandbox.services.mesh.context import post_office
from sandbox.services.mesh.post_office import MESSAGES, iso
from sandbox.web.control import FieldError, duration_field
from sandbox.web.sessions import control_session

control = Blueprint("mesh-control", __name__)


class ControlError(Exception):
    pass


@control.errorhandler(ControlError)
@control.errorhandler(FieldError)
def _refused(exc: ControlError | FieldError):
    return jsonify(error="bad_request", message=exc.description if isinstance(exc, FieldError) else str(exc)), 400


def _session() -> str:
    session, wrong = control_session(request)
    if wrong:
        raise ControlError(wrong)
    return session


def _body() -> dict:
    try:
        data = parse_json(request.get_data()) if request.is_json else None
    except Malformed as exc:
        raise ControlError(f"the {exc}") from None
    if not isinstance(data, dict):
        raise ControlError("the body must be a JSON object (Content-Type: application/json)")
    return data


@control.get("/config")
def get_config():
    session = _session()
    config = mesh_session.load(current_sandbox(), session).config
    return jsonify(session=session, source=config.source, config=_shown(config))


def _shown(config: MeshConfig) -> dict:
    """The configuration as the control API shows it: passwords as their fingerprints (the passwords of made
    mailboxes are shown once, when made); PUT takes a fingerprint back as "keep this mailbox's password"."""
    shown = config.to_dict()
    for mailbox in shown["mailboxes"]:
        mailbox["password"] = redacted(mailbox["password"])
    return shown


def _keep_passwords(data: dict, current: MeshConfig) -> None:
    """Put back the password of each mailbox whose password the body gives as the fingerprint GET showed."""
    for n, item in enumerate(data.get("mailboxes") or ()):
        if not (isinstance(item, dict) and isinstance(item.get("password"), str) and is_redacted(item["password"])):
            continue
        mailbox = current.mailbox(item["id"]) if isinstance(item.get("id"), str) else None
        if mailbox is None or redacted(mailbox.password) != item["password"]:
            raise FieldError(f"at /mailboxes/{n}/password: {item['password'][:60]} is not the fingerprint of the "
                             f"password mailbox {str(item.get('id'))[:40]!r} has in this session; send the password "
                             "itself", f"mailboxes/{n}/password")
        item["password"] = mailbox.password


def _hosted() -> bool:
    return current_sandbox().settings.hosted


@control.put("/config")
def put_config():
    session = _session()
    data = _body()
    _keep_passwords(data, mesh_session.load(current_sandbox(), session).config)
    try:
        config = parse(data, "the request body")
    except ConfigError as exc:
        raise ControlError(str(exc)) from None
    foreign = mailboxes.foreign_mailboxes(current_sandbox().store, session, data) if _hosted() else []
    if foreign:
        raise ControlError(f"mailbox {foreign[0][:40]!r} was not made for session {session}: in a hosted sandbox a "
                           "session's configuration lists only its own mailboxes (POST /_sandbox/mesh/mailboxes "
                           "makes them)")
    current_sandbox().store.state.put(session, mesh_session.SESSION_NS, "config", data)
    mesh_session.forget_cached(session)
    return jsonify(session=session, source=f"session {session}", config=_shown(config))


@control.post("/mailboxes")
def make_mailboxes():
    """New mailboxes of the session's own, with freshly made ids and passwords: the passwords are in this answer
    only (hosted mode shows them nowhere else)."""
    session = _session()
    require_change("make mailboxes")
    data = _body() if request.get_data() else {}
    count = data.get("count", 2)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= mailboxes.MAX_MAILBOXES:
        raise FieldError(f"field 'count' must be a whole number from 1 to {mailboxes.MAX_MAILBOXES}", "count")
    ods_code = data.get("ods_code", "")
    if not isinstance(ods_code, str) or (ods_code and not re.fullmatch(r"[A-Z0-9]{2,10}", ods_code)):
        raise FieldError("field 'ods_code' must be an ODS code (2-10 upper-case letters and digits)", "ods_code")
    sandbox = current_sandbox()
    config, made = mailboxes.make(sandbox.store, session, mesh_session.load(sandbox, session).config, count, ods_code)
    return jsonify(session=session, shared_key=config["shared_key"], mailboxes=made,
                   note="the passwords are shown this once: keep them"), 201


@control.delete("/config")
def reset_config():
    session = _session()
    current_sandbox().store.state.delete(session, mesh_session.SESSION_NS, "config")
    mesh_session.forget_cached(session)
    return get_config()


@control.get("/clock")
def get_clock():
    session = _session()
    mesh = mesh_session.load(current_sandbox(), session)
    return jsonify(session=session, offset_seconds=mesh.offset, now=iso(mesh.now()))


@control.post("/clock")
def advance_clock():
    """Move the session's clock forward (never back), then expire and purge whatever became due."""
    session = _session()
    limit = mesh_session.MAX_CLOCK_OFFSET
    data = _body()
    seconds = duration_field(data, "advance", limit, "")
    raw = data.get("advance")
    office = post_office(session)
    if office.mesh.offset + seconds > limit:
        raise ControlError(f"advance {str(raw)[:40]!r} would put the session's clock "
                           f"{(office.mesh.offset + seconds) / DAY:.6g} days ahead; it may be at most {limit / DAY:g} "
                           "days ahead (POST /_sandbox/mesh/reset sets it back to now)")
    with office.store.state.transaction(session):
        office.mesh.put("clock", {"offset": office.mesh.offset + seconds})
    swept = office.sweep(force=True)
    return jsonify(session=session, advanced_seconds=seconds, offset_seconds=office.mesh.offset,
                   now=iso(office.mesh.now()), **swept)


@control.post("/reset")
def reset():
    """Forget every MESH message, token, poll and clock change of the session (its configuration stays)."""
    session = _session()
    store = current_sandbox().store
    config = store.state.get(session, mesh_session.SESSION_NS, "config")
    with store.state.transaction(session):
        store.state.clear(session, "mesh.")
        store.state.delete_blobs(session, "mesh/")
        if config is not None:
            store.state.put(session, mesh_session.SESSION_NS, "config", config.value)
    mesh_session.forget_cached(session)
    return jsonify(session=session, reset=True)


@control.get("/messages")
def messages():
    """Every message the session holds, whatever its status: for seeing what the sandbox did."""
    session = _session()
    items = current_sandbox().store.state.items(session, MESSAGES)
    rows = [{"message_id": k, "type": m["type"], "sender": m["sender"], "recipient": m["recipient"],
             "workflow_id": m.get("workflow_id"), "local_id": m.get("local_id"), "status": m["status"],
             "chunks": f"{len(m['chunks'])}/{m['total_chunks']}", "bytes": sum(m["chunks"].values()),
             "uploaded": iso(m["uploaded_at"]), "expires": iso(m.get("expires_at")),
             "downloaded_chunks": sorted(int(n) for n in m["downloaded"]),
             "linked_message_id": m.get("linked_message_id")}
            for k, m in ((k, v.value) for k, v in items.items())]
    rows.sort(key=lambda r: r["uploaded"] or "")
    return jsonify(session=session, messages=rows, count=len(rows))


@control.get("/token/<mailbox_id>")
def token(mailbox_id: str):
    """A fresh, single-use NHSMESH Authorization value for a mailbox: for curl and quick experiments."""
    session = _session()
    config = mesh_session.load(current_sandbox(), session).config
    mailbox = config.mailbox(mailbox_id)
    if mailbox is None:
        raise ControlError(f"no mailbox {mailbox_id!r} in session {session} (mailboxes: "
                           f"{', '.join(config.mailboxes)})")
    return jsonify(mailbox=mailbox.id, authorization=auth.make_token(mailbox.id, mailbox.password, config.shared_key))
