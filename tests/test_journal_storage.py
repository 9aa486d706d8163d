"""The SQLite journal's storage: findings kept with their exchange and indexed by requirement in batches."""

from __future__ import annotations

import sqlite3
import time

import pytest

from sandbox.conformance.findings import Finding, SpineError
from sandbox.journal import sqlite as journal_sqlite
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.journal.sqlite import open_embedded
from sandbox.journal.store import ExchangeFilter


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
    store = open_embedded(str(tmp_path / "j.sqlite3"))
    total = 8 * 8 + 5
    for n in range(total):
        store.journal.record(exchange("s", n, *findings_of(n)))
    store.journal.record(exchange("s", total))  # no findings at all
    first = next(store.journal.iter_exchanges("s"))
    assert first.findings == findings_of(0)
    assert first.findings[1].reject == SpineError(400, "INVALID_VALUE")
    assert store.journal.exchange(first.id).findings == findings_of(0)
    assert {(t.requirement, t.outcome, t.count) for t in store.totals.findings("s")} == {
        ("REQ-A", "pass", total), ("REQ-A", "warning", total), ("REQ-B", "fail", total)}
    samples = store.totals.samples("s", "REQ-B", "fail", 2, 2)
    assert [f.message for _, f in samples] == ["b 0", "b 1", f"b {total - 2}", f"b {total - 1}"]
    assert samples[0][1].reject == SpineError(400, "INVALID_VALUE")
    cells = {(c.requirement, c.scenario, c.outcome): c.count for c in store.totals.coverage("s")}
    assert cells[("REQ-B", "s1", "fail")] + cells[("REQ-B", None, "fail")] == total
    assert store.journal.count_exchanges(ExchangeFilter(session="s", requirement="REQ-B")) == total
    # Recorded after the index caught up: seen at once by the next query.
    store.journal.record(exchange("s", total + 1, Finding.info("REQ-C", "late")))
    assert store.journal.count_exchanges(ExchangeFilter(requirement="REQ-C")) == 1
    assert [e.findings for e in store.journal.latest("s", "pds")] == [[]]  # history lookups do not load findings


def test_bulk_and_single_records_mix_without_losing_an_index_entry(tmp_path):
    store = open_embedded(str(tmp_path / "j.sqlite3"))
    store.journal.record(exchange("s", 1, Finding.passed("REQ-A", "one")))
    store.journal.record_many([exchange("s", 2, Finding.passed("REQ-A", "two"))])
    store.journal.record(exchange("s", 3, Finding.passed("REQ-A", "three")))
    assert [(t.requirement, t.count) for t in store.totals.findings("s")] == [("REQ-A", 3)]


def test_a_journal_in_an_earlier_development_layout_is_refused_in_one_line(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE exchanges (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE)")
    db.close()
    with pytest.raises(ValueError, match=r"old.sqlite3 was written in an earlier development layout \(its exchanges "
                                         r"have no damage or findings column\); move it away or start with another "
                                         r"--data-dir"):
        open_embedded(str(path))


def test_a_new_journal_takes_pages_that_hold_several_exchanges(tmp_path):
    # An exchange is about 2 KiB: on SQLite's default 4 KiB pages each one fills a page by half.
    store = open_embedded(str(tmp_path / "new.sqlite3"))
    assert store.journal._db().execute("PRAGMA page_size").fetchone()[0] == 8192


def test_the_checkpointer_copies_committed_exchanges_into_the_database_file(tmp_path):
    path = tmp_path / "j.sqlite3"
    store = open_embedded(str(path))
    for n in range(3):
        store.journal.record(exchange("s", n, Finding.passed("REQ-A", "ok")))
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
