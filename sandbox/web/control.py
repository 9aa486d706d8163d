"""The control API under /_sandbox/: health, services, exchanges, patients, scenarios and requirements (JSON).

Every control endpoint (here, in web/assurance.py and in each service's control.py) reads its body and query with
the typed readers below, so any input gets a 4xx in the JSON error shape {"error": …, "message": …}, never a 500."""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, jsonify, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from sandbox import __version__
from sandbox.conformance.parsing import INT64, Malformed, parse_int, parse_json
from sandbox.hosting import current_caller, visible
from sandbox.journal.store import ExchangeFilter
from sandbox.runtime import current_sandbox
from sandbox.synthetic.fhir import patient_resource
from sandbox.synthetic.population import KINDS
from sandbox.synthetic.summary import KIND_MEANING, person_summary
from sandbox.web.sessions import SESSION_HEADER, control_session

log = logging.getLogger(__name__)

control = Blueprint("control", __name__, url_prefix="/_sandbox")
MAX_PAGE = 1000
MAX_TEXT = 10_000  # characters in any one string field of a control body: far more than any name, note or URL needs
MAX_TIME = 1e11  # seconds since 1970: beyond the year 5000, and within what every store can compare


class FieldError(BadRequest):
    """A control request's body, field or query parameter is not what the endpoint takes; `field` names it (None:
    the body as a whole). A 400 that every control blueprint renders in its JSON error shape."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@control.errorhandler(400)
@control.errorhandler(404)
def _json_error(exc):
    return control_error(exc.name, exc.description, exc.code, getattr(exc, "field", None))


def control_error(error: str, message: str, status: int, field_name: str | None = None):
    """The control API's error answer: {"error": …, "message": …}, and the field at fault when one is."""
    body = {"error": error, "message": message}
    if field_name:
        body["field"] = field_name
    return jsonify(body), status


# --- typed readers for control bodies and query parameters ------------------------------------------------------

_KIND_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
               dict: "a JSON object", list: "a JSON array"}
_UNSET: Any = object()


def json_kind(value) -> str:
    """What a JSON value is, in the words of the error messages."""
    if value is None:
        return "null"
    for kind in (bool, int, float, str, dict, list):  # bool before int: True is an int in Python
        if isinstance(value, kind):
            return _KIND_NAMES[kind]
    return type(value).__name__


def body_object(*, empty_ok: bool = False, example: str = "") -> dict:
    """The request body as a JSON object (whatever its Content-Type says); an empty body is {} when `empty_ok`.
    Anything else is a FieldError naming what is wrong: not UTF-8, not JSON, too deep, a number too large, a lone
    surrogate, or a JSON value that is not an object."""
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise RequestEntityTooLarge(f"the request body is larger than the control API accepts "
                                    f"({request.max_content_length} bytes; setting SANDBOX_MAX_BODY_BYTES)") from None
    if empty_ok and not raw.strip():
        return {}
    hint = f", e.g. {example}" if example else ""
    if not raw.strip():
        raise FieldError(f"the request body is empty; send a JSON object (Content-Type: application/json){hint}")
    try:
        data = parse_json(raw)
    except Malformed as exc:
        raise FieldError(f"the request {exc}") from None
    if not isinstance(data, dict):
        raise FieldError(f"the request body must be a JSON object{hint}; it is {json_kind(data)}")
    return data


def field(body: dict, name: str, kind: type | tuple[type, ...], *, required: bool = False, default: Any = None,
          minimum: float | None = None, maximum: float | None = None, max_length: int = MAX_TEXT):
    """body[name] checked to be of `kind` (str, int, float, bool, dict, list or a tuple of them; an int is accepted
    as a float, a bool never as a number); absent or null is `default`, or a FieldError when `required`. Numbers
    are bounded by minimum..maximum (ints by 64 bits at most), strings and arrays by max_length."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    value = body.get(name, _UNSET)
    if value is _UNSET or value is None:
        if required:
            raise FieldError(f"field {name!r} is required: {_expected(kinds)}", name)
        return default
    if not _is(value, kinds):
        raise FieldError(f"field {name!r} must be {_expected(kinds)}, not {json_kind(value)}", name)
    if isinstance(value, int) and not isinstance(value, bool):
        low = INT64[0] if minimum is None else max(INT64[0], math.ceil(minimum))
        high = INT64[1] if maximum is None else min(INT64[1], math.floor(maximum))
        if not low <= value <= high:
            raise FieldError(f"field {name!r} is {value}, outside {_number(low)}..{_number(high)}", name)
        return float(value) if float in kinds and int not in kinds else value
    if isinstance(value, float) and not (math.isfinite(value) and (minimum is None or value >= minimum)
                                         and (maximum is None or value <= maximum)):
        raise FieldError(f"field {name!r} is {value:g}, outside {_number(minimum)}..{_number(maximum)}", name)
    if isinstance(value, str | list | dict) and len(value) > max_length:
        unit = "characters" if isinstance(value, str) else "items"
        raise FieldError(f"field {name!r} is longer than {max_length} {unit}", name)
    return value


_DURATION = re.compile(r"\s*([0-9]{1,12}(?:\.[0-9]{1,9})?)\s*([smhd]?)\s*")  # ASCII digits only: not '²'
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_field(body: dict, name: str, maximum: float, default: str | float = 0) -> float:
    """A duration field in seconds: a number, or a string such as "60s", "5m", "2h" or "1d"; from 0 to maximum (a
    clock goes forward only, and never so far that due times stop being real times)."""
    raw = field(body, name, (str, float), default=default, max_length=40)
    match = _DURATION.fullmatch(raw) if isinstance(raw, str) else None
    if isinstance(raw, str) and not match:
        raise FieldError(f"{name} {raw!r} is not a duration: a number of seconds, or a number with s, m, h or d "
                         "(e.g. \"60s\", \"5m\", \"2d\")", name)
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)] if match else raw
    if not 0 <= seconds <= maximum:
        raise FieldError(f"{name} {raw!r} is outside 0 to {maximum / 86400:g} days (the clock only goes forward)",
                         name)
    return seconds


def _is(value, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int):
        return int in kinds or float in kinds
    return isinstance(value, kinds)


def _expected(kinds: tuple[type, ...]) -> str:
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


def _number(bound: float | None) -> str:
    return "any" if bound is None else f"{bound:g}" if isinstance(bound, float) else str(bound)


def query_int(name: str, default: int, minimum: int = 0, maximum: int = INT64[1]) -> int:
    """An integer query parameter in ASCII digits within minimum..maximum, or a FieldError naming it."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_int(raw, minimum=minimum, maximum=maximum)
    except ValueError as exc:
        raise FieldError(f"query parameter {name} must be a whole number from {minimum} to {maximum}: {exc}",
                         name) from None


