"""Counts over a session's journal, each one query: the finding index is filled by record() itself, so every count
includes every exchange recorded (by any replica) before the call."""

from __future__ import annotations

import json
import logging

from sandbox.conformance.findings import Finding
from sandbox.conformance.parsing import INT64
from sandbox.journal.postgres.database import Database, from_db, row_limit, to_db
from sandbox.journal.rows import bounded, finding
from sandbox.journal.store import CoverageCell, FindingTotal, SessionSpan, Totals

log = logging.getLogger(__name__)

_SAMPLES = """
WITH places AS (
    (SELECT exchange_seq, position FROM finding_index WHERE session = %(s)s AND requirement = %(r)s AND outcome = %(o)s
     ORDER BY exchange_seq, position LIMIT %(first)s)
    UNION
    (SELECT exchange_seq, position FROM finding_index WHERE session = %(s)s AND requirement = %(r)s AND outcome = %(o)s
     ORDER BY exchange_seq DESC, position DESC LIMIT %(last)s)
)
SELECT p.exchange_seq, p.position, e.findings FROM places p JOIN exchanges e ON e.seq = p.exchange_seq
ORDER BY p.exchange_seq, p.position
"""
# As SQLite's CAST((started_at - start) / width AS INTEGER): truncated toward zero, clamped to 64 bits, NULL for a
# width of 0. In numeric: float8 arithmetic raises on overflow and underflow, which an absurd start or width reaches.
_TIMELINE = f"""
SELECT bucket, count(*), count(*) FILTER (WHERE n_fail > 0)
FROM exchanges,
     LATERAL (SELECT trunc((started_at::numeric - %s::float8::numeric) / NULLIF(%s::float8::numeric, 0)) AS x) r,
     LATERAL (SELECT CASE WHEN r.x IS NULL OR r.x = 'NaN' THEN NULL
                          ELSE LEAST(GREATEST(r.x, {INT64[0]}), {INT64[1]})::bigint END AS bucket) b
WHERE session = %s GROUP BY bucket ORDER BY bucket NULLS FIRST
"""


class PostgresTotals(Totals):
    def __init__(self, db: Database):
        self._db = db

    def findings(self, session: str) -> list[FindingTotal]:
        rows = self._db.fetchall("SELECT requirement, outcome, count(*) FROM finding_index WHERE session = %s "
                                 "GROUP BY requirement, outcome ORDER BY requirement, outcome", (to_db(session),))
        return [FindingTotal(from_db(r), from_db(o), n) for r, o, n in rows]

    def coverage(self, session: str) -> list[CoverageCell]:
        rows = self._db.fetchall(
            "SELECT f.requirement, e.scenario, f.outcome, count(*) FROM finding_index f "
            "JOIN exchanges e ON e.seq = f.exchange_seq WHERE f.session = %s "
            "GROUP BY f.requirement, e.scenario, f.outcome ORDER BY 1, 2 NULLS FIRST, 3", (to_db(session),))
        return [CoverageCell(from_db(r), from_db(s), from_db(o), n) for r, s, o, n in rows]

    def scenarios(self, session: str) -> dict[str | None, int]:
        rows = self._db.fetchall("SELECT scenario, count(*) FROM exchanges WHERE session = %s GROUP BY scenario",
                                 (to_db(session),))
        return {from_db(scenario): n for scenario, n in rows}

    def samples(self, session: str, requirement: str, outcome: str, first: int, last: int) -> list[tuple[int, Finding]]:
        rows = self._db.fetchall(_SAMPLES, {"s": to_db(session), "r": to_db(requirement), "o": to_db(outcome),
                                            "first": row_limit(first), "last": row_limit(last)})
        decoded: dict[int, list] = {}
        samples = []
        for seq, position, findings in rows:
            try:
                if seq not in decoded:
                    decoded[seq] = json.loads(findings)
                samples.append((seq, finding(*decoded[seq][position])))
            except (ValueError, TypeError, LookupError):  # a damaged row: shown as such by the exchange itself
                log.warning("findings of journal row %s are damaged; left out of the sample", seq)
        return samples

    def span(self, session: str) -> SessionSpan:
        count, first, last, failed = self._db.fetchone(
            "SELECT count(*), min(started_at), max(started_at), count(*) FILTER (WHERE n_fail > 0) FROM exchanges "
            "WHERE session = %s", (to_db(session),))
        return SessionSpan(count, first, last, failed)

    def timeline(self, session: str, start: float, width: float) -> list[tuple[int, int, int]]:
        rows = self._db.fetchall(_TIMELINE, (_number(start), _number(width), to_db(session)))
        return [tuple(row) for row in rows]

    def operations(self, session: str) -> list[tuple[str, str, int, int]]:
        rows = self._db.fetchall("SELECT service, operation, status, count(*) FROM exchanges WHERE session = %s "
                                 "GROUP BY service, operation, status ORDER BY service, operation, status",
                                 (to_db(session),))
        return [(from_db(service), from_db(operation), status, n) for service, operation, status, n in rows]


def _number(value: float) -> float | None:
    """A float parameter: NaN as NULL (SQLite binds it so), anything else finite."""
    value = float(value)
    return None if value != value else float(bounded(value))
