"""The embedded backend: the journal, its totals and the sessions in SQLite (WAL mode, one connection per thread, safe
across worker processes); session state in an LMDB file beside it (sandbox.journal.state), so a request's state
changes never wait for the journal's imports.

Recording an exchange appends it to this process's spool (sandbox.journal.spool); spooled exchanges are imported in
batches by the background thread of one process (the others' stand by), and before any query that reads exchanges, so
every query sees every exchange answered before it began. An exchange's findings are kept in its own row; the finding
index, which reports and filters query by requirement, holds each exchange once, under its finding set (the
requirement and outcome of each of its findings: a few sets serve most exchanges), and is filled as exchanges are
imported. Writers queue on a lock file; the same background thread copies the WAL back into the database
(checkpoints) and syncs the state file.

The background thread gives up the GIL to the threads answering requests at every system call and statement, and
getting it back costs CPU of its own (some 50 µs each time on a busy two-core server, more than most statements): so
it imports many rows to a statement, reads spool files in large chunks, and imports a twentieth of a second's worth of
exchanges at a time.

No SQLite connection or lock file crosses a fork: close() closes every thread's handles and waits for the
maintenance thread, and a child process never uses (nor closes) connections it inherited. A connection still open in
the parent when a server forked its workers shared SQLite's per-file lock bookkeeping with them; once the parent
closed it, the workers went on with a deleted WAL index and waited in the busy handler for ever.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: SQLite's busy handler alone serialises writers
    fcntl = None

from sandbox.conformance.findings import Finding
from sandbox.journal import bodies, process, recent, space, spool
from sandbox.journal import rows as exchange_rows
from sandbox.journal.exchange import Exchange
from sandbox.journal.state import LmdbState
from sandbox.journal.store import (
    Attestation,
    CoverageCell,
    ExchangeFilter,
    FindingTotal,
    Journal,
    SessionRecord,
    Sessions,
    SessionSpan,
    Store,
    Totals,
    VersionConflict,
    filter_sql,
)

log = logging.getLogger(__name__)

# Made by SCHEMA, and by _migrate in a journal written before them.
_EXCHANGE_KEYS = """CREATE TABLE IF NOT EXISTS exchange_keys (
    session TEXT NOT NULL,
    key TEXT NOT NULL,
    exchange_seq INTEGER NOT NULL,
    PRIMARY KEY (session, key, exchange_seq)
) WITHOUT ROWID"""
# Every finding of every indexed exchange, one row each, as the store's filters query it (store.filter_sql).
_FINDING_INDEX = """CREATE VIEW IF NOT EXISTS finding_index AS
SELECT x.session, s.requirement, s.outcome, x.exchange_seq, s.position
FROM finding_set_entries s JOIN exchange_findings x ON x.finding_set = s.finding_set"""
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS exchanges (
    seq INTEGER PRIMARY KEY,  -- never reused: exchanges are never deleted (no AUTOINCREMENT page write per insert)
    id TEXT NOT NULL UNIQUE,
    session TEXT NOT NULL,
    service TEXT NOT NULL,
    operation TEXT NOT NULL,
    scenario TEXT,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query_string TEXT NOT NULL,
    client TEXT NOT NULL,
    request_headers TEXT NOT NULL,
    request_body BLOB NOT NULL,
    status INTEGER NOT NULL,
    response_headers TEXT NOT NULL,
    response_body BLOB NOT NULL,
    n_pass INTEGER NOT NULL, n_fail INTEGER NOT NULL, n_warning INTEGER NOT NULL, n_info INTEGER NOT NULL,
    findings TEXT,  -- JSON [[requirement, outcome, message, location, rejected_status, rejected_code], ...]; NULL: none
    damage TEXT  -- NULL, or why the row could not be stored whole (what was kept of it is still shown)
);
CREATE INDEX IF NOT EXISTS exchanges_session ON exchanges (session, seq);
-- The rows that refer to each body file (journal/bodies.py): a forget asks whether any row still does.
CREATE INDEX IF NOT EXISTS exchanges_request_files ON exchanges (request_body) WHERE typeof(request_body) = 'text';
CREATE INDEX IF NOT EXISTS exchanges_response_files ON exchanges (response_body) WHERE typeof(response_body) = 'text';
CREATE TABLE IF NOT EXISTS journal_meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
{_EXCHANGE_KEYS};
-- The finding index. An exchange is indexed under its finding set: the requirement and outcome of each of its
-- findings, in order. Most exchanges share their set with many others, so an exchange is one entry in
-- exchange_findings whatever the number of its findings.
CREATE TABLE IF NOT EXISTS finding_sets (
    id INTEGER PRIMARY KEY,
    findings TEXT NOT NULL UNIQUE  -- JSON [[requirement, outcome] or null (a finding left out of the index), ...]
);
CREATE TABLE IF NOT EXISTS finding_set_entries (
    finding_set INTEGER NOT NULL,
    position INTEGER NOT NULL,  -- the finding's place in its exchange's findings
    requirement TEXT NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (finding_set, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS finding_set_requirements ON finding_set_entries (requirement, outcome, finding_set);
CREATE TABLE IF NOT EXISTS exchange_findings (
    finding_set INTEGER NOT NULL,  -- first: the index is read a set at a time, with or without a session
    session TEXT NOT NULL,
    exchange_seq INTEGER NOT NULL,
    PRIMARY KEY (finding_set, session, exchange_seq)
) WITHOUT ROWID;
{_FINDING_INDEX};
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    plan TEXT,
    supplier TEXT NOT NULL,
    system TEXT NOT NULL,
    token_hash TEXT UNIQUE
);
CREATE TABLE IF NOT EXISTS attestations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    requirement TEXT NOT NULL,
    verdict TEXT NOT NULL,
    by TEXT NOT NULL,
    note TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attestations_session ON attestations (session, seq);
"""

