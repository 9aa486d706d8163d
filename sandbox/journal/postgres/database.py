"""The connection to PostgreSQL every part of the store shares: one connection pool per process, opened on first use
(a server forks its workers after the store may have been created, and a pool's threads and connections must never
cross a fork), the thread's transaction connection, and how text and numbers are made safe to send.

Text: PostgreSQL refuses NUL in TEXT and Python's lone surrogates cannot be encoded at all, yet the journal keeps
whatever a client sent (a path with %00 in it). to_db() escapes those characters (and the escape character itself)
so that every string round-trips; strings without them, nearly all, are sent as they are. The escaping keeps
equality and prefixes (starts_with) meaning what they meant before it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from sandbox.journal import process
from sandbox.journal.rows import bounded

log = logging.getLogger(__name__)

# Statements sent to the database by this process (each execute, each pipeline sync): benchmarks read it per call.
# A plain int: an increment lost to a thread switch now and then is an acceptable error for a measurement.
ROUND_TRIPS = 0

POOL_SIZE = 32  # connections per process at most: a server's request threads share them
CONNECT_TIMEOUT_S = 10
IDLE_IN_TRANSACTION_MS = 5 * 60 * 1000  # far longer than any transaction() block takes between its statements
INDEXED_KEY_BYTES = 512  # a key longer than this is indexed by its digest (an index entry holds about 2,700 bytes)

_ESCAPE = "\x01"
_NEEDS_ESCAPE = re.compile("[\x00\x01\ud800-\udfff]")
_ESCAPED = re.compile("\x01(.)", re.DOTALL)
_SURROGATES = 0xF0000 - 0xD800  # a lone surrogate is kept as a character of plane 15 (private use) after the escape


class Database:
    """One store's way to the database: its schema's transaction lock key, and this process's pool for the store's
    connection string, shared with every other store open on it here (as the embedded backend shares its LMDB
    environment), and with it each thread's transaction."""

    def __init__(self, conninfo: str, lock_key: int):
        self.conninfo = conninfo
        self.lock_key = lock_key  # pg_advisory_xact_lock key of transaction(): one per store's schema
        self._pool: _Pool | None = None
        self._closed = False

    def _here(self) -> _Pool:
        """This process's pool, opened on first use; a child forked from a process that had one opens its own."""
        here = self._pool
        if here is not None and here.pid == process.pid():
            return here
        if self._closed:
            raise psycopg.OperationalError("the PostgreSQL store is closed")
        with _pools_lock:
            if self._pool is None or self._pool.pid != process.pid():  # the parent's is left to the parent
                here = _pools.get(self.conninfo)
                if here is None:
                    here = _pools[self.conninfo] = _Pool(self.conninfo)
                here.users += 1
                self._pool = here
            return self._pool

    @contextmanager
    def connection(self, state: bool = False) -> Iterator[psycopg.Connection]:
        """A pooled connection (autocommit) for one call; for a state call inside transaction(), the transaction's."""
        here = self._here()
        if state and here.local.conn is not None:
            yield here.local.conn
            return
        with here.pool.connection() as conn:
            yield conn

    def fetchall(self, sql: str, params: Any = None, state: bool = False) -> list[tuple]:
        with self.connection(state) as conn:
            return execute(conn, sql, params).fetchall()

    def fetchone(self, sql: str, params: Any = None, state: bool = False) -> tuple | None:
        with self.connection(state) as conn:
            return execute(conn, sql, params).fetchone()

    def rowcount(self, sql: str, params: Any = None, state: bool = False) -> int:
        with self.connection(state) as conn:
            cursor = execute(conn, sql, params)
            if self._pipelined(conn):
                self._here().local.syncs.sync()  # the count is known once the statement has run
            return cursor.rowcount

    def run(self, sql: str, params: Any = None, state: bool = False) -> None:
        """A write whose result nobody reads: in a transaction, queued to go with the next statement whose result is
        read (no round trip of its own); otherwise sent at once."""
        with self.connection(state) as conn:
            if self._pipelined(conn):
                conn.execute(sql, params)
            else:
                execute(conn, sql, params)

    def _pipelined(self, conn: psycopg.Connection) -> bool:
        return conn is self._here().local.conn

    def transaction(self) -> Transaction:
        return Transaction(self)

    def in_transaction(self) -> bool:
        """Whether this thread is inside transaction()."""
        return self._here().local.conn is not None

    def close(self) -> None:
        """Let go of this process's pool, closing it when no other store uses it (a parent's pool, inherited through
        a fork, is left to the parent). Once; the store is not used after."""
        if self._closed:
            return
        self._closed = True
        here, self._pool = self._pool, None
        if here is None or here.pid != process.pid():
            return
        with _pools_lock:
            here.users -= 1
            if here.users > 0:
                return
            _pools.pop(self.conninfo, None)
        here.pool.close()


