"""Exchanges on their way into the journal.

Answering a request appends its exchange to this process's spool file: one write() call, which the kernel keeps even
if the process is killed the instant after. The journal imports spooled exchanges in batches, in the background and
before any query that reads exchanges, so a request never pays for a journal commit of its own (that commit, with
worker processes taking turns at SQLite's write lock, cost more than the rest of a MESH request put together).

A spool file is `<folder>/<name>.spool`: records of [length, CRC-32, marshal(row)]. Its owner holds a shared flock
on it for as long as it lives; a file nobody holds any more (its process ended or was killed) is imported to its
end, a torn or damaged tail is reported and skipped, and the file is removed.
"""

from __future__ import annotations

import fcntl
import logging
import marshal
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".spool"
HEADER = struct.Struct("<II")  # payload length, CRC-32 of the payload
MARSHAL_VERSION = 4  # the format of every Python this package supports
READ_CHUNK = 256 * 1024  # bytes read from a spool file at a time
_CRC_PIECE = 5 * 1024  # the most zlib.crc32 computes without letting the GIL go


class SpoolFull(OSError):
    """A record could not be written whole (the disk is full): the caller records the exchange another way."""


class SpoolWriter:
    """This process's spool file: appended by every thread, read by whichever process imports."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.path = folder / (self.name + SUFFIX)
        self.pid = os.getpid()
        self._lock = threading.Lock()
        # Locked before it appears under its real name, so an importer never takes a new file for an abandoned one.
        hidden = folder / f".{self.name}.new"
        self._fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        os.rename(hidden, self.path)

    def append(self, row: tuple) -> None:
        payload = marshal.dumps(row, MARSHAL_VERSION)
        record = HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            if self._fd < 0:
                raise SpoolFull("this spool file was abandoned after a failed write")
            try:
                written = os.write(self._fd, record)
            except OSError as error:
                written, failure = -1, error
            if written != len(record):
                # A partial record ends this file: the importer reads up to it, reports the rest, and removes it.
                self._abandon()
                raise SpoolFull(f"spool write failed ({failure if written < 0 else 'short write'})")

    def close(self) -> None:
        with self._lock:
            self._abandon()

    def abandon_inherited(self) -> None:
        """In a forked child: close its copy of the parent's descriptor, so the parent's lock ends with the parent
        (not with the last of its children). The child's lock may be held by a thread that does not exist here."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _abandon(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the flock: the file is now anyone's to finish importing
            self._fd = -1


def spool_files(folder: Path) -> Iterator[tuple[str, Path, int]]:
    """(name, path, size) of every spool file in the folder."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.endswith(SUFFIX):
            try:
                yield entry.name[: -len(SUFFIX)], Path(entry.path), entry.stat().st_size
            except FileNotFoundError:  # removed by another importer meanwhile
                continue


def is_abandoned(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops a lock taken here


def _crc32(data: memoryview) -> int:
    """zlib.crc32, in pieces small enough for it to keep the GIL: given more than 5 KiB at once it lets the GIL go,
    and the importing thread then waits for its turn behind the threads answering requests, once per record."""
    crc = 0
    for start in range(0, len(data), _CRC_PIECE):
        crc = zlib.crc32(data[start:start + _CRC_PIECE], crc)
    return crc


def read(path: Path, offset: int, limit: int) -> tuple[list[tuple], int]:
    """Up to `limit` whole records from `offset` on, and the offset after the last of them. A record still being
    written (or, in an abandoned file, torn or damaged) ends the read."""
    rows: list[tuple] = []
    end = offset
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # imported whole and removed meanwhile
        return rows, end
    try:
        # Read in chunks of many records, not a header and a payload at a time: two system calls per record (each
        # giving up the GIL to the threads answering requests, and waiting to get it back) cost more than parsing.
        size = os.fstat(fd).st_size  # what is appended from now on is read next time
        data, at = memoryview(b""), 0  # bytes of the file from `end - at` on
        while len(rows) < limit:
            needed = HEADER.size  # by the next record
            if len(data) - at >= HEADER.size:
                length, crc = HEADER.unpack_from(data, at)
                needed += length
            if len(data) - at < needed:
                # Read on from the record, never past the end of the file (a damaged length may claim gigabytes).
                if size - end < needed:
                    break
                data, at = memoryview(os.pread(fd, min(max(needed, READ_CHUNK), size - end), end)), 0
                if len(data) < needed:
                    break
                continue
            payload = data[at + HEADER.size:at + needed]
            if _crc32(payload) != crc:
                break
            try:
                rows.append(marshal.loads(payload))
            except (ValueError, EOFError, TypeError):
                break
            at += needed
            end += needed
    finally:
        os.close(fd)
    return rows, end