TIDY_EVERY_S = 0.5
# A checkpoint syncs the WAL and the database to disk: done often, it keeps the disk busy writing pages that the next
# commits change again.
CHECKPOINT_EVERY_S = 2.0
FORGET_CLAIMS_EVERY_S = 60
# How often the maintaining process imports what has been spooled. A round has a cost of its own whatever it imports
# (at each of its system calls and statements the thread gives up the GIL and pays to get it back), so rounds import
# many exchanges at once; but a round holds its worker's GIL for about 25 µs an exchange, and a pinned worker's
# threads do not preempt it (sandbox.web.server), so requests on that worker wait for the round: a quarter of a
# second's worth (1,000 exchanges at 4,000 a second) put 30 ms on the PDS benchmark's p99, a twentieth 20-24 ms.
# Queries import what is spooled first, so they see every exchange whatever the interval.
IMPORT_EVERY_S = 0.05
SPOOL_RETRY_S = 1.0  # after a spool write failed (a full disk): exchanges go straight into SQLite for this long
IMPORT_BATCH = 256  # records read from each spool file per import transaction (other writers get a turn between)
# An exchange is about 2 KiB (headers, bodies, findings): a 4 KiB page holds one and is half empty, an 8 KiB page
# holds three, so the journal writes (and checkpoints) about 30% fewer bytes per exchange. Only a new journal takes it.
JOURNAL_PAGE_SIZE = 8192
# How long a statement waits for another connection's lock before it fails (nothing waits for ever): writers queue
# on the lock file first, so SQLite's own wait is for a checkpoint or a recovery, which take milliseconds.
BUSY_TIMEOUT_MS = 30_000
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # the WAL file is cut back to this once a checkpoint has emptied it
INDEX_BATCH = 5000  # exchanges whose findings are indexed per transaction

SPOOLED_THROUGH = "spool "  # journal_meta: "spool <file name>" -> the offset imported through

