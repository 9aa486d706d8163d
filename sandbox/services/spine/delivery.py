"""What the sandbox sends over Spine core messaging, the public API: a durable outbound queue of ebXML messages to
suppliers' MHSs, delivered by a worker thread in every process, retried as the CPA says, and judged on the
supplier's answers.

Reliable messages (ebXML AckRequested) are delivered when an eb:Acknowledgment for their MessageId comes back, in
the HTTP answer or POSTed to the sandbox later (`acknowledged`); failed (never retried) on an ebXML MessageError;
otherwise sent again after the retry interval, up to the retry count, then given up. Express messages are sent once.

The parts: outbox (records, scheduling, claiming), routing (the directory's endpoint and CPA), worker (the thread),
sending (one HTTP attempt), verdicts (judging answers), journaling (exchanges and findings), relay (forward reliable).
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from sandbox.conformance.findings import Finding
from sandbox.journal.exchange import new_exchange_id
from sandbox.services.spine import journaling, outbox, relay, routing, verdicts, worker
from sandbox.services.spine.journaling import OPERATION, OUTCOME_OPERATION, SERVICE_NAME
from sandbox.services.spine.outbox import (
    DEFAULT_PERSIST_S,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_INTERVAL_S,
    DELIVERED,
    FAILED,
    FINISHED,
    GIVEN_UP,
    IN_FLIGHT,
    QUEUED,
    Delivery,
)
from sandbox.services.spine.routing import NoRoute, duration_seconds
from sandbox.services.spine.sending import Options, options_of
from sandbox.services.spine.verdicts import (
    REQ_ACK_IN_TIME,
    REQ_ACK_ONCE,
    REQ_DUPLICATE_ANSWER,
    REQ_EXPRESS_ACCEPTED,
    REQ_NO_NACK,
    REQ_SAME_MESSAGE_ID,
    REQUIREMENTS,
)
from sandbox.services.spine.worker import Runner, start, stop

if TYPE_CHECKING:
    from sandbox.messaging.ebxml import EbxmlHeader
    from sandbox.runtime import Sandbox

__all__ = [
    "DEFAULT_PERSIST_S", "DEFAULT_RETRIES", "DEFAULT_RETRY_INTERVAL_S", "DELIVERED", "FAILED", "FINISHED", "GIVEN_UP",
    "IN_FLIGHT", "OPERATION", "OUTCOME_OPERATION", "QUEUED", "REQUIREMENTS", "REQ_ACK_IN_TIME", "REQ_ACK_ONCE",
    "REQ_DUPLICATE_ANSWER", "REQ_EXPRESS_ACCEPTED", "REQ_NO_NACK", "REQ_SAME_MESSAGE_ID", "SERVICE_NAME", "Delivery",
    "NoRoute", "Options", "Runner", "acknowledged", "advance", "body_of", "configure", "deliveries",
    "duration_seconds", "enqueue", "forward", "get", "options_of", "retry", "send_message", "sent", "settle", "start",
    "stop",
    "summary",
]


# --- the public API ------------------------------------------------------------------------------------------------


def enqueue(sandbox: Sandbox, delivery: Delivery) -> str:
    """Store the delivery durably (any worker of any process may then send it) and wake this process's worker.
    Returns the delivery's id."""
    store = sandbox.store
    now = time.time()
    delivery.id = delivery.id or new_exchange_id(now)
    record = outbox.new_record(delivery, now)
    with store.state.transaction(delivery.session):
        store.state.put_blob(delivery.session, outbox.BLOB_PREFIX + delivery.id, delivery.body)
        store.state.put(delivery.session, outbox.NAMESPACE, delivery.id, record, create_only=True)
        store.state.put(delivery.session, outbox.BY_MESSAGE, delivery.message_id, delivery.id)
        outbox.schedule(store, record)
    worker.wake(sandbox)
    return delivery.id


