"""Named sessions and attestations: each write one statement, committed when the call returns."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from sandbox.journal.postgres.database import Database, execute, from_db, to_db
from sandbox.journal.rows import bounded
from sandbox.journal.store import Attestation, SessionRecord, Sessions, VersionConflict

_SESSION_COLUMNS = "id, created_at, plan, supplier, system, token_hash"


class PostgresSessions(Sessions):
    def __init__(self, db: Database):
        self._db = db

    def create(self, record: SessionRecord) -> None:
        """The id and the token hash are unique keys: a taken one fails the insert, on whichever replica."""
        try:
            with self._db.connection() as conn:
                execute(conn, f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
                        (to_db(record.id), bounded(record.created_at), to_db(record.plan), to_db(record.supplier),
                         to_db(record.system), to_db(record.token_hash)))
        except psycopg.errors.UniqueViolation:
            raise VersionConflict(None, 1) from None

    def get(self, session_id: str) -> SessionRecord | None:
        row = self._db.fetchone(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = %s", (to_db(session_id),))
        return _record(row) if row else None

    def for_token(self, token_hash: str) -> SessionRecord | None:
        row = self._db.fetchone(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE token_hash = %s", (to_db(token_hash),))
        return _record(row) if row else None

    def all(self) -> list[SessionRecord]:
        return [_record(row) for row in
                self._db.fetchall(f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY created_at, id")]

    def attest(self, attestation: Attestation) -> Attestation:
        a = attestation
        (seq,) = self._db.fetchone(
            "INSERT INTO attestations (session, requirement, verdict, attested_by, note, at) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq",
            (to_db(a.session), to_db(a.requirement), to_db(a.verdict), to_db(a.by), to_db(a.note), bounded(a.at)))
        return Attestation(**{**a.__dict__, "seq": seq})

    def attestations(self, session: str) -> list[Attestation]:
        rows = self._db.fetchall("SELECT session, requirement, verdict, attested_by, note, at, seq FROM attestations "
                                 "WHERE session = %s ORDER BY seq", (to_db(session),))
        return [Attestation(*(from_db(v) for v in row[:5]), row[5], row[6]) for row in rows]

    def forget(self, sessions: Iterable[str]) -> None:
        names = [to_db(s) for s in sessions]
        if names:
            self._db.rowcount("WITH a AS (DELETE FROM attestations WHERE session = ANY(%(s)s::text[])) "
                              "DELETE FROM sessions WHERE id = ANY(%(s)s::text[])", {"s": names})


def _record(row: tuple) -> SessionRecord:
    id_, created_at, plan, supplier, system, token_hash = row
    return SessionRecord(from_db(id_), created_at, from_db(plan), from_db(supplier), from_db(system),
                         from_db(token_hash))