INDEXED_THROUGH = "findings indexed through"  # journal_meta: the last exchange seq whose findings are indexed
_EXCHANGE_COLUMNS = ", ".join(exchange_rows.READ_COLUMNS)
_INSERT_EXCHANGE = ("INSERT OR IGNORE INTO exchanges (id, session, service, operation, scenario, started_at, "
                    "duration_ms, method, path, query_string, client, request_headers, request_body, status, "
                    "response_headers, response_body, n_pass, n_fail, n_warning, n_info, findings) VALUES "
                    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_INSERT_KEY = "INSERT OR IGNORE INTO exchange_keys SELECT ?, ?, seq FROM exchanges WHERE id = ?"
# Whether any row refers to a body file: two lookups in the partial indexes of references (the typeof() terms let
# SQLite use them), not a scan of every row.
_REFERRED_TO = ("SELECT 1 FROM exchanges WHERE typeof(request_body) = 'text' AND request_body = ?1 UNION ALL "
                "SELECT 1 FROM exchanges WHERE typeof(response_body) = 'text' AND response_body = ?1 LIMIT 1")
# The same, for many rows at once (_insert_all): `VALUES (…), (…), …` follows.
_INSERT_EXCHANGES = _INSERT_EXCHANGE[:_INSERT_EXCHANGE.index(" VALUES ")] + " VALUES "
_INSERT_KEYS = "INSERT OR IGNORE INTO exchange_keys (session, key, exchange_seq) VALUES "
_FINDINGS = 20  # a row's findings (JSON)
_compact = json.JSONEncoder(separators=(",", ":")).encode
ROWS_PER_INSERT = 64  # the most rows one INSERT statement takes
_STARTED_AT = 5  # a row's started_at, by which spooled exchanges are put in order
_SUMMARY_COLUMNS = ", ".join(exchange_rows.SUMMARY_COLUMNS)
# What a row that cannot be stored as it is (a value over SQLite's limits or of a type it cannot hold) raises; it is
# then stored as a placeholder marked damaged. Anything else (a full disk, a lock) fails the whole import.
_ROW_ERRORS = (sqlite3.DataError, sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
               OverflowError, ValueError, TypeError)


def open_embedded(path: str) -> Store:
    """The journal at `path` (":memory:": in memory, its state and bodies in a temporary folder removed on close),
    with its session state in <journal>.state.lmdb."""
    scratch = tempfile.mkdtemp(prefix="spine-sandbox-") if path == ":memory:" else None
    beside = Path(scratch, "journal") if scratch else Path(path)
    if not scratch:
        beside.parent.mkdir(parents=True, exist_ok=True)
        _refuse_another_layout(path)
    state = LmdbState(str(beside.with_suffix(".state.lmdb")))
    try:
        journal = SqliteJournal(path, bodies.BodyFiles(Path(str(beside) + ".bodies")), state)
    except BaseException:
        state.close()
        raise
    return Store(journal, SqliteTotals(journal), SqliteSessions(journal), state,
                 on_close=lambda: scratch and shutil.rmtree(scratch, ignore_errors=True))


class SqliteJournal(Journal):
    def __init__(self, path: str | Path, body_files: bodies.BodyFiles, state: LmdbState):
        """`state` is the session state beside it: the maintenance thread syncs its file and forgets its expired
        claims."""
        self.path = str(path)
        self._local = threading.local()
        self._maintainer: int | None = None  # the process its maintenance thread runs in
        self._maintenance: threading.Thread | None = None
        self._closed = threading.Event()
        # Every thread's connection and lock files in this process: close() closes them all, not just its own.
        self._handles: list[_Handles] = []
        self._handles_lock = threading.Lock()
        self._spool_folder = None if self.path == ":memory:" or fcntl is None else Path(self.path + ".spool")
        self._spool: spool.SpoolWriter | None = None
        self._spool_retry_at = 0.0  # after a failed spool write: when to try a new spool file
        self._imported_sizes: dict[str, int] = {}  # spool file -> a size it was seen imported to the end of
        self._warned_full_at = -10.0
        self._bodies = body_files
        self._state = state
        _journals.add(self)
        self._db().executescript(SCHEMA)
        self._migrate()
        self._fresh(tidy=True)  # what a process killed before its import left spooled (later, if the disk is full)

    # --- connections -------------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        return self._thread_handles().db

    def _thread_handles(self) -> _Handles:
        handles = getattr(self._local, "handles", None)
        if handles is None or handles.closed or handles.pid != process.pid():
            handles = self._local.handles = _Handles(self.path)
            with self._handles_lock:
                self._handles.append(handles)
        if handles.db is None:
            handles.db = _connect(self.path, page_size=JOURNAL_PAGE_SIZE)
            self._start_maintainer()
        return handles

    def _start_maintainer(self) -> None:
        if self.path == ":memory:" or self._maintainer == process.pid():
            return
        self._maintainer = process.pid()  # one per process: threads do not survive a fork
        self._maintenance = threading.Thread(target=_maintain, args=(weakref.ref(self), self._closed), daemon=True,
                                             name="journal-maintenance")
        self._maintenance.start()

    def _write(self):
        """A write transaction on the journal's database (inside another, part of it)."""
        return self._transaction(self._db(), None)

    @contextmanager
    def _transaction(self, db: sqlite3.Connection, lock_path: str | None):
        if db.in_transaction:
            yield db
            return
        with self._writers(lock_path):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _writers(self, lock_path: str | None = None):
        """Writers queue on a lock file, and each wakes the moment the one before it is done. (SQLite's own busy
        handler, left to itself, polls: a writer that finds the lock taken sleeps 1, 2, 5… ms, idle, every time.)"""
        lock_path = lock_path or (None if self.path == ":memory:" else self.path + ".lock")
        if fcntl is None or lock_path is None:
            yield
            return
        fd = self._thread_handles().lock(lock_path)
        # Waits only for a writer inside a transaction, which SQLite's busy timeout bounds; a killed holder's lock is
        # released by the kernel, and no descriptor of it lives on in a forked child (see _after_fork_in_child).
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._spool is not None and self._spool.pid == process.pid():
            self._spool.close()
            self.catch_up(tidy=True)  # this process's spool, now abandoned, is imported whole and removed
        self._closed.set()
        maintenance = self._maintenance
        if (maintenance is not None and maintenance is not threading.current_thread()
                and self._maintainer == process.pid()):
            maintenance.join(timeout=10)  # it closes its own connection on the way out
        self._release()
        with self._handles_lock:  # every other thread's handles too: none may be open when a server forks workers
            handles, self._handles = self._handles, []
        for each in handles:
            if each.pid == process.pid():
                each.close()
        _journals.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _release(self) -> None:
        """Close this thread's connection and lock files."""
        handles = getattr(self._local, "handles", None)
        self._local.handles = None
        if handles is not None and handles.pid == process.pid():
            with self._handles_lock:
                if handles in self._handles:
                    self._handles.remove(handles)
            handles.close()

    def _after_fork_in_child(self) -> None:
        """A forked child keeps nothing of the parent's: its lock files are closed (their locks are the parent's) and
        its connections are left unused for good (closing one could checkpoint, or delete, the parent's WAL)."""
        self._handles_lock = threading.Lock()  # the parent's may have been held by a thread that is not here
        inherited, self._handles = self._handles, []
        if any(h.db is not None for h in inherited):
            log.warning("journal connections were open in process %d when it forked; the child opens its own",
                        inherited[0].pid)
        for handles in inherited:
            handles.abandon()
        self._maintenance = None
        if self._spool is not None and self._spool.pid != process.pid():
            self._spool.abandon_inherited()

    # --- the journal -------------------------------------------------------------------------------------------
    def record(self, exchange: Exchange, keys: Iterable[str] = (), history: bool = True,
               newest_only: Iterable[str] = ()) -> None:
        """Spooled: durable against a killed process once this returns, and in every query from then on (in the index
        of newest exchanges only with `history`: a write transaction less, 8-12% of a MESH send). A `newest_only` key
        is in that index alone: not in exchange_keys, where each key new to the journal costs a page of its own."""
        keys = sorted(set(keys))
        with self._bodies_lock(exclusive=False) if _may_refer(exchange) else nullcontext():
            row = (*_row(exchange, self._bodies), keys)
            self._spool_or_insert(exchange, row)
        if not history:
            return
        # After the journal has it, so that an entry always stands for a journaled exchange. The exchange is journaled
        # whatever happens here: a failure costs later checks this exchange, not the answer its id.
        try:
            self._state.put_newest(exchange.session, [*keys, *newest_only, recent.latest_key(exchange.service)],
                                   exchange.started_at, recent.entry(row))
        except Exception as error:
            log.warning("exchange %s is journaled but not in the index of newest exchanges: %s", exchange.id, error)

    def _spool_or_insert(self, exchange: Exchange, row: tuple) -> None:
        writer = self._spool_writer()
        if writer is not None:
            try:
                writer.append(row)
                return
            except spool.SpoolFull as error:
                # A new spool file is tried after a pause (the disk may have room again by then); meanwhile the
                # exchange goes straight into SQLite, which raises in turn if there is no room there either.
                log.warning("the journal spool could not be written (%s); recording exchange %s directly", error,
                            exchange.id)
                self._spool, self._spool_retry_at = None, time.monotonic() + SPOOL_RETRY_S
        with self._write() as db:
            self._insert_rows(db, [row])

    def _spool_writer(self) -> spool.SpoolWriter | None:
        if self._spool_folder is None or self._closed.is_set() or time.monotonic() < self._spool_retry_at:
            return None
        writer = self._spool
        if writer is None or writer.pid != process.pid():  # none yet, or the parent's, inherited through a fork
            with self._handles_lock:  # one writer, even when several threads record the first exchanges at once
                writer = self._spool
                if writer is None or writer.pid != process.pid():
                    self._start_maintainer()
                    try:
                        writer = self._spool = spool.SpoolWriter(self._spool_folder)
                    except OSError as error:  # e.g. no room for a new file
                        log.warning("no journal spool file could be made (%s); recording directly", error)
                        self._spool, self._spool_retry_at = None, time.monotonic() + SPOOL_RETRY_S
                        return None
        return writer

    def catch_up(self, tidy: bool = False) -> int:
        """Import every exchange any process has spooled, in the order they began; return how many. With `tidy`,
        also remove the spool files of processes that have ended, once they are imported."""
        if self._spool_folder is None:
            return 0
        found = list(spool.spool_files(self._spool_folder))
        if not found:
            return 0
        files = [(name, path) for name, path, _ in found]
        count = 0
        # A file no bigger than when it was last seen imported to its end holds nothing new: the journal is not asked.
        if any(self._imported_sizes.get(name) != size for name, _, size in found):
            imported = self._spooled_through(self._db())
            if any(size > imported.get(name, 0) for name, _, size in found):
                while True:
                    with self._write() as db:
                        imported = self._spooled_through(db)
                        pending = [(name, *spool.read(path, imported.get(name, 0), IMPORT_BATCH))
                                   for name, path in files]
                        rows = sorted((row for _, read, _ in pending for row in read),
                                      key=lambda row: row[_STARTED_AT])
                        self._insert_rows(db, rows)
                        db.executemany("INSERT OR REPLACE INTO journal_meta VALUES (?, ?)",
                                       [(SPOOLED_THROUGH + name, end) for name, read, end in pending if read])
                    imported.update((name, end) for name, read, end in pending if read)
                    count += len(rows)
                    if all(len(read) < IMPORT_BATCH for _, read, _ in pending):
                        break
            # An offset imported only grows (until the file is removed), so what holds now holds from now on.
            self._imported_sizes = {name: size for name, _, size in found if imported.get(name, 0) >= size}
        if tidy:
            self._remove_ended(files)
        return count

    def _remove_ended(self, files: list[tuple[str, Path]]) -> None:
        ended = [(name, path) for name, path in files if spool.is_abandoned(path)]  # once ended, always ended
        if not ended:
            return
        with self._write() as db:
            imported = self._spooled_through(db)
            for name, path in ended:
                if not path.exists():
                    continue  # removed by another process meanwhile
                rows, end = spool.read(path, imported.get(name, 0), 1)
                if rows:
                    continue  # written just before its process ended: imported next round
                size = path.stat().st_size
                if size > end:
                    log.error("journal spool %s ends in %d bytes that are not a whole record (a write cut short "
                              "or damaged); they are left out of the journal", path, size - end)
                path.unlink()
                db.execute("DELETE FROM journal_meta WHERE name = ?", (SPOOLED_THROUGH + name,))

    @staticmethod
    def _spooled_through(db: sqlite3.Connection) -> dict[str, int]:
        rows = db.execute("SELECT name, value FROM journal_meta WHERE name >= ? AND name < ?",
                          (SPOOLED_THROUGH, SPOOLED_THROUGH[:-1] + "!"))
        return {name[len(SPOOLED_THROUGH):]: value for name, value in rows}

    @staticmethod
    def _insert_rows(db: sqlite3.Connection, rows: list[tuple]) -> None:
        """Insert spooled rows (an exchange's values, then its keys) and their keys; index their findings too, while
        they are at hand, if every exchange before them is indexed (else _index_findings reads them back later)."""
        newest = SqliteJournal._newest(db)
        try:
            _insert_all(db, _INSERT_EXCHANGES, [row[:-1] for row in rows])
            whole = True
        except _ROW_ERRORS:  # one row SQLite cannot hold: the others go in as they are, that one as a placeholder
            for row in rows:
                _insert_row(db, row[:-1])
            whole = False
        inserted = dict(db.execute("SELECT id, seq FROM exchanges WHERE seq > ?", (newest,)).fetchall())
        keys = [(row[1], key, row[0]) for row in rows if isinstance(row[-1], list) for key in row[-1]
                if isinstance(key, str)]
        # A row left out (its id already journaled) has its keys join the row journaled before under that id.
        _insert_all(db, _INSERT_KEYS, [(s, key, inserted[id_]) for s, key, id_ in keys if id_ in inserted])
        db.executemany(_INSERT_KEY, [key for key in keys if key[2] not in inserted])
        if whole and inserted and SqliteJournal._indexed_through(db) == newest:
            journaled: dict = {}
            for row in rows:
                journaled.setdefault(row[0], row)  # of rows with the same id, the first went in
            _index(db, [(seq, journaled[id_][1], journaled[id_][_FINDINGS]) for id_, seq in inserted.items()])
            db.execute("INSERT OR REPLACE INTO journal_meta VALUES (?, ?)", (INDEXED_THROUGH, max(inserted.values())))

    def record_many(self, exchanges: Iterable[Exchange]) -> int:
        self.catch_up()  # what is already spooled goes first, so seq keeps the order of recording
        n = 0
        with self._bodies_lock(exclusive=False), self._write() as db:  # rows may refer to body files (record())
            for exchange in exchanges:
                self._insert(db, exchange)
                n += 1
        return n

    def _fresh(self, index: bool = False, tidy: bool = False) -> None:
        """Before a query: import what is spooled (and, with `index`, index findings). When the disk is full that
        cannot be done, and the query answers from what is already imported rather than failing."""
        try:
            if index:
                self.index_findings()
            else:
                self.catch_up(tidy=tidy)
        except (sqlite3.Error, OSError) as error:
            if not space.out_of_space(error):
                raise
            if time.monotonic() >= self._warned_full_at + 10:  # said once in a while, not on every query
                self._warned_full_at = time.monotonic()
                log.warning("the journal could not import what is spooled (%s); answering from what it holds", error)

    def index_findings(self) -> None:
        """Bring the finding index up to date with every recorded exchange (queries by requirement need it)."""
        self.catch_up()
        self._index_findings(1)

    def _index_findings(self, backlog: int) -> None:
        """Index the findings of exchanges imported without theirs (inserted directly, or after a row that could not
        be; in a journal made before finding sets, all of them), a batch per transaction so that writers get turns
        between, while at least `backlog` exchanges wait."""
        db = self._db()
        while self._unindexed(db) >= backlog:
            with self._write() as db:
                start = self._indexed_through(db)
                last = min(self._newest(db), start + INDEX_BATCH)
                _index(db, db.execute("SELECT seq, session, findings FROM exchanges WHERE seq > ? AND seq <= ? "
                                      "AND findings IS NOT NULL", (start, last)).fetchall())
                db.execute("INSERT OR REPLACE INTO journal_meta VALUES (?, ?)", (INDEXED_THROUGH, last))

    def _maintaining(self) -> bool:
        """Whether this process maintains the journal: the first whose maintenance thread asks holds the maintainer
        lock file for as long as that thread runs, and the others' threads stand by until it ends. Every process
        importing in turn would do the same work in more, smaller rounds, each at a round's cost."""
        if fcntl is None or self.path == ":memory:":
            return True
        fd = self._thread_handles().lock(self.path + ".maintainer")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held already: held still
            return True
        except BlockingIOError:
            return False

    def _migrate(self) -> None:
        """Bring a journal written before exchange keys were a table of their own index (WITHOUT ROWID) and before
        finding sets up to date: the keys are copied over, and the finding index, one row per finding then, is made
        again from the exchanges' own findings (by _index_findings, in batches). The first process to open it does
        this, in one transaction; the others find it done."""
        if not _outdated(self._db()):
            return
        with self._write() as db:
            outdated = _outdated(db)  # again, holding the lock: another process may have done it meanwhile
            if "exchange_keys" in outdated:
                log.info("journal %s: moving the exchange keys into a table of their own", self.path)
                db.execute("ALTER TABLE exchange_keys RENAME TO exchange_keys_before")
                db.execute(_EXCHANGE_KEYS)
                db.execute("INSERT OR IGNORE INTO exchange_keys SELECT session, key, exchange_seq "
                           "FROM exchange_keys_before ORDER BY session, key, exchange_seq")
                db.execute("DROP TABLE exchange_keys_before")  # and its index
            if "finding_index" in outdated:
                log.info("journal %s: the finding index is made again, by finding set, in the background", self.path)
                db.execute("DROP TABLE finding_index")
                db.execute(_FINDING_INDEX)
                db.execute("DELETE FROM exchange_findings")
                db.execute("INSERT OR REPLACE INTO journal_meta VALUES (?, 0)", (INDEXED_THROUGH,))

    @staticmethod
    def _unindexed(db: sqlite3.Connection) -> int:
        """How many exchanges' findings wait to be indexed (one statement: the maintenance thread asks every round)."""
        return db.execute("SELECT coalesce((SELECT max(seq) FROM exchanges), 0) - coalesce((SELECT value "
                          "FROM journal_meta WHERE name = ?), 0)", (INDEXED_THROUGH,)).fetchone()[0]

    @staticmethod
    def _newest(db: sqlite3.Connection) -> int:
        return db.execute("SELECT max(seq) FROM exchanges").fetchone()[0] or 0

    @staticmethod
    def _indexed_through(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM journal_meta WHERE name = ?", (INDEXED_THROUGH,)).fetchone()
        return row[0] if row else 0

    def _insert(self, db: sqlite3.Connection, exchange: Exchange) -> None:
        exchange.seq = _insert_row(db, _row(exchange, self._bodies))

    def _exchange(self, row, with_findings: bool = True) -> Exchange:
        return exchange_rows.decode(row, with_findings, self._read_body)

    def _read_body(self, value: bytes | str) -> bytes:
        """A body in its row (a BLOB), or in the file its reference (TEXT) names."""
        return self._bodies.get(value) if isinstance(value, str) else bytes(value)

    def exchange(self, exchange_id: str) -> Exchange | None:
        self._fresh()
        row = self._db().execute(f"SELECT {_EXCHANGE_COLUMNS} FROM exchanges WHERE id = ?", (exchange_id,)).fetchone()
        return self._exchange(row) if row else None

    def exchanges(self, where: ExchangeFilter, limit: int = 100, before: int | None = None) -> list[dict]:
        self._fresh()
        sql, args = self._where(where)
        if before is not None:
            sql += " AND seq < ?"
            args.append(exchange_rows.bounded(before))
        rows = self._db().execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM exchanges e WHERE {sql} ORDER BY seq DESC LIMIT ?",
            (*args, exchange_rows.bounded(limit)))
        return [exchange_rows.summary(r) for r in rows]

    def count_exchanges(self, where: ExchangeFilter) -> int:
        self._fresh()
        sql, args = self._where(where)
        return self._db().execute(f"SELECT count(*) FROM exchanges e WHERE {sql}", args).fetchone()[0]

    def iter_exchanges(self, session: str, batch: int = 500) -> Iterator[Exchange]:
        self._fresh()
        last = 0
        db = self._db()
        while True:
            rows = db.execute(f"SELECT {_EXCHANGE_COLUMNS} FROM exchanges WHERE session = ? AND seq > ? ORDER BY seq "
                              "LIMIT ?", (session, last, batch)).fetchall()
            if not rows:
                return
            yield from (self._exchange(row) for row in rows)
            last = rows[-1][0]

    def related(self, session: str, key: str, limit: int = 1) -> list[Exchange]:
        if limit == 1:
            return self._indexed(session, key)
        self._fresh()
        rows = self._db().execute(
            f"SELECT {', '.join('e.' + c for c in exchange_rows.READ_COLUMNS)} FROM exchange_keys k "
            "JOIN exchanges e ON e.seq = k.exchange_seq WHERE k.session = ? AND k.key = ? "
            "ORDER BY k.exchange_seq DESC LIMIT ?", (session, key, exchange_rows.bounded(limit)))
        return [self._exchange(row, with_findings=False) for row in rows]

    def latest(self, session: str, service: str, limit: int = 1) -> list[Exchange]:
        if limit == 1:
            return self._indexed(session, recent.latest_key(service))
        self._fresh()
        rows = self._db().execute(f"SELECT {_EXCHANGE_COLUMNS} FROM exchanges WHERE session = ? AND service = ? "
                                  "ORDER BY seq DESC LIMIT ?", (session, service, exchange_rows.bounded(limit)))
        return [self._exchange(row, with_findings=False) for row in rows]

    def newest(self, session: str, service: str, keys: Iterable[str]) -> tuple[dict[str, Exchange], Exchange | None]:
        latest = recent.latest_key(service)
        found = recent.exchanges(self._state.newest(session, [*keys, latest]), self.exchange)
        return found, found.pop(latest, None)

    def _indexed(self, session: str, key: str) -> list[Exchange]:
        """The newest exchange under the key, from the index kept as exchanges are recorded (recent.py)."""
        return [recent.exchange(entry, self.exchange) for entry in self._state.newest(session, [key]).values()]

    def exchanges_by_seq(self, seqs: Iterable[int]) -> list[Exchange]:
        self._fresh()
        seqs = sorted({exchange_rows.bounded(seq) for seq in seqs})
        found: list[Exchange] = []
        for start in range(0, len(seqs), 500):  # SQLite caps the number of parameters
            chunk = seqs[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db().execute(f"SELECT {_EXCHANGE_COLUMNS} FROM exchanges WHERE seq IN ({marks}) ORDER BY seq",
                                      chunk)
            found.extend(self._exchange(row) for row in rows)
        return found

    def last_activity(self) -> dict[str, float]:
        self._fresh()
        return dict(self._db().execute("SELECT session, max(started_at) FROM exchanges GROUP BY session").fetchall())

    def forget(self, sessions: Iterable[str]) -> int:
        """Deleted a session at a time, so that writers get turns between. A body file goes with the last row that
        refers to it."""
        self._fresh()
        forgotten = 0
        for session in sessions:
            with self._write() as db:
                files = {value for (value,) in db.execute(
                    "SELECT request_body FROM exchanges WHERE session = ?1 AND typeof(request_body) = 'text' UNION "
                    "SELECT response_body FROM exchanges WHERE session = ?1 AND typeof(response_body) = 'text'",
                    (session,))}
                forgotten += db.execute("DELETE FROM exchanges WHERE session = ?", (session,)).rowcount
                db.execute("DELETE FROM exchange_findings WHERE finding_set IN (SELECT id FROM finding_sets) "
                           "AND session = ?", (session,))
                db.execute("DELETE FROM exchange_keys WHERE session = ?", (session,))
                # SQLite gives a new row the highest seq + 1: with the newest rows gone, seqs are given again, and
                # the finding index must index them again.
                db.execute("UPDATE journal_meta SET value = min(value, ?) WHERE name = ?",
                           (self._newest(db), INDEXED_THROUGH))
            if files:
                self._remove_unreferenced(files)
            self._state.forget_newest(session)
        return forgotten

    def _remove_unreferenced(self, references: set[str]) -> None:
        """Remove the body files no row refers to any more. Another session may refer to one in an exchange being
        recorded right now: recording holds the body lock shared from the file's put() to the row's spooling, so,
        holding it exclusively, every such row is in the spool, and imported here, before the rows are asked."""
        with self._bodies_lock(exclusive=True):
            self.catch_up()
            db = self._db()
            kept = {value for value in references if db.execute(_REFERRED_TO, (value,)).fetchone()}
        for reference in references - kept:
            self._bodies.remove(reference)

    @contextmanager
    def _bodies_lock(self, exclusive: bool):
        """The body lock (a lock file beside the journal), shared or exclusive across processes."""
        if fcntl is None or self.path == ":memory:":
            yield
            return
        fd = self._thread_handles().lock(self.path + ".bodies.lock")
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _where(self, where: ExchangeFilter) -> tuple[str, list]:
        if where.requirement is not None:
            self._fresh(index=True)
        return filter_sql(where, "?", exchange_rows.bounded)


class SqliteSessions(Sessions):
    """Sessions and attestations, in the journal's database."""

    def __init__(self, journal: SqliteJournal):
        self._journal = journal

    def create(self, record: SessionRecord) -> None:
        try:
            with self._journal._write() as db:
                db.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?)",
                           (record.id, record.created_at, record.plan, record.supplier, record.system,
                            record.token_hash))
        except sqlite3.IntegrityError:
            raise VersionConflict(None, 1) from None

    def get(self, session_id: str) -> SessionRecord | None:
        row = self._journal._db().execute("SELECT id, created_at, plan, supplier, system, token_hash FROM sessions "
                                 "WHERE id = ?", (session_id,)).fetchone()
        return SessionRecord(*row) if row else None

    def for_token(self, token_hash: str) -> SessionRecord | None:
        row = self._journal._db().execute("SELECT id, created_at, plan, supplier, system, token_hash FROM sessions "
                                 "WHERE token_hash = ?", (token_hash,)).fetchone()
        return SessionRecord(*row) if row else None

    def all(self) -> list[SessionRecord]:
        rows = self._journal._db().execute("SELECT id, created_at, plan, supplier, system, token_hash FROM sessions "
                                  "ORDER BY created_at, id")
        return [SessionRecord(*r) for r in rows]

    def attest(self, attestation: Attestation) -> Attestation:
        with self._journal._write() as db:
            cursor = db.execute("INSERT INTO attestations (session, requirement, verdict, by, note, at) "
                                "VALUES (?,?,?,?,?,?)", (attestation.session, attestation.requirement,
                                                         attestation.verdict, attestation.by, attestation.note,
                                                         attestation.at))
        return Attestation(**{**attestation.__dict__, "seq": cursor.lastrowid})

    def attestations(self, session: str) -> list[Attestation]:
        rows = self._journal._db().execute("SELECT session, requirement, verdict, by, note, at, seq FROM attestations "
                                  "WHERE session = ? ORDER BY seq", (session,))
        return [Attestation(*r) for r in rows]

    def forget(self, sessions: Iterable[str]) -> None:
        sessions = list(sessions)
        with self._journal._write() as db:
            for table, column in (("sessions", "id"), ("attestations", "session")):
                db.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(session,) for session in sessions])