def acknowledged(sandbox: Sandbox, session: str, header: EbxmlHeader) -> bool:
    """An eb:Acknowledgment (or an ebXML MessageError) a supplier POSTed for a message the sandbox sent: completes the
    delivery. Findings go on the exchange being answered (when called inside a request), else on an exchange of
    their own. False when it names no message this session sent (a finding says so)."""
    ack_of, errors = verdicts.answer_of(header)
    ref = ack_of or (header.ref_to_message_id if errors is not None else None)
    errors = errors or ()
    findings: list[Finding] = []
    if not ref:
        return False
    store = sandbox.store
    found = store.state.get(session, outbox.BY_MESSAGE, ref)
    if found is None:
        findings.append(Finding.failed(
            verdicts.REQ_ACK_ONCE, f"The {'acknowledgement' if ack_of else 'MessageError'} names RefToMessageId "
            f"{ref}, which the sandbox never sent in session {session}: an acknowledgement must name the MessageId of the "
            "message it acknowledges.", verdicts.ack_where(ack_of)))
        journaling.add_findings(sandbox, session, None, findings)
        return False
    delivery_id = found.value
    now = time.time()
    with store.state.transaction(session):
        item = store.state.get(session, outbox.NAMESPACE, delivery_id)
        if item is None:
            return False
        record = item.value
        before = record["status"]
        record["acks"] = record.get("acks", 0) + bool(ack_of)
        record.setdefault("answers", []).append(
            {"at": now, "kind": "ack" if ack_of else "nack", "how": "posted", "from_party": header.from_party,
             "errors": [verdicts.error_dict(e) for e in errors]})
        if before not in outbox.FINISHED:
            if ack_of:
                outbox.finish(record, outbox.DELIVERED, now, "acknowledgement POSTed to the sandbox")
            else:
                outbox.finish(record, outbox.FAILED, now,
                              "ebXML MessageError POSTed to the sandbox: " + verdicts.errors_text(errors))
        store.state.put(session, outbox.NAMESPACE, delivery_id, record, expect_version=item.version)
        outbox.schedule(store, record)
    findings.extend(verdicts.judge_posted_answer(record, before, bool(ack_of), errors, now, header.from_party))
    journaling.add_findings(sandbox, session, record, findings)
    if before not in outbox.FINISHED and record.get("relay_to_party"):
        relay.relay_posted(sandbox, record, header, bool(ack_of))
    return True


def configure(sandbox: Sandbox, **changes) -> Options:
    """Change how this process sends (timeouts, poll interval, parallel sends)."""
    options = options_of(sandbox)
    for name, value in changes.items():
        if not hasattr(options, name):
            raise TypeError(f"unknown delivery option {name!r}")
        setattr(options, name, value)
    return options


def get(sandbox: Sandbox, session: str, delivery_id: str) -> dict | None:
    item = sandbox.store.state.get(session, outbox.NAMESPACE, delivery_id)
    return item.value if item is not None else None


def body_of(sandbox: Sandbox, session: str, delivery_id: str) -> bytes | None:
    return sandbox.store.state.get_blob(session, outbox.BLOB_PREFIX + delivery_id)


def deliveries(sandbox: Sandbox, session: str) -> list[dict]:
    """The session's deliveries, oldest first."""
    items = sandbox.store.state.items(session, outbox.NAMESPACE)
    return sorted((i.value for i in items.values()), key=lambda r: (r["created_at"], r["id"]))


def retry(sandbox: Sandbox, session: str, delivery_id: str) -> dict | None:
    """Send a delivery again now, with a fresh retry budget, whatever its status."""
    store = sandbox.store
    with store.state.transaction(session):
        item = store.state.get(session, outbox.NAMESPACE, delivery_id)
        if item is None:
            return None
        record = item.value
        record.update(status=outbox.IN_FLIGHT if record["attempts"] else outbox.QUEUED, due_at=time.time(),
                      sends=0, outcome=None, lease_until=None, lease_owner=None)
        store.state.put(session, outbox.NAMESPACE, delivery_id, record, expect_version=item.version)
        outbox.schedule(store, record)
    worker.wake(sandbox)
    return record


def advance(sandbox: Sandbox, session: str, seconds: float | None) -> list[dict]:
    """Move the session's delivery clock: every unfinished delivery's due time comes `seconds` earlier (None: due
    now), so retries and give-ups happen without waiting for the retry interval. Returns the deliveries moved."""
    store = sandbox.store
    now = time.time()
    moved = []
    with store.state.transaction(session):
        for key, item in store.state.items(session, outbox.NAMESPACE).items():
            record = item.value
            if record["status"] in outbox.FINISHED:
                continue
            record["due_at"] = now if seconds is None else min(record["due_at"], record["due_at"] - seconds)
            record["clock_offset_s"] = record.get("clock_offset_s", 0) + (seconds or 0)
            store.state.put(session, outbox.NAMESPACE, key, record, expect_version=item.version)
            outbox.schedule(store, record)
            moved.append(record)
    if moved:
        worker.wake(sandbox)
    return moved


