"""Counters every process maps, one per group of state namespaces, moved on by each commit that changes a namespace
of the group: a process may keep what it read of a namespace while the namespace's counter stays where it was.

Only a writer holding the journal's write lock moves them, after its commit: so a reader that finds a counter
unchanged has missed no commit a client could have been told about. A read that races a write sees the counter
before or after the move; either way, what it keeps is at worst a read made just before that commit. Namespaces
share a counter by hash (a change to one makes the others be read again, nothing worse).
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

COUNTER = struct.Struct("<Q")
SLOTS = 4096  # 32 KiB


def slot(session: str, namespace: str) -> int:
    return zlib.crc32(f"{session}\0{namespace}".encode()) % SLOTS * COUNTER.size  # the same in every process


class StateStamps:
    def __init__(self, path: Path):
        self.pid = os.getpid()  # each process opens its own (as the journal's other files)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < SLOTS * COUNTER.size:
                os.ftruncate(fd, SLOTS * COUNTER.size)  # zero-filled
            self._map = mmap.mmap(fd, SLOTS * COUNTER.size)
        finally:
            os.close(fd)  # the mapping keeps the file open

    def stamp(self, session: str, namespace: str) -> int:
        return COUNTER.unpack_from(self._map, slot(session, namespace))[0]

    def advance(self, namespaces: Iterable[tuple[str, str]]) -> None:
        """Call after the commit that changed these (session, namespace) pairs, with the write lock still held."""
        for offset in {slot(session, namespace) for session, namespace in namespaces}:
            value = COUNTER.unpack_from(self._map, offset)[0]
            COUNTER.pack_into(self._map, offset, (value + 1) & 0xFFFFFFFFFFFFFFFF)
