"""Session state (state rows, their change stamps, counters, blobs) in an LMDB file beside the journal.

Why not SQLite, as the journal: after any other connection commits, SQLite drops a connection's whole page cache, so
with two worker processes taking turns every state write began by reading its B-tree pages again, then wrote a dozen
WAL frames; on the MESH send path that was about 40% of a request's CPU. LMDB is one memory map every process shares:
a read copies nothing and waits for nobody, and a commit writes only the pages it changed.

Named databases of the environment (`S` is the session, NUL-separated):
  state     S NUL namespace NUL key -> version (4 bytes) + the value's JSON
  stamps    S NUL namespace         -> id of the last transaction that changed the namespace (8 bytes)
  counters  S NUL name              -> value (8 bytes, signed)
  blobs     S NUL key               -> bytes
  claims    digest of (S, namespace, key) -> when it may be forgotten (8-byte float): used single-use keys
  forget    that moment (8 bytes, big-endian seconds) + the digest -> nothing: claims in the order they expire
  recent    S NUL history key (its digest, if long) -> when the exchange began (8-byte float) + its entry (journal/recent.py)
A state key LMDB cannot hold (over 511 bytes) is stored under its digest, with the key itself in the value.

Commits are not synced one by one: a killed process loses nothing (its writes are in the operating system's cache).
The journal's maintenance thread syncs the file once changes pause (sync_when_idle); while they go on, the operating
system writes the file back in its own time. The map starts small and doubles while it is more than half full, so the
file on disk (which some systems size to the map) stays near what it holds.

Where the system can reserve disk space for a file (posix_fallocate), commits write through the map itself rather
than copying each changed page into the file with a system call: 15-25 µs less per commit, 5-10% of a MESH inbox read
or send (benchmarks/request_path.py). A page of the map the disk has no room for would kill the process (SIGBUS) when
first written, so the file's space is reserved ahead of the changes: each put or delete first counts the room it can
take (its bytes and the pages it copies) against what is reserved, and reserves more (a quarter ahead) before going
past it. With no room to reserve, the change fails with ENOSPC, as a write() would, and the request is answered 503
(journal/space.py). (Copying pages with system calls and no reservation is worse than slower: LMDB fails the commit
whose write finds the disk full with EIO, and every later one, until the file is opened again.)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import struct
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from threading import get_ident
from typing import Any

import lmdb

from sandbox.journal.rows import compact_json
from sandbox.journal.space import out_of_space
from sandbox.journal.store import SessionState, StateItem, VersionConflict, claim_until, joinable

VERSION = struct.Struct("<I")
STAMP = struct.Struct("<Q")
COUNTER = struct.Struct("<q")
UNTIL = struct.Struct("<d")
FORGET_AT = struct.Struct(">Q")  # big-endian: LMDB's key order is the order of the seconds
COUNTER_RANGE = (-(1 << 63), (1 << 63) - 1)
FORGET_BATCH = 10_000  # expired claims dropped per transaction (writers get turns between)
FIRST_MAP_SIZE = 256 << 20  # at least twice the largest single write (a 100 MB MESH chunk) is always free
CHANGE_PAGES = 4  # pages a put or delete may copy or add besides its bytes: its leaf, the branches above, a split
RESERVE_AHEAD = 1 << 20  # at least this much disk is reserved beyond what a change needs, so that few changes reserve
KEY_LENGTH = struct.Struct("<I")
RECENT_KEY_LIMIT = 511  # LMDB's longest key (its default build): a longer history key is kept under its digest
LONG_KEY = b"\x01"  # a state key LMDB cannot hold: its digest in the LMDB key, the key itself in the value
_loads = json.JSONDecoder().decode  # of text: json.loads of bytes first works out their encoding, twice the cost


class _Local(threading.local):
    txn: lmdb.Transaction | None = None  # this thread's write transaction
    needs: int = 0  # the bytes of the file its changes may reach (writable map only)
    changed: set[tuple[str, str]] | None = None  # the (session, namespace) pairs it changes
    scope: str | None = None  # the session its outer transaction() is over (None: the whole store)


def _reservable(path: str) -> int | None:
    """The LMDB file opened for reserving its disk space (made, if new), where the file system can reserve space;
    None where it cannot (no posix_fallocate, or a file system without it), and commits then write with system calls.
    A file beside it is the probe: reserving space in the LMDB file itself would lengthen a new one."""
    if not hasattr(os, "posix_fallocate"):
        return None
    probe = f"{path}.{os.getpid()}.probe"
    try:
        descriptor = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:  # a full disk may not take even an empty file: reserving is taken to work, as on Linux
        if not out_of_space(error):
            return None  # e.g. a folder this user cannot write: LMDB says so in its own words
    else:
        try:
            os.posix_fallocate(descriptor, 0, 1)
        except OSError as error:
            if not out_of_space(error):  # e.g. EOPNOTSUPP: no reserving here, however much room there is
                return None
        finally:
            os.close(descriptor)
            os.unlink(probe)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


class _Environment:
    """One per file per process (LMDB forbids a second): every store of the journal in this process shares it, and
    with it each thread's write transaction."""

    def __init__(self, path: str):
        self._file = _reservable(path)  # None: pages are copied into the file by commits (no writable map)
        self._reserved = 0  # bytes of the file this process has reserved disk space for
        try:
            with self._sizing() as size:
                self.env = lmdb.open(path, subdir=False, map_size=max(FIRST_MAP_SIZE, size), max_dbs=8, sync=False,
                                     metasync=False, writemap=self._file is not None, readahead=False,
                                     max_readers=1024)
        except BaseException:
            self.close_file()
            raise
        self.env.reader_check()  # slots left by killed processes would keep old pages from being reused
        self.state, self.stamps, self.counters, self.blobs, self.claims, self.forget, self.recent = (
            self.env.open_db(name) for name in (b"state", b"stamps", b"counters", b"blobs", b"claims", b"forget",
                                                b"recent"))
        self.page_size = self.env.stat()["psize"]
        self.local = _Local()
        self.users = 0
        # Resizing the map needs every transaction of this process ended (LMDB's rule). Each thread holds at most one
        # (reads inside a write use it), so the threads in a transaction are a set; adding to it is atomic.
        self._active: set[int] = set()
        self._resizing = False
        self._resized = threading.Event()
        self._resized.set()
        self._resize_lock = threading.Lock()
        self._changed_at = self._synced_at = -1  # transaction ids (sync_when_idle)

    def begin(self, write: bool) -> lmdb.Transaction:
        me = get_ident()
        while True:
            self._active.add(me)
            if self._resizing:
                self._active.discard(me)
                self._resized.wait()
                continue
            try:
                return self.env.begin(write=write)
            except lmdb.MapResizedError:  # another process grew the map past ours: take its size, then again
                self._active.discard(me)
                self._resize(0)
            except BaseException:
                self._active.discard(me)
                raise

    def end(self) -> None:
        self._active.discard(get_ident())

    def close(self) -> None:
        try:
            self.env.close()
        finally:
            self.close_file()

    def close_file(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def changes_begin(self) -> None:
        """This thread's write transaction has begun: its changes start from the end of the data as it is now (no
        other writer can commit until it ends)."""
        if self._file is not None:
            self.local.needs = (self.env.info()["last_pgno"] + 1) * self.page_size

    def room(self, size: int) -> None:
        """Disk space for a change of `size` bytes in this thread's write transaction, reserved before it is made."""
        if self._file is None:
            return
        local = self.local
        local.needs += size + CHANGE_PAGES * self.page_size
        if local.needs > self._reserved:
            self._reserve(local.needs)

    def _reserve(self, needed: int) -> None:
        # Never past the map (nothing is written there): a file longer than a map is cut to it when that map is made.
        mapped = self.env.info()["map_size"]
        needed = min(needed, mapped)
        ahead = min(needed + max(RESERVE_AHEAD, needed // 4), mapped)
        if needed <= self._reserved:
            return  # the change goes past the map: LMDB refuses it (MapFullError) before writing anything
        try:
            os.posix_fallocate(self._file, self._reserved, ahead - self._reserved)
            self._reserved = ahead
        except OSError as error:
            if not out_of_space(error):
                raise
            # No room to reserve ahead: the room this change needs, or ENOSPC for the write to fail with.
            os.posix_fallocate(self._file, self._reserved, needed - self._reserved)
            self._reserved = needed

    @contextlib.contextmanager
    def _sizing(self) -> Iterator[int]:
        """Held while a map is made (at open and resize), across processes; yields the file's length. Through a writable
        map LMDB sets the file's length to the map's, so a map smaller than the file would cut off the end of another
        process's map (SIGBUS there) and the space reserved in it: every map is made at least as long as the file."""
        if self._file is None:
            yield 0
            return
        fcntl.flock(self._file, fcntl.LOCK_EX)
        try:
            yield os.fstat(self._file).st_size
        finally:
            fcntl.flock(self._file, fcntl.LOCK_UN)

    def sync_when_idle(self) -> None:
        """Sync the file if nothing has changed it since the last call, once per pause: called every few seconds, it
        syncs a few seconds after changes stop. Not while they go on: a sync of the map write-protects every page it
        writes out, in every process that maps the file, and the next change to each page faults. Synced every two
        seconds under load, served PDS retrievals had a p99 of 41-45 ms against 22-27 ms over 30 s runs, at the same
        rate (docs/services/pds.md)."""
        changed = self.env.info()["last_txnid"]
        if changed == self._synced_at:
            return
        if changed != self._changed_at:
            self._changed_at = changed  # still changing
            return
        self.env.sync(True)
        self._synced_at = changed

    def make_room(self) -> None:
        """Double the map while what it holds passes half of it (before a write transaction begins)."""
        info = self.env.info()
        used = (info["last_pgno"] + 1) * self.page_size
        if used * 2 > info["map_size"]:
            self._resize(max(info["map_size"] * 2, used * 4))

    def _resize(self, size: int) -> None:
        with self._resize_lock:
            self._resized.clear()
            self._resizing = True
            try:
                while self._active:  # the transactions begun before the flag was seen end within moments
                    time.sleep(0.0005)
                with self._sizing() as length:
                    self.env.set_mapsize(max(size, length) if self._file is not None else size)
            finally:
                self._resizing = False
                self._resized.set()


class _Write:
    """A write transaction; inside another, part of it (the outer block commits). Writers of every process queue on
    LMDB's own lock. (A class, not a generator: it is entered several times per request.)"""

    __slots__ = ("shared", "scope", "outer")

    def __init__(self, shared: _Environment, scope: str | None = None):
        self.shared = shared
        self.scope = scope

    def __enter__(self) -> lmdb.Transaction:
        local = self.shared.local
        self.outer = local.txn is None
        if self.outer:
            self.shared.make_room()
            local.txn, local.changed, local.scope = self.shared.begin(write=True), set(), self.scope
            self.shared.changes_begin()
        return local.txn

    def __exit__(self, kind, error, trace) -> None:
        if not self.outer:
            return
        shared = self.shared
        local = shared.local
        txn, local.txn = local.txn, None
        try:
            if kind is None:
                stamp = STAMP.pack(txn.id())  # in the same commit: a reader sees the stamp and the change together
                for session, namespace in local.changed:
                    where = _join(session, namespace)
                    shared.room(len(where) + STAMP.size)
                    txn.put(where, stamp, db=shared.stamps)
                txn.commit()
            else:
                txn.abort()
        finally:
            shared.end()


class _Read:
    """The thread's write transaction if it has one (it sees its own writes), else a read transaction of its own."""

    __slots__ = ("shared", "txn")

    def __init__(self, shared: _Environment):
        self.shared = shared

    def __enter__(self) -> lmdb.Transaction:
        txn = self.shared.local.txn
        self.txn = None if txn is not None else self.shared.begin(write=False)
        return txn or self.txn

    def __exit__(self, kind, error, trace) -> None:
        if self.txn is not None:
            self.txn.abort()
            self.txn = None
            self.shared.end()


_environments: dict[str, _Environment] = {}
_environments_lock = threading.Lock()
_databases: weakref.WeakSet[LmdbState] = weakref.WeakSet()


def _acquire(path: str) -> _Environment:
    with _environments_lock:
        shared = _environments.get(path)
        if shared is None:
            shared = _environments[path] = _Environment(path)
        shared.users += 1
        return shared


def _reopen_in_child() -> None:
    """LMDB forbids using an environment in a child of the process that opened it: the child opens its own. (Closing
    the inherited one touches only this process's mapping and reader slots; the parent's locks are its own.)"""
    global _environments_lock
    _environments_lock = threading.Lock()  # the parent's may have been held by a thread that is not here
    inherited = list(_environments.values())
    _environments.clear()
    for shared in inherited:
        shared.close()
    for database in list(_databases):
        database._shared = _acquire(database.path)


os.register_at_fork(after_in_child=_reopen_in_child)


class LmdbState(SessionState):
    def __init__(self, path: str):
        self.path = path
        self._shared = shared = _acquire(path)
        self._max_key = shared.env.max_key_size()
        _databases.add(self)

    def close(self) -> None:
        _databases.discard(self)
        with _environments_lock:
            shared = self._shared
            shared.users -= 1
            if shared.users == 0:
                del _environments[self.path]
                shared.env.sync(True)
                shared.close()

    def sync_when_idle(self) -> None:
        self._shared.sync_when_idle()

    # --- transactions -------------------------------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return self._shared.local.txn is not None

    def transaction(self, session: str | None = None) -> _Write:
        """LMDB has one writer at a time: every block is isolated from every other, whatever its scope; the scope
        is checked all the same, so that a block the other backends would not isolate fails here too."""
        local = self._shared.local
        if local.txn is not None:
            joinable(local.scope, session)
        return _Write(self._shared, session)

    def _write(self) -> _Write:
        """A write transaction for one call, or part of the thread's block."""
        return _Write(self._shared)

    def _read(self) -> _Read:
        return _Read(self._shared)

    # --- state rows ---------------------------------------------------------------------------------------------
    def get(self, session: str, namespace: str, key: str) -> StateItem | None:
        with self._read() as txn:
            raw = txn.get(self._state_key(session, namespace, key)[0], db=self._shared.state)
        return _item(raw)[1] if raw is not None else None

    def put(self, session: str, namespace: str, key: str, value: Any, expect_version: int | None = None,
            create_only: bool = False) -> int:
        data = compact_json(value)
        where, kept_key = self._state_key(session, namespace, key)
        with self._write() as txn:
            old = txn.get(where, db=self._shared.state)
            current = VERSION.unpack_from(old)[0] if old is not None else None
            if create_only and current is not None:
                raise VersionConflict(None, current)
            if expect_version is not None and current != expect_version:
                raise VersionConflict(expect_version, current)
            version = (current or 0) + 1
            value = VERSION.pack(version) + kept_key + data
            self._shared.room(len(where) + len(value))
            txn.put(where, value, db=self._shared.state)
            self._shared.local.changed.add((session, namespace))
        return version

    def items(self, session: str, namespace: str) -> dict[str, StateItem]:
        prefix = _join(session, namespace, "")
        with self._read() as txn:
            rows = list(_scan(txn.cursor(db=self._shared.state), prefix))
        found = {}
        for k, raw in rows:
            long_key, item = _item(raw)
            found[long_key or k[len(prefix):].decode()] = item
        return found

    def stamp(self, session: str, namespace: str) -> int | None:
        """The namespace's change stamp: unchanged while nobody has changed the namespace (None inside a transaction,
        which may itself have changed it)."""
        if self.in_transaction:
            return None
        with self._read() as txn:
            raw = txn.get(_join(session, namespace), db=self._shared.stamps)
        return STAMP.unpack(raw)[0] if raw is not None else 0

    def delete(self, session: str, namespace: str, key: str | None = None) -> None:
        with self._write() as txn:
            if key is None:
                _delete_prefix(self._shared, txn.cursor(db=self._shared.state), _join(session, namespace, ""))
            else:
                where = self._state_key(session, namespace, key)[0]
                self._shared.room(len(where))
                txn.delete(where, db=self._shared.state)
            self._shared.local.changed.add((session, namespace))

    def clear(self, session: str, namespace_prefix: str) -> None:
        """Every namespace of the session whose name begins with `namespace_prefix`."""
        prefix = _join(session, namespace_prefix)
        with self._write() as txn:
            keys = [k for k, _ in _scan(txn.cursor(db=self._shared.state), prefix)]
            for k in keys:
                self._shared.room(len(k))
                txn.delete(k, db=self._shared.state)
                self._shared.local.changed.add((session, k.split(b"\0")[1].decode()))

    def forget(self, sessions: Iterable[str]) -> None:
        shared = self._shared
        for session in sessions:
            with self._write() as txn:
                for db in (shared.state, shared.stamps, shared.counters, shared.blobs, shared.recent):
                    _delete_prefix(shared, txn.cursor(db=db), _join(session, ""))

    def _state_key(self, session: str, namespace: str, key: str) -> tuple[bytes, bytes]:
        """The LMDB key of a state row, and what its value must keep of the key (nothing unless it is too long)."""
        where = _join(session, namespace, key)
        if len(where) <= self._max_key:
            return where, b""
        encoded = key.encode()
        digest = hashlib.blake2b(encoded, digest_size=32).hexdigest().encode()
        return _join(session, namespace, "") + LONG_KEY + digest, LONG_KEY + KEY_LENGTH.pack(len(encoded)) + encoded

    # --- the newest exchange under each history key (journal/recent.py) ---------------------------------------
    def put_newest(self, session: str, keys: Iterable[str], started_at: float, entry: bytes) -> None:
        """Keep `entry` as the newest under each key, unless an exchange that began later is there already (two
        workers may record in the other order)."""
        value = UNTIL.pack(started_at) + entry
        with self._write() as txn:
            for key in keys:
                where = _recent_key(session, key)
                old = txn.get(where, db=self._shared.recent)
                if old is None or UNTIL.unpack_from(old)[0] <= started_at:
                    self._shared.room(len(where) + len(value))
                    txn.put(where, value, db=self._shared.recent)

    def newest(self, session: str, keys: Iterable[str]) -> dict[str, bytes]:
        """The entry kept under each of `keys` that has one."""
        found = {}
        with self._read() as txn:
            for key in keys:
                value = txn.get(_recent_key(session, key), db=self._shared.recent)
                if value is not None:
                    found[key] = value[UNTIL.size:]
        return found

    def forget_newest(self, session: str) -> None:
        with self._write() as txn:
            _delete_prefix(self._shared, txn.cursor(db=self._shared.recent), _join(session, ""))

    # --- counters and blobs -------------------------------------------------------------------------------------
    def next_counter(self, session: str, name: str, start: int = 0) -> int:
        where = _join(session, name)
        with self._write() as txn:
            old = txn.get(where, db=self._shared.counters)
            value = COUNTER.unpack(old)[0] + 1 if old is not None else start
            value = min(max(value, COUNTER_RANGE[0]), COUNTER_RANGE[1])  # 8 bytes: a larger start is clamped
            self._shared.room(len(where) + COUNTER.size)
            txn.put(where, COUNTER.pack(value), db=self._shared.counters)
        return value

    def put_blob(self, session: str, key: str, data: bytes) -> None:
        where = _join(session, key)
        with self._write() as txn:
            self._shared.room(len(where) + len(data))
            txn.put(where, data, db=self._shared.blobs)

    def get_blob(self, session: str, key: str) -> bytes | None:
        with self._read() as txn:
            return txn.get(_join(session, key), db=self._shared.blobs)

    def delete_blobs(self, session: str, prefix: str) -> None:
        with self._write() as txn:
            _delete_prefix(self._shared, txn.cursor(db=self._shared.blobs), _join(session, prefix))

    # --- single use -----------------------------------------------------------------------------------------------
    def claim(self, session: str, namespace: str, key: str, expires_at: float) -> bool:
        """Use the key up (True), unless it is in use already (False). Inside a transaction, part of it: given back if
        the transaction fails."""
        digest = _digest(session, namespace, key)
        shared = self._shared
        expires_at = claim_until(expires_at)
        with self._write() as txn:
            held = txn.get(digest, db=shared.claims)
            if held is not None and UNTIL.unpack(held)[0] >= time.time():
                return False
            shared.room(2 * len(digest) + UNTIL.size + FORGET_AT.size)
            txn.put(digest, UNTIL.pack(expires_at), db=shared.claims)
            txn.put(FORGET_AT.pack(max(0, int(expires_at)) + 1) + digest, b"", db=shared.forget)
        return True

    def claimed(self, session: str, namespace: str, key: str) -> bool:
        with self._read() as txn:
            held = txn.get(_digest(session, namespace, key), db=self._shared.claims)
        return held is not None and UNTIL.unpack(held)[0] >= time.time()

    def forget_expired_claims(self, now: float) -> int:
        """Drop the claims past their time (a claim made again since keeps its new time)."""
        shared = self._shared
        limit = FORGET_AT.pack(int(now))
        forgotten = 0
        while True:
            with self._write() as txn:
                cursor = txn.cursor(db=shared.forget)
                due = []
                if cursor.first():
                    for moment, _ in cursor:
                        if moment >= limit or len(due) == FORGET_BATCH:
                            break
                        due.append(moment)
                for moment in due:
                    shared.room(2 * len(moment))
                    txn.delete(moment, db=shared.forget)
                    digest = moment[FORGET_AT.size:]
                    held = txn.get(digest, db=shared.claims)
                    if held is not None and UNTIL.unpack(held)[0] < now:
                        txn.delete(digest, db=shared.claims)
                        forgotten += 1
            if len(due) < FORGET_BATCH:
                return forgotten



def _join(*parts: str) -> bytes:
    return "\0".join(parts).encode()


def _recent_key(session: str, key: str) -> bytes:
    where = _join(session, key)
    if len(where) <= RECENT_KEY_LIMIT:
        return where
    return _join(session, "") + LONG_KEY + hashlib.blake2b(key.encode(), digest_size=16).digest()


def _digest(session: str, namespace: str, key: str) -> bytes:
    return hashlib.blake2b(_join(session, namespace, key), digest_size=16).digest()


def _item(raw: bytes) -> tuple[str | None, StateItem]:
    """The key kept in the value (only a long one is) and the item."""
    version = VERSION.unpack_from(raw)[0]
    start = VERSION.size
    if raw[start:start + 1] != LONG_KEY:  # JSON never begins with it
        return None, StateItem(_loads(raw[start:].decode()), version)
    length = KEY_LENGTH.unpack_from(raw, start + 1)[0]
    start += 1 + KEY_LENGTH.size
    return raw[start:start + length].decode(), StateItem(_loads(raw[start + length:].decode()), version)


def _scan(cursor, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    if cursor.set_range(prefix):
        for k, v in cursor:
            if not k.startswith(prefix):
                return
            yield k, v


def _delete_prefix(shared: _Environment, cursor, prefix: bytes) -> None:
    if not cursor.set_range(prefix):
        return
    while (key := cursor.key()).startswith(prefix):
        shared.room(len(key))
        if not cursor.delete():  # moves to the next record; False at the end
            return
