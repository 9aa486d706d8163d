"""The embedded journal: SQLite in WAL mode, one connection per thread, safe across worker processes. Exchanges live in
the journal's database; session state (state rows, counters, blobs) lives in an LMDB file beside it
(sandbox.journal.state), so a request's state changes never wait for the journal's imports.

Recording an exchange appends it to this process's spool (sandbox.journal.spool); spooled exchanges are imported in
batches by a background thread in each process, and before any query that reads exchanges, so every query sees every
exchange answered before it began. An exchange's findings are kept in its own row; the finding index, which reports
and filters query by requirement, is filled from those rows in the background (whole batches while requests keep
coming, the rest once the journal is quiet) and before any query that needs it (ten or so index entries per exchange
would otherwise cost more than storing the exchange). Writers queue on a lock file; the same background thread copies
the WAL back into the database (checkpoints) and syncs the state file.
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: SQLite's busy handler alone serialises writers
    fcntl = None

from sandbox.conformance.findings import Finding, Outcome, SpineError
from sandbox.journal import process, spool
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse
from sandbox.journal.state import StateDatabase
from sandbox.journal.store import (
    Attestation,
    CoverageCell,
    ExchangeFilter,
    FindingTotal,
    SessionRecord,
    SessionSpan,
    StateItem,
    Store,
    VersionConflict,
)

log = logging.getLogger(__name__)
_dumps = json.JSONEncoder(separators=(",", ":")).encode  # compact: smaller rows, fewer pages written per request

SCHEMA = """
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
    findings TEXT  -- JSON [[requirement, outcome, message, location, rejected_status, rejected_code], ...]; NULL: none
);
CREATE INDEX IF NOT EXISTS exchanges_session ON exchanges (session, seq);
CREATE TABLE IF NOT EXISTS finding_index (
    session TEXT NOT NULL,
    requirement TEXT NOT NULL,
    outcome TEXT NOT NULL,
    exchange_seq INTEGER NOT NULL,
    position INTEGER NOT NULL,  -- the finding's place in its exchange's findings
    PRIMARY KEY (session, requirement, outcome, exchange_seq, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal_meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exchange_keys (
    session TEXT NOT NULL,
    key TEXT NOT NULL,
    exchange_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS exchange_keys_lookup ON exchange_keys (session, key, exchange_seq);
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
# Earlier versions kept session state in SQLite tables (in the journal, then in journal.state.sqlite3); opening one
# moves their rows into the state database.
STATE_TABLES = ("state", "counters", "blobs")

TIDY_EVERY_S = 0.5
# A checkpoint syncs the WAL and the database to disk: done often, it keeps the disk busy writing pages that the next
# commits change again.
CHECKPOINT_EVERY_S = 2.0
FORGET_CLAIMS_EVERY_S = 60
IMPORT_EVERY_S = 0.05  # how often each process imports what has been spooled
IMPORT_BATCH = 256  # records read from each spool file per import transaction (other writers get a turn between)
# An exchange is about 2 KiB (headers, bodies, findings): a 4 KiB page holds one and is half empty, an 8 KiB page
# holds three, so the journal writes (and checkpoints) about 30% fewer bytes per exchange. Only a new journal takes it.
JOURNAL_PAGE_SIZE = 8192
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # the WAL file is cut back to this once a checkpoint has emptied it
INDEX_BATCH = 5000  # exchanges whose findings are indexed per transaction

SPOOLED_THROUGH = "spool "  # journal_meta: "spool <file name>" -> the offset imported through

INDEXED_THROUGH = "findings indexed through"  # journal_meta: the last exchange seq whose findings are indexed
_INDEX_FINDINGS = """
INSERT INTO finding_index
SELECT e.session, f.value ->> 0, f.value ->> 1, e.seq, f.key FROM exchanges e, json_each(e.findings) f
WHERE e.seq > ? AND e.seq <= ? AND e.findings IS NOT NULL
"""
_EXCHANGE_FIELDS = ("seq", "id", "session", "service", "operation", "scenario", "started_at", "duration_ms", "method",
                    "path", "query_string", "client", "request_headers", "request_body", "status", "response_headers",
                    "response_body", "findings")
_EXCHANGE_COLUMNS = ", ".join(_EXCHANGE_FIELDS)
_INSERT_EXCHANGE = ("INSERT OR IGNORE INTO exchanges (id, session, service, operation, scenario, started_at, "
                    "duration_ms, method, path, query_string, client, request_headers, request_body, status, "
                    "response_headers, response_body, n_pass, n_fail, n_warning, n_info, findings) VALUES "
                    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_INSERT_KEY = "INSERT INTO exchange_keys SELECT ?, ?, seq FROM exchanges WHERE id = ?"
_STARTED_AT = 5  # a row's started_at, by which spooled exchanges are put in order
_SUMMARY_COLUMNS = ("seq, id, session, service, operation, scenario, started_at, duration_ms, method, path, "
                    "status, n_pass, n_fail, n_warning, n_info")


class SqliteStore(Store):
    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._maintainer: int | None = None  # the process its maintenance thread runs in
        self._closed = threading.Event()
        self._spool_folder = None if self.path == ":memory:" or fcntl is None else Path(self.path + ".spool")
        self._spool: spool.SpoolWriter | None = None
        # An in-memory journal keeps its state in a temporary folder, removed on close.
        self._memory_state = tempfile.mkdtemp(prefix="spine-sandbox-") if self.path == ":memory:" else None
        state_path = Path(self._memory_state, "state.lmdb") if self._memory_state else Path(self.path).with_suffix(
            ".state.lmdb")
        self._state = StateDatabase(str(state_path))
        self._db().executescript(SCHEMA)
        self._migrate()
        self.catch_up(tidy=True)  # what a process killed before its import left spooled

    def _migrate(self) -> None:
        """Bring a journal made by an earlier version to this schema (concurrent workers take turns)."""
        with self._write() as db:
            if "findings" not in {row[1] for row in db.execute("PRAGMA table_info(exchanges)")}:
                db.execute("ALTER TABLE exchanges ADD COLUMN findings TEXT")
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'findings'").fetchone():
                # Earlier journals kept findings in a table of their own: move them into their exchanges' rows (the
                # finding index is then built from those, like any other).
                db.execute("UPDATE exchanges SET findings = (SELECT json_group_array(json_array(requirement, outcome, "
                           "message, location, rejected_status, rejected_code)) FROM (SELECT * FROM findings f WHERE "
                           "f.exchange_seq = exchanges.seq ORDER BY f.rowid)) WHERE findings IS NULL AND seq IN "
                           "(SELECT exchange_seq FROM findings)")
                db.execute("DROP TABLE findings")
        self._move_state()

    def _move_state(self) -> None:
        """Earlier versions kept session state in SQLite, in the journal's own database and then in a database of its
        own beside it: their rows move into the state database, once (concurrent workers take turns)."""
        if self.path == ":memory:":
            return
        old = Path(self.path).with_suffix(".state.sqlite3")
        with self._writers():
            db = self._db()
            if _tables(db, STATE_TABLES):
                self._state.take_rows(*_state_rows(db))
                db.execute("BEGIN IMMEDIATE")
                for table in _tables(db, STATE_TABLES):
                    db.execute(f"DROP TABLE {table}")
                db.execute("COMMIT")
            if old.exists():
                old_db = sqlite3.connect(old)
                try:
                    rows = _state_rows(old_db)
                finally:
                    old_db.close()
                self._state.take_rows(*rows)
                for suffix in ("", "-wal", "-shm", ".lock"):
                    Path(f"{old}{suffix}").unlink(missing_ok=True)
            # What earlier versions kept beside it: state change counters, and used single-use keys (tokens from
            # before the upgrade are refused for their age within hours anyway).
            for name in (".stamps", ".claims", ".claims.sqlite3", ".claims.sqlite3-wal", ".claims.sqlite3-shm",
                         ".claims.sqlite3.lock"):
                Path(self.path).with_suffix(name).unlink(missing_ok=True)

    # --- connections -------------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = _connect(self.path, page_size=JOURNAL_PAGE_SIZE)
            self._start_maintainer()
        return db

    def _start_maintainer(self) -> None:
        if self.path == ":memory:" or self._maintainer == process.pid():
            return
        self._maintainer = process.pid()  # one per process: threads do not survive a fork
        threading.Thread(target=_maintain, args=(weakref.ref(self), self._closed), daemon=True,
                         name="journal-maintenance").start()

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
        locks = getattr(self._local, "locks", None)
        if locks is None:
            locks = self._local.locks = {}
        fd = locks.get(lock_path)
        if fd is None:
            if fcntl is None or lock_path is None:
                yield
                return
            fd = locks[lock_path] = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def transaction(self):
        # The state database's write lock is taken up front, so a read-modify-write inside the block cannot race.
        return self._state.write()

    def close(self) -> None:
        if self._spool is not None and self._spool.pid == process.pid():
            self._spool.close()
            self.catch_up(tidy=True)  # this process's spool, now abandoned, is imported whole and removed
        self._closed.set()
        self._release()
        self._state.close()
        if self._memory_state:
            shutil.rmtree(self._memory_state, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _release(self) -> None:
        """Close this thread's connection and lock file."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
        for fd in getattr(self._local, "locks", {}).values():
            os.close(fd)
        self._local.locks = {}

    # --- the journal -------------------------------------------------------------------------------------------
    def record(self, exchange: Exchange, keys: Iterable[str] = ()) -> None:
        """Spooled: durable against a killed process once this returns, and in every query from then on."""
        row = (*_row(exchange), sorted(set(keys)))
        writer = self._spool_writer()
        if writer is not None:
            try:
                writer.append(row)
                return
            except spool.SpoolFull:
                log.warning("the journal spool could not be written; recording exchange %s directly", exchange.id,
                            exc_info=True)
        with self._write() as db:
            self._insert_rows(db, [row])

    def _spool_writer(self) -> spool.SpoolWriter | None:
        if self._spool_folder is None or self._closed.is_set():
            return None
        writer = self._spool
        if writer is None or writer.pid != process.pid():  # none yet, or the parent's, inherited through a fork
            self._start_maintainer()
            writer = self._spool = spool.SpoolWriter(self._spool_folder)
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
        imported = self._spooled_through(self._db())
        count = 0
        if any(size > imported.get(name, 0) for name, _, size in found):
            while True:
                with self._write() as db:
                    imported = self._spooled_through(db)
                    pending = [(name, *spool.read(path, imported.get(name, 0), IMPORT_BATCH)) for name, path in files]
                    rows = sorted((row for _, read, _ in pending for row in read), key=lambda row: row[_STARTED_AT])
                    self._insert_rows(db, rows)
                    db.executemany("INSERT OR REPLACE INTO journal_meta VALUES (?, ?)",
                                   [(SPOOLED_THROUGH + name, end) for name, read, end in pending if read])
                count += len(rows)
                if all(len(read) < IMPORT_BATCH for _, read, _ in pending):
                    break
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
        db.executemany(_INSERT_EXCHANGE, [row[:-1] for row in rows])
        keys = [(row[1], key, row[0]) for row in rows for key in row[-1]]
        if keys:
            db.executemany(_INSERT_KEY, keys)

    def record_many(self, exchanges: Iterable[Exchange]) -> int:
        self.catch_up()  # what is already spooled goes first, so seq keeps the order of recording
        n = 0
        with self._write() as db:
            for exchange in exchanges:
                self._insert(db, exchange)
                n += 1
        return n

    def index_findings(self) -> None:
        """Bring the finding index up to date with every recorded exchange (queries by requirement need it)."""
        self.catch_up()
        self._index_findings(1)

    def _index_findings(self, backlog: int) -> None:
        """Index findings, a batch of exchanges per transaction so that writers get turns between, while at least
        `backlog` exchanges wait (in batches of thousands, an exchange costs half what it does in batches of tens)."""
        db = self._db()
        while self._newest(db) - self._indexed_through(db) >= backlog:
            with self._write() as db:
                start = self._indexed_through(db)
                last = min(self._newest(db), start + INDEX_BATCH)
                db.execute(_INDEX_FINDINGS, (start, last))
                db.execute("INSERT OR REPLACE INTO journal_meta VALUES (?, ?)", (INDEXED_THROUGH, last))

    @staticmethod
    def _newest(db: sqlite3.Connection) -> int:
        return db.execute("SELECT max(seq) FROM exchanges").fetchone()[0] or 0

    @staticmethod
    def _indexed_through(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM journal_meta WHERE name = ?", (INDEXED_THROUGH,)).fetchone()
        return row[0] if row else 0

    @staticmethod
    def _insert(db: sqlite3.Connection, exchange: Exchange) -> None:
        exchange.seq = db.execute(_INSERT_EXCHANGE, _row(exchange)).lastrowid

    def exchange(self, exchange_id: str) -> Exchange | None:
        self.catch_up()
        row = self._db().execute(f"SELECT {_EXCHANGE_COLUMNS} FROM exchanges WHERE id = ?", (exchange_id,)).fetchone()
        return _exchange(row) if row else None

    def exchanges(self, where: ExchangeFilter, limit: int = 100, before: int | None = None) -> list[dict]:
        self.catch_up()
        sql, args = self._where(where)
        if before is not None:
            sql += " AND seq < ?"
            args.append(before)
        rows = self._db().execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM exchanges e WHERE {sql} ORDER BY seq DESC LIMIT ?", (*args, limit))
        return [_summary(r) for r in rows]

    def count_exchanges(self, where: ExchangeFilter) -> int:
        self.catch_up()
        sql, args = self._where(where)
        return self._db().execute(f"SELECT count(*) FROM exchanges e WHERE {sql}", args).fetchone()[0]

    def iter_exchanges(self, session: str, batch: int = 500) -> Iterator[Exchange]:
        self.catch_up()
        last = 0
        db = self._db()
        while True:
            rows = db.execute(f"SELECT {_EXCHANGE_COLUMNS} FROM exchanges WHERE session = ? AND seq > ? ORDER BY seq "
                              "LIMIT ?", (session, last, batch)).fetchall()
            if not rows:
                return
            yield from (_exchange(row) for row in rows)
            last = rows[-1][0]

    def related(self, session: str, key: str, limit: int = 1) -> list[Exchange]:
        self.catch_up()
        rows = self._db().execute(
            f"SELECT {', '.join('e.' + c for c in _EXCHANGE_FIELDS)} FROM exchange_keys k "
            "JOIN exchanges e ON e.seq = k.exchange_seq WHERE k.session = ? AND k.key = ? "
            "ORDER BY k.exchange_seq DESC LIMIT ?", (session, key, limit))
        return [_exchange(row, with_findings=False) for row in rows]

    def latest(self, session: str, service: str, limit: int = 1) -> list[Exchange]:
        self.catch_up()
        rows = self._db().execute(f"SELECT {_EXCHANGE_COLUMNS} FROM exchanges WHERE session = ? AND service = ? "
                                  "ORDER BY seq DESC LIMIT ?", (session, service, limit))
        return [_exchange(row, with_findings=False) for row in rows]

    def exchanges_by_seq(self, seqs: Iterable[int]) -> list[Exchange]:
        self.catch_up()
        seqs = sorted(set(seqs))
        found: list[Exchange] = []
        for start in range(0, len(seqs), 500):  # SQLite caps the number of parameters
            chunk = seqs[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db().execute(f"SELECT {_EXCHANGE_COLUMNS} FROM exchanges WHERE seq IN ({marks}) ORDER BY seq",
                                      chunk)
            found.extend(_exchange(row) for row in rows)
        return found

    def _where(self, where: ExchangeFilter) -> tuple[str, list]:
        clauses, args = ["1=1"], []
        for column in ("session", "service", "operation", "scenario", "status"):
            value = getattr(where, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if where.since is not None:
            clauses.append("started_at >= ?")
            args.append(where.since)
        if where.until is not None:
            clauses.append("started_at < ?")
            args.append(where.until)
        if where.outcome is not None:
            clauses.append(f"n_{where.outcome} > 0" if where.outcome in ("pass", "fail", "warning", "info") else "0")
        if where.requirement is not None:
            self.index_findings()
            within = " AND session = ?" if where.session is not None else ""
            clauses.append(f"seq IN (SELECT exchange_seq FROM finding_index WHERE requirement = ?{within})")
            args.extend([where.requirement] + ([where.session] if within else []))
        return " AND ".join(clauses), args

    # --- sessions and attestations ------------------------------------------------------------------------------
    def create_session(self, record: SessionRecord) -> None:
        try:
            with self._write() as db:
                db.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?)",
                           (record.id, record.created_at, record.plan, record.supplier, record.system,
                            record.token_hash))
        except sqlite3.IntegrityError:
            raise VersionConflict(None, 1) from None

    def get_session(self, session_id: str) -> SessionRecord | None:
        row = self._db().execute("SELECT id, created_at, plan, supplier, system, token_hash FROM sessions "
                                 "WHERE id = ?", (session_id,)).fetchone()
        return SessionRecord(*row) if row else None

    def session_for_token(self, token_hash: str) -> SessionRecord | None:
        row = self._db().execute("SELECT id, created_at, plan, supplier, system, token_hash FROM sessions "
                                 "WHERE token_hash = ?", (token_hash,)).fetchone()
        return SessionRecord(*row) if row else None

    def list_sessions(self) -> list[SessionRecord]:
        rows = self._db().execute("SELECT id, created_at, plan, supplier, system, token_hash FROM sessions "
                                  "ORDER BY created_at, id")
        return [SessionRecord(*r) for r in rows]

    def add_attestation(self, attestation: Attestation) -> Attestation:
        with self._write() as db:
            cursor = db.execute("INSERT INTO attestations (session, requirement, verdict, by, note, at) "
                                "VALUES (?,?,?,?,?,?)", (attestation.session, attestation.requirement,
                                                         attestation.verdict, attestation.by, attestation.note,
                                                         attestation.at))
        return Attestation(**{**attestation.__dict__, "seq": cursor.lastrowid})

    def attestations(self, session: str) -> list[Attestation]:
        rows = self._db().execute("SELECT session, requirement, verdict, by, note, at, seq FROM attestations "
                                  "WHERE session = ? ORDER BY seq", (session,))
        return [Attestation(*r) for r in rows]

    # --- aggregates --------------------------------------------------------------------------------------------
    def finding_totals(self, session: str) -> list[FindingTotal]:
        self.index_findings()
        rows = self._db().execute(
            "SELECT requirement, outcome, count(*) FROM finding_index "
            "WHERE session = ? GROUP BY requirement, outcome ORDER BY requirement, outcome", (session,))
        return [FindingTotal(*r) for r in rows]

    def coverage(self, session: str) -> list[CoverageCell]:
        self.index_findings()
        rows = self._db().execute(
            "SELECT f.requirement, e.scenario, f.outcome, count(*) FROM finding_index f "
            "JOIN exchanges e ON e.seq = f.exchange_seq WHERE f.session = ? "
            "GROUP BY f.requirement, e.scenario, f.outcome", (session,))
        return [CoverageCell(*r) for r in rows]

    def scenario_counts(self, session: str) -> dict[str | None, int]:
        self.catch_up()
        rows = self._db().execute("SELECT scenario, count(*) FROM exchanges WHERE session = ? GROUP BY scenario",
                                  (session,))
        return dict(rows.fetchall())

    def finding_samples(self, session: str, requirement: str, outcome: str, first: int,
                        last: int) -> list[tuple[int, Finding]]:
        self.index_findings()
        query = ("SELECT exchange_seq, position FROM finding_index WHERE session = ? AND requirement = ? AND outcome = ? "
                 "ORDER BY exchange_seq {0}, position {0} LIMIT ?")
        db = self._db()
        places = {tuple(r) for r in db.execute(query.format("ASC"), (session, requirement, outcome, first))}
        places.update(tuple(r) for r in db.execute(query.format("DESC"), (session, requirement, outcome, last)))
        seqs = sorted({seq for seq, _ in places})
        findings = dict(db.execute(f"SELECT seq, findings FROM exchanges WHERE seq IN ({','.join('?' * len(seqs))})",
                                   seqs).fetchall()) if seqs else {}
        return [(seq, _finding(*json.loads(findings[seq])[position])) for seq, position in sorted(places)]

    def session_span(self, session: str) -> SessionSpan:
        self.catch_up()
        count, first, last, failed = self._db().execute(
            "SELECT count(*), min(started_at), max(started_at), coalesce(sum(n_fail > 0), 0) FROM exchanges "
            "WHERE session = ?", (session,)).fetchone()
        return SessionSpan(count, first, last, failed)

    def timeline(self, session: str, start: float, width: float) -> list[tuple[int, int, int]]:
        self.catch_up()
        rows = self._db().execute(
            "SELECT CAST((started_at - ?) / ? AS INTEGER) AS bucket, count(*), sum(n_fail > 0) FROM exchanges "
            "WHERE session = ? GROUP BY bucket ORDER BY bucket", (start, width, session))
        return [tuple(r) for r in rows]

    def operation_counts(self, session: str) -> list[tuple[str, str, int, int]]:
        self.catch_up()
        rows = self._db().execute("SELECT service, operation, status, count(*) FROM exchanges WHERE session = ? "
                                  "GROUP BY service, operation, status ORDER BY service, operation, status",
                                  (session,))
        return [tuple(r) for r in rows]

    # --- session state (sandbox.journal.state) ----------------------------------------------------------------
    def get_state(self, session: str, namespace: str, key: str) -> StateItem | None:
        return self._state.get(session, namespace, key)

    def put_state(self, session: str, namespace: str, key: str, value: Any,
                  expect_version: int | None = None, *, create_only: bool = False) -> int:
        return self._state.put(session, namespace, key, value, expect_version, create_only)

    def list_state(self, session: str, namespace: str) -> dict[str, StateItem]:
        return self._state.items(session, namespace)

    def state_stamp(self, session: str, namespace: str) -> int | None:
        return self._state.stamp(session, namespace)

    def delete_state(self, session: str, namespace: str, key: str | None = None) -> None:
        self._state.delete(session, namespace, key)

    def clear_state(self, session: str, namespace_prefix: str) -> None:
        self._state.clear(session, namespace_prefix)

    # --- single use (kept in the state database) -----------------------------------------------------------------
    def claim(self, session: str, namespace: str, key: str, expires_at: float) -> bool:
        return self._state.claim(session, namespace, key, expires_at)

    def claimed(self, session: str, namespace: str, key: str) -> bool:
        return self._state.claimed(session, namespace, key)

    def forget_expired_claims(self, now: float | None = None) -> int:
        return self._state.forget_expired_claims(time.time() if now is None else now)

    def put_blob(self, session: str, key: str, data: bytes) -> None:
        self._state.put_blob(session, key, data)

    def get_blob(self, session: str, key: str) -> bytes | None:
        return self._state.get_blob(session, key)

    def delete_blobs(self, session: str, prefix: str) -> None:
        self._state.delete_blobs(session, prefix)

    def next_counter(self, session: str, name: str, start: int = 0) -> int:
        return self._state.next_counter(session, name, start)


def _maintain(ref: weakref.ref, closed: threading.Event) -> None:
    """While the store is open: every IMPORT_EVERY_S, import what has been spooled and index findings (everything once
    the journal is quiet, whole batches while it is busy); every TIDY_EVERY_S, tidy ended processes' spool files;
    every CHECKPOINT_EVERY_S, copy what the journal's WAL holds back into it (PASSIVE: never waiting for, nor
    blocking, readers and writers) and sync the state file to disk; every FORGET_CLAIMS_EVERY_S, forget expired
    claims."""
    tidied = checkpointed = forgotten = time.monotonic()
    newest = -1
    try:
        while not closed.wait(IMPORT_EVERY_S):
            store = ref()
            if store is None:
                return
            try:
                now = time.monotonic()
                tidy = now - tidied >= TIDY_EVERY_S
                tidied = now if tidy else tidied
                store.catch_up(tidy=tidy)
                # Quiet (no exchange since the last round): index what is left now, not when a report or filter asks;
                # busy: only whole batches, the cheapest per exchange.
                seen, newest = newest, store._newest(store._db())
                store._index_findings(1 if newest == seen else INDEX_BATCH)
                if now - checkpointed >= CHECKPOINT_EVERY_S:
                    checkpointed = now
                    store._db().execute("PRAGMA wal_checkpoint(PASSIVE)")
                    store._state.sync()
                if now - forgotten >= FORGET_CLAIMS_EVERY_S:
                    forgotten = now
                    store.forget_expired_claims()
            except sqlite3.OperationalError:  # e.g. another process's checkpoint is running: the next round
                log.debug("journal maintenance skipped a round", exc_info=True)
            except Exception:
                log.exception("journal maintenance failed; it runs again in %s s", IMPORT_EVERY_S)
            del store
    finally:
        store = ref()
        if store is not None:
            store._release()


def _connect(path: str, page_size: int | None = None) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    if page_size:
        db.execute(f"PRAGMA page_size={page_size}")  # takes effect only while the database is still empty
    for attempt in range(200):
        try:  # processes opening a new database together race to switch it to WAL, and SQLite does not wait
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if attempt == 199:
                raise
            time.sleep(0.01)
    # NORMAL in WAL mode: a commit survives a killed process (not a power cut), at a fraction of FULL's cost.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    # Copying the WAL back into the database (and syncing both) is the maintenance thread's work, not that of
    # whichever request's commit happens to cross the threshold, with every other writer waiting on it.
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    return db


def _row(exchange: Exchange) -> tuple:
    """The exchange as the parameters of _INSERT_EXCHANGE."""
    counts = exchange.counts
    req, resp = exchange.request, exchange.response
    findings = _dumps([(f.requirement, f.outcome, f.message, f.location,
                        f.reject.status if f.reject else None, f.reject.code if f.reject else None)
                       for f in exchange.findings]) if exchange.findings else None
    return (exchange.id, exchange.session, exchange.service, exchange.operation, exchange.scenario,
            exchange.started_at, exchange.duration_ms, req.method, req.path, req.query_string, req.client,
            _dumps(req.headers), bytes(req.body), resp.status, _dumps(resp.headers), bytes(resp.body),
            counts["pass"], counts["fail"], counts["warning"], counts["info"], findings)


def _exchange(row, with_findings: bool = True) -> Exchange:
    (seq, ex_id, session, service, operation, scenario, started_at, duration_ms, method, path, query_string,
     client, req_headers, req_body, status, resp_headers, resp_body, findings) = row
    return Exchange(
        id=ex_id, session=session, service=service, operation=operation, scenario=scenario,
        started_at=started_at, duration_ms=duration_ms, seq=seq,
        findings=_decode_findings(findings) if with_findings else [],
        request=RecordedRequest(method, path, query_string, [tuple(h) for h in json.loads(req_headers)],
                                bytes(req_body), client),
        response=RecordedResponse(status, [tuple(h) for h in json.loads(resp_headers)], bytes(resp_body)))


def _finding(requirement: str, outcome: str, message: str, location: str, status: int | None,
             code: str | None) -> Finding:
    return Finding(requirement, Outcome(outcome), message, location,
                   SpineError(status, code) if status is not None else None)


def _decode_findings(text: str | None) -> list[Finding]:
    return [_finding(*item) for item in json.loads(text)] if text else []


def _summary(row) -> dict:
    (seq, ex_id, session, service, operation, scenario, started_at, duration_ms, method, path, status,
     n_pass, n_fail, n_warning, n_info) = row
    return {"seq": seq, "id": ex_id, "session": session, "service": service, "operation": operation,
            "scenario": scenario, "started_at": started_at, "duration_ms": round(duration_ms, 3), "method": method,
            "path": path, "status": status,
            "findings": {"pass": n_pass, "fail": n_fail, "warning": n_warning, "info": n_info}}


def _tables(db: sqlite3.Connection, names: Iterable[str]) -> list[str]:
    return [name for name in names
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()]


def _state_rows(db: sqlite3.Connection) -> tuple[list, list, list]:
    """An earlier version's SQLite state: the rows of its state, counters and blobs tables (those it has)."""
    present = set(_tables(db, STATE_TABLES))
    return tuple(db.execute(f"SELECT * FROM {table}").fetchall() if table in present else []  # noqa: S608
                 for table in STATE_TABLES)
