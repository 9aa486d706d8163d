"""The SQLite journal's storage: findings kept with their exchange and indexed by requirement in batches, journals
from earlier versions opened as they are."""

from __future__ import annotations

import sqlite3
import time

from sandbox.conformance.findings import Finding, Outcome, SpineError
from sandbox.journal import sqlite as journal_sqlite
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.journal.sqlite import SqliteStore
from sandbox.journal.store import ExchangeFilter, StateItem


def exchange(session: str, n: int, *findings: Finding) -> Exchange:
    return Exchange(new_exchange_id(), session, "pds", "get-patient", 1000.0 + n, 1.0,
                    RecordedRequest("GET", f"/Patient/{n}", headers=[("X-Request-ID", str(n))]),
                    RecordedResponse(200, [("Content-Type", "application/json")], b"{}"), list(findings),
                    scenario="s1" if n % 2 else None)


def findings_of(n: int) -> list[Finding]:
    return [Finding.passed("REQ-A", f"a {n}", "header:A"),
            Finding.failed("REQ-B", f"b {n}", "/x", reject=SpineError(400, "INVALID_VALUE")),
            Finding.warning("REQ-A", f"w {n}")]


def test_findings_are_read_back_in_order_and_counted_before_and_after_a_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_sqlite, "INDEX_BATCH", 8)  # indexed in several transactions
    store = SqliteStore(tmp_path / "j.sqlite3")
    total = 8 * 8 + 5
    for n in range(total):
        store.record(exchange("s", n, *findings_of(n)))
    store.record(exchange("s", total))  # no findings at all
    first = next(store.iter_exchanges("s"))
    assert first.findings == findings_of(0)
    assert first.findings[1].reject == SpineError(400, "INVALID_VALUE")
    assert store.exchange(first.id).findings == findings_of(0)
    assert {(t.requirement, t.outcome, t.count) for t in store.finding_totals("s")} == {
        ("REQ-A", "pass", total), ("REQ-A", "warning", total), ("REQ-B", "fail", total)}
    samples = store.finding_samples("s", "REQ-B", "fail", 2, 2)
    assert [f.message for _, f in samples] == ["b 0", "b 1", f"b {total - 2}", f"b {total - 1}"]
    assert samples[0][1].reject == SpineError(400, "INVALID_VALUE")
    cells = {(c.requirement, c.scenario, c.outcome): c.count for c in store.coverage("s")}
    assert cells[("REQ-B", "s1", "fail")] + cells[("REQ-B", None, "fail")] == total
    assert store.count_exchanges(ExchangeFilter(session="s", requirement="REQ-B")) == total
    # Recorded after the index caught up: seen at once by the next query.
    store.record(exchange("s", total + 1, Finding.info("REQ-C", "late")))
    assert store.count_exchanges(ExchangeFilter(requirement="REQ-C")) == 1
    assert [e.findings for e in store.latest("s", "pds")] == [[]]  # history lookups do not load findings


def test_bulk_and_single_records_mix_without_losing_an_index_entry(tmp_path):
    store = SqliteStore(tmp_path / "j.sqlite3")
    store.record(exchange("s", 1, Finding.passed("REQ-A", "one")))
    store.record_many([exchange("s", 2, Finding.passed("REQ-A", "two"))])
    store.record(exchange("s", 3, Finding.passed("REQ-A", "three")))
    assert [(t.requirement, t.count) for t in store.finding_totals("s")] == [("REQ-A", 3)]


OLD_SCHEMA = """
CREATE TABLE exchanges (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, session TEXT NOT NULL,
    service TEXT NOT NULL, operation TEXT NOT NULL, scenario TEXT, started_at REAL NOT NULL, duration_ms REAL NOT NULL,
    method TEXT NOT NULL, path TEXT NOT NULL, query_string TEXT NOT NULL, client TEXT NOT NULL,
    request_headers TEXT NOT NULL, request_body BLOB NOT NULL, status INTEGER NOT NULL, response_headers TEXT NOT NULL,
    response_body BLOB NOT NULL, n_pass INTEGER NOT NULL, n_fail INTEGER NOT NULL, n_warning INTEGER NOT NULL,
    n_info INTEGER NOT NULL);
CREATE TABLE findings (exchange_seq INTEGER NOT NULL, session TEXT NOT NULL, requirement TEXT NOT NULL,
    outcome TEXT NOT NULL, message TEXT NOT NULL, location TEXT NOT NULL, rejected_status INTEGER, rejected_code TEXT);
INSERT INTO exchanges VALUES (1, 'OLD1', 's', 'pds', 'get-patient', NULL, 1000.0, 1.0, 'GET', '/Patient/1', '', '',
    '[]', x'', 200, '[]', x'7b7d', 1, 1, 0, 0);
INSERT INTO findings VALUES (1, 's', 'REQ-A', 'pass', 'old pass', '', NULL, NULL);
INSERT INTO findings VALUES (1, 's', 'REQ-B', 'fail', 'old fail', '/x', 400, 'INVALID_VALUE');
CREATE TABLE state (session TEXT NOT NULL, namespace TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (session, namespace, key));
INSERT INTO state VALUES ('s', 'ns', 'k', 3, '{"v": 1}');
CREATE TABLE counters (session TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (session, name));
INSERT INTO counters VALUES ('s', 'c', 5);
"""


