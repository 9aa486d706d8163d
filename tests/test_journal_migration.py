"""A journal written before exchange keys were a table of their own index and before the finding index was kept by
finding set is brought up to date when it is opened, by one process however many open it at once, and answers every
query as it did before."""

from __future__ import annotations

import multiprocessing
import sqlite3

from sandbox.conformance.findings import Finding
from sandbox.journal import sqlite as journal_sqlite
from sandbox.journal.sqlite import open_embedded
from sandbox.journal.store import ExchangeFilter
from tests.test_journal_storage import exchange

PROCESSES = multiprocessing.get_context("forkserver")

# The tables as the journal had them before.
EARLIER_LAYOUT = """
CREATE TABLE finding_index (
    session TEXT NOT NULL,
    requirement TEXT NOT NULL,
    outcome TEXT NOT NULL,
    exchange_seq INTEGER NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (session, requirement, outcome, exchange_seq, position)
) WITHOUT ROWID;
CREATE TABLE exchange_keys (
    session TEXT NOT NULL,
    key TEXT NOT NULL,
    exchange_seq INTEGER NOT NULL
);
CREATE INDEX exchange_keys_lookup ON exchange_keys (session, key, exchange_seq);
"""
EARLIER_INDEXING = """
INSERT INTO finding_index
SELECT e.session, f.value ->> 0, f.value ->> 1, e.seq, f.key FROM exchanges e, json_each(e.findings) f
WHERE e.seq <= ? AND e.findings IS NOT NULL AND json_valid(e.findings)
"""


def findings_of(n: int) -> list[Finding]:
    return [[Finding.passed("REQ-A", f"a {n}"), Finding.failed("REQ-B", f"b {n}")],
            [Finding.warning("REQ-B", f"w {n}"), Finding.passed("REQ-A", f"c {n}")]][n % 2]


def make_earlier_journal(path) -> dict:
    """A journal of 30 exchanges in the earlier layout (the newest 5 not indexed yet); what its queries answer."""
    store = open_embedded(str(path))
    for n in range(30):
        store.journal.record(exchange("s" if n < 25 else "t", n, *findings_of(n)), keys=[f"n:{n % 4}", "all"])
    answers = answers_of(store)
    store.close()
    db = sqlite3.connect(path)
    try:
        db.executescript(f"""BEGIN;
            DROP VIEW finding_index; DROP TABLE exchange_findings; DROP TABLE finding_set_entries;
            DROP TABLE finding_sets; ALTER TABLE exchange_keys RENAME TO keys_now;
            {EARLIER_LAYOUT}
            INSERT INTO exchange_keys SELECT * FROM keys_now;
            INSERT INTO exchange_keys SELECT * FROM keys_now WHERE key = 'n:1';  -- entered twice
            DROP TABLE keys_now;
            {EARLIER_INDEXING.replace("?", "25")};
            UPDATE journal_meta SET value = 25 WHERE name = '{journal_sqlite.INDEXED_THROUGH}';
            COMMIT;""")
    finally:
        db.close()
    return answers


def answers_of(store) -> dict:
    return {
        "totals": [tuple(t.__dict__.values()) for t in store.totals.findings("s")],
        "samples": [(seq, f.message) for seq, f in store.totals.samples("s", "REQ-A", "pass", 3, 3)],
        "coverage": sorted(tuple(map(str, c.__dict__.values())) for c in store.totals.coverage("s")),
        "filtered": store.journal.count_exchanges(ExchangeFilter(requirement="REQ-B", session="t")),
        "related": [e.seq for e in store.journal.related("s", "n:1", limit=10)],
    }


def layout(path) -> dict:
    db = sqlite3.connect(path)
    try:
        return {name: (kind, sql) for name, kind, sql in db.execute("SELECT name, type, sql FROM sqlite_master")}
    finally:
        db.close()


def test_a_journal_in_the_earlier_layout_is_brought_up_to_date_and_answers_as_before(tmp_path):
    path = tmp_path / "journal.sqlite3"
    answers = make_earlier_journal(path)
    assert layout(path)["finding_index"][0] == "table"
    store = open_embedded(str(path))
    try:
        tables = layout(path)
        assert "WITHOUT ROWID" in tables["exchange_keys"][1] and "exchange_keys_lookup" not in tables
        assert tables["finding_index"][0] == "view" and "keys_now" not in tables
        assert answers_of(store) == answers
        assert answers["related"] == [22, 18, 14, 10, 6, 2]  # the key entered twice is kept once
        store.journal.record(exchange("s", 30, *findings_of(0)), keys=["n:1"])
        assert store.journal.count_exchanges(ExchangeFilter(requirement="REQ-B")) == 31
        assert store.journal.related("s", "n:1", limit=1)[0].started_at == 1030.0
    finally:
        store.close()
    again = open_embedded(str(path))  # and opened again, nothing more is done
    try:
        assert answers_of(again)["totals"] == [("REQ-A", "pass", 26), ("REQ-B", "fail", 14), ("REQ-B", "warning", 12)]
    finally:
        again.close()


def _open_together(path, n, opened, results):
    opened.wait(30)
    store = open_embedded(str(path))
    store.journal.record(exchange("t", 100 + n, *findings_of(0)), keys=[f"process:{n}"])
    results.put(store.journal.count_exchanges(ExchangeFilter(requirement="REQ-A")))
    store.close()


def test_processes_opening_an_earlier_journal_at_once_bring_it_up_to_date_once(tmp_path):
    path = tmp_path / "journal.sqlite3"
    answers = make_earlier_journal(path)
    opened = PROCESSES.Barrier(4)
    results = PROCESSES.Queue()
    children = [PROCESSES.Process(target=_open_together, args=(path, n, opened, results)) for n in range(4)]
    for child in children:
        child.start()
    counts = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    assert all(31 <= count <= 34 for count in counts)  # its own exchange and any others' recorded by then
    store = open_embedded(str(path))
    try:
        assert answers_of(store) == {**answers, "filtered": answers["filtered"] + 4}  # the 4 recorded in "t"
        assert store.journal.count_exchanges(ExchangeFilter(requirement="REQ-A")) == 34
        db = store.journal._db()
        assert db.execute("SELECT count(*) FROM exchange_keys").fetchone()[0] == 2 * 30 + 4
        assert db.execute("SELECT count(*) FROM exchange_findings").fetchone()[0] == 34
    finally:
        store.close()