def settle(sandbox: Sandbox, session: str, since: float, timeout_s: float) -> bool:
    """Wait until no delivery of the session is due at or before `since` and unsent (what a flush asked for has gone
    out); True when that happened within the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending = [r for r in deliveries(sandbox, session) if r["status"] not in outbox.FINISHED
                   and (r["due_at"] <= since or (r.get("lease_until") or 0) > time.time())]
        if not pending:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def summary(record: dict) -> dict:
    """What the control API shows of a delivery (no body)."""
    return {k: record.get(k) for k in (
        "id", "session", "interaction", "to_party", "endpoint", "message_id", "conversation_id",
        "ref_to_message_id", "reliable", "status", "created_at", "due_at", "retries", "retry_interval_s",
        "attempts", "answers", "outcome", "relay_to_party")}


# --- sending on behalf of the spine service -------------------------------------------------------------------------


def send_message(sandbox: Sandbox, session: str, *, to_party: str, interaction: str, hl7: bytes, base_url: str,
                 ref_to_message_id: str | None = None, conversation_id: str | None = None,
                 attachments: tuple = (), delay_s: float = 0.0, message_id: str | None = None,
                 service: str | None = None, from_party: str | None = None) -> Delivery:
    """Build the ebXML message Spine sends for `interaction` to the party `to_party`, route it by the directory (the
    party's registration, else its MHS record), and enqueue it. `service` is the eb:Service (an interaction used by
    several services, such as the application acknowledgement MCCI_IN010000UK13, takes the service of the message
    it answers); by default the directory's or the catalogue's. `from_party` is the eb:From party key, Spine's by
    default (a party the sandbox plays, such as the GP2GP sending practice, answers as itself); the eb:CPAId is
    the receiver's, from its MHS record for the interaction, whoever sends. Raises NoRoute when the directory has
    no endpoint."""
    from sandbox.messaging import ebxml
    from sandbox.services.sds import directory as sds

    route, registration, service, known = routing.route(sandbox, session, to_party, interaction, base_url, service)
    reliable = routing.is_reliable(known, route)
    retries, interval, persist = routing.cpa_reliability(registration, route)
    message_id = message_id or str(uuid.uuid4()).upper()
    conversation_id = conversation_id or message_id
    content_type, body = ebxml.build_message(
        from_party=from_party or sds.SPINE_PARTY_KEY, to_party=to_party, cpa_id=getattr(route, "cpa_id", "") or "",
        conversation_id=conversation_id, service=service, action=interaction, message_id=message_id, hl7=hl7,
        attachments=attachments, ref_to_message_id=ref_to_message_id, duplicate_elimination=reliable,
        ack_requested=reliable, sync_reply=getattr(route, "sync_reply_mode", None) != "None")
    delivery = Delivery(
        session=session, to_party=to_party, endpoint=routing.endpoint(registration, route), interaction=interaction,
        message_id=message_id, conversation_id=conversation_id, content_type=content_type, body=body,
        reliable=reliable, retries=retries, retry_interval_s=interval, persist_s=persist,
        due_at=time.time() + max(0.0, delay_s), ref_to_message_id=ref_to_message_id,
        soap_action=f"{service}/{interaction}" if service else None)
    enqueue(sandbox, delivery)
    return delivery


def sent(sandbox: Sandbox, session: str, message_id: str) -> bool:
    """Whether the session already has a delivery with this ebXML MessageId."""
    return sandbox.store.state.get(session, outbox.BY_MESSAGE, message_id) is not None


def forward(sandbox: Sandbox, session: str, *, from_party: str, from_endpoint: str | None, to_party: str,
            interaction: str, message_id: str, conversation_id: str, content_type: str, body: bytes, base_url: str,
            reliable: bool = True, service: str | None = None) -> Delivery:
    """Forward reliable (and forward express): Spine as the intermediary passes the sender's message on unchanged
    to the party it names, and relays the receiver's acknowledgement (or MessageError) back to the sender.
    `service` is the message's eb:Service (it picks the receiver's MHS record when it has several)."""
    route, registration, service, _ = routing.route(sandbox, session, to_party, interaction, base_url, service)
    retries, interval, persist = routing.cpa_reliability(registration, route)
    delivery = Delivery(
        session=session, to_party=to_party, endpoint=routing.endpoint(registration, route), interaction=interaction,
        message_id=message_id, conversation_id=conversation_id, content_type=content_type, body=body,
        reliable=reliable, retries=retries, retry_interval_s=interval, persist_s=persist, due_at=time.time(),
        soap_action=f"{service}/{interaction}" if service else None,
        relay_to_party=from_party if reliable else None, relay_endpoint=from_endpoint, relay_message_id=message_id)
    enqueue(sandbox, delivery)
    return delivery
