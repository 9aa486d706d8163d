"""The durable outbox: a delivery's record in the store, when it is due, and which worker may send it.

Where things live in the store (session state, so a killed or restarted worker loses nothing):
  <session> / spine.deliveries              delivery id -> the delivery's record (status, attempts, due time, lease)
  <session> / spine.deliveries.by-message   MessageId -> delivery id (an acknowledgement names the MessageId)
  <session> blob spine/deliveries/<id>      the message body as sent
  _spine-outbox / spine.outbox              "<session>/<id>" -> {session, id, at}: what any worker may have to do, and
                                            from when (the due time, or the end of a worker's lease while it sends)
The outbox session's name is not a valid session id, so no tenant can reach it.

Exactly one worker sends a delivery at a time: a worker claims it by writing a lease into its record with
compare-and-set (inside one store transaction, which every process queues on); the lease outlasts the longest send
(connect + response timeouts), so a worker killed mid-send leaves a delivery any worker picks up once the lease ends.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from sandbox.journal.store import VersionConflict
from sandbox.retention import forget_entries

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox

NAMESPACE = "spine.deliveries"
BY_MESSAGE = "spine.deliveries.by-message"
OUTBOX_SESSION = "_spine-outbox"
OUTBOX = "spine.outbox"
BLOB_PREFIX = "spine/deliveries/"
QUEUED, IN_FLIGHT, DELIVERED, FAILED, GIVEN_UP = "queued", "in-flight", "delivered", "failed", "given-up"
FINISHED = frozenset({DELIVERED, FAILED, GIVEN_UP})

# The live CPA's reliability, when a registration does not say (nhsMHSRetries, nhsMHSRetryInterval,
# nhsMHSPersistDuration of the published SDS records).
DEFAULT_RETRIES = 2
DEFAULT_RETRY_INTERVAL_S = 60.0
DEFAULT_PERSIST_S = 300.0


@dataclass
class Delivery:
    """One ebXML message the sandbox sends to a supplier's MHS."""

    session: str
    to_party: str
    endpoint: str
    interaction: str
    message_id: str
    conversation_id: str
    content_type: str
    body: bytes
    reliable: bool
    retries: int = DEFAULT_RETRIES
    retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S
    persist_s: float = DEFAULT_PERSIST_S
    due_at: float = 0.0  # epoch seconds; 0: now
    ref_to_message_id: str | None = None
    # Additive to the contract: the SOAPAction header (default "<service>/<interaction>" from the interaction
    # catalogue), and for a forward-reliable relay, the original sender to relay the acknowledgement back to.
    soap_action: str | None = None
    relay_to_party: str | None = None
    relay_endpoint: str | None = None
    relay_message_id: str | None = None
    id: str = ""  # set by delivery.enqueue


def new_record(delivery: Delivery, now: float) -> dict:
    data = asdict(delivery)
    data.pop("body")
    data.update(
        created_at=now, due_at=delivery.due_at or now, status=QUEUED, sends=0, attempts=[], answers=[], acks=0,
        outcome=None, lease_until=None, lease_owner=None, body_size=len(delivery.body),
        body_sha256=hashlib.sha256(delivery.body).hexdigest(),
        soap_action=delivery.soap_action or _default_soap_action(delivery))
    return data


def _default_soap_action(delivery: Delivery) -> str:
    """"<eb:Service>/<eb:Action>" of the message itself (live Spine's SOAPAction), else of the catalogue."""
    try:
        from sandbox.messaging import ebxml, interactions

        header = ebxml.parse(delivery.content_type, delivery.body).header
        if header.service and header.action:
            return f"{header.service}/{header.action}"
        known = interactions.find(delivery.interaction)
    except Exception:  # the messaging library is another part's; a send never fails for want of it
        known = None
    return known.soap_action if known else delivery.interaction


def forget(sandbox: Sandbox, sessions: list[str]) -> None:
    """Retention: nothing of the purged sessions is delivered any more."""
    forget_entries(sandbox.store, OUTBOX_SESSION, OUTBOX, sessions, lambda key, entry: entry["session"])


def schedule(store, record: dict) -> None:
    """Keep the outbox entry in step with the record: gone once finished, else due at its due time or lease end."""
    key = f"{record['session']}/{record['id']}"
    if record["status"] in FINISHED:
        store.state.delete(OUTBOX_SESSION, OUTBOX, key)
        return
    at = max(record["due_at"], record.get("lease_until") or 0)
    store.state.put(OUTBOX_SESSION, OUTBOX, key, {"session": record["session"], "id": record["id"], "at": at})


def finish(record: dict, status: str, now: float, detail: str, exchange: str | None = None) -> None:
    record.update(status=status, lease_until=None, lease_owner=None,
                  outcome={"status": status, "at": now, "detail": detail, "exchange": exchange})


def budget(record: dict) -> int:
    return record["retries"] + 1 if record["reliable"] else 1


def claim(store, session: str, delivery_id: str, now: float, lease_s: float,
           owner: str) -> tuple[str, dict, int] | None:
    """Take the delivery for this worker (compare-and-set of its lease), or say it is to be given up; None when it
    is not this worker's to do (finished, not due, leased by another)."""
    with store.state.transaction(session):
        item = store.state.get(session, NAMESPACE, delivery_id)
        if item is None:
            store.state.delete(OUTBOX_SESSION, OUTBOX, f"{session}/{delivery_id}")
            return None
        record = item.value
        if record["status"] in FINISHED or record["due_at"] > now or (record.get("lease_until") or 0) > now:
            schedule(store, record)  # the entry was stale: put it right
            return None
        if record["sends"] >= budget(record):
            if record["reliable"]:
                finish(record, GIVEN_UP, now, f"no acknowledgement after {record['sends']} attempt(s) and the retry "
                        f"interval ({record['retry_interval_s']:g} s) since the last")
            else:
                finish(record, FAILED, now, "sent once (express); not sent again")
            store.state.put(session, NAMESPACE, delivery_id, record, expect_version=item.version)
            schedule(store, record)
            return ("give-up", record, 0) if record["status"] == GIVEN_UP else None
        record.update(lease_until=now + lease_s, lease_owner=owner, status=IN_FLIGHT)
        try:
            version = store.state.put(session, NAMESPACE, delivery_id, record, expect_version=item.version)
        except VersionConflict:
            return None
        schedule(store, record)
    return "send", record, version
