"""Session state kept between reads: a process reads a namespace again as soon as any process has changed it, never
later, and a transaction always sees its own writes."""

from __future__ import annotations

import multiprocessing

from sandbox.journal.sqlite import open_embedded
from sandbox.journal.store import StateItem

PROCESSES = multiprocessing.get_context("forkserver")  # children forked from a process with no other threads


def _write_in_another_process(path, value, done):
    open_embedded(str(path)).state.put("s", "ns", "k", value)
    done.set()


def test_a_change_made_by_another_process_is_read_at_once(tmp_path):
    path = tmp_path / "journal.sqlite3"
    store = open_embedded(str(path))
    store.state.put("s", "ns", "k", 1)
    assert store.state.items("s", "ns") == {"k": StateItem(1, 1)}  # read, and kept
    for value in (2, 3):
        done = PROCESSES.Event()
        child = PROCESSES.Process(target=_write_in_another_process, args=(path, value, done))
        child.start()
        assert done.wait(30)
        child.join(30)
        assert store.state.items("s", "ns")["k"].value == value


def test_every_kind_of_change_is_seen_and_other_namespaces_are_kept(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    store.state.put("s", "a.one", "k", 1)
    store.state.put("s", "b", "k", 1)
    assert store.state.items("s", "b") == {"k": StateItem(1, 1)}
    stamp_of_b = store.state.stamp("s", "b")
    store.state.delete("s", "a.one", "k")
    assert store.state.items("s", "a.one") == {}
    store.state.put("s", "a.one", "k", 2)
    store.state.clear("s", "a.")
    assert store.state.items("s", "a.one") == {}
    assert store.state.stamp("s", "b") == stamp_of_b  # untouched: still read from what was kept
    assert store.state.items("s", "b") == {"k": StateItem(1, 1)}


def test_a_transaction_reads_its_own_writes_and_others_see_them_only_once_committed(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    store.state.put("s", "ns", "k", 1)
    assert store.state.items("s", "ns")["k"].value == 1
    try:
        with store.state.transaction():
            store.state.put("s", "ns", "k", 2)
            assert store.state.stamp("s", "ns") is None  # no kept read inside a transaction
            assert store.state.items("s", "ns")["k"].value == 2
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert store.state.items("s", "ns")["k"].value == 1
    with store.state.transaction():
        store.state.put("s", "ns", "k", 3)
    assert store.state.items("s", "ns")["k"].value == 3


def test_values_handed_out_are_the_callers_own(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    store.state.put("s", "ns", "k", {"list": [1]})
    store.state.items("s", "ns")["k"].value["list"].append(2)  # a caller changing what it was given
    assert store.state.items("s", "ns")["k"].value == {"list": [1]}
