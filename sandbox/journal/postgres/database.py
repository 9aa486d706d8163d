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
from sandbox.journal.store import ClaimTaken, VersionConflict, joinable

log = logging.getLogger(__name__)

# Statements each thread has sent to the database (each execute, each pipeline sync): benchmarks and tests read it
# before and after a call, unmoved by other threads' work (a store's maintenance, another test's leftovers).
_sent = threading.local()

POOL_SIZE = 32  # connections per process at most, or two per request thread if that is more (see Database)
MAX_WRITERS = 1024  # in-process locks kept for transactions' advisory lock keys
CONNECT_TIMEOUT_S = 10
IDLE_IN_TRANSACTION_MS = 5 * 60 * 1000  # far longer than any transaction() block takes between its statements
WHOLE_BLOCK_BYTES = 256 * 1024  # a write-only transaction carrying more data than this is not sent quoted as text
INDEXED_KEY_BYTES = 512  # a key longer than this is indexed by its digest (an index entry holds about 2,700 bytes)

_ESCAPE = "\x01"
_NEEDS_ESCAPE = re.compile("[\x00\x01\ud800-\udfff]")
_ESCAPED = re.compile("\x01(.)", re.DOTALL)
_SURROGATES = 0xF0000 - 0xD800  # a lone surrogate is kept as a character of plane 15 (private use) after the escape


