"""The store's generic blob API and write grouping: per session, byte for byte, all-or-nothing."""

from __future__ import annotations

import pytest

from sandbox.journal.store import VersionConflict


def test_blobs_are_per_session_and_byte_exact(sandbox):
    store = sandbox.store
    data = bytes(range(256)) * 100
    store.state.put_blob("a", "files/1", data)
    store.state.put_blob("a", "files/2", b"")
    assert store.state.get_blob("a", "files/1") == data and store.state.get_blob("a", "files/2") == b""
    assert store.state.get_blob("b", "files/1") is None
    store.state.put_blob("a", "files/1", b"replaced")
    assert store.state.get_blob("a", "files/1") == b"replaced"
    store.state.put_blob("a", "other", b"keep")
    store.state.delete_blobs("a", "files/")
    assert store.state.get_blob("a", "files/1") is None and store.state.get_blob("a", "other") == b"keep"


def test_a_transaction_commits_everything_or_nothing(sandbox):
    store = sandbox.store
    with pytest.raises(VersionConflict), store.state.transaction():
        store.state.put("s", "ns", "k", {"v": 1})
        store.state.put_blob("s", "blob", b"data")
        store.state.put("s", "ns", "k", {"v": 2}, expect_version=7)  # fails: the whole block rolls back
    assert store.state.get("s", "ns", "k") is None and store.state.get_blob("s", "blob") is None
    with store.state.transaction(), store.state.transaction():  # nested blocks join the outer one
        store.state.put("s", "ns", "k", {"v": 1})
        store.state.put_blob("s", "blob", b"data")
    assert store.state.get("s", "ns", "k").value == {"v": 1} and store.state.get_blob("s", "blob") == b"data"


def test_clear_state_removes_namespaces_by_prefix(sandbox):
    store = sandbox.store
    for namespace in ("svc.a", "svc.b", "other"):
        store.state.put("s", namespace, "k", 1)
    store.state.clear("s", "svc.")
    assert store.state.items("s", "svc.a") == {} and store.state.items("s", "svc.b") == {}
    assert store.state.get("s", "other", "k").value == 1


def test_counters_count_from_start(sandbox):
    assert [sandbox.store.state.next_counter("s", "c", start=5) for _ in range(3)] == [5, 6, 7]
