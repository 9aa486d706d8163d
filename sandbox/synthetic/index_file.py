"""The population's search index as one file: written once per (seed, size, generator), memory-mapped by every
process that searches, so the operating system keeps one copy of it however many workers there are.

Layout: MAGIC, a little-endian uint32 header length, a JSON header (format version, seed, size, generator
fingerprint, byte order, the sections' places and the CRC-32 of everything after the header), then the sections,
each 8-byte aligned. A string-keyed table is four sections: `<name>.keys` (the sorted keys, UTF-8, one after
another), `<name>.key_offsets` (uint32, where each key starts, plus the end), `<name>.offsets` (uint32, where each
key's patients start in `<name>.postings`, plus the end) and `<name>.postings` (uint32 patient indices, ascending
within a key). Dates are `birth.keys` (uint32 proleptic ordinals) with their offsets and postings; `birth_of`
(uint32) and `gender_of` (uint8) hold each patient's date of birth and gender, for O(1) filtering.
"""

from __future__ import annotations

import bisect
import json
import mmap
import os
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

from sandbox.synthetic.postings import EMPTY, RangePosting, SortedPosting
from sandbox.synthetic.search_keys import GENDER_CODES, KEY_TABLES

MAGIC = b"SPSBPOPX"
FORMAT_VERSION = 1
_LENGTH = struct.Struct("<I")
_ALIGN = 8


class StaleIndex(Exception):
    """The file is not a usable index for this population (another version, seed, size or generator, or damaged)."""


def encode_index(meta: dict, sections: Iterable[tuple[str, bytes]]) -> bytes:
    """The whole file's bytes."""
    prefix, body = _encoded(meta, sections)
    return bytes(prefix + body)


def write_index(path: Path, meta: dict, sections: Iterable[tuple[str, bytes]]) -> None:
    """Write atomically: a temporary file in the same folder, flushed, then renamed over `path`. Two processes
    racing each rename a complete file, so a reader only ever opens a whole index."""
    prefix, body = _encoded(meta, sections)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(temporary, "wb") as out:
            out.write(prefix)
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _encoded(meta: dict, sections: Iterable[tuple[str, bytes]]) -> tuple[bytes, bytearray]:
    body, places = bytearray(), {}
    for name, data in sections:
        body += b"\0" * (-len(body) % _ALIGN)
        places[name] = [len(body), len(data)]
        body += data
    header = json.dumps({**meta, "format": FORMAT_VERSION, "byteorder": sys.byteorder, "sections": places,
                         "crc32": zlib.crc32(body), "body": len(body)}, sort_keys=True).encode()
    prefix = MAGIC + _LENGTH.pack(len(header)) + header
    return prefix + b"\0" * (-len(prefix) % _ALIGN), body


def open_index(path: Path, meta: dict) -> PopulationIndex:
    """The index in `path`, memory-mapped; StaleIndex when it is missing, damaged or for another population."""
    try:
        with open(path, "rb") as source:
            buffer = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:  # missing, unreadable, or empty (mmap refuses a zero-length file)
        raise StaleIndex(f"{path}: {exc}") from None
    return _checked(memoryview(buffer), meta, path)


def index_from_bytes(data: bytes, meta: dict) -> PopulationIndex:
    """An index held in this process's memory, for when no cache folder can be written."""
    return _checked(memoryview(data), meta, None)


def _checked(view: memoryview, meta: dict, path: Path | None) -> PopulationIndex:
    try:
        return PopulationIndex(view, meta, path)
    except (KeyError, TypeError, ValueError) as exc:  # a header that passed its checksum but not its shape
        raise StaleIndex(f"malformed index: {exc}") from None


def _sections(view: memoryview, meta: dict) -> dict[str, memoryview]:
    if len(view) < len(MAGIC) + _LENGTH.size or view[:len(MAGIC)] != MAGIC:
        raise StaleIndex("not a population index")
    (length,) = _LENGTH.unpack_from(view, len(MAGIC))
    start = len(MAGIC) + _LENGTH.size
    try:
        header = json.loads(bytes(view[start:start + length]))
    except ValueError:
        raise StaleIndex("damaged header") from None
    wanted = {**meta, "format": FORMAT_VERSION, "byteorder": sys.byteorder}
    if not isinstance(header, dict) or any(header.get(k) != v for k, v in wanted.items()):
        raise StaleIndex("made for another format, population or generator")
    body_start = start + length + (-(start + length) % _ALIGN)
    body = view[body_start:]
    if len(body) != header.get("body") or zlib.crc32(body) != header.get("crc32"):
        raise StaleIndex("truncated or damaged")
    return {name: body[offset:offset + size] for name, (offset, size) in header["sections"].items()}


