"""An exchange as the row the SQL journals (SQLite, PostgreSQL) store, and back: one column order, one encoding of
headers and findings (compact JSON), one placeholder for a row the database cannot hold, one tolerant reading of a
damaged row. A backend says only how it keeps text (`text`, `read_text`) and bodies (`body`, `read_body`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import orjson

from sandbox.conformance.findings import Finding, Outcome, SpineError
from sandbox.conformance.parsing import INT64
from sandbox.journal.bodies import BodyMissing
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse

log = logging.getLogger(__name__)
_ascii_dumps = json.JSONEncoder(separators=(",", ":")).encode
# What orjson would write and the standard library refuses (dataclasses, datetimes, subclasses): refused by both.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def compact_json(value: Any) -> bytes:
    """Compact JSON as UTF-8: orjson's (about a tenth of the standard library's time: some 20 µs an exchange), or
    the standard library's escaped ASCII for what orjson refuses (keys that are not text, integers beyond 64 bits,
    text with a lone surrogate, which no TEXT column takes as it is). Numbers from requests are finite
    (conformance.parsing), where the two agree."""
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return _ascii_dumps(value).encode()


def parse_json(text: str | bytes) -> Any:
    """A row's headers or findings (text, and integers that fit 64 bits: orjson reads a larger one as a float), read
    by orjson (a third of the standard library's time), or by the standard library where orjson refuses (the escape
    of a lone surrogate), which raises ValueError (or TypeError) for what is not JSON at all."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _dumps(value: Any) -> str:
    return compact_json(value).decode()


# The row's columns, in the order encode() gives them (then `damage`, which only a placeholder sets).
COLUMNS = ("id", "session", "service", "operation", "scenario", "started_at", "duration_ms", "method", "path",
           "query_string", "client", "request_headers", "request_body", "status", "response_headers", "response_body",
           "n_pass", "n_fail", "n_warning", "n_info", "findings")
# What decode() and summary() read back: the journal's order, with seq first.
READ_COLUMNS = ("seq", "id", "session", "service", "operation", "scenario", "started_at", "duration_ms", "method",
                "path", "query_string", "client", "request_headers", "request_body", "status", "response_headers",
                "response_body", "findings", "damage")
SUMMARY_COLUMNS = ("seq", "id", "session", "service", "operation", "scenario", "started_at", "duration_ms", "method",
                   "path", "status", "n_pass", "n_fail", "n_warning", "n_info", "damage")


def _same(value: Any) -> Any:
    return value


def encode(exchange: Exchange, body: Callable[[bytes], Any] = bytes, text: Callable[[Any], Any] = _same) -> tuple:
    """The row's values, in COLUMNS order."""
    counts = exchange.counts
    req, resp = exchange.request, exchange.response
    findings = _dumps([(f.requirement, f.outcome, f.message, f.location,
                        f.reject.status if f.reject else None, f.reject.code if f.reject else None)
                       for f in exchange.findings]) if exchange.findings else None
    return (text(exchange.id), text(exchange.session), text(exchange.service), text(exchange.operation),
            text(exchange.scenario), exchange.started_at, exchange.duration_ms, text(req.method), text(req.path),
            text(req.query_string), text(req.client), _dumps(req.headers), body(req.body), resp.status,
            _dumps(resp.headers), body(resp.body), counts["pass"], counts["fail"], counts["warning"], counts["info"],
            findings)


def placeholder(row: tuple, text: Callable[[Any], Any] = _same) -> tuple:
    """What is kept of a row the database cannot hold (a value over its limits, a type it cannot store): its id, path
    and status, short text and bounded numbers, no headers, bodies or findings."""
    short = [text(str(value)[:2000].encode("utf-8", "replace").decode("utf-8")) if value is not None else None
             for value in row]
    number = [value if isinstance(value, float | int) and not isinstance(value, bool) else 0 for value in row]
    return (short[0], short[1] or "-", short[2] or "-", short[3] or "-", short[4], float(bounded(number[5])),
            float(bounded(number[6])), short[7] or "-", short[8] or "-", short[9] or "", short[10] or "", "[]", b"",
            bounded(number[13]), "[]", b"", 0, 0, 0, 0, None)


def decode(row: tuple, with_findings: bool = True, read_body: Callable[[Any], bytes] = bytes,
           read_text: Callable[[Any], Any] = _same) -> Exchange:
    """A row (READ_COLUMNS) as the Exchange it records. A damaged part (JSON that does not parse, a body gone) is left
    empty and named in `damage`, so one bad row never stops a query, a report or the server."""
    (seq, ex_id, session, service, operation, scenario, started_at, duration_ms, method, path, query_string,
     client, req_headers, req_body, status, resp_headers, resp_body, findings, damage) = row
    damage = read_text(damage)
    problems = [damage] if damage else []

    def part(what: str, read, empty):
        try:
            return read()
        except (ValueError, TypeError, LookupError, BodyMissing) as error:
            problems.append(f"{what}: {error}")
            return empty

    exchange = Exchange(
        id=read_text(ex_id), session=read_text(session), service=read_text(service),
        operation=read_text(operation), scenario=read_text(scenario), started_at=started_at,
        duration_ms=duration_ms, seq=seq,
        findings=part("findings", lambda: decode_findings(findings), []) if with_findings else [],
        request=RecordedRequest(read_text(method), read_text(path), read_text(query_string),
                                part("request headers", lambda: decode_headers(req_headers), []),
                                part("request body", lambda: read_body(req_body), b""), read_text(client)),
        response=RecordedResponse(status, part("response headers", lambda: decode_headers(resp_headers), []),
                                  part("response body", lambda: read_body(resp_body), b"")))
    if problems:
        exchange.damage = "; ".join(problems)
    if len(problems) > (1 if damage else 0):  # found now (what was damaged when stored was logged then)
        log.warning("journal row %s (exchange %s) is damaged: %s", seq, ex_id, exchange.damage)
    return exchange


def summary(row: tuple, read_text: Callable[[Any], Any] = _same) -> dict:
    """A row (SUMMARY_COLUMNS) as a listing shows it."""
    (seq, ex_id, session, service, operation, scenario, started_at, duration_ms, method, path, status,
     n_pass, n_fail, n_warning, n_info, damage) = row
    shown = {"seq": seq, "id": read_text(ex_id), "session": read_text(session), "service": read_text(service),
             "operation": read_text(operation), "scenario": read_text(scenario), "started_at": started_at,
             "duration_ms": round(duration_ms, 3), "method": read_text(method), "path": read_text(path),
             "status": status, "findings": {"pass": n_pass, "fail": n_fail, "warning": n_warning, "info": n_info}}
    if damage:
        shown["damaged"] = read_text(damage)
    return shown


def finding(requirement: str, outcome: str, message: str, location: str, status: int | None,
            code: str | None) -> Finding:
    """One finding as its row keeps it (an item of the `findings` JSON)."""
    return Finding(requirement, Outcome(outcome), message, location,
                   SpineError(status, code) if status is not None else None)


def decode_findings(text: str | None) -> list[Finding]:
    return [finding(*item) for item in parse_json(text)] if text else []


def decode_headers(text: str) -> list[tuple[str, str]]:
    return [(str(name), str(value)) for name, value in parse_json(text)]


def bounded(value: Any) -> Any:
    """A number a database can bind (a 64-bit integer, a finite float): larger ones are clamped, so a value from a
    request never fails a query. Anything else is returned as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, int):
        return min(max(value, INT64[0]), INT64[1])
    return min(max(value, -1e300), 1e300) if value == value else 0.0
