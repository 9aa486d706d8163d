"""Large bodies kept beside the journal rather than in its rows: one file per body, named by its SHA-256.

A row over SQLite's value limit (a billion bytes) cannot be stored at all, and every large row makes the journal's
pages, WAL and spool records heavier for every later query. A body over INLINE_LIMIT is written here first (its
reference, `sha256:<digest>:<size>`, goes in the row instead) and read back whenever the exchange is. So is a body
of REPEATED_MIN or more that this process has journaled before: a record served again and again (a PDS read, a
MESH message downloaded twice) is kept once, not once an exchange, and the spool, the journal and its WAL carry its
reference. The same bytes are kept once, whichever rows and sessions refer to them (the journal removes a file with
the last row that refers to it). Files are written under a temporary name and renamed, so a body file is whole or
absent; like the spool, a write survives a killed process (not a power cut).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

INLINE_LIMIT = 256 * 1024  # bytes: bodies up to this stay in the row, unless they are repeated
REPEATED_MIN = 4 * 1024  # bytes: a body at least this large, seen before, is kept by reference
# Bodies remembered, to see which repeat: a body seen once stays inline (most are never seen again, and a file each
# would cost more than it saves). Kept as the bytes themselves, so at most REMEMBERED * INLINE_LIMIT (8 MiB).
REMEMBERED = 32
PREFIX = "sha256:"
_REFERENCE = re.compile(r"sha256:([0-9a-f]{64}):([0-9]{1,15})")


class BodyMissing(Exception):
    """A referenced body file is missing, unreadable or no longer matches its digest."""


class BodyFiles:
    def __init__(self, folder: Path):
        self.folder = folder
        # Bodies seen lately, to see which repeat: None for one seen once (it stayed inline), else the reference and
        # path of its file, so that a body served again is neither hashed nor its path made again.
        self._seen: OrderedDict[bytes, tuple[str, str] | None] = OrderedDict()
        self._seen_lock = threading.Lock()

    def keep(self, body: bytes) -> bytes | str:
        """What a row holds of `body`: the body itself (bytes), or the reference to its file (text). Raises OSError
        (e.g. ENOSPC) if a file is needed and cannot be written."""
        data = bytes(body)
        if len(data) > INLINE_LIMIT:
            return self.put(data)
        if len(data) < REPEATED_MIN:
            return data
        with self._seen_lock:
            if data not in self._seen:
                self._seen[data] = None
                if len(self._seen) > REMEMBERED:
                    self._seen.popitem(last=False)
                return data
            self._seen.move_to_end(data)
            kept = self._seen[data]
        if kept is not None and os.path.exists(kept[1]):  # gone if a session was forgotten meanwhile: written again
            return kept[0]
        reference, path = self._put(data)
        with self._seen_lock:
            if data in self._seen:
                self._seen[data] = (reference, path)
        return reference

    def put(self, data: bytes) -> str:
        """Keep `data`; return the reference the row holds instead. Raises OSError (e.g. ENOSPC) if it cannot."""
        return self._put(data)[0]

    def _put(self, data: bytes) -> tuple[str, str]:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{digest}.{uuid.uuid4().hex[:8]}")
            try:
                with open(temporary, "xb") as out:
                    out.write(data)
                os.replace(temporary, path)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
        return f"{PREFIX}{digest}:{len(data)}", str(path)

    def get(self, reference: str) -> bytes:
        digest, size = parse(reference)
        try:
            data = self._path(digest).read_bytes()
        except OSError as error:
            raise BodyMissing(f"body {reference} is not in {self.folder} ({error.strerror or error})") from None
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise BodyMissing(f"body file for {reference} in {self.folder} is damaged (it no longer matches its "
                              f"digest)")
        return data

    def remove(self, reference: str) -> None:
        """Delete the body a reference names (once no row refers to it); a missing file is already gone."""
        with contextlib.suppress(BodyMissing, OSError):
            self._path(parse(reference)[0]).unlink(missing_ok=True)

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / digest


def parse(reference: str) -> tuple[str, int]:
    """The digest and size a reference names; BodyMissing if it is not one."""
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        raise BodyMissing(f"body reference {reference[:100]!r} is not sha256:<digest>:<size>")
    return match[1], int(match[2])