def test_a_journal_from_an_earlier_version_opens_and_reads_the_same(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    store = SqliteStore(path)
    old = store.exchange("OLD1")
    assert [(f.requirement, f.outcome, f.message) for f in old.findings] == [
        ("REQ-A", Outcome.PASS, "old pass"), ("REQ-B", Outcome.FAIL, "old fail")]
    assert old.findings[1].reject == SpineError(400, "INVALID_VALUE")
    store.record(exchange("s", 2, Finding.passed("REQ-A", "new pass")))
    assert {(t.requirement, t.outcome, t.count) for t in store.finding_totals("s")} == {
        ("REQ-A", "pass", 2), ("REQ-B", "fail", 1)}
    assert [len(e.findings) for e in store.iter_exchanges("s")] == [2, 1]
    assert store.get_state("s", "ns", "k") == StateItem({"v": 1}, 3)
    assert store.put_state("s", "ns", "k", {"v": 2}, expect_version=3) == 4
    assert store.next_counter("s", "c") == 6
    SqliteStore(path)  # opening it again changes nothing
    assert SqliteStore(path).get_state("s", "ns", "k") == StateItem({"v": 2}, 4)
    with sqlite3.connect(path) as db:  # session state has moved into the state database
        assert not db.execute("SELECT name FROM sqlite_master WHERE name IN ('state', 'counters')").fetchall()
    assert (tmp_path / "old.state.lmdb").exists()


# The session 9-10 layout: state in a SQLite database of its own beside the journal, with its change counters file.
OLD_STATE = """
CREATE TABLE blobs (session TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (session, key));
CREATE TABLE state (session TEXT NOT NULL, namespace TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (session, namespace, key));
CREATE TABLE counters (session TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (session, name)) WITHOUT ROWID;
INSERT INTO state VALUES ('s', 'mesh.message', 'M1', 2, '{"status": "accepted"}');
INSERT INTO state VALUES ('s', 'mesh.inbox.X26ABC2', 'M1', 1, '{"w": "W", "t": 1.5, "x": 9.5}');
INSERT INTO counters VALUES ('s', 'scenario:x', 4);
INSERT INTO blobs VALUES ('s', 'mesh/M1/1', x'68656c6c6f');
"""


def test_state_kept_in_its_own_sqlite_database_moves_into_the_state_database(tmp_path):
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(tmp_path / "journal.state.sqlite3") as db:
        db.executescript(OLD_STATE)
    (tmp_path / "journal.stamps").write_bytes(bytes(32768))
    store = SqliteStore(path)
    assert store.list_state("s", "mesh.inbox.X26ABC2") == {"M1": StateItem({"w": "W", "t": 1.5, "x": 9.5}, 1)}
    assert store.get_state("s", "mesh.message", "M1") == StateItem({"status": "accepted"}, 2)
    assert store.put_state("s", "mesh.message", "M1", {"status": "acknowledged"}, expect_version=2) == 3
    assert store.next_counter("s", "scenario:x") == 5
    assert store.get_blob("s", "mesh/M1/1") == b"hello"
    assert sorted(p.name for p in tmp_path.iterdir() if "state" in p.name or "stamps" in p.name) == [
        "journal.state.lmdb", "journal.state.lmdb-lock"]
    store.close()
    assert SqliteStore(path).get_state("s", "mesh.message", "M1") == StateItem({"status": "acknowledged"}, 3)


def test_a_new_journal_takes_pages_that_hold_several_exchanges_and_an_older_one_keeps_its_own(tmp_path):
    # An exchange is about 2 KiB: on SQLite's default 4 KiB pages each one fills a page by half.
    store = SqliteStore(tmp_path / "new.sqlite3")
    assert store._db().execute("PRAGMA page_size").fetchone()[0] == 8192
    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as db:
        db.executescript(OLD_SCHEMA)
    store = SqliteStore(old)
    assert store._db().execute("PRAGMA page_size").fetchone()[0] == 4096
    store.record(exchange("s", 2))
    assert [e.request.path for e in store.iter_exchanges("s")] == ["/Patient/1", "/Patient/2"]


def test_the_checkpointer_copies_committed_exchanges_into_the_database_file(tmp_path):
    path = tmp_path / "j.sqlite3"
    store = SqliteStore(path)
    for n in range(3):
        store.record(exchange("s", n, Finding.passed("REQ-A", "ok")))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)  # the database file alone, not the WAL
        try:
            if db.execute("SELECT count(*) FROM exchanges").fetchone()[0] == 3:
                break
        except sqlite3.OperationalError:  # not even the schema has been copied yet
            pass
        finally:
            db.close()
        time.sleep(0.1)
    else:
        raise AssertionError("the exchanges never reached the database file")
    store.close()
