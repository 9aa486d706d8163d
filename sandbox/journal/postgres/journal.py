"""The journal in PostgreSQL: each exchange, its finding index rows and its history keys go in with one statement, in
one round trip, committed (autocommit) before record() returns; every replica's queries see it from then on."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from itertools import islice

import psycopg

from sandbox.journal import rows as exchange_rows
from sandbox.journal.exchange import Exchange
from sandbox.journal.postgres.database import (
    Database,
    counted,
    execute,
    from_db,
    indexed,
    row_limit,
    to_db,
)
from sandbox.journal.rows import bounded
from sandbox.journal.store import ExchangeFilter, Journal, filter_sql

log = logging.getLogger(__name__)

_INSERT = """
WITH e AS (
    INSERT INTO exchanges (id, session, service, operation, scenario, started_at, duration_ms, method, path,
                           query_string, client, request_headers, request_body, status, response_headers,
                           response_body, n_pass, n_fail, n_warning, n_info, findings, damage)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %b, %s, %s, %b, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (id) DO NOTHING
    RETURNING seq, session
), f AS (
    INSERT INTO finding_index (session, requirement, outcome, exchange_seq, position)
    SELECT e.session, r.requirement, r.outcome, e.seq, r.position - 1
    FROM e, unnest(%s::text[], %s::text[]) WITH ORDINALITY AS r (requirement, outcome, position)
), k AS (
    INSERT INTO exchange_keys (session, key, exchange_seq)
    SELECT e.session, k.key, e.seq FROM e, unnest(%s::text[]) AS k (key)
)
SELECT seq FROM e
"""
_COLUMNS = ", ".join(exchange_rows.READ_COLUMNS)
_SUMMARY_COLUMNS = ", ".join(exchange_rows.SUMMARY_COLUMNS)
MANY_BATCH = 1000  # record_many's rows per pipeline
# What a row that cannot be stored as it is raises (a number out of range, a value of a type PostgreSQL cannot take,
# a value over its limits); it is stored as a placeholder marked damaged instead. Anything else (the database is
# gone) fails the call.
_ROW_ERRORS = (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError, psycopg.errors.ProgramLimitExceeded,
               OverflowError, ValueError, TypeError)


class PostgresJournal(Journal):
    """Append-only; `seq` (an identity column, one sequence for every replica) is the order rows were inserted in.
    Every write commits before it returns."""

    def __init__(self, db: Database):
        self._db = db

    def record(self, exchange: Exchange, keys: Iterable[str] = (), history: bool = True,
               newest_only: Iterable[str] = ()) -> None:
        """One statement (one round trip): the exchange, its finding index rows and its keys, committed together.
        A `newest_only` key is indexed as any other: `newest` finds it there."""
        with self._db.connection() as conn:
            _insert(conn, exchange, {*keys, *newest_only})

    def record_many(self, exchanges: Iterable[Exchange]) -> int:
        """One transaction; the rows go in a batch at a time, each batch in one pipeline."""
        n = 0
        with self._db.connection() as conn, conn.transaction():
            for batch in _batches(exchanges, MANY_BATCH):
                try:
                    with conn.transaction():  # a savepoint: a batch with a row that fails is done again row by row
                        _insert_batch(conn, batch)
                except _ROW_ERRORS:
                    for exchange in batch:
                        _insert(conn, exchange, (), savepoint=True)
                n += len(batch)
        return n

    def exchange(self, exchange_id: str) -> Exchange | None:
        row = self._db.fetchone(f"SELECT {_COLUMNS} FROM exchanges WHERE id = %s", (to_db(exchange_id),))
        return _exchange(row) if row else None

    def exchanges(self, where: ExchangeFilter, limit: int = 100, before: int | None = None) -> list[dict]:
        sql, args = _where(where)
        if before is not None:
            sql += " AND seq < %s"
            args.append(bounded(before))
        rows = self._db.fetchall(f"SELECT {_SUMMARY_COLUMNS} FROM exchanges WHERE {sql} ORDER BY seq DESC LIMIT %s",
                                 (*args, _limit(limit)))
        return [_summary(row) for row in rows]

    def count_exchanges(self, where: ExchangeFilter) -> int:
        sql, args = _where(where)
        return self._db.fetchone(f"SELECT count(*) FROM exchanges WHERE {sql}", args)[0]

    def iter_exchanges(self, session: str, batch: int = 500) -> Iterator[Exchange]:
        """In batches, each its own query: no connection is held while the caller works through a batch."""
        last = 0
        while True:
            rows = self._db.fetchall(f"SELECT {_COLUMNS} FROM exchanges WHERE session = %s AND seq > %s ORDER BY seq "
                                     "LIMIT %s", (to_db(session), last, batch))
            if not rows:
                return
            yield from (_exchange(row) for row in rows)
            last = rows[-1][0]

    def related(self, session: str, key: str, limit: int = 1) -> list[Exchange]:
        rows = self._db.fetchall(
            f"SELECT {', '.join('e.' + c for c in exchange_rows.READ_COLUMNS)} FROM exchange_keys k "
            "JOIN exchanges e ON e.seq = k.exchange_seq WHERE k.session = %s AND k.key = %s "
            "ORDER BY k.exchange_seq DESC LIMIT %s", (to_db(session), _key(key), _limit(limit)))
        return [_exchange(row, with_findings=False) for row in rows]

    def latest(self, session: str, service: str, limit: int = 1) -> list[Exchange]:
        rows = self._db.fetchall(f"SELECT {_COLUMNS} FROM exchanges WHERE session = %s AND service = %s "
                                 "ORDER BY seq DESC LIMIT %s", (to_db(session), to_db(service), _limit(limit)))
        return [_exchange(row, with_findings=False) for row in rows]

    def newest(self, session: str, service: str, keys: Iterable[str]) -> tuple[dict[str, Exchange], Exchange | None]:
        """One query (one round trip) for every key and the latest exchange."""
        wanted = {_key(key): key for key in keys}
        rows = self._db.fetchall(
            f"SELECT q.key, {', '.join('e.' + c for c in exchange_rows.READ_COLUMNS)} FROM unnest(%(keys)s::text[]) AS q (key) "
            "CROSS JOIN LATERAL (SELECT k.exchange_seq FROM exchange_keys k WHERE k.session = %(session)s "
            "AND k.key = q.key ORDER BY k.exchange_seq DESC LIMIT 1) AS k JOIN exchanges e ON e.seq = k.exchange_seq "
            f"UNION ALL (SELECT NULL, {_COLUMNS} FROM exchanges WHERE session = %(session)s AND service = %(service)s "
            "ORDER BY seq DESC LIMIT 1)",
            {"keys": list(wanted), "session": to_db(session), "service": to_db(service)})
        found, latest = {}, None
        for key, *row in rows:
            if key is None:
                latest = _exchange(row, with_findings=False)
            else:
                found[wanted[key]] = _exchange(row, with_findings=False)
        return found, latest

    def exchanges_by_seq(self, seqs: Iterable[int]) -> list[Exchange]:
        wanted = sorted({bounded(seq) for seq in seqs})
        if not wanted:
            return []
        rows = self._db.fetchall(f"SELECT {_COLUMNS} FROM exchanges WHERE seq = ANY(%s::bigint[]) ORDER BY seq",
                                 (wanted,))
        return [_exchange(row) for row in rows]

    def last_activity(self) -> dict[str, float]:
        rows = self._db.fetchall("SELECT session, max(started_at) FROM exchanges GROUP BY session")
        return {from_db(session): last for session, last in rows}

    def forget(self, sessions: Iterable[str]) -> int:
        names = [to_db(s) for s in sessions]
        if not names:
            return 0
        return self._db.fetchone(
            "WITH f AS (DELETE FROM finding_index WHERE session = ANY(%(s)s::text[])), "
            "k AS (DELETE FROM exchange_keys WHERE session = ANY(%(s)s::text[])), "
            "e AS (DELETE FROM exchanges WHERE session = ANY(%(s)s::text[]) RETURNING 1) SELECT count(*) FROM e",
            {"s": names})[0]


def _limit(value: int) -> int | None:
    return row_limit(value) if isinstance(value, int) else value


def _key(key: str) -> str:
    return indexed(to_db(key))


def _where(where: ExchangeFilter) -> tuple[str, list]:
    return filter_sql(where, "%s", lambda value: bounded(to_db(value)))


# --- rows ----------------------------------------------------------------------------------------------------------
def _insert(conn: psycopg.Connection, exchange: Exchange, keys: Iterable[str], savepoint: bool = False) -> None:
    """Insert the exchange (a duplicate id is ignored); one PostgreSQL cannot hold goes in as a placeholder with
    what can be kept, marked damaged (as the embedded journal does). Sets exchange.seq. Inside a transaction, with
    `savepoint`, so that a failed row does not fail the transaction."""
    row = _row(exchange)
    try:
        with conn.transaction() if savepoint else nullcontext():
            found = execute(conn, _INSERT, _params(exchange, row, keys)).fetchone()
    except _ROW_ERRORS as error:
        reason = (f"the exchange could not be journaled whole ({type(error).__name__}: {str(error)[:200]}); "
                  "its headers, bodies and findings are left out")
        log.error("journal row %r: %s", str(row[0])[:40], reason)
        found = execute(conn, _INSERT, (*exchange_rows.placeholder(row, to_db), to_db(reason), [], [], [])).fetchone()
    if found is not None:
        exchange.seq = found[0]


def _insert_batch(conn: psycopg.Connection, batch: list[Exchange]) -> None:
    counted()  # a pipeline: one sync
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT, [_params(exchange, _row(exchange), ()) for exchange in batch], returning=True)
        for exchange in batch:
            found = cursor.fetchone()
            if found is not None:
                exchange.seq = found[0]
            cursor.nextset()


def _params(exchange: Exchange, row: tuple, keys: Iterable[str]) -> tuple:
    """_INSERT's parameters: the row, no damage, the finding index (requirements, outcomes) and the keys."""
    findings = exchange.findings
    keys = sorted({_key(k) for k in keys if isinstance(k, str)})
    return (*row, None, [to_db(f.requirement) for f in findings], [to_db(str(f.outcome)) for f in findings], keys)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    items = iter(items)
    while batch := list(islice(items, size)):
        yield batch


def _row(exchange: Exchange) -> tuple:
    return exchange_rows.encode(exchange, text=to_db)


def _exchange(row: tuple, with_findings: bool = True) -> Exchange:
    return exchange_rows.decode(row, with_findings, read_text=from_db)


def _summary(row: tuple) -> dict:
    return exchange_rows.summary(row, read_text=from_db)
