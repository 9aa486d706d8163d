"""The newest exchange under each history key, kept beside the session state as exchanges are recorded.

Behavioural checks mostly ask one thing of a session's history: the newest earlier exchange under a key (this request
id, this patient, this retry target) or with a service. The embedded journal answered that by importing every
process's spool and then reading and decoding a row: about 180 µs a question, five questions on a PDS read. This index
answers from the memory map every process shares, in a few µs; the journal stays the record, and deeper questions
(more than the newest) still go to it.

An entry is the exchange's row without its bodies and findings. A check that reads a body of an earlier exchange (few
do: most judge statuses and headers) has it read from the journal then (`DeferredBodies`).
"""

from __future__ import annotations

import functools
import marshal
from collections.abc import Callable
from dataclasses import fields

from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse
from sandbox.journal.rows import decode_headers

MARSHAL_VERSION = 4
LATEST = "\0latest:"  # the index key of a service's newest exchange (no history key begins with NUL)
_REQUEST_BODY, _RESPONSE_BODY, _FINDINGS = 12, 15, 20  # in rows.COLUMNS


def latest_key(service: str) -> str:
    return LATEST + service


def entry(row: tuple) -> bytes:
    """What the index keeps of a journal row (rows.COLUMNS): everything but the bodies and findings."""
    head = list(row[:_FINDINGS + 1])
    head[_REQUEST_BODY] = head[_RESPONSE_BODY] = head[_FINDINGS] = None
    return marshal.dumps(tuple(head), MARSHAL_VERSION)


def exchange(value: bytes, bodies: Callable[[str], Exchange | None]) -> Exchange:
    """An entry as the Exchange it stands for; `bodies(id)` reads the whole exchange when a body is asked for."""
    (ex_id, session, service, operation, scenario, started_at, duration_ms, method, path, query_string, client,
     request_headers, _, status, response_headers, *_) = marshal.loads(value)
    loader = DeferredBodies(ex_id, bodies)
    request = _DeferredRequest.make(loader, request_headers, method=method, path=path, query_string=query_string,
                                    client=client)
    response = _DeferredResponse.make(loader, response_headers, status=status)
    return Exchange(id=ex_id, session=session, service=service, operation=operation, started_at=started_at,
                    duration_ms=duration_ms, request=request, response=response, scenario=scenario)


def exchanges(entries: dict[str, bytes], bodies: Callable[[str], Exchange | None]) -> dict[str, Exchange]:
    """Entries by key as exchanges; one exchange kept under several keys (its patient, its target, the newest of its
    service: the usual case) is decoded once."""
    decoded: dict[bytes, Exchange] = {}
    found = {}
    for key, value in entries.items():
        made = decoded.get(value)
        if made is None:
            made = decoded[value] = exchange(value, bodies)
        found[key] = made
    return found


class DeferredBodies:
    """An indexed exchange's bodies, read from the journal once, when a check first asks for one."""

    __slots__ = ("exchange_id", "_read", "_whole")

    def __init__(self, exchange_id: str, read: Callable[[str], Exchange | None]):
        self.exchange_id = exchange_id
        self._read = read
        self._whole: Exchange | None = None

    def request(self) -> bytes:
        whole = self._load()
        return whole.request.body if whole else b""

    def response(self) -> bytes:
        whole = self._load()
        return whole.response.body if whole else b""

    def _load(self) -> Exchange | None:
        if self._whole is None:
            self._whole = self._read(self.exchange_id)
        return self._whole


def _deferred(base: type, part: str) -> type:
    """`base` (a recorded request or response) whose headers are decoded when first asked for, and whose body is read
    then. Made from what the journal keeps, which is redacted already, so it is not redacted again."""

    def make(cls, loader: DeferredBodies, header_text: str, **fields):
        made = object.__new__(cls)
        made.__dict__.update(fields, _loader=loader, _header_text=header_text)
        return made

    def same(self, other) -> bool:  # equal to the recorded request or response it stands for
        return isinstance(other, base) and all(getattr(self, f.name) == getattr(other, f.name) for f in fields(base))

    return type(f"Deferred{base.__name__}", (base,), {
        "make": classmethod(make), "__eq__": same,
        "headers": functools.cached_property(lambda self: decode_headers(self._header_text)),
        "body": property(lambda self: getattr(self._loader, part)())})


_DeferredRequest = _deferred(RecordedRequest, "request")
_DeferredResponse = _deferred(RecordedResponse, "response")
