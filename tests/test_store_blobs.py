"""The store's generic blob API and write grouping: per session, byte for byte, all-or-nothing."""

from __future__ import annotations

import pytest

from sandbox.journal.store import VersionConflict


def test_blobs_are_per_session_and_byte_exact(sandbox):
    store = sandbox.store
    data = bytes(range(256)) * 100
    store.put_blob("a", "files/1", data)
    store.put_blob("a", "files/2", b"")
    assert store.get_blob("a", "files/1") == data and store.get_blob("a", "files/2") == b""
    assert store.get_blob("b", "files/1") is None
    store.put_blob("a", "files/1", b"replaced")
    assert store.get_blob("a", "files/1") == b"replaced"
    store.put_blob("a", "other", b"keep")
    store.delete_blobs("a", "files/")
    assert store.get_blob("a", "files/1") is None and store.get_blob("a", "other") == b"keep"


def test_a_transaction_commits_everything_or_nothing(sandbox):
    store = sandbox.store
    with pytest.raises(VersionConflict), store.transaction():
        store.put_state("s", "ns", "k", {"v": 1})
        store.put_blob("s", "blob", b"data")
        store.put_state("s", "ns", "k", {"v": 2}, expect_version=7)  # fails: the whole block rolls back
    assert store.get_state("s", "ns", "k") is None and store.get_blob("s", "blob") is None
    with store.transaction(), store.transaction():  # nested blocks join the outer one
        store.put_state("s", "ns", "k", {"v": 1})
        store.put_blob("s", "blob", b"data")
    assert store.get_state("s", "ns", "k").value == {"v": 1} and store.get_blob("s", "blob") == b"data"


def test_clear_state_removes_namespaces_by_prefix(sandbox):
    store = sandbox.store
    for namespace in ("svc.a", "svc.b", "other"):
        store.put_state("s", namespace, "k", 1)
    store.clear_state("s", "svc.")
    assert store.list_state("s", "svc.a") == {} and store.list_state("s", "svc.b") == {}
    assert store.get_state("s", "other", "k").value == 1


def test_counters_count_from_start(sandbox):
    assert [sandbox.store.next_counter("s", "c", start=5) for _ in range(3)] == [5, 6, 7]
