"""The journal's spool and claims as worker processes use them: every exchange answered in any process is in every
query after, a killed process loses nothing, a damaged tail is reported, and a key is used up once across processes."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import struct
import time

from sandbox.journal import spool
from sandbox.journal import sqlite as journal_sqlite
from sandbox.journal.sqlite import open_embedded
from sandbox.journal.store import ExchangeFilter
from tests.test_journal_storage import exchange

PROCESSES = multiprocessing.get_context("forkserver")  # children forked from a process with no other threads


def _record_and_wait(path, n, ready, done):
    store = open_embedded(str(path))
    for i in range(n):
        store.journal.record(exchange("s", i))
    ready.set()
    done.wait(30)


def test_a_query_sees_what_another_live_process_spooled(tmp_path):
    path = tmp_path / "journal.sqlite3"
    reader = open_embedded(str(path))
    ready, done = PROCESSES.Event(), PROCESSES.Event()
    writer = PROCESSES.Process(target=_record_and_wait, args=(path, 5, ready, done))
    writer.start()
    try:
        assert ready.wait(30)
        assert reader.journal.count_exchanges(ExchangeFilter(session="s")) == 5  # answered there, seen here at once
    finally:
        done.set()
        writer.join(30)


def _record_then_die(path, n, numbers=None):
    store = open_embedded(str(path))
    for i in numbers if numbers is not None else range(n):
        store.journal.record(exchange("s", i))
    os.kill(os.getpid(), signal.SIGKILL)  # no close(), no import: only the spool file remains


def test_a_killed_process_loses_nothing_and_its_spool_is_removed_once_imported(tmp_path):
    path = tmp_path / "journal.sqlite3"
    killed = PROCESSES.Process(target=_record_then_die, args=(path, 40))
    killed.start()
    killed.join(30)
    assert killed.exitcode == -signal.SIGKILL
    assert list((tmp_path / "journal.sqlite3.spool").glob("*.spool"))
    store = open_embedded(str(path))  # opening imports what the killed process left
    assert [e.started_at for e in store.journal.iter_exchanges("s")] == [1000.0 + n for n in range(40)]
    assert not list((tmp_path / "journal.sqlite3.spool").glob("*.spool"))
    store.close()
    assert open_embedded(str(path)).journal.count_exchanges(ExchangeFilter()) == 40  # imported once, not again


def test_a_torn_tail_is_reported_and_the_whole_records_before_it_kept(tmp_path, caplog):
    path = tmp_path / "journal.sqlite3"
    killed = PROCESSES.Process(target=_record_then_die, args=(path, 3))
    killed.start()
    killed.join(30)
    spooled = next((tmp_path / "journal.sqlite3.spool").glob("*.spool"))
    with open(spooled, "ab") as tail:
        tail.write(b"\x40\x00\x00\x00torn")  # a record header and less than its length
    with caplog.at_level(logging.ERROR):
        store = open_embedded(str(path))
    assert store.journal.count_exchanges(ExchangeFilter()) == 3
    assert "not a whole record" in caplog.text
    assert not spooled.exists()


def _open_wait_record_die(path, numbers, opened):
    journal_sqlite.IMPORT_EVERY_S = 3600  # nothing imported in the background: both spools are imported together
    store = open_embedded(str(path))
    opened.wait(30)  # both processes have opened the journal (and imported what was there) before either records
    for n in numbers:
        store.journal.record(exchange("s", n))
    os.kill(os.getpid(), signal.SIGKILL)


def test_exchanges_spooled_by_several_processes_are_journaled_in_the_order_they_began(tmp_path):
    path = tmp_path / "journal.sqlite3"
    opened = PROCESSES.Barrier(2)
    children = [PROCESSES.Process(target=_open_wait_record_die, args=(path, numbers, opened))
                for numbers in ([0, 2, 5], [1, 3, 4])]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
    store = open_embedded(str(path))
    assert [e.started_at for e in store.journal.iter_exchanges("s")] == [1000.0 + n for n in range(6)]


def _claim_many(path, keys, results):
    store = open_embedded(str(path))
    results.put(sum(store.state.claim("s", "tokens", key, time.time() + 60) for key in keys))


def test_a_key_is_claimed_once_across_processes(tmp_path):
    path = tmp_path / "journal.sqlite3"
    keys = [f"token-{n}" for n in range(2000)]
    results = PROCESSES.Queue()
    workers = [PROCESSES.Process(target=_claim_many, args=(path, keys, results)) for _ in range(3)]
    for worker in workers:
        worker.start()
    wins = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert sum(wins) == len(keys)  # each key won by exactly one process
    store = open_embedded(str(path))
    assert store.state.claimed("s", "tokens", "token-7")
    assert not store.state.claim("s", "tokens", "token-7", time.time() + 60)
    assert not store.state.claimed("s", "other", "token-7")  # namespaces and sessions are apart


def test_claims_expire_are_given_back_with_a_failed_transaction_and_survive_a_restart(tmp_path):
    path = tmp_path / "journal.sqlite3"
    store = open_embedded(str(path))
    assert store.state.claim("s", "jti", "old", time.time() - 1)  # already past its time: forgotten
    assert not store.state.claimed("s", "jti", "old")
    assert store.state.claim("s", "jti", "kept", time.time() + 60)
    try:
        with store.state.transaction():
            assert store.state.claim("s", "jti", "old", time.time() + 60)
            raise RuntimeError("the request failed after all")
    except RuntimeError:
        pass
    assert not store.state.claimed("s", "jti", "old")  # given back with the transaction
    store.close()
    again = open_embedded(str(path))
    assert again.state.claimed("s", "jti", "kept") and not again.state.claimed("s", "jti", "old")


def test_expired_claims_are_forgotten_and_a_claim_made_again_keeps_its_new_time(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    now = time.time()
    for n in range(25):
        assert store.state.claim("s", "tokens", f"k{n}", now + 10)
    assert store.state.claim("s", "tokens", "late", now + 3600)
    assert store.state.forget_expired_claims(now) == 0  # none is past its time yet
    assert store.state.claim("s", "tokens", "k0", now - 5) is False  # still held: not taken again
    assert store.state.forget_expired_claims(now + 20) == 25
    assert not store.state.claimed("s", "tokens", "k3") and store.state.claimed("s", "tokens", "late")
    assert store.state.claim("s", "tokens", "k3", now + 7200)  # free again, and held until its new time
    assert store.state.forget_expired_claims(now + 3700) == 1  # "late"; k3 is kept
    assert [store.state.claimed("s", "tokens", k) for k in ("late", "k3")] == [False, True]


def test_records_are_read_whole_across_chunks_and_a_damaged_one_ends_the_read(tmp_path, monkeypatch):
    monkeypatch.setattr(spool, "READ_CHUNK", 100)  # records straddle the chunks read
    writer = spool.SpoolWriter(tmp_path)
    rows = [(n, "x" * (n * 37 % 300), b"\0" * (6000 if n == 7 else n)) for n in range(20)]  # 7: over a CRC piece
    for row in rows:
        writer.append(row)
    read, end = spool.read(writer.path, 0, 8)
    assert read == rows[:8]
    rest, last = spool.read(writer.path, end, 100)
    assert rest == rows[8:] and last == writer.path.stat().st_size
    assert spool.read(writer.path, last, 100) == ([], last)  # nothing more yet
    data = bytearray(writer.path.read_bytes())
    data[end + spool.HEADER.size + 3] ^= 0xFF  # the ninth record's payload: its CRC no longer matches
    damaged = tmp_path / "damaged.spool"
    damaged.write_bytes(bytes(data) + struct.pack("<II", 1 << 31, 0))  # and a length the file cannot hold
    assert spool.read(damaged, 0, 100) == (rows[:8], end)
    assert spool.read(damaged, last, 100) == ([], last)
    writer.close()
