"""What MESH does with messages: accept (whole or in chunks), deliver to an inbox, hand over, acknowledge, expire with
an undelivered report to the sender, and purge. State goes through the sandbox store; chunk bodies are blobs."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from sandbox.conformance.findings import Finding, Refusal
from sandbox.journal.store import Store
from sandbox.services.mesh.config import DAY
from sandbox.services.mesh.errors import MeshError
from sandbox.services.mesh.session import MeshSession

MESSAGES = "mesh.message"  # message id -> the message's metadata and status


def inbox_ns(mailbox: str) -> str:
    return f"mesh.inbox.{mailbox}"  # message id -> {w: workflow, t: delivered, x: expires, d: first downloaded}


@dataclass
class InboxRead:
    """An inbox as read under one stamp of the store (None: read inside a transaction, kept for one request), and
    what was worked out from it: listings rendered, the messages downloaded but not acknowledged."""

    stamp: int | None
    entries: list[tuple[str, dict]]  # oldest first (shared: read them, never change them)
    listings: dict[tuple, tuple[Any, float, float]] = field(default_factory=dict)
    downloaded: list[tuple[str, dict]] | None = None
    first_expiry: float | None = None  # until then, every entry is still waiting


# Inboxes this worker has read, by store and (session, mailbox).
_read_inboxes: WeakKeyDictionary[Store, dict[tuple[str, str], InboxRead]] = WeakKeyDictionary()


def outbox_ns(mailbox: str) -> str:
    return f"mesh.outbox.{mailbox}"  # message id -> {l: local id}, for the messages sent with a local id


def chunking_key(mailbox: str) -> str:
    return f"chunking:{mailbox}"  # in the session's items: set once the mailbox has started a chunked message


def uploading_ns(mailbox: str) -> str:
    return f"mesh.uploading.{mailbox}"  # chunked messages still waiting for chunks


def blob_key(message_id: str, chunk: int) -> str:
    return f"mesh/{message_id}/{chunk}"


# The last second a message id was made in, and its yyyyMMddHHmmss: formatting a datetime cost more than the rest of
# the send's own logic (datetime's strftime goes through the time module on every call).
_id_second: tuple[int, str] = (-1, "")


def new_message_id(now: float) -> str:
    """As MESH makes them: UTC time to the microsecond (rounded as datetime.fromtimestamp rounds it), then six hex
    digits."""
    global _id_second
    seconds = int(now)
    micros = round((now - seconds) * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    if _id_second[0] != seconds:
        _id_second = (seconds, time.strftime("%Y%m%d%H%M%S", time.gmtime(seconds)))
    # Unrepeated, not secret: `random` is seeded from the OS per process (and again in a forked child), and asks no
    # system call per id.
    return f"{_id_second[1]}{micros:06d}_{random.getrandbits(24):06X}"


def stamp(seconds: float | None) -> str:
    """yyyyMMddHHmmss, the timestamp form of MESH headers and v1 bodies."""
    return f"{datetime.fromtimestamp(seconds, UTC):%Y%m%d%H%M%S}" if seconds else ""


def iso(seconds: float | None) -> str | None:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") if seconds else None


@dataclass
class Found:
    message: dict
    version: int


class PostOffice:
    def __init__(self, mesh: MeshSession):
        self.mesh = mesh
        self.store = mesh.store
        self.session = mesh.session
        self.limits = mesh.config.limits
        self._inboxes: dict[str, InboxRead] = {}  # read once per request (a check and the handler)

    # --- reading ----------------------------------------------------------------------------------------------
    def find(self, message_id: str) -> Found | None:
        item = self.store.state.get(self.session, MESSAGES, message_id.upper())
        return Found(item.value, item.version) if item else None

    def chunk(self, message_id: str, number: int) -> bytes | None:
        return self.store.state.get_blob(self.session, blob_key(message_id, number))

    def inbox(self, mailbox: str) -> list[tuple[str, dict]]:
        """Messages ready to download, oldest first (the entries are shared: read them, never change them)."""
        return self._read(mailbox).entries

    def downloaded(self, mailbox: str) -> list[tuple[str, dict]]:
        """The inbox's messages downloaded but not acknowledged, oldest first: worked out once per change of the
        inbox, not on every poll of it."""
        read = self._read(mailbox)
        if read.downloaded is None:
            read.downloaded = [(k, v) for k, v in read.entries if v.get("d")]
        return read.downloaded

    def waiting(self, mailbox: str, now: float) -> list[tuple[str, dict]]:
        """The inbox's messages still waiting at `now` (not yet expired), oldest first: the inbox as read while none
        has expired (found once per change of the inbox, not on every request), else those that have not."""
        entries = self.inbox(mailbox)
        return entries if now < self.first_expiry(mailbox) else [(k, v) for k, v in entries if v["x"] > now]

    def first_expiry(self, mailbox: str) -> float:
        """When the first message in the inbox expires (infinity when it is empty)."""
        read = self._read(mailbox)
        if read.first_expiry is None:
            read.first_expiry = min((v["x"] for _, v in read.entries), default=float("inf"))
        return read.first_expiry

    def _read(self, mailbox: str) -> InboxRead:
        found = self._inboxes.get(mailbox)
        if found is not None:
            return found
        # Taken before the entries are read: a change in between moves it, and the next request reads again.
        stamp = self.store.state.stamp(self.session, inbox_ns(mailbox))
        read = _read_inboxes.setdefault(self.store, {})
        found = read.get((self.session, mailbox))
        if stamp is None or found is None or found.stamp != stamp:
            items = self.store.state.items(self.session, inbox_ns(mailbox))
            found = InboxRead(stamp, sorted(((k, v.value) for k, v in items.items()), key=lambda e: (e[1]["t"], e[0])))
            if stamp is not None:
                if len(read) >= 1024:
                    read.clear()
                read[self.session, mailbox] = found
        self._inboxes[mailbox] = found
        return found

    def listing(self, mailbox: str, key: tuple, now: float, render: Callable[[], tuple[Any, float]]) -> Any:
        """What `render` makes of this inbox for `key` (a request's paging and filter), kept while the inbox is
        unchanged and the session's clock stays between the moment it was made and the one `render` gave (when the
        first message in it expires)."""
        read = self._read(mailbox)
        kept = read.listings.get(key)
        if kept is not None and kept[1] <= now < kept[2]:
            return kept[0]
        result, until = render()
        if read.stamp is not None:  # an inbox read inside a transaction is not kept past the request: nor are these
            if len(read.listings) >= 64:
                read.listings.clear()
            read.listings[key] = (result, now, until)
        return result

    def sent_with_local_id(self, mailbox: str, local_id: str) -> list[str]:
        entries = self.store.state.items(self.session, outbox_ns(mailbox))
        return sorted(k for k, v in entries.items() if v.value.get("l") == local_id)

    def uploads_pending(self, mailbox: str) -> dict[str, dict]:
        if not self.mesh.item(chunking_key(mailbox)):
            return {}  # this mailbox never started a chunked message: nothing to look up
        return {k: v.value for k, v in self.store.state.items(self.session, uploading_ns(mailbox)).items()}

    # --- sending ----------------------------------------------------------------------------------------------
    def send(self, sender: str, recipient: str, headers: dict, body: bytes, total_chunks: int,
             commit: Callable[[Callable[[], None]], None] | None = None) -> dict:
        """Accept a message (its first chunk). The writes happen through `commit` when given (a request commits them
        with its journal record), and at once otherwise."""
        now = self.mesh.now()
        message = {
            "id": new_message_id(now), "type": "DATA", "sender": sender, "recipient": recipient,
            **headers, "total_chunks": total_chunks, "chunks": {"1": len(body)}, "status": "uploading",
            "uploaded_at": now, "purge_at": now + self.limits.purge_days * DAY, "downloaded": {},
        }

        def write() -> None:
            with self.store.state.transaction(self.session):
                self.store.state.put_blob(self.session, blob_key(message["id"], 1), body)
                if headers.get("local_id"):  # the outbox is only ever searched by local id
                    self.store.state.write(self.session, outbox_ns(sender), message["id"], {"l": headers["local_id"]})
                if total_chunks == 1:
                    self._deliver(message, now)
                else:
                    self.store.state.write(self.session, uploading_ns(sender), message["id"],
                                           {"since": now, "of": total_chunks})
                    if not self.mesh.item(chunking_key(sender)):
                        self.mesh.put(chunking_key(sender), True)
                self.store.state.write(self.session, MESSAGES, message["id"], message, create_only=True)
                self._due(message["purge_at"])

        (commit or (lambda f: f()))(write)
        return message

    def add_chunk(self, message_id: str, number: int, body: bytes, gzip: str | None = None,
                  commit: Callable[[Callable[[], None]], None] | None = None) -> None:
        """Store one chunk; deliver when the last one arrives. The message is read again inside the write (which holds
        the store's write lock), so chunks of one message uploaded at the same moment all land: none is lost to a
        version conflict. A chunk that finds the message completed meanwhile is refused as MESH refuses it (423)."""

        def write() -> None:
            now = self.mesh.now()
            with self.store.state.transaction(self.session):
                found = self.find(message_id)
                if found is None or found.message["status"] != "uploading":
                    raise Refusal(Finding.failed(
                        "MESH-CHK-005", f"Chunk {number} arrived after message {message_id} was complete.",
                        "header:Mex-Chunk-Range", reject=MeshError.of(
                            423, "MessageFinalised", f"all chunks of {message_id} were already received",
                            message_id=message_id)))
                message = found.message
                self.store.state.put_blob(self.session, blob_key(message["id"], number), body)
                message["chunks"][str(number)] = len(body)
                if gzip is not None:
                    message.setdefault("gzip", {})[str(number)] = gzip
                if len(message["chunks"]) == message["total_chunks"]:
                    self.store.state.delete(self.session, uploading_ns(message["sender"]), message["id"])
                    self._deliver(message, now)
                self.store.state.put(self.session, MESSAGES, message["id"], message, expect_version=found.version)

        (commit or (lambda f: f()))(write)

    def _deliver(self, message: dict, now: float) -> None:
        message["status"] = "accepted"
        message["accepted_at"] = now
        message["expires_at"] = now + self.limits.inbox_days * DAY
        self.store.state.write(self.session, inbox_ns(message["recipient"]), message["id"],
                               {"w": message.get("workflow_id") or "", "t": now, "x": message["expires_at"]})
        self._due(message["expires_at"])

    def _due(self, when: float) -> None:
        """Remember the earliest moment something must expire or be purged, so requests need not scan messages."""
        due = self.mesh.item("due")
        if due is None or when < due["at"]:
            self.mesh.put("due", {"at": when})

    # --- receiving --------------------------------------------------------------------------------------------
    def readable(self, found: Found | None, mailbox: str, message_id: str) -> dict:
        """The message if this mailbox may download it now; otherwise the error MESH answers."""
        if found is None or found.message["status"] == "uploading":
            raise MeshError.of(404, "20", f"no message {message_id!r} is waiting in mailbox {mailbox}'s inbox",
                               message_id=message_id)
        message = found.message
        if message["recipient"] != mailbox:
            raise MeshError.of(403, "Forbidden", f"message {message_id} is addressed to another mailbox, not "
                               f"{mailbox}", message_id=message_id)
        if message["status"] == "acknowledged":
            raise MeshError.of(410, "MessageGone", f"message {message_id} was acknowledged at "
                               f"{iso(message.get('acknowledged_at'))} and is no longer in the inbox",
                               message_id=message_id)
        if message["status"] != "accepted":
            raise MeshError.of(410, "MessageGone", f"message {message_id} expired from the inbox at "
                               f"{iso(message.get('expires_at'))} without being acknowledged", message_id=message_id)
        return message

    def record_download(self, found: Found, number: int) -> None:
        message = found.message
        now = self.mesh.now()
        with self.store.state.transaction(self.session):
            current = self.find(message["id"])  # re-read inside the write lock: a concurrent download may have won
            message = current.message if current else message
            first = not message["downloaded"]
            message["downloaded"].setdefault(str(number), now)
            self.store.state.write(self.session, MESSAGES, message["id"], message)
            if first and message["status"] == "accepted":
                entry = self.store.state.get(self.session, inbox_ns(message["recipient"]), message["id"])
                if entry is not None:
                    self.store.state.write(self.session, inbox_ns(message["recipient"]), message["id"],
                                           {**entry.value, "d": now})
        found.message = message

    def acknowledge(self, message_id: str, commit: Callable[[Callable[[], None]], None] | None = None) -> None:
        """Mark the message acknowledged and take it out of the inbox. Read again inside the write, so acknowledgements
        of one message at the same moment all succeed: the first changes it, the others find it done (harmless, as on
        MESH), and one the sweep expired meanwhile stays expired."""

        def write() -> None:
            now = self.mesh.now()
            with self.store.state.transaction(self.session):
                found = self.find(message_id)
                if found is None or found.message["status"] != "accepted":
                    return
                message = found.message
                message["status"] = "acknowledged"
                message["acknowledged_at"] = now
                self.store.state.delete(self.session, inbox_ns(message["recipient"]), message["id"])
                self.store.state.put(self.session, MESSAGES, message["id"], message, expect_version=found.version)

        (commit or (lambda f: f()))(write)

    # --- time -------------------------------------------------------------------------------------------------
    def sweep(self, force: bool = False) -> dict[str, int]:
        """Expire unacknowledged messages past their inbox time (each sender gets an undelivered report), and
        purge messages past the retention period. Cheap when nothing is due."""
        now = self.mesh.now()
        due = self.mesh.item("due")
        done = {"expired": 0, "reports": 0, "purged": 0}
        if not force and (due is None or now < due["at"]):
            return done
        with self.store.state.transaction(self.session):
            next_due: float | None = None
            for message_id, item in self.store.state.items(self.session, MESSAGES).items():
                message = item.value
                if now >= message["purge_at"]:
                    self._purge(message)
                    done["purged"] += 1
                    continue
                if message["status"] == "accepted" and now >= message["expires_at"]:
                    self._undeliver(message, now)
                    done["expired"] += 1
                    if message["type"] == "DATA":
                        report = self._report(message, now)
                        done["reports"] += 1
                        next_due = min(filter(None, (next_due, report["expires_at"])))
                    self.store.state.put(self.session, MESSAGES, message_id, message)
                when = message["expires_at"] if message["status"] == "accepted" else message["purge_at"]
                next_due = when if next_due is None else min(next_due, when)
            if next_due is None:
                self.mesh.forget("due")
            else:
                self.mesh.put("due", {"at": next_due})
        self._inboxes.clear()
        return done

    def _undeliver(self, message: dict, now: float) -> None:
        message.update(status="undeliverable" if message["type"] == "DATA" else "expired", failed_at=now,
                       status_event="SEND", status_code="14",
                       status_description=f"Message not collected by recipient after {self._days()} days")
        self.store.state.delete(self.session, inbox_ns(message["recipient"]), message["id"])

    def _report(self, undelivered: dict, now: float) -> dict:
        """The non-delivery report MESH puts in the sender's inbox: a REPORT with an empty body."""
        report = {
            "id": new_message_id(now), "type": "REPORT", "sender": undelivered["recipient"],
            "recipient": undelivered["sender"], "report_to": undelivered["recipient"],
            "workflow_id": undelivered.get("workflow_id"), "local_id": undelivered.get("local_id"),
            "subject": undelivered.get("subject"), "linked_message_id": undelivered["id"],
            "status_event": "SEND", "status_code": "14", "status_description": undelivered["status_description"],
            "failed_at": now, "total_chunks": 1, "chunks": {"1": 0}, "status": "uploading", "uploaded_at": now,
            "purge_at": now + self.limits.purge_days * DAY, "downloaded": {},
        }
        self.store.state.put_blob(self.session, blob_key(report["id"], 1), b"")
        self._deliver(report, now)
        self.store.state.put(self.session, MESSAGES, report["id"], report, create_only=True)
        return report

    def _purge(self, message: dict) -> None:
        self.store.state.delete(self.session, MESSAGES, message["id"])
        self.store.state.delete(self.session, inbox_ns(message["recipient"]), message["id"])
        self.store.state.delete(self.session, outbox_ns(message["sender"]), message["id"])
        self.store.state.delete(self.session, uploading_ns(message["sender"]), message["id"])
        self.store.state.delete_blobs(self.session, f"mesh/{message['id']}/")

    def _days(self) -> str:
        days = self.limits.inbox_days
        return str(int(days)) if float(days).is_integer() else str(days)
