"""Whether a storage error means the disk (or the state map) is full: the sandbox then answers 503 with Retry-After,
in the service's own shape, rather than a 500 that blames itself, and recovers by itself once there is room."""

from __future__ import annotations

import errno
import sqlite3

import lmdb

RETRY_AFTER_S = 30
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"
_SQLITE_IOERR = 10  # a write the operating system refused (SQLite does not always say why)


def out_of_space(error: BaseException | None) -> bool:
    """True when `error`, or an error it was raised from, is a write refused for lack of space (or by a failing
    disk): OSError ENOSPC/EDQUOT/EFBIG, the journal spool's SpoolFull, SQLite's SQLITE_FULL or a write I/O error,
    LMDB's MapFullError or DiskError, or LMDB's I/O error (what it reports for a write the disk cut short)."""
    seen = 0
    while error is not None and seen < 10:
        seen += 1
        if _is_full(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _is_full(error: BaseException) -> bool:
    from sandbox.journal.spool import SpoolFull

    if isinstance(error, SpoolFull):
        return True
    if isinstance(error, OSError):
        return error.errno in _NO_SPACE
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in (_SQLITE_FULL, _SQLITE_IOERR)
        return "disk is full" in str(error) or "disk I/O error" in str(error)
    if isinstance(error, lmdb.MapFullError | lmdb.DiskError):
        return True
    if isinstance(error, lmdb.Error):
        text = str(error)
        return "Input/output error" in text or "No space left" in text or "Disk quota" in text
    return False
