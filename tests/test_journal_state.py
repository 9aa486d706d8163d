"""The state database (LMDB beside the journal): versions, prefixes, long keys, a map that grows while other
processes use it, and transactions shared by every store of the journal in a process."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.journal import state as state_module
from sandbox.journal.sqlite import open_embedded
from sandbox.journal.store import StateItem, VersionConflict

PROCESSES = multiprocessing.get_context("forkserver")  # children forked from a process with no other threads
MiB = 1 << 20


def test_versions_refuse_a_stale_write_and_a_second_create(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    assert store.state.put("s", "ns", "k", {"v": 1}, create_only=True) == 1
    with pytest.raises(VersionConflict) as conflict:
        store.state.put("s", "ns", "k", {"v": 9}, create_only=True)
    assert (conflict.value.expected, conflict.value.actual) == (None, 1)
    assert store.state.put("s", "ns", "k", {"v": 2}, expect_version=1) == 2
    with pytest.raises(VersionConflict) as conflict:
        store.state.put("s", "ns", "k", {"v": 3}, expect_version=1)
    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    with pytest.raises(VersionConflict):
        store.state.put("s", "ns", "missing", {"v": 1}, expect_version=1)
    assert store.state.get("s", "ns", "k") == StateItem({"v": 2}, 2)


def test_prefixes_take_exactly_their_namespaces_and_sessions(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    for session, namespace in (("s", "mesh.inbox.A"), ("s", "mesh.inbox.AB"), ("s", "mesh.message"),
                               ("s2", "mesh.inbox.A"), ("s", "mesh.inbox")):
        store.state.put(session, namespace, "k1", 1)
        store.state.put(session, namespace, "k2", 2)
    assert store.state.items("s", "mesh.inbox.A") == {"k1": StateItem(1, 1), "k2": StateItem(2, 1)}
    store.state.delete("s", "mesh.inbox.A")
    assert store.state.items("s", "mesh.inbox.A") == {}
    assert len(store.state.items("s", "mesh.inbox.AB")) == 2 and len(store.state.items("s2", "mesh.inbox.A")) == 2
    store.state.clear("s", "mesh.inbox")
    assert [store.state.items("s", ns) for ns in ("mesh.inbox", "mesh.inbox.AB")] == [{}, {}]
    assert len(store.state.items("s", "mesh.message")) == 2 and len(store.state.items("s2", "mesh.inbox.A")) == 2
    store.state.put_blob("s", "mesh/M1/1", b"one")
    store.state.put_blob("s", "mesh/M10/1", b"ten")
    store.state.put_blob("s2", "mesh/M1/1", b"other session")
    store.state.delete_blobs("s", "mesh/M1/")
    assert [store.state.get_blob("s", "mesh/M1/1"), store.state.get_blob("s", "mesh/M10/1"),
            store.state.get_blob("s2", "mesh/M1/1")] == [None, b"ten", b"other session"]
    assert [store.state.next_counter("s", "c", start=5), store.state.next_counter("s", "c"), store.state.next_counter("s2", "c")] == [
        5, 6, 0]


def test_a_key_too_long_for_lmdb_is_kept_whole(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    long_key = "k" * 2000
    store.state.put("s", "ns", long_key, {"v": 1})
    store.state.put("s", "ns", "short", {"v": 2})
    assert store.state.put("s", "ns", long_key, {"v": 3}, expect_version=1) == 2
    assert store.state.get("s", "ns", long_key) == StateItem({"v": 3}, 2)
    assert store.state.items("s", "ns") == {long_key: StateItem({"v": 3}, 2), "short": StateItem({"v": 2}, 1)}
    store.state.delete("s", "ns", long_key)
    assert store.state.items("s", "ns") == {"short": StateItem({"v": 2}, 1)}


def test_a_failed_transaction_leaves_nothing_and_every_store_of_the_journal_shares_the_thread_s_transaction(tmp_path):
    path = tmp_path / "journal.sqlite3"
    store, other = open_embedded(str(path)), open_embedded(str(path))  # one LMDB environment per process: shared, not opened twice
    with pytest.raises(RuntimeError), store.state.transaction():
        store.state.put("s", "ns", "k", 1)
        store.state.put_blob("s", "b", b"x")
        assert other.state.get("s", "ns", "k") == StateItem(1, 1)  # the same transaction, not a second writer
        raise RuntimeError("rolled back")
    assert (store.state.get("s", "ns", "k"), store.state.get_blob("s", "b")) == (None, None)
    store.close()
    assert other.state.get("s", "ns", "k") is None  # still open for the store that remains
    other.state.put("s", "ns", "k", 1)
    other.close()
    assert open_embedded(str(path)).state.get("s", "ns", "k") == StateItem(1, 1)


def _grow_in_another_process(path, megabytes, done):
    store = open_embedded(str(path))
    for n in range(megabytes):
        store.state.put_blob("s", f"big/{n}", bytes([n % 256]) * MiB)
    store.close()
    done.set()


def test_values_come_back_as_stored_whichever_json_encoder_wrote_them(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    plain = {"name": "Zoë ✓", "n": 2**63 - 1, "f": 0.1, "list": [None, True, -1.5e-7]}  # orjson writes these
    store.state.put("s", "ns", "plain", plain)
    store.state.put("s", "ns", "big", {"n": 2**70})  # the standard library the rest
    store.state.put("s", "ns", "int keys", {1: "one"})
    store.state.put("s", "ns", "surrogate", {"s": "\udc80"})
    assert store.state.get("s", "ns", "plain").value == plain
    assert store.state.get("s", "ns", "big").value == {"n": 2**70}
    assert store.state.get("s", "ns", "int keys").value == {"1": "one"}  # as JSON keeps keys
    assert store.state.get("s", "ns", "surrogate").value == {"s": "\udc80"}
    with pytest.raises(TypeError):  # refused, as before: not a JSON value
        store.state.put("s", "ns", "when", {"at": datetime.now(UTC)})
    assert store.state.get("s", "ns", "when") is None


def test_the_state_file_is_synced_once_its_changes_pause_and_not_while_they_go_on(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    shared = store.state._shared
    lmdb_env, synced = shared.env, []

    class Watched:  # the LMDB environment, its syncs counted
        def __getattr__(self, name):
            return getattr(lmdb_env, name)

        def sync(self, force: bool = False) -> None:
            synced.append(force)
            lmdb_env.sync(force)

    shared.env = Watched()
    try:
        store.state.put("s", "ns", "k", 1)
        store.state.sync_when_idle()  # changed since the last look
        store.state.put("s", "ns", "k", 2)
        store.state.sync_when_idle()  # and again: still changing
        assert synced == []
        store.state.sync_when_idle()  # nothing since: synced
        store.state.sync_when_idle()  # nothing since the sync
        assert synced == [True]
        store.state.put("s", "ns", "k", 3)
        store.state.sync_when_idle()
        store.state.sync_when_idle()
        assert synced == [True, True]
    finally:
        shared.env = lmdb_env
        store.close()


def test_the_map_grows_as_the_state_does_in_this_process_and_another(tmp_path, monkeypatch):
    monkeypatch.setattr(state_module, "FIRST_MAP_SIZE", 2 * MiB)
    path = tmp_path / "journal.sqlite3"
    store = open_embedded(str(path))
    for n in range(8):  # four times the first map
        store.state.put_blob("s", f"mine/{n}", bytes([n]) * MiB)
    assert store.state._shared.env.info()["map_size"] >= 16 * MiB
    done = PROCESSES.Event()
    child = PROCESSES.Process(target=_grow_in_another_process, args=(path, 40, done))
    child.start()
    assert done.wait(60)
    child.join(30)
    assert store.state.get_blob("s", "big/39") == bytes([39]) * MiB  # past the end of this process's map until it adopts
    assert store.state._shared.env.info()["map_size"] > 40 * MiB  # the other process's size, taken
    store.state.put_blob("s", "mine/after", b"after")
    assert [store.state.get_blob("s", "mine/0"), store.state.get_blob("s", "mine/after")] == [bytes([0]) * MiB, b"after"]


FORKED = """
import os, sys
from sandbox.journal.sqlite import open_embedded
store = open_embedded(str(sys.argv[1]))
store.state.put("s", "ns", "parent", 1)
inherited = id(store.state._shared)
child = os.fork()
if child == 0:
    if id(store.state._shared) == inherited:
        os._exit(2)  # LMDB forbids using the parent's environment: the child must have opened its own
    store.state.put("s", "ns", "child", 2)  # the inherited store, in a process of its own
    os._exit(0 if sorted(store.state.items("s", "ns")) == ["child", "parent"] else 1)
_, status = os.waitpid(child, 0)
store.state.put("s", "ns", "parent again", 3)
print(os.waitstatus_to_exitcode(status), sorted(store.state.items("s", "ns")))
"""


def test_a_store_carried_across_a_fork_goes_on_working_in_both_processes(tmp_path):
    done = subprocess.run([sys.executable, "-c", FORKED, str(tmp_path / "journal.sqlite3")], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.split(maxsplit=1) == ["0", "['child', 'parent', 'parent again']\n"], done.stderr
