"""gzip data as MESH carries it, read with a bound: a small body that expands without end (a gzip bomb) is found out
after the bound's worth of output, never held in memory whole."""

from __future__ import annotations

import zlib

STEP = 1 << 20  # output per step: memory stays at about this, whatever the data expands to
IN_STEP = 64 << 10  # input per step
MAGIC = b"\x1f\x8b"


class NotGzip(ValueError):
    """The data is not a complete gzip stream; the message says where it goes wrong."""


class TooLarge(ValueError):
    """The data expands past the limit."""

    def __init__(self, limit: int):
        super().__init__(f"expands to more than {limit} bytes")
        self.limit = limit


def expand(data: bytes, limit: int, keep: bool = True) -> bytes:
    """What `data` (one or more gzip members, as `gzip.decompress` reads) expands to; with keep=False only checked
    (b"" returned). Raises TooLarge past `limit` bytes of output, NotGzip when it is not gzip or ends early. Input goes
    in IN_STEP at a time, so zlib never copies the rest of a large body at each step."""
    view = memoryview(data)
    out: list[bytes] = []
    total = pos = 0
    while pos < len(data):  # one gzip member at a time
        if data[pos:pos + 2] != MAGIC:
            if pos == 0:
                raise NotGzip("it does not start with the gzip magic bytes 1f 8b")
            if data.count(0, pos) != len(data) - pos:  # zero padding after the last member is allowed, as gzip allows
                raise NotGzip("it has data after the end of its gzip stream")
            break
        inflater = zlib.decompressobj(wbits=31)
        pending: bytes | memoryview = b""
        full = False  # the last step stopped at STEP: zlib may hold more output without more input
        while not inflater.eof:
            if not pending and not full:
                if pos >= len(data):
                    raise NotGzip("it ends before the end of its gzip stream (truncated)")
                pending = view[pos:pos + IN_STEP]
                pos += len(pending)
            try:
                piece = inflater.decompress(pending, STEP)
            except zlib.error as exc:
                raise NotGzip(f"it is not valid gzip data ({exc})") from None
            full = len(piece) == STEP
            pending = inflater.unconsumed_tail
            total += len(piece)
            if total > limit:
                raise TooLarge(limit)
            if keep and piece:
                out.append(piece)
        pos -= len(inflater.unused_data)  # the next member starts where this one ended
    return b"".join(out)


OK, NOT_GZIP, TOO_LARGE = "ok", "not-gzip", "too-large"


def inspect(data: bytes, limit: int) -> tuple[str, str]:
    """(OK, "") for gzip that expands to at most `limit` bytes; otherwise (NOT_GZIP or TOO_LARGE, why). Reads it once,
    keeping nothing."""
    try:
        expand(data, limit, keep=False)
    except NotGzip as exc:
        return NOT_GZIP, str(exc)
    except TooLarge as exc:
        return TOO_LARGE, str(exc)
    return OK, ""