class _Pool:
    """What one process holds for one connection string: its pool, the lock its threads queue on for
    transaction(), each thread's transaction connection."""

    def __init__(self, conninfo: str):
        self.pid = process.pid()
        self.users = 0
        self.pool = ConnectionPool(conninfo, min_size=1, max_size=POOL_SIZE, kwargs={"autocommit": True},
                                   configure=_configure, open=True, name="spine-sandbox")
        # Transactions are serialised across replicas by an advisory lock anyway: this process's threads queue here
        # first, so at most one pooled connection per process waits for that lock (the rest stay free for reads).
        self.writer = threading.Lock()
        self.local = _Local()


def _configure(conn: psycopg.Connection) -> None:
    """Each new connection: a replica that stops answering (paused, cut off) inside transaction() holds the lock every
    replica's transactions wait for; the server ends its session, and with it the lock, within minutes rather than
    the hours TCP takes by default to notice. Commits do not wait for the WAL's flush to disk (synchronous_commit
    off): a commit is in the database server's memory when it returns, so a killed replica loses nothing it answered,
    which is the embedded backend's promise too (a killed process, not a power cut); waiting for the flush cost about
    a millisecond a request here."""
    execute(conn, f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}; "
                  "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3; "
                  "SET synchronous_commit = off")


class _Local(threading.local):
    conn: psycopg.Connection | None = None  # the thread's transaction connection
    pipeline: ExitStack | None = None  # its pipeline mode, left at the end of the transaction
    syncs: psycopg.Pipeline | None = None  # that pipeline: sync() sends what is queued and waits for it
    depth = 0  # nested transaction() blocks inside the outer one


_pools: dict[str, _Pool] = {}  # this process's, by connection string
_pools_lock = threading.Lock()
_inherited: list[_Pool] = []  # a parent's pools, in a forked child


def _after_fork_in_child() -> None:
    """A child keeps nothing of its parent's pools: neither uses nor closes them (closing would close the parent's
    connections), and keeps them referenced so that they are never finalised either. Its stores open their own."""
    global _pools_lock
    _pools_lock = threading.Lock()  # the parent's may have been held by a thread that is not copied here
    _inherited.extend(_pools.values())
    _pools.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Transaction:
    """transaction(): one connection for the thread for the whole block, in pipeline mode; BEGIN and the store's
    advisory lock before anything else (every other transaction, on any replica, waits for this one), COMMIT at the
    end, ROLLBACK on an exception. A write whose result is not read (`run`) fails at the next statement read or at
    the COMMIT, and the block fails with it.
    A block inside another joins it. (A class, not a generator: it is entered on every request that changes state.)"""

    __slots__ = ("db", "here")

    def __init__(self, db: Database):
        self.db = db

    def __enter__(self) -> Transaction:
        here = self.here = self.db._here()
        local = here.local
        if local.conn is not None:
            local.depth += 1
            return self
        here.writer.acquire()
        try:
            conn = here.pool.getconn()
            pipeline = ExitStack()
            try:
                # Pipeline mode: statements queue, and go to the server together when a result is read. BEGIN and
                # the lock go with the block's first statement, and writes whose result nobody reads with the next
                # one (or the COMMIT): fewer round trips while every replica's transactions wait for this one.
                syncs = pipeline.enter_context(conn.pipeline())
                conn.execute("BEGIN")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.db.lock_key,))
            except BaseException:
                pipeline.close()
                here.pool.putconn(conn)
                raise
        except BaseException:
            here.writer.release()
            raise
        local.conn, local.pipeline, local.syncs = conn, pipeline, syncs
        return self

    def __exit__(self, kind, error, trace) -> None:
        here = self.here
        local = here.local
        if local.depth:
            local.depth -= 1
            return
        conn, pipeline = local.conn, local.pipeline
        local.conn = local.pipeline = local.syncs = None
        try:
            if kind is None:
                try:
                    execute(conn, "COMMIT")
                    pipeline.close()  # sends what is queued, the COMMIT with it; raises what any of it raised
                except BaseException:
                    _roll_back(conn, pipeline)
                    raise
            else:
                _roll_back(conn, pipeline)
        finally:
            here.pool.putconn(conn)  # a broken connection is discarded by the pool
            here.writer.release()