class Database:
    """One store's way to the database: its schema's transaction lock key, and this process's pool for the store's
    connection string, shared with every other store open on it here (as the embedded backend shares its LMDB
    environment), and with it each thread's transaction."""

    def __init__(self, conninfo: str, lock_key: int, threads: int = 1):
        self.conninfo = conninfo
        # A request holds one connection (held()) and may need a second inside a transaction, for a call that is
        # not part of it: two per request thread (and a few for background work), so that no request waits for a
        # connection another one holds.
        self.pool_size = max(POOL_SIZE, 2 * threads + 8)
        self.lock_key = lock_key  # the advisory lock key of transactions over the whole store: one per schema
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
                    here = _pools[self.conninfo] = _Pool(self.conninfo, self.pool_size)
                here.users += 1
                self._pool = here
            return self._pool

    @contextmanager
    def connection(self, state: bool = False) -> Iterator[psycopg.Connection]:
        """The connection for one call: for a state call inside transaction(), the transaction's; otherwise the one
        held() keeps for the thread, or one from the pool (autocommit)."""
        here = self._here()
        local = here.local
        if local.conn is not None:
            if state:
                if local.pipeline is None:  # a read: the block's BEGIN, lock and queued writes go before it
                    local.pipeline, local.syncs = _begin(local.conn, local.lock, local.queued)
                    local.queued = []
                yield local.conn
                return
        elif local.held is not None:
            conn = here.held()
            try:
                yield conn
            except psycopg.OperationalError as error:
                here.if_lost(conn, error)
                raise
            return
        with here.pool.connection() as conn:
            yield conn

    @contextmanager
    def held(self) -> Iterator[None]:
        """One connection for every call this thread makes in the block (a request's), taken from the pool once
        rather than at each call; transaction() uses it too. Nested blocks share the outer one's."""
        here = self._here()
        local = here.local
        if local.held is not None:
            yield
            return
        local.held = here.pool.getconn()
        try:
            yield
        finally:
            conn, local.held = local.held, None
            here.pool.putconn(conn)  # a broken connection is discarded by the pool

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
        """A write whose result nobody reads: in a transaction, queued to go with the block's next read, or with its
        end (no round trip of its own); otherwise sent at once."""
        local = self._here().local
        if state and local.conn is not None:
            if local.pipeline is None:
                local.queued.append((sql, params))
            else:
                local.conn.execute(sql, params)  # pipeline mode: sent, its result read with the next one's
            return
        with self.connection(state) as conn:
            execute(conn, sql, params)

    def _pipelined(self, conn: psycopg.Connection) -> bool:
        return conn is self._here().local.conn

    def transaction(self, session: str | None = None) -> Transaction:
        return Transaction(self, session)

    def session_lock_key(self, session: str) -> int:
        """The advisory lock key of transactions over one session: the store's key and the session's name together
        (a collision between two sessions only makes their transactions wait for each other)."""
        digest = hashlib.blake2b(session.encode("utf-8", "surrogatepass"), digest_size=8,
                                 key=self.lock_key.to_bytes(8, "big", signed=True)).digest()
        return int.from_bytes(digest, "big", signed=True)

    def in_transaction(self) -> bool:
        """Whether this thread is inside transaction()."""
        return self._here().local.conn is not None

    def holds_locks(self) -> bool:
        """Whether this thread's transaction has begun on the server (it may hold locks other connections wait for)."""
        return self._here().local.pipeline is not None

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
    """What one process holds for one connection string: its pool, the locks its threads queue on for
    transaction(), each thread's transaction connection."""

    def __init__(self, conninfo: str, size: int):
        self.pid = process.pid()
        self.users = 0
        self.pool = ConnectionPool(conninfo, min_size=1, max_size=size, kwargs={"autocommit": True},
                                   configure=_configure, open=True, name="spine-sandbox")
        self._writers: dict[int, threading.Lock] = {}
        self._writers_guard = threading.Lock()
        self.local = _Local()

    def held(self) -> psycopg.Connection | None:
        """The connection Database.held() keeps for this thread; one closed earlier in the block (it was lost) is
        replaced, so that one failed call does not fail the rest of a request."""
        conn = self.local.held
        if conn is not None and conn.closed:
            self.pool.putconn(conn)
            conn = self.local.held = self.pool.getconn()
        return conn

    def if_lost(self, conn: psycopg.Connection, error: psycopg.OperationalError) -> None:
        """When the error says the connection is gone (the server ended it, restarting; the network dropped), it is
        not used again, and the pool's idle connections, likely gone the same way, are tested and replaced."""
        sqlstate = error.sqlstate or ""
        if conn.broken or not sqlstate or sqlstate.startswith(("08", "57P")):
            conn.close()
            self.pool.check()

    def writer(self, key: int) -> threading.Lock:
        """What this process's threads queue on before they wait for the advisory lock `key`: transactions over one
        session run one at a time anyway, so at most one pooled connection per process waits for each lock (the
        rest stay free, for the calls a lock's holder makes outside its transaction)."""
        with self._writers_guard:
            lock = self._writers.get(key)
            if lock is None:
                if len(self._writers) >= MAX_WRITERS:  # forget the idle ones now and then
                    self._writers = {k: busy for k, busy in self._writers.items() if busy.locked()}
                lock = self._writers[key] = threading.Lock()
            return lock


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
    scope: str | None = None  # the session its transaction is over (None: the whole store)
    lock: tuple[str, tuple] | None = None  # the statement taking the transaction's advisory lock, and its keys
    queued: list[tuple[str, Any]] | None = None  # the transaction's writes not yet sent (it has not begun)
    held: psycopg.Connection | None = None  # the connection held() keeps for the thread
    pipeline: ExitStack | None = None  # the transaction's pipeline mode once it has begun, left at its end
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
    """transaction(): one connection for the thread for the whole block; its writes are queued until it reads.
    A block that only writes (the usual: a request's changes, made once its answer is known) is sent at its end as
    one query string, its lock first: PostgreSQL runs the statements of one query string as one transaction, so the
    block costs one statement and one round trip. A block that reads begins before its first read, in pipeline mode:
    BEGIN, the lock and the writes queued so far go with the read, COMMIT at the end (ROLLBACK on an exception).
    Over a session, the lock is that session's, taken after a shared hold of the store's lock; over the whole store,
    the store's lock itself: so a block's statements wait only for those of blocks over the same session or over the
    whole store, on every replica. A queued write that fails (a create-only conflict, a claim taken) fails the block
    at its next read or at its end. A block inside another joins it, if the outer one covers it (store.joinable).
    (A class, not a generator: it is entered on every request that changes state.)"""

    __slots__ = ("db", "session", "here", "writer")

    def __init__(self, db: Database, session: str | None):
        self.db = db
        self.session = session

    def __enter__(self) -> Transaction:
        here = self.here = self.db._here()
        local = here.local
        if local.conn is not None:
            joinable(local.scope, self.session)
            local.depth += 1
            return self
        if self.session is None:
            lock = (_LOCK_STORE, (self.db.lock_key,))
        else:
            lock = (_LOCK_SESSION, (self.db.lock_key, self.db.session_lock_key(self.session)))
        writer = self.writer = here.writer(lock[1][-1])
        writer.acquire()
        try:
            local.conn = here.held() or here.pool.getconn()
        except BaseException:
            writer.release()
            raise
        local.lock, local.queued, local.scope = lock, [], self.session
        return self

    def __exit__(self, kind, error, trace) -> None:
        here = self.here
        local = here.local
        if local.depth:
            local.depth -= 1
            return
        conn, pipeline, lock, queued = local.conn, local.pipeline, local.lock, local.queued
        local.conn = local.pipeline = local.syncs = local.scope = local.lock = local.queued = None
        try:
            if kind is None:
                if pipeline is not None:
                    _commit(conn, pipeline)
                elif queued:
                    _send_whole(conn, lock, queued)
            else:
                if pipeline is not None:
                    _roll_back(conn, pipeline)
                if isinstance(error, psycopg.OperationalError):
                    here.if_lost(conn, error)
                _raise_conflict(error)
        except psycopg.OperationalError as failed:
            here.if_lost(conn, failed)
            raise
        finally:
            if conn is not local.held:
                here.pool.putconn(conn)  # a broken connection is discarded by the pool
            self.writer.release()


