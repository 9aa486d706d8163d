"""Reliable messaging on the receiving side: duplicate elimination for what suppliers send the sandbox.

A supplier re-sends a reliable message (eb:DuplicateElimination) with the same MessageId when it got no
acknowledgement in time. Spine recognises it by (From party, MessageId) within the persist duration of the CPA, does
not process it again, and answers it exactly as it answered the first time. The spine service's routes ask
`duplicate(...)` before dispatching and `remember(...)` once they have answered:

    answer = reliability.duplicate(sandbox, session, header.from_party, header.message_id, persist_s, body=hl7)
    if answer is not None:
        return answer.response()            # the first answer again; a finding says it was a duplicate
    ...                                     # dispatch, build the response
    reliability.remember(sandbox, session, header.from_party, header.message_id, persist_s,
                         StoredAnswer.of(response), body=hl7)

Stored per session: state `spine.received` "<from party>|<MessageId>" -> when first seen, until when it counts, the
digest of the message, the first answer's status, headers and exchange; the answer's body as blob
`spine/received/<digest of the key>`.

Forward reliable (Spine as intermediary) is in delivery.forward: the forwarded delivery keeps the original sender's
party key and endpoint, so the receiver's acknowledgement or MessageError is relayed back to it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sandbox.conformance.findings import Finding
from sandbox.services.spine.outbox import DEFAULT_PERSIST_S
from sandbox.services.spine.verdicts import REQ_SAME_MESSAGE_ID

if TYPE_CHECKING:
    from flask import Response

    from sandbox.runtime import Sandbox

NAMESPACE = "spine.received"
BLOB_PREFIX = "spine/received/"


@dataclass(frozen=True)
class StoredAnswer:
    """The answer the sandbox gave a reliable message the first time, to give its duplicates."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()  # other headers worth repeating (e.g. SOAPAction); not X-Sandbox-*
    exchange_id: str | None = None  # the exchange that answered first
    first_seen: float = 0.0
    message_sha256: str | None = field(default=None, compare=False)  # of the first message (set by duplicate)

    @classmethod
    def of(cls, response: Response, exchange_id: str | None = None) -> StoredAnswer:
        kept = tuple((k, v) for k, v in response.headers.items()
                     if k.lower() not in ("content-type", "content-length", "date", "server")
                     and not k.lower().startswith("x-sandbox-"))
        return cls(response.status_code, response.headers.get("Content-Type", "text/xml"), response.get_data(),
                   kept, exchange_id)

    def response(self) -> Response:
        from flask import Response

        answer = Response(self.body, status=self.status, content_type=self.content_type)
        for name, value in self.headers:
            answer.headers[name] = value
        return answer


def _key(from_party: str | None, message_id: str) -> str:
    return f"{from_party or '-'}|{message_id}"


def _blob(key: str) -> str:
    return BLOB_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def _digest(body: bytes | None) -> str | None:
    return hashlib.sha256(body).hexdigest() if body is not None else None


def duplicate(sandbox: Sandbox, session: str, from_party: str | None, message_id: str | None,
              persist_s: float = DEFAULT_PERSIST_S, *, body: bytes | None = None) -> StoredAnswer | None:
    """The answer given the first time this (From party, MessageId) came, while within the persist duration; None
    for a message not seen before (or seen longer ago than that). A duplicate is expected retry behaviour: a finding
    on the exchange being answered records it (and whether the re-sent message is the same as the first)."""
    if not message_id:
        return None
    store = sandbox.store
    key = _key(from_party, message_id)
    item = store.state.get(session, NAMESPACE, key)
    if item is None:
        return None
    seen = item.value
    now = time.time()
    if now > seen["until"]:
        return None  # past the persist duration: a new message as far as Spine is concerned
    answer = StoredAnswer(seen["status"], seen["content_type"], store.state.get_blob(session, _blob(key)) or b"",
                          tuple(tuple(h) for h in seen.get("headers", ())), seen.get("exchange"), seen["first_seen"],
                          seen.get("message_sha256"))
    _add_finding(session, _duplicate_finding(message_id, from_party, seen, _digest(body), now))
    return answer


def remember(sandbox: Sandbox, session: str, from_party: str | None, message_id: str | None,
             persist_s: float, answer: StoredAnswer, *, body: bytes | None = None) -> None:
    """Keep the first answer to a reliable message for the persist duration (the first answer wins: remembering a
    duplicate's answer again changes nothing)."""
    if not message_id:
        return
    store = sandbox.store
    key = _key(from_party, message_id)
    now = time.time()
    with store.state.transaction(session):
        item = store.state.get(session, NAMESPACE, key)
        if item is not None and now <= item.value["until"]:
            return
        store.state.put_blob(session, _blob(key), answer.body)
        store.state.put(session, NAMESPACE, key, {
            "from_party": from_party, "message_id": message_id, "first_seen": answer.first_seen or now,
            "until": now + max(0.0, persist_s), "status": answer.status, "content_type": answer.content_type,
            "headers": [list(h) for h in answer.headers], "exchange": answer.exchange_id or _current_exchange_id(),
            "message_sha256": answer.message_sha256 or _digest(body), "duplicates": 0})


def received(sandbox: Sandbox, session: str) -> list[dict]:
    """What the session's suppliers sent reliably and the sandbox remembers (for the control API)."""
    items = sandbox.store.state.items(session, NAMESPACE)
    return sorted((i.value for i in items.values()), key=lambda r: r["first_seen"])


def forget_expired(sandbox: Sandbox, session: str) -> int:
    """Drop what is past its persist duration; returns how many."""
    store = sandbox.store
    now = time.time()
    gone = 0
    for key, item in store.state.items(session, NAMESPACE).items():
        if now > item.value["until"]:
            store.state.delete(session, NAMESPACE, key)
            store.state.delete_blobs(session, _blob(key))
            gone += 1
    return gone


def _duplicate_finding(message_id: str, from_party: str | None, seen: dict, digest: str | None,
                       now: float) -> Finding:
    ago = now - seen["first_seen"]
    where = "eb:MessageHeader/eb:MessageData/eb:MessageId"
    first = f" (first answered by exchange {seen['exchange']})" if seen.get("exchange") else ""
    if digest is not None and seen.get("message_sha256") and digest != seen["message_sha256"]:
        return Finding.warning(
            REQ_SAME_MESSAGE_ID, f"MessageId {message_id} from {from_party or 'an unnamed party'} was received "
            f"{ago:.1f} s ago{first} with different content: a re-sent reliable message must be the same message; "
            "a new message needs a new MessageId. Spine treats it as a duplicate and answers as it did the first "
            "time.", where)
    return Finding.passed(
        REQ_SAME_MESSAGE_ID, f"MessageId {message_id} from {from_party or 'an unnamed party'} is a re-send of the "
        f"message received {ago:.1f} s ago{first}: expected retry behaviour; Spine's duplicate elimination answers "
        "it as it answered the first time and does not process it again.", where)


def _add_finding(session: str, finding: Finding) -> None:
    from sandbox.web import current

    exchange = current.exchange()
    if exchange is not None and exchange.session == session:
        exchange.add(finding)


def _current_exchange_id() -> str | None:
    from sandbox.web import current

    exchange = current.exchange()
    return exchange.id if exchange is not None else None