_DECIMAL = re.compile(r"[+-]?[0-9]{1,20}(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?")


def query_number(name: str, what: str, minimum: float = 0.0, maximum: float = MAX_TIME) -> float | None:
    """A decimal query parameter (ASCII digits, finite) within minimum..maximum, None when absent; else FieldError."""
    raw = request.args.get(name)
    if not raw:
        return None
    number = float(raw) if _DECIMAL.fullmatch(raw.strip()) else math.nan
    if not minimum <= number <= maximum:
        raise FieldError(f"query parameter {name}={raw[:40]!r} is not {what} from {minimum:g} to {maximum:g}", name)
    return number


HEALTH_SESSION = "_health"  # reserved (session ids cannot start with '_'): never written, read by the probe


@control.get("/health")
def health():
    """200 once the workers serve and the database answers (one read): a load balancer's readiness check."""
    sandbox = current_sandbox()
    try:
        sandbox.store.state.get(HEALTH_SESSION, "probe", "probe")
        database = "ok"
    except Exception as exc:  # the database is gone or refuses: this replica cannot answer anything else either
        log.warning("health: the database does not answer: %s", exc)
        database = f"not answering ({type(exc).__name__}); see the sandbox's log"
    answer = jsonify(
        status="ok" if database == "ok" else "unavailable", database=database, version=__version__, uptime_s=round(time.time() - sandbox.started_at, 1),
        services={name: list(s.base_paths) for name, s in sandbox.services.items()},
        population={"seed": sandbox.population.seed, "size": sandbox.population.size,
                    "indexed": sandbox.population.ready},
        journal=sandbox.settings.journal_url.split(":", 1)[0], auth=sandbox.settings.auth,
        scenarios=len(sandbox.scenarios), requirements=len(sandbox.requirements))
    return answer if database == "ok" else (answer, 503)


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
    session = request.args.get("session") or request.headers.get(SESSION_HEADER)
    if session is not None or current_caller().tenant is not None:  # a tenant lists one of its own sessions
        session, wrong = control_session(request)
        if wrong:
            raise FieldError(wrong, "session")
    where = ExchangeFilter(
        session=session,
        service=request.args.get("service"), operation=request.args.get("operation"),
        scenario=request.args.get("scenario"), requirement=request.args.get("requirement"),
        status=query_int("status", 0, 100, 599) or None, outcome=request.args.get("outcome"),
        since=query_number("since", "a Unix time in seconds"))
    if where.outcome not in (None, "pass", "fail", "warning", "info"):
        abort(400, f"outcome={where.outcome[:40]!r} is not one of pass, fail, warning, info")
    limit = query_int("limit", 100, 1, MAX_PAGE)
    before = query_int("before", 0, 0) or None
    rows = sandbox.store.journal.exchanges(where, limit=limit, before=before)
    body = {"exchanges": rows, "count": len(rows)}
    if len(rows) == limit:
        args = {k: v for k, v in request.args.items() if k != "before"}
        body["next"] = f"{request.path}?{urlencode({**args, 'before': rows[-1]['seq']})}"
    return jsonify(body)


@control.get("/exchanges/<exchange_id>")
def exchange(exchange_id: str):
    store = current_sandbox().store
    found = store.journal.exchange(exchange_id)
    if found is None or not visible(current_caller(), store, found.session):  # another tenant's: as if never made
        abort(404, f"no exchange {exchange_id[:80]!r} in the journal")
    return jsonify(found.to_dict())


@control.get("/patients")
def patients():
    population = current_sandbox().population
    kind = request.args.get("kind")
    if kind is not None and kind not in KINDS:
        abort(400, f"kind={kind[:40]!r} is not one of {', '.join(KINDS)}")
    offset = query_int("offset", 0, 0, population.size)
    limit = query_int("limit", 50, 1, MAX_PAGE)
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
        abort(404, f"{nhs_number[:40]!r} is not in the synthetic population (seed {population.seed}, "
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
