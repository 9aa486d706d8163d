"""Session state in PostgreSQL. Each call is one statement, atomic on its own on every replica: a compare-and-set is
an UPDATE/INSERT whose WHERE clause is the comparison, a counter an upsert RETURNING its value, a claim an insert
that only replaces a claim that has expired. transaction() holds one connection for the thread, in a transaction
that takes an advisory lock first (the session's, or the whole store's), so transactions over one session run one
after another across every replica; state calls made inside it go through that connection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from sandbox.conformance.parsing import INT64
from sandbox.journal.postgres.database import Database, Transaction, execute, from_db, indexed, to_db
from sandbox.journal.store import SessionState, StateItem, VersionConflict, claim_until

_dumps = json.JSONEncoder(separators=(",", ":")).encode  # as the embedded backend: compact, ASCII
_loads = json.JSONDecoder().decode
FORGET_CLAIMS_EVERY_S = 60  # claim() and use() drop expired claims this often per process (no thread needed)

_ROW = "session = %s AND namespace = %s AND key = %s"
_UPSERT = ("INSERT INTO state (session, namespace, key, long_key, value, version) VALUES (%s, %s, %s, %s, %s, 1) "
           "ON CONFLICT (session, namespace, key) DO UPDATE SET value = EXCLUDED.value, long_key = EXCLUDED.long_key, "
           "version = state.version + 1 RETURNING version")
_UPSERT_UNREAD = _UPSERT.removesuffix(" RETURNING version")
_INSERT = "INSERT INTO state (session, namespace, key, long_key, value, version) VALUES (%s, %s, %s, %s, %s, 1)"
_CREATE = ("INSERT INTO state (session, namespace, key, long_key, value, version) VALUES (%s, %s, %s, %s, %s, 1) "
           "ON CONFLICT (session, namespace, key) DO NOTHING RETURNING version")
_SWAP = f"UPDATE state SET value = %s, version = version + 1 WHERE {_ROW} AND version = %s RETURNING version"
_COUNTER = ("INSERT INTO counters (session, name, value) VALUES (%s, %s, %s) ON CONFLICT (session, name) "
            f"DO UPDATE SET value = counters.value + (counters.value < {INT64[1]})::int RETURNING value")
_CLAIM = ("INSERT INTO claims (session, namespace, key, expires_at) VALUES (%s, %s, %s, %s) "
          "ON CONFLICT (session, namespace, key) DO UPDATE SET expires_at = EXCLUDED.expires_at "
          "WHERE claims.expires_at < %s RETURNING 1")
_FORGET_CLAIMS = "DELETE FROM claims WHERE expires_at < %s"
_INSERT_CLAIM = "INSERT INTO claims (session, namespace, key, expires_at) VALUES (%s, %s, %s, %s)"
_PUT_BLOB = ("INSERT INTO blobs (session, key, long_key, data) VALUES (%s, %s, %s, %b) ON CONFLICT (session, key) "
             "DO UPDATE SET data = EXCLUDED.data, long_key = EXCLUDED.long_key")


class PostgresState(SessionState):
    """Values, counters, claims and blobs; stamp() makes no promise (None), so nothing is cached across calls."""

    def __init__(self, db: Database):
        self._db = db
        self._forget_claims_at = time.monotonic() + FORGET_CLAIMS_EVERY_S

    # --- values ------------------------------------------------------------------------------------------------
    def get(self, session: str, namespace: str, key: str) -> StateItem | None:
        row = self._db.fetchone(f"SELECT value, version FROM state WHERE {_ROW}",
                                (to_db(session), to_db(namespace), _key(key)[0]), state=True)
        return StateItem(_loads(row[0]), row[1]) if row else None

    def put(self, session: str, namespace: str, key: str, value: Any, expect_version: int | None = None,
            create_only: bool = False) -> int:
        """One statement: an upsert; with create_only, an insert that does nothing when the key exists; with
        expect_version, an update of the row at that version. When it changes nothing, the version found is read
        for the VersionConflict."""
        data = _dumps(value)
        where, long_key = _key(key)
        row = (to_db(session), to_db(namespace), where)
        with self._db.connection(state=True) as conn:
            if create_only and expect_version is None:
                done = execute(conn, _CREATE, (*row, long_key, data)).fetchone()
            elif expect_version is not None and not create_only and _in_range(expect_version):
                done = execute(conn, _SWAP, (data, *row, int(expect_version))).fetchone()
            elif expect_version is None:
                done = execute(conn, _UPSERT, (*row, long_key, data)).fetchone()
            else:  # both create_only and expect_version, or a version no row can have: nothing to write
                done = None
            if done is not None:
                return done[0]
            found = execute(conn, f"SELECT version FROM state WHERE {_ROW}", row).fetchone()
        actual = found[0] if found else None
        raise VersionConflict(None if create_only and actual is not None else expect_version, actual)

    def write(self, session: str, namespace: str, key: str, value: Any, create_only: bool = False) -> None:
        """Inside transaction(), queued to go with the next statement: an upsert, or for create_only a plain insert
        whose unique key fails the block at its end if the key exists (Transaction raises VersionConflict then)."""
        if not self._db.in_transaction():
            self.put(session, namespace, key, value, create_only=create_only)
            return
        where, long_key = _key(key)
        self._db.run(_INSERT if create_only else _UPSERT_UNREAD,
                     (to_db(session), to_db(namespace), where, long_key, _dumps(value)), state=True)

    def items(self, session: str, namespace: str) -> dict[str, StateItem]:
        """By key, in code point order (the embedded backend's order)."""
        rows = self._db.fetchall("SELECT key, long_key, value, version FROM state WHERE session = %s AND namespace = %s",
                                 (to_db(session), to_db(namespace)), state=True)
        found = [(from_db(long_key or key), StateItem(_loads(value), version)) for key, long_key, value, version in rows]
        return dict(sorted(found, key=lambda item: item[0]))

    def delete(self, session: str, namespace: str, key: str | None = None) -> None:
        if key is None:
            self._db.run("DELETE FROM state WHERE session = %s AND namespace = %s",
                         (to_db(session), to_db(namespace)), state=True)
        else:
            self._db.run(f"DELETE FROM state WHERE {_ROW}", (to_db(session), to_db(namespace), _key(key)[0]),
                         state=True)

    def clear(self, session: str, namespace_prefix: str) -> None:
        self._db.run("DELETE FROM state WHERE session = %s AND starts_with(namespace, %s)",
                     (to_db(session), to_db(namespace_prefix)), state=True)

    # --- counters, claims, blobs ---------------------------------------------------------------------------------
    def next_counter(self, session: str, name: str, start: int = 0) -> int:
        """An upsert: `start` the first time, one more each time after, clamped to the signed 64-bit range."""
        start = min(max(int(start), INT64[0]), INT64[1])
        return self._db.fetchone(_COUNTER, (to_db(session), indexed(to_db(name)), start), state=True)[0]

    def claim(self, session: str, namespace: str, key: str, expires_at: float) -> bool:
        """An insert that replaces only an expired claim: of any number of replicas claiming a key at once, exactly
        one gets a row back."""
        self._forget_claims_now_and_then()
        row = self._db.fetchone(_CLAIM, (to_db(session), to_db(namespace), _key(key)[0], claim_until(expires_at),
                                         time.time()), state=True)
        return row is not None

    def use(self, session: str, namespace: str, key: str, expires_at: float) -> None:
        """Inside transaction(), two writes queued with the block's others: an expired claim of the key deleted, and
        a plain insert, whose unique key fails the block if the key is claimed (Transaction raises ClaimTaken)."""
        if not self._db.in_transaction():
            super().use(session, namespace, key, expires_at)
            return
        self._forget_claims_now_and_then()
        row = (to_db(session), to_db(namespace), _key(key)[0])
        self._db.run(f"DELETE FROM claims WHERE {_ROW} AND expires_at < %s", (*row, time.time()), state=True)
        self._db.run(_INSERT_CLAIM, (*row, claim_until(expires_at)), state=True)

    def _forget_claims_now_and_then(self) -> None:
        """Expired claims dropped now and then (once a minute per process; no thread needed), on a connection of
        their own, and never while this thread's transaction holds locks the deletion could wait for."""
        if time.monotonic() >= self._forget_claims_at and not self._db.holds_locks():
            self._forget_claims_at = time.monotonic() + FORGET_CLAIMS_EVERY_S
            self._db.rowcount(_FORGET_CLAIMS, (time.time(),))

    def claimed(self, session: str, namespace: str, key: str) -> bool:
        row = self._db.fetchone(f"SELECT expires_at >= %s FROM claims WHERE {_ROW}",
                                (time.time(), to_db(session), to_db(namespace), _key(key)[0]), state=True)
        return bool(row and row[0])

    def forget_expired_claims(self, now: float) -> int:
        now = float(now)
        return self._db.rowcount(_FORGET_CLAIMS, (now if now == now else 0.0,), state=True)

    def put_blob(self, session: str, key: str, data: bytes) -> None:
        where, long_key = _key(key)
        self._db.run(_PUT_BLOB, (to_db(session), where, long_key, bytes(data)), state=True)

    def get_blob(self, session: str, key: str) -> bytes | None:
        row = self._db.fetchone("SELECT data FROM blobs WHERE session = %s AND key = %s",
                                (to_db(session), _key(key)[0]), state=True)
        return bytes(row[0]) if row else None

    def delete_blobs(self, session: str, prefix: str) -> None:
        self._db.run("DELETE FROM blobs WHERE session = %s AND starts_with(coalesce(long_key, key), %s)",
                     (to_db(session), to_db(prefix)), state=True)

    # --- sessions and transactions -------------------------------------------------------------------------------
    def forget(self, sessions: Iterable[str]) -> None:
        names = [to_db(s) for s in sessions]
        if names:
            self._db.run("WITH s AS (DELETE FROM state WHERE session = ANY(%(s)s::text[])), "
                         "c AS (DELETE FROM counters WHERE session = ANY(%(s)s::text[])) "
                         "DELETE FROM blobs WHERE session = ANY(%(s)s::text[])", {"s": names}, state=True)

    def transaction(self, session: str | None = None) -> Transaction:
        """BEGIN and the advisory lock of the session (or of the whole store), sent with the block's first
        statement, the block's calls, COMMIT (ROLLBACK on an exception: its writes and claims are undone)."""
        return self._db.transaction(session)


def _key(key: str) -> tuple[str, str | None]:
    """A key as its row holds it: (the indexed key, the key itself when the indexed one is its digest)."""
    stored = to_db(key)
    where = indexed(stored)
    return where, (stored if where != stored else None)


def _in_range(version: Any) -> bool:
    return isinstance(version, int) and INT64[0] <= version <= INT64[1]