def _roll_back(conn: psycopg.Connection, pipeline: ExitStack) -> None:
    with suppress(psycopg.Error):
        pipeline.close()  # what was queued is sent, and fails in the aborted transaction
    try:
        execute(conn, "ROLLBACK")
    except psycopg.Error:  # the connection broke: the server rolls back; the block's error is the news
        log.warning("could not roll back a state transaction", exc_info=True)


def execute(conn: psycopg.Connection, sql: str, params: Any = None) -> psycopg.Cursor:
    """A statement; in a transaction's pipeline, queued (the round trip is counted when its results are read, or at
    the COMMIT, see `run`)."""
    counted()
    return conn.execute(sql, params)


def counted(round_trips: int = 1) -> None:
    global ROUND_TRIPS
    ROUND_TRIPS += round_trips


# --- values as the database takes them -------------------------------------------------------------------------
def to_db(text: Any) -> Any:
    """A string as stored: NUL, lone surrogates and the escape character escaped (anything else: as it is)."""
    if isinstance(text, str) and _NEEDS_ESCAPE.search(text):
        return _NEEDS_ESCAPE.sub(_escape, text)
    return text


def from_db(text: str | None) -> str | None:
    return _ESCAPED.sub(_unescape, text) if text is not None and _ESCAPE in text else text


def _escape(match: re.Match) -> str:
    c = match[0]
    return "\x01\x01" if c == "\x01" else "\x01\x02" if c == "\x00" else "\x01" + chr(ord(c) + _SURROGATES)


def _unescape(match: re.Match) -> str:
    c = match[1]
    return "\x01" if c == "\x01" else "\x00" if c == "\x02" else chr(ord(c) - _SURROGATES)


def indexed(stored: str) -> str:
    """A stored (escaped) key as its index entry: itself, or, when too long for an index, its digest. Escaped text
    never holds the escape character followed by '#', so a digest cannot be mistaken for a key."""
    if len(stored) * 4 <= INDEXED_KEY_BYTES or len(stored.encode()) <= INDEXED_KEY_BYTES:
        return stored
    return "\x01#" + hashlib.sha256(stored.encode()).hexdigest()


def row_limit(value: int | None) -> int | None:
    """A LIMIT: negative (SQLite's "no limit") and None mean all (LIMIT NULL)."""
    return None if value is None or value < 0 else bounded(value)


# --- opening -----------------------------------------------------------------------------------------------------
def conninfo(url: str) -> tuple[str, str]:
    """The connection string with this sandbox's defaults (what the URL says wins), and where it points, for messages
    (host, port and database; never the password)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as error:
        raise ValueError(f"the database URL is not a PostgreSQL connection URL: {first_line(error)}") from None
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    params.setdefault("application_name", "spine-sandbox")
    where = (f"PostgreSQL at {params.get('host') or 'the local socket'}:{params.get('port') or 5432}, "
             f"database {params.get('dbname') or params.get('user') or '(default)'!r}")
    return make_conninfo(**params), where


def connect(conninfo: str, where: str) -> psycopg.Connection:
    """One connection for opening the store; an error says, in one line, where and what to do."""
    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as error:
        reason = first_line(error)
        hint = ("create it first (createdb)" if re.search(r'database ".*" does not exist', reason)
                else "check SANDBOX_DATABASE_URL, and that the server is running and accepts this user")
        raise ConnectionError(f"cannot connect to {where}: {reason}; {hint}") from None


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__