class SqliteTotals(Totals):
    """Counted by SQLite over the journal's tables, once what is spooled is imported (and indexed, by requirement)."""

    def __init__(self, journal: SqliteJournal):
        self._journal = journal

    def findings(self, session: str) -> list[FindingTotal]:
        self._journal._fresh(index=True)
        # The session's exchanges counted by finding set (a set at a time, in the index's order), then by finding.
        rows = self._journal._db().execute(
            "SELECT s.requirement, s.outcome, sum(counted.n) FROM (SELECT f.id AS finding_set, count(*) AS n "
            "FROM finding_sets f CROSS JOIN exchange_findings x ON x.finding_set = f.id AND x.session = ? "
            "GROUP BY f.id) counted JOIN finding_set_entries s ON s.finding_set = counted.finding_set "
            "GROUP BY s.requirement, s.outcome ORDER BY s.requirement, s.outcome", (session,))
        return [FindingTotal(*r) for r in rows]

    def coverage(self, session: str) -> list[CoverageCell]:
        self._journal._fresh(index=True)
        rows = self._journal._db().execute(
            "SELECT s.requirement, counted.scenario, s.outcome, sum(counted.n) FROM (SELECT f.id AS finding_set, "
            "e.scenario, count(*) AS n FROM finding_sets f CROSS JOIN exchange_findings x ON x.finding_set = f.id "
            "AND x.session = ? JOIN exchanges e ON e.seq = x.exchange_seq GROUP BY f.id, e.scenario) counted "
            "JOIN finding_set_entries s ON s.finding_set = counted.finding_set "
            "GROUP BY s.requirement, counted.scenario, s.outcome", (session,))
        return [CoverageCell(*r) for r in rows]

    def scenarios(self, session: str) -> dict[str | None, int]:
        self._journal._fresh()
        rows = self._journal._db().execute("SELECT scenario, count(*) FROM exchanges WHERE session = ? GROUP BY scenario",
                                  (session,))
        return dict(rows.fetchall())

    def samples(self, session: str, requirement: str, outcome: str, first: int,
                        last: int) -> list[tuple[int, Finding]]:
        self._journal._fresh(index=True)
        db = self._journal._db()
        positions: dict[int, list[int]] = {}  # finding set -> where the requirement and outcome are in it
        for number, position in db.execute("SELECT finding_set, position FROM finding_set_entries "
                                           "WHERE requirement = ? AND outcome = ?", (requirement, outcome)):
            positions.setdefault(number, []).append(position)
        places = set()
        for order, count in (("ASC", exchange_rows.bounded(first)), ("DESC", exchange_rows.bounded(last))):
            # The first (last) `count` places are among those of the first (last) `count` exchanges of each set.
            found = sorted(((seq, position) for number, at in positions.items() for (seq,) in db.execute(
                f"SELECT exchange_seq FROM exchange_findings WHERE finding_set = ? AND session = ? "
                f"ORDER BY exchange_seq {order} LIMIT ?", (number, session, count)) for position in at),
                reverse=order == "DESC")
            places.update(found if count < 0 else found[:count])  # SQLite's LIMIT: a negative one is none
        seqs = sorted({seq for seq, _ in places})
        findings = dict(db.execute(f"SELECT seq, findings FROM exchanges WHERE seq IN ({','.join('?' * len(seqs))})",
                                   seqs).fetchall()) if seqs else {}
        samples = []
        for seq, position in sorted(places):
            try:
                samples.append((seq, exchange_rows.finding(*json.loads(findings[seq])[position])))
            except (ValueError, TypeError, LookupError):  # a damaged row: shown as such by the exchange itself
                log.warning("findings of journal row %s are damaged; left out of the sample", seq)
        return samples

    def span(self, session: str) -> SessionSpan:
        self._journal._fresh()
        count, first, last, failed = self._journal._db().execute(
            "SELECT count(*), min(started_at), max(started_at), coalesce(sum(n_fail > 0), 0) FROM exchanges "
            "WHERE session = ?", (session,)).fetchone()
        return SessionSpan(count, first, last, failed)

    def timeline(self, session: str, start: float, width: float) -> list[tuple[int, int, int]]:
        self._journal._fresh()
        rows = self._journal._db().execute(
            "SELECT CAST((started_at - ?) / ? AS INTEGER) AS bucket, count(*), sum(n_fail > 0) FROM exchanges "
            "WHERE session = ? GROUP BY bucket ORDER BY bucket", (start, width, session))
        return [tuple(r) for r in rows]

    def operations(self, session: str) -> list[tuple[str, str, int, int]]:
        self._journal._fresh()
        rows = self._journal._db().execute("SELECT service, operation, status, count(*) FROM exchanges WHERE session = ? "
                                  "GROUP BY service, operation, status ORDER BY service, operation, status",
                                  (session,))
        return [tuple(r) for r in rows]


