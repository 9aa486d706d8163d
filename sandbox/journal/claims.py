"""Used single-use keys (NHSMESH tokens, JWT ids) in a file-backed hash table that every worker process maps.

A claim is a record lock, a probe of a few slots and a 24-byte write: a few microseconds, where a SQLite commit per claim,
with worker processes taking turns and each invalidating the other's page cache, cost ten times that. The file keeps
what the kernel was given, so a killed process loses no claim, and a restart finds them all.

Slots hold a 16-byte BLAKE2b digest of (session, namespace, key) and the moment the claim may be forgotten. Open
addressing with linear probing, at most MAX_PROBE slots from a key's home; expired slots are reused. When a key finds
no room within MAX_PROBE slots the table says so (None) and the caller keeps that claim elsewhere.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
from contextlib import contextmanager
from pathlib import Path

MAGIC = b"SSCLAIM1"
HEADER = struct.Struct("<8sQQ")  # magic, number of slots, claims kept elsewhere (overflowed)
SLOT = struct.Struct("<16sd")  # digest, forget after (epoch seconds)
EMPTY = bytes(16)
SLOTS = 1 << 19  # 12 MiB: room for hundreds of thousands of live claims
MAX_PROBE = 64


def digest(session: str, namespace: str, key: str) -> bytes:
    return hashlib.blake2b(f"{session}\0{namespace}\0{key}".encode(), digest_size=16).digest()


class ClaimTable:
    def __init__(self, path: Path, slots: int | None = None):
        """Open (or make) the table; each process opens its own (record locks are not inherited through a fork)."""
        self.pid = os.getpid()
        self._threads = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with self._locked(0, 0):  # the whole file, while it is made
            if os.fstat(self._fd).st_size < HEADER.size:
                slots = slots or SLOTS
                os.ftruncate(self._fd, HEADER.size + slots * SLOT.size)
                os.pwrite(self._fd, HEADER.pack(MAGIC, slots, 0), 0)
            magic, self.slots, _ = HEADER.unpack(os.pread(self._fd, HEADER.size, 0))
        if magic != MAGIC or os.fstat(self._fd).st_size < HEADER.size + self.slots * SLOT.size:
            raise ValueError(f"{path} is not a claims table this version can read")
        self._map = mmap.mmap(self._fd, HEADER.size + self.slots * SLOT.size)

    def claim(self, session: str, namespace: str, key: str, expires_at: float, now: float) -> bool | None:
        """True: claimed now; False: claimed already; None: no room near its home slot (keep it elsewhere)."""
        wanted = digest(session, namespace, key)
        with self._locked(*self._run(wanted)):
            free = None
            for offset in self._probe(wanted):
                found, until = SLOT.unpack_from(self._map, offset)
                if found == wanted and until >= now:
                    return False
                if found == EMPTY or until < now:
                    free = offset if free is None else free
                    if found == EMPTY:
                        break  # past the end of the key's run: it is not in the table
            if free is not None:
                SLOT.pack_into(self._map, free, wanted, expires_at)
                return True
        with self._locked(0, HEADER.size):
            self._overflowed(1)
        return None

    def claimed(self, session: str, namespace: str, key: str, now: float) -> bool:
        """Read without the lock: a claim being written meanwhile is settled by claim() under it."""
        wanted = digest(session, namespace, key)
        for offset in self._probe(wanted):
            found, until = SLOT.unpack_from(self._map, offset)
            if found == wanted:
                return until >= now
            if found == EMPTY:
                return False
        return False

    def release(self, session: str, namespace: str, key: str) -> None:
        wanted = digest(session, namespace, key)
        with self._locked(*self._run(wanted)):
            for offset in self._probe(wanted):
                found, _ = SLOT.unpack_from(self._map, offset)
                if found == wanted:
                    SLOT.pack_into(self._map, offset, wanted, 0.0)  # expired: reusable, and the run stays whole
                    return
                if found == EMPTY:
                    return

    @property
    def overflowed(self) -> bool:
        """Whether any claim has ever been kept elsewhere (then a lookup must ask there too)."""
        return HEADER.unpack_from(self._map, 0)[2] > 0

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)

    def _home(self, wanted: bytes) -> int:
        return int.from_bytes(wanted[:8], "little") % self.slots

    def _probe(self, wanted: bytes):
        home = self._home(wanted)
        for step in range(min(MAX_PROBE, self.slots)):
            yield HEADER.size + ((home + step) % self.slots) * SLOT.size

    def _run(self, wanted: bytes) -> tuple[int, int]:
        """The bytes a key's probe can touch (start, length): a claim locks only these, so claims of other keys,
        in this process or another, hardly ever wait. A run that wraps round the end locks the whole file."""
        home = self._home(wanted)
        if home + MAX_PROBE > self.slots:
            return 0, 0
        return HEADER.size + home * SLOT.size, MAX_PROBE * SLOT.size

    def _overflowed(self, n: int) -> None:
        magic, slots, count = HEADER.unpack_from(self._map, 0)
        HEADER.pack_into(self._map, 0, magic, slots, count + n)

    @contextmanager
    def _locked(self, start: int, length: int):
        """A POSIX record lock on bytes [start, start + length) (length 0: to the end of the file). Record locks
        belong to the process, so the threads of this one take turns on a lock of their own first."""
        with self._threads:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, length, start)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, length, start)