def _begin(conn: psycopg.Connection, lock: tuple[str, tuple],
           queued: list[tuple[str, Any]]) -> tuple[ExitStack, psycopg.Pipeline]:
    """Begin a transaction on the server: pipeline mode, BEGIN, the lock and the writes queued so far, all sent with
    the statement that follows. Returns the pipeline to leave at the end and the pipeline itself (to sync)."""
    pipeline = ExitStack()
    try:
        syncs = pipeline.enter_context(conn.pipeline())
        conn.execute("BEGIN")
        conn.execute(*lock)
        for sql, params in queued:
            conn.execute(sql, params)
    except BaseException:
        _roll_back(conn, pipeline)
        raise
    return pipeline, syncs


def _commit(conn: psycopg.Connection, pipeline: ExitStack) -> None:
    try:
        execute(conn, "COMMIT")
        pipeline.close()  # sends what is queued, the COMMIT with it; raises what any of it raised
    except BaseException as failed:
        _roll_back(conn, pipeline)
        _raise_conflict(failed)
        raise


def _send_whole(conn: psycopg.Connection, lock: tuple[str, tuple], queued: list[tuple[str, Any]]) -> None:
    """A block that only wrote: its lock and its writes as one query string (the simple query protocol, values
    quoted by the driver), one transaction on the server, one round trip. A block carrying much data (a MESH chunk)
    goes in pipeline mode instead, where values travel as parameters rather than quoted in the text."""
    if sum(_size(params) for _, params in queued) > WHOLE_BLOCK_BYTES:
        _commit(conn, _begin(conn, lock, queued)[0])
        return
    quote = psycopg.ClientCursor(conn).mogrify
    text = "; ".join([quote(*lock), *(quote(sql, params) for sql, params in queued)])
    try:
        execute(conn, text)
    except psycopg.Error as failed:  # the server has rolled the whole query string back
        _raise_conflict(failed)
        raise


def _size(params: Any) -> int:
    values = params.values() if isinstance(params, dict) else params or ()
    return sum(len(v) for v in values if isinstance(v, (str, bytes, bytearray, memoryview)))


# The store's lock held shared, then the session's exclusively: PostgreSQL evaluates a select list in order, so no
# transaction ever holds a session's lock while it waits for the store's (which could deadlock with one over the
# whole store).
_LOCK_SESSION = "SELECT pg_advisory_xact_lock_shared(%s), pg_advisory_xact_lock(%s)"
_LOCK_STORE = "SELECT pg_advisory_xact_lock(%s)"


def _raise_conflict(error: BaseException | None) -> None:
    """A unique key broken by a queued write is what it stands for: a claim taken already (SessionState.use), or a
    VersionConflict (SessionState.write with create_only); every other insert says what to do on conflict."""
    if isinstance(error, psycopg.errors.UniqueViolation):
        if error.diag.table_name == "claims":
            raise ClaimTaken(None, None) from error
        raise VersionConflict(None, None) from error


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
    _sent.round_trips = sent() + round_trips


def sent() -> int:
    """The round trips this thread has made so far."""
    return getattr(_sent, "round_trips", 0)


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