class _Handles:
    """One thread's connection and lock-file descriptors, in the process that opened them."""

    __slots__ = ("path", "pid", "db", "locks", "closed")

    def __init__(self, path: str):
        self.path = path
        self.pid = process.pid()
        self.db: sqlite3.Connection | None = None
        self.locks: dict[str, int] = {}
        self.closed = False

    def lock(self, lock_path: str) -> int:
        fd = self.locks.get(lock_path)
        if fd is None:
            fd = self.locks[lock_path] = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return fd

    def close(self) -> None:
        """Close once: a descriptor number already closed may since name another file."""
        self.closed = True
        db, self.db = self.db, None
        locks, self.locks = self.locks, {}
        if db is not None:
            db.close()
        for fd in locks.values():
            os.close(fd)

    def abandon(self) -> None:
        """In a forked child: close the inherited lock descriptors, keep the inherited connection unused for ever."""
        self.closed = True
        db, self.db = self.db, None
        locks, self.locks = self.locks, {}
        if db is not None:
            _inherited.append(db)
        for fd in locks.values():
            os.close(fd)


_journals: weakref.WeakSet[SqliteJournal] = weakref.WeakSet()
_inherited: list[sqlite3.Connection] = []  # a parent's connections, in a child: never used, never closed


def _after_fork_in_child() -> None:
    for journal in list(_journals):
        journal._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _maintain(ref: weakref.ref, closed: threading.Event) -> None:
    """While the store is open, in the process that maintains the journal (the others stand by, see _maintaining):
    every IMPORT_EVERY_S, import what has been spooled and index the findings of exchanges imported without theirs;
    every TIDY_EVERY_S, tidy ended processes' spool files; every CHECKPOINT_EVERY_S, copy what the journal's WAL holds
    back into it (PASSIVE: never waiting for, nor blocking, readers and writers) and sync the state file to disk once
    its changes pause;
    every FORGET_CLAIMS_EVERY_S, forget expired claims."""
    tidied = checkpointed = forgotten = time.monotonic()
    try:
        while not closed.wait(IMPORT_EVERY_S):
            store = ref()
            if store is None:
                return
            try:
                if not store._maintaining():
                    continue
                now = time.monotonic()
                tidy = now - tidied >= TIDY_EVERY_S
                tidied = now if tidy else tidied
                store.catch_up(tidy=tidy)
                store._index_findings(1)
                if now - checkpointed >= CHECKPOINT_EVERY_S:
                    checkpointed = now
                    store._db().execute("PRAGMA wal_checkpoint(PASSIVE)")
                    store._state.sync_when_idle()
                if now - forgotten >= FORGET_CLAIMS_EVERY_S:
                    forgotten = now
                    store._state.forget_expired_claims(time.time())
            except sqlite3.OperationalError:  # e.g. another process's checkpoint is running: the next round
                log.debug("journal maintenance skipped a round", exc_info=True)
            except Exception:
                log.exception("journal maintenance failed; it runs again in %s s", IMPORT_EVERY_S)
            finally:
                del store
    finally:
        store = ref()
        if store is not None:
            store._release()


