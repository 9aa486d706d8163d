"""The SQLite journal's import and finding index: exchanges imported many to a statement keep their order, seqs and
keys; each exchange is indexed under its finding set, whether it is indexed as it is imported or later from its row,
and totals, samples, coverage and filters count every finding exactly; one process at a time maintains a journal."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time

from sandbox.conformance.findings import Finding
from sandbox.journal import sqlite as journal_sqlite
from sandbox.journal.sqlite import open_embedded
from sandbox.journal.store import ExchangeFilter
from tests.test_journal_storage import exchange


def pattern(n: int) -> list[Finding]:
    """One of three finding sets: REQ-A passes twice in one of them, REQ-B fails in two."""
    return [[Finding.passed("REQ-A", f"a {n}"), Finding.failed("REQ-B", f"b {n}")],
            [Finding.failed("REQ-B", f"b {n}"), Finding.passed("REQ-A", f"a {n}"), Finding.passed("REQ-A", f"c {n}")],
            [Finding.info("REQ-C", f"i {n}")]][n % 3]


def record(store, numbers, session: str = "s", bulk: bool = False) -> None:
    exchanges = [exchange(session, n, *pattern(n)) for n in numbers]
    if bulk:  # inserted directly, its findings indexed later from its rows
        store.journal.record_many(exchanges)
    else:  # spooled, its findings indexed as it is imported
        for each in exchanges:
            store.journal.record(each)


def test_every_finding_is_counted_sampled_and_filtered_exactly_across_finding_sets(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_sqlite, "IMPORT_EVERY_S", 3600)  # imported by the queries, in this thread
    monkeypatch.setattr(journal_sqlite, "ROWS_PER_INSERT", 4)  # several statements per import
    store = open_embedded(str(tmp_path / "j.sqlite3"))
    try:
        record(store, range(0, 40))
        record(store, range(40, 50), bulk=True)
        record(store, range(50, 60))
        record(store, range(3), session="other")
        store.journal.record(exchange("s", 60))  # no findings
        sets = store.journal._db().execute("SELECT count(*) FROM finding_sets").fetchone()[0]
        totals = {(t.requirement, t.outcome): t.count for t in store.totals.findings("s")}
        assert sets == 3  # shared by 63 exchanges with findings
        a, b, c = (len([n for n in range(60) if n % 3 == k]) for k in range(3))
        assert totals == {("REQ-A", "pass"): a + 2 * b, ("REQ-B", "fail"): a + b, ("REQ-C", "info"): c}
        # The first and last places, across the sets, in order of exchange and position in it.
        samples = store.totals.samples("s", "REQ-A", "pass", 4, 3)
        assert [f.message for _, f in samples] == ["a 0", "a 1", "c 1", "a 3", "a 57", "a 58", "c 58"]
        assert store.totals.samples("s", "REQ-C", "info", 0, 0) == []
        assert [f.message for _, f in store.totals.samples("s", "REQ-C", "info", -1, 0)] == [
            f"i {n}" for n in range(60) if n % 3 == 2]  # a negative limit is none, as in SQL
        cells = {(c.requirement, c.scenario, c.outcome): c.count for c in store.totals.coverage("s")}
        assert sum(v for (r, _, o), v in cells.items() if (r, o) == ("REQ-A", "pass")) == a + 2 * b
        assert cells[("REQ-C", "s1", "info")] == len([n for n in range(60) if n % 3 == 2 and n % 2])
        assert store.journal.count_exchanges(ExchangeFilter(session="s", requirement="REQ-B")) == a + b
        assert store.journal.count_exchanges(ExchangeFilter(requirement="REQ-B")) == a + b + 2
        assert store.journal.count_exchanges(ExchangeFilter(requirement="REQ-D")) == 0
        assert store.journal.forget(["other"]) == 3
        assert store.journal.count_exchanges(ExchangeFilter(requirement="REQ-B")) == a + b
        assert {(t.requirement, t.outcome): t.count for t in store.totals.findings("s")} == totals
    finally:
        store.close()


def test_imported_exchanges_keep_the_order_they_began_in_and_their_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_sqlite, "IMPORT_EVERY_S", 3600)
    monkeypatch.setattr(journal_sqlite, "ROWS_PER_INSERT", 8)
    store = open_embedded(str(tmp_path / "j.sqlite3"))
    try:
        numbers = [(n * 37) % 101 for n in range(101)]  # recorded out of order
        for n in numbers:
            store.journal.record(exchange("s", n, *pattern(n)), keys=[f"n:{n}", f"even:{n % 2}", "all"])
        store.journal.catch_up()
        again = exchange("s", 5)
        again.id = next(store.journal.iter_exchanges("s")).id  # an id already journaled
        store.journal.record(again, keys=["again"])
        store.journal.catch_up()
        journaled = list(store.journal.iter_exchanges("s"))
        assert [e.started_at for e in journaled] == [1000.0 + n for n in range(101)]
        assert [e.seq for e in journaled] == list(range(1, 102))
        assert [e.started_at for e in store.journal.related("s", "n:42", limit=5)] == [1042.0]
        assert [e.started_at for e in store.journal.related("s", "even:1", limit=100)] == [
            1000.0 + n for n in range(99, 0, -2)]
        assert len(store.journal.related("s", "all", limit=1000)) == 101
        # An exchange with an id already journaled is left out; its keys join the one journaled under it.
        assert [e.seq for e in store.journal.related("s", "again", limit=5)] == [1]
        db = store.journal._db()
        assert db.execute("SELECT count(*) FROM exchange_keys").fetchone()[0] == 3 * 101 + 1
        assert db.execute("SELECT count(*) FROM exchange_findings").fetchone()[0] == 101
    finally:
        store.close()


def test_findings_that_are_not_text_are_left_out_of_the_index_and_the_others_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_sqlite, "IMPORT_EVERY_S", 3600)
    store = open_embedded(str(tmp_path / "j.sqlite3"))
    try:
        record(store, range(3), bulk=True)
        db = store.journal._db()
        db.execute("UPDATE exchanges SET findings = ? WHERE seq = 1",
                   ('[[null,"pass","m","",null,null],["REQ-B","fail","m","",null,null],["\\ud800","pass"]]',))
        db.execute("UPDATE exchanges SET findings = '{\"REQ-A\": 1}' WHERE seq = 2")
        assert {(t.requirement, t.outcome): t.count for t in store.totals.findings("s")} == {
            ("REQ-B", "fail"): 1, ("REQ-C", "info"): 1}
        assert [seq for seq, _ in store.totals.samples("s", "REQ-B", "fail", 5, 5)] == [1]
    finally:
        store.close()


def test_one_process_at_a_time_maintains_a_journal_and_another_takes_over_when_it_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_sqlite, "IMPORT_EVERY_S", 0.05)
    path = tmp_path / "j.sqlite3"
    first = open_embedded(str(path))
    wait_for(lambda: maintained(path))
    # Another store of the same journal stands for another process: its lock file is opened apart from the first's.
    second = open_embedded(str(path))
    try:
        for n in range(1, 6):
            second.journal.record(exchange("s", n))
            wait_for(lambda n=n: imported(path) == n)  # by the first's maintenance thread

        def standing_by():  # the second's maintenance thread, once it has asked for the lock
            return [h for h in second.journal._handles if any(p.endswith(".maintainer") for p in h.locks)]

        wait_for(standing_by)
        time.sleep(0.2)
        assert [h.db.total_changes for h in standing_by()] == [0]  # it has written nothing
        first.close()
        second.journal.record(exchange("s", 6))
        wait_for(lambda: imported(path) == 6)  # by the second's, now
    finally:
        first.close()
        second.close()


def maintained(path) -> bool:
    """Whether a maintenance thread holds the journal's maintainer lock."""
    fd = os.open(f"{path}.maintainer", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def imported(path) -> int:
    """Exchanges in the journal's database, read without importing what is spooled."""
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM exchanges").fetchone()[0]
    finally:
        db.close()


def wait_for(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)
