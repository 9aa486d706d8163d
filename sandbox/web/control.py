"""The control API under /_sandbox/: health, services, exchanges, patients, scenarios and requirements (JSON)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from flask import Blueprint, abort, jsonify, request

from sandbox import __version__
from sandbox.journal.store import ExchangeFilter
from sandbox.runtime import current_sandbox
from sandbox.synthetic.fhir import patient_resource
from sandbox.synthetic.population import KINDS
from sandbox.synthetic.summary import KIND_MEANING, person_summary
from sandbox.web.sessions import SESSION_HEADER

control = Blueprint("control", __name__, url_prefix="/_sandbox")
MAX_PAGE = 1000


@control.errorhandler(400)
@control.errorhandler(404)
def _json_error(exc):
    return jsonify(error=exc.name, message=exc.description), exc.code


def _int_arg(name: str, default: int, low: int = 0, high: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        abort(400, f"query parameter {name}={raw!r} is not an integer")
    if value < low or (high is not None and value > high):
        abort(400, f"query parameter {name}={value} is outside {low}..{high if high is not None else 'any'}")
    return value


@control.get("/health")
def health():
    sandbox = current_sandbox()
    return jsonify(
        status="ok", version=__version__, uptime_s=round(time.time() - sandbox.started_at, 1),
        services={name: list(s.base_paths) for name, s in sandbox.services.items()},
        population={"seed": sandbox.population.seed, "size": sandbox.population.size,
                    "indexed": sandbox.population.ready},
        journal=sandbox.settings.journal_url.split(":", 1)[0], auth=sandbox.settings.auth,
        scenarios=len(sandbox.scenarios), requirements=len(sandbox.requirements))


@control.get("/services")
def services():
    sandbox = current_sandbox()
    return jsonify(services=[{
        "name": s.name, "title": s.title, "base_paths": list(s.base_paths),
        "operations": [{"id": op, "request": text} for op, text in s.operations.items()],
        "specification": s.specification, "requirements": len(s.requirements),
        "scenarios": len(sandbox.scenarios.for_service(s.name)),
    } for s in sandbox.services.values()])


@control.get("/exchanges")
def exchanges():
    sandbox = current_sandbox()
    where = ExchangeFilter(
        session=request.args.get("session") or request.headers.get(SESSION_HEADER),
        service=request.args.get("service"), operation=request.args.get("operation"),
        scenario=request.args.get("scenario"), requirement=request.args.get("requirement"),
        status=_int_arg("status", 0, 100, 599) or None, outcome=request.args.get("outcome"))
    if where.outcome not in (None, "pass", "fail", "warning", "info"):
        abort(400, f"outcome={where.outcome!r} is not one of pass, fail, warning, info")
    if request.args.get("since"):
        where.since = _float_arg("since")
    limit = _int_arg("limit", 100, 1, MAX_PAGE)
    before = _int_arg("before", 0, 0) or None
    rows = sandbox.store.exchanges(where, limit=limit, before=before)
    body = {"exchanges": rows, "count": len(rows)}
    if len(rows) == limit:
        args = {k: v for k, v in request.args.items() if k != "before"}
        body["next"] = f"{request.path}?{urlencode({**args, 'before': rows[-1]['seq']})}"
    return jsonify(body)


def _float_arg(name: str) -> float:
    try:
        return float(request.args[name])
    except ValueError:
        abort(400, f"query parameter {name}={request.args[name]!r} is not a Unix time in seconds")


@control.get("/exchanges/<exchange_id>")
def exchange(exchange_id: str):
    found = current_sandbox().store.exchange(exchange_id)
    if found is None:
        abort(404, f"no exchange {exchange_id!r} in the journal")
    return jsonify(found.to_dict())


@control.get("/patients")
def patients():
    population = current_sandbox().population
    kind = request.args.get("kind")
    if kind is not None and kind not in KINDS:
        abort(400, f"kind={kind!r} is not one of {', '.join(KINDS)}")
    offset = _int_arg("offset", 0, 0)
    limit = _int_arg("limit", 50, 1, MAX_PAGE)
    indices = range(population.size) if kind is None else (i for i in range(population.size)
                                                              if population.kind(i) == kind)
    page = []
    for n, index in enumerate(indices):
        if n >= offset + limit:
            break
        if n >= offset:
            page.append(person_summary(population.person(index), population))
    body = {"patients": page, "offset": offset, "limit": limit, "size": population.size,
            "kinds": {k: {"per_hundred": share, "meaning": KIND_MEANING[k]} for k, share in KINDS.items()}}
    if len(page) == limit:
        body["next"] = f"{request.path}?{urlencode({**request.args, 'offset': offset + limit})}"
    return jsonify(body)


@control.get("/patients/<nhs_number>")
def patient(nhs_number: str):
    population = current_sandbox().population
    person = population.by_nhs_number(nhs_number)
    if person is None:
        abort(404, f"{nhs_number!r} is not in the synthetic population (seed {population.seed}, "
                   f"size {population.size})")
    return jsonify(summary=person_summary(person, population), resource=patient_resource(person))


@control.get("/scenarios")
def scenarios():
    sandbox = current_sandbox()
    service = request.args.get("service")
    items = sandbox.scenarios.for_service(service) if service else list(sandbox.scenarios)
    return jsonify(scenarios=[s.to_dict() for s in items])


@control.get("/requirements")
def requirements():
    sandbox = current_sandbox()
    service = request.args.get("service")
    return jsonify(requirements=[r.to_dict() for r in sandbox.requirements if not service or r.service == service])
