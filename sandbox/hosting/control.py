"""The admin's control endpoints for tenants and assessors: POST/GET /_sandbox/tenants, DELETE
/_sandbox/tenants/<id>, and the same under /_sandbox/assessors. Keys are in the answer to POST only."""

from __future__ import annotations

from flask import Blueprint, jsonify

from sandbox.hosting import keys, require_admin
from sandbox.runtime import current_sandbox
from sandbox.web.control import FieldError, body_object, control_error, field

control = Blueprint("hosting", __name__, url_prefix="/_sandbox")


@control.errorhandler(keys.HostingError)
def _refused(exc: keys.HostingError):
    return control_error("not_found" if exc.status == 404 else "bad_request", str(exc), exc.status)


@control.errorhandler(FieldError)
def _malformed(exc: FieldError):
    return control_error(exc.name, exc.description, exc.code, exc.field)


def _routes(kind: str) -> None:
    one = kind[:-1]
    create_one, list_all, revoke_one = keys.create_tenant, keys.list_tenants, keys.revoke_tenant
    if kind == keys.ASSESSORS:
        create_one, list_all, revoke_one = keys.create_assessor, keys.list_assessors, keys.revoke_assessor

    def create():
        require_admin(f"create {kind}")
        body = body_object(example='{"name": "Alpha Health"}')
        principal, key = create_one(current_sandbox().store, field(body, "name", str, required=True,
                                                                   max_length=keys.MAX_NAME))
        return jsonify({one: principal.id, "key": key, "name": principal.name}), 201

    def listing():
        require_admin(f"list {kind}")
        return jsonify({kind: [p.to_dict() for p in list_all(current_sandbox().store)]})

    def revoke(principal_id: str):
        require_admin(f"revoke {kind}")
        return jsonify({**revoke_one(current_sandbox().store, principal_id).to_dict(), "revoked": True})

    control.add_url_rule(f"/{kind}", f"create_{one}", create, methods=["POST"])
    control.add_url_rule(f"/{kind}", f"list_{kind}", listing, methods=["GET"])
    control.add_url_rule(f"/{kind}/<principal_id>", f"revoke_{one}", revoke, methods=["DELETE"])


_routes(keys.TENANTS)
_routes(keys.ASSESSORS)