def _connect(path: str, page_size: int | None = None) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    if page_size:
        db.execute(f"PRAGMA page_size={page_size}")  # takes effect only while the database is still empty
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:  # processes opening a new database together race to switch it to WAL, and SQLite does not wait
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(0.01)
    # NORMAL in WAL mode: a commit survives a killed process (not a power cut), at a fraction of FULL's cost.
    db.execute("PRAGMA synchronous=NORMAL")
    # Copying the WAL back into the database (and syncing both) is the maintenance thread's work, not that of
    # whichever request's commit happens to cross the threshold, with every other writer waiting on it.
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    return db


def _may_refer(exchange: Exchange) -> bool:
    """Whether the exchange's row may refer to a body file (see bodies.BodyFiles.keep)."""
    return max(len(exchange.request.body), len(exchange.response.body)) >= bodies.REPEATED_MIN


def _row(exchange: Exchange, files: bodies.BodyFiles) -> tuple:
    """The exchange as the parameters of _INSERT_EXCHANGE. A body is the body itself (a BLOB) or, when large or
    repeated, the reference to its file (TEXT): the column's type tells them apart."""
    return exchange_rows.encode(exchange, files.keep)


def _insert_row(db: sqlite3.Connection, row: tuple) -> int | None:
    """Insert one row; one SQLite cannot hold goes in as a placeholder with what can be kept, marked damaged."""
    try:
        return db.execute(_INSERT_EXCHANGE, row).lastrowid
    except _ROW_ERRORS as error:
        reason = f"the exchange could not be journaled whole ({type(error).__name__}: {str(error)[:200]}); " \
                 "its headers, bodies and findings are left out"
        log.error("journal row %r: %s", str(row[0])[:40], reason)
        placeholder = exchange_rows.placeholder(row)
        try:
            seq = db.execute(_INSERT_EXCHANGE, placeholder).lastrowid
        except _ROW_ERRORS:
            log.exception("journal row %r could not be stored even as a placeholder", placeholder[0])
            return None
        db.execute("UPDATE exchanges SET damage = ? WHERE id = ?", (reason, placeholder[0]))
        return seq


