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


def read(path: Path, offset: int, limit: int) -> tuple[list[tuple], int]:
    """Up to `limit` whole records from `offset` on, and the offset after the last of them. A record still being
    written (or, in an abandoned file, torn or damaged) ends the read."""
    rows: list[tuple] = []
    end = offset
    try:
        spool = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:  # imported whole and removed meanwhile
        return rows, end
    with spool:
        spool.seek(offset)
        while len(rows) < limit:
            header = spool.read(HEADER.size)
            if len(header) < HEADER.size:
                break
            length, crc = HEADER.unpack(header)
            payload = spool.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                break
            try:
                rows.append(marshal.loads(payload))
            except (ValueError, EOFError, TypeError):
                break
            end += HEADER.size + length
    return rows, end