class _Keys:
    """The sorted keys of a table as a sequence bisect can search, decoding only the keys it looks at."""

    def __init__(self, blob: memoryview, offsets: memoryview):
        self.blob, self.offsets = blob, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, at: int) -> str:
        return str(self.blob[self.offsets[at]:self.offsets[at + 1]], "utf-8")


class KeyTable:
    """Sorted string keys and their patients."""

    def __init__(self, sections: dict[str, memoryview], name: str):
        self.keys = _Keys(sections[f"{name}.keys"], sections[f"{name}.key_offsets"].cast("I"))
        self.offsets = sections[f"{name}.offsets"].cast("I")
        self.postings = sections[f"{name}.postings"].cast("I")

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[str]:
        return (self.keys[at] for at in range(len(self.keys)))

    def get(self, key: str) -> SortedPosting:
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            return SortedPosting(self.postings[self.offsets[at]:self.offsets[at + 1]])
        return EMPTY

    def with_prefix(self, prefix: str) -> RangePosting:
        """Patients under every key that starts with `prefix`: one run of the postings (the keys are sorted)."""
        low = bisect.bisect_left(self.keys, prefix)
        if prefix and ord(prefix[-1]) < sys.maxunicode:  # every key with the prefix sorts before its successor
            high = bisect.bisect_left(self.keys, prefix[:-1] + chr(ord(prefix[-1]) + 1))
        else:
            high = len(self.keys)
        return RangePosting(self.postings[self.offsets[low]:self.offsets[max(low, high)]])


class DateTable:
    """Dates of birth (sorted ordinals) and their patients; ranges are one run of the postings."""

    def __init__(self, sections: dict[str, memoryview], birth_of: memoryview):
        self.keys = sections["birth.keys"].cast("I")
        self.offsets = sections["birth.offsets"].cast("I")
        self.postings = sections["birth.postings"].cast("I")
        self.birth_of = birth_of

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, day: date) -> SortedPosting:
        ordinal = day.toordinal()
        at = bisect.bisect_left(self.keys, ordinal)
        if at < len(self.keys) and self.keys[at] == ordinal:
            return SortedPosting(self.postings[self.offsets[at]:self.offsets[at + 1]])
        return EMPTY

    def between(self, low: date | None, high: date | None) -> RangePosting:
        first = 0 if low is None else low.toordinal()
        last = 2**32 - 1 if high is None else high.toordinal()
        start = bisect.bisect_left(self.keys, first)
        stop = bisect.bisect_right(self.keys, last)
        birth_of = self.birth_of
        return RangePosting(self.postings[self.offsets[start]:self.offsets[max(start, stop)]],
                            test=lambda i: first <= birth_of[i] <= last)


class PopulationIndex:
    """The search index of one population: a KeyTable per string key family, the dates of birth, and each patient's
    date of birth and gender. Read-only, and safe to share between threads."""

    def __init__(self, view: memoryview, meta: dict, path: Path | None):
        sections = _sections(view, meta)
        self.path = path
        self.size: int = meta["size"]
        self.birth_of = sections["birth_of"].cast("I")
        self.gender_of = sections["gender_of"]
        self.birth = DateTable(sections, self.birth_of)
        self.tables = {name: KeyTable(sections, name) for name in KEY_TABLES}
        self.family = self.tables["family"]
        self.family_soundex = self.tables["family_soundex"]
        self.given_soundex = self.tables["given_soundex"]
        self.postcode = self.tables["postcode"]
        self.phone = self.tables["phone"]
        self.email = self.tables["email"]
        if len(self.birth_of) != self.size or len(self.gender_of) != self.size:
            raise StaleIndex("per-patient arrays do not match the population size")

    def has_gender(self, index: int, gender: str) -> bool:
        return self.gender_of[index] == GENDER_CODES.get(gender, -1)