def _insert_all(db: sqlite3.Connection, insert: str, rows: list[tuple]) -> None:
    """INSERT rows of the same width, many in each statement (`insert` ends in VALUES). A statement gives up the GIL
    once while SQLite runs it, and getting it back from the threads answering requests costs more CPU than the insert
    itself: executemany() gives it up once per row."""
    if not rows:
        return
    width = len(rows[0])
    most = max(1, min(ROWS_PER_INSERT, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    values = "(" + ",".join("?" * width) + ")"
    start = 0
    while start < len(rows):
        count = min(most, 1 << ((len(rows) - start).bit_length() - 1))  # powers of two: few statements to prepare
        chunk = rows[start:start + count]
        db.execute(insert + ",".join([values] * count), [value for row in chunk for value in row])
        start += count


def _index(db: sqlite3.Connection, exchanges: list[tuple[int, str, str | None]]) -> None:
    """Index exchanges, given as (seq, session, findings JSON), each under its finding set."""
    sets: dict[tuple, int] = {}  # known in this transaction (a set added in one that failed is not in the journal)
    entries = []
    for seq, session, findings in exchanges:
        pairs = _finding_pairs(findings)
        if any(pairs):
            number = sets.get(pairs)
            if number is None:
                number = sets[pairs] = _finding_set(db, pairs)
            entries.append((number, session, seq))
    _insert_all(db, "INSERT INTO exchange_findings (finding_set, session, exchange_seq) VALUES ", entries)


def _finding_pairs(findings: str | None) -> tuple:
    """(requirement, outcome) of each finding in the row's findings, or None for one that has not text for both (a
    damaged row's); none at all if they do not parse."""
    try:
        parsed = exchange_rows.parse_json(findings)
    except (TypeError, ValueError, RecursionError):
        return ()
    if type(parsed) is not list:
        return ()
    # Inline for the usual ASCII text: a dozen findings an exchange, two calls each, were a third of an import.
    return tuple([(f[0], f[1]) if type(f) is list and len(f) > 1
                  and (type(r := f[0]) is str and r.isascii() or _text(r))
                  and (type(o := f[1]) is str and o.isascii() or _text(o)) else None
                  for f in parsed])


def _text(value) -> bool:
    """Text SQLite can be given (a lone surrogate cannot be encoded)."""
    if type(value) is not str:
        return False
    try:
        return value.isascii() or bool(value.encode())
    except UnicodeEncodeError:
        return False


def _finding_set(db: sqlite3.Connection, pairs: tuple) -> int:
    """The number of the finding set, made (with its entries) if the journal has none like it yet."""
    findings = _compact([list(pair) if pair else None for pair in pairs])
    found = db.execute("SELECT id FROM finding_sets WHERE findings = ?", (findings,)).fetchone()
    if found:
        return found[0]
    number = db.execute("INSERT INTO finding_sets (findings) VALUES (?)", (findings,)).lastrowid
    db.executemany("INSERT INTO finding_set_entries VALUES (?, ?, ?, ?)",
                   [(number, position, *pair) for position, pair in enumerate(pairs) if pair])
    return number


def _outdated(db: sqlite3.Connection) -> set[str]:
    """The tables of the journal still in an earlier layout: a rowid exchange_keys, a finding_index table."""
    found = {name: (kind, sql) for name, kind, sql in db.execute(
        "SELECT name, type, sql FROM sqlite_master WHERE name IN ('exchange_keys', 'finding_index')")}
    outdated = set()
    if "WITHOUT ROWID" not in found["exchange_keys"][1]:
        outdated.add("exchange_keys")
    if found["finding_index"][0] == "table":
        outdated.add("finding_index")
    return outdated


def _refuse_another_layout(path: str) -> None:
    """A journal written by a development build before this layout (findings in a table of their own, session state
    in SQLite) is not converted: say so, rather than fail on the first exchange recorded."""
    if not Path(path).exists():
        return
    db = sqlite3.connect(path)
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(exchanges)")}
    finally:
        db.close()
    missing = sorted({"findings", "damage"} - columns) if columns else []
    if missing:
        raise ValueError(f"{path} was written in an earlier development layout (its exchanges have no "
                         f"{' or '.join(missing)} column); move it away or start with another --data-dir")
