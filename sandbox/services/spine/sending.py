"""One attempt: POST the message to the supplier's MHS (TLS with the sandbox's client certificate), read the
answer within the timeouts, and apply what it means to the delivery's record."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sandbox.conformance.findings import Finding
from sandbox.hosting import outbound
from sandbox.journal.exchange import new_exchange_id
from sandbox.journal.store import VersionConflict
from sandbox.services.spine import journaling, outbox, relay, verdicts

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox
    from sandbox.services.spine import worker

EXTENSION = "spine.delivery"
BLOCKED = "blocked"  # hosted mode refused the destination (sandbox.hosting.outbound): the delivery fails at once


@dataclass
class Options:
    """How deliveries are sent; one per sandbox (tests shorten the timeouts with `configure`)."""

    connect_timeout_s: float = 10.0
    response_timeout_s: float = 30.0
    lease_margin_s: float = 30.0  # a lease outlasts the longest send by this much
    poll_s: float = 1.0  # how often a worker looks for work other processes left (lease ends, their due times)
    max_parallel: int = 4  # sends at once per process
    max_response_bytes: int = 1 << 20

    @property
    def lease_s(self) -> float:
        return self.connect_timeout_s + self.response_timeout_s + self.lease_margin_s


def options_of(sandbox: Sandbox) -> Options:
    return sandbox.extensions.setdefault(EXTENSION + ".options", Options())


@dataclass
class HttpResult:
    status: int = 0  # 0: no HTTP answer
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: str | None = None  # connection, tls, timeout, endpoint
    detail: str = ""


def attempt(sandbox: Sandbox, runner: worker.Runner, record: dict, version: int) -> None:
    session, delivery_id = record["session"], record["id"]
    store = sandbox.store
    body = store.state.get_blob(session, outbox.BLOB_PREFIX + delivery_id) or b""
    options = options_of(sandbox)
    number = len(record["attempts"]) + 1
    exchange_id = new_exchange_id()
    headers = [("Content-Type", record["content_type"]), ("SOAPAction", record["soap_action"]),
               ("Content-Length", str(len(body))), ("Connection", "close"), ("Accept", "*/*")]
    started, clock = time.time(), time.perf_counter()
    result = _post(sandbox, runner, record["endpoint"], headers, body, options, session, record["to_party"])
    duration_ms = (time.perf_counter() - clock) * 1000
    if result.error == BLOCKED:  # final: sending again would be refused again
        verdict = verdicts.Verdict(BLOCKED, f"{result.error}: {result.detail}")
    else:
        verdict = verdicts.judge_answer(record, result, number)
    now = time.time()
    attempt = {"n": number, "at": started, "duration_ms": round(duration_ms, 1), "exchange": exchange_id,
               "http_status": result.status or None, "error": result.error, "result": verdict.kind,
               "detail": verdict.detail}
    while True:  # an acknowledgement POSTed meanwhile, or a control retry, may have changed the record
        with store.state.transaction(session):
            item = store.state.get(session, outbox.NAMESPACE, delivery_id)
            if item is None:
                return
            current = item.value
            before = current["status"]
            current["attempts"].append(attempt)
            if current.get("lease_owner") == runner.owner:
                current.update(lease_until=None, lease_owner=None)
            current["sends"] = current.get("sends", 0) + 1
            if before not in outbox.FINISHED:
                _apply(current, verdict, now, exchange_id)
            if verdict.kind in ("ack", "nack"):
                current["answers"].append({"at": now, "kind": verdict.kind, "how": "http-response",
                                           "errors": verdict.errors})
                current["acks"] = current.get("acks", 0) + (verdict.kind == "ack")
            try:
                store.state.put(session, outbox.NAMESPACE, delivery_id, current, expect_version=item.version)
            except VersionConflict:
                continue
            outbox.schedule(store, current)
            break
    findings = list(verdict.findings)
    if before not in outbox.FINISHED and verdict.kind != BLOCKED:
        findings.extend(verdicts.judge_outcome(current, verdict, number))
    elif verdict.kind == "ack" and before == outbox.DELIVERED and number > 1:
        # The supplier's acknowledgement of an earlier attempt arrived while this re-send was on its way: answering
        # the duplicate with an acknowledgement again is what duplicate elimination asks for.
        findings.append(Finding.passed(
            verdicts.REQ_DUPLICATE_ANSWER, f"The re-sent message {current['message_id']} (attempt {number}) was "
            "answered with an acknowledgement again, after an earlier attempt had been acknowledged.",
            f"HTTP response of attempt {number} from {current['endpoint']}"))
    sent_headers = [("Host", urlsplit(record["endpoint"]).netloc), *headers]  # http.client adds Host itself
    journaling.record_exchange(sandbox, current, exchange_id, started, duration_ms, "POST", sent_headers, body,
                               result, findings)
    settled_now = before not in outbox.FINISHED and current["status"] in (outbox.DELIVERED, outbox.FAILED)
    if settled_now and current.get("relay_to_party") and verdict.kind in ("ack", "nack"):
        relay.relay_answer(sandbox, current, result)


def _apply(record: dict, verdict: verdicts.Verdict, now: float, exchange_id: str) -> None:
    if verdict.kind == BLOCKED:
        outbox.finish(record, outbox.FAILED, now, verdict.detail, exchange_id)
    elif verdict.kind == "ack":
        outbox.finish(record, outbox.DELIVERED, now, verdict.detail, exchange_id)
    elif verdict.kind == "nack":
        outbox.finish(record, outbox.FAILED, now, verdict.detail, exchange_id)
    elif not record["reliable"]:
        status = outbox.DELIVERED if verdict.kind == "accepted" else outbox.FAILED
        outbox.finish(record, status, now, verdict.detail, exchange_id)
    else:  # wait a retry interval for an acknowledgement POSTed later, then send again (or give up)
        record.update(status=outbox.IN_FLIGHT, due_at=now + record["retry_interval_s"])


def _post(sandbox: Sandbox, runner: worker.Runner, endpoint: str, headers: list[tuple[str, str]], body: bytes,
          options: Options, session: str, to_party: str) -> HttpResult:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return HttpResult(error="endpoint", detail=f"the endpoint {endpoint!r} is not an http(s) URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    pinned = None
    if sandbox.settings.hosted:  # never the host's own network: resolved now, and connected to what was checked
        try:
            pinned = outbound.destination(parts.hostname, outbound.port_of(parts),
                                          outbound.allow_list(sandbox.settings.delivery_allow))
        except outbound.Refused as exc:
            return HttpResult(error=BLOCKED, detail=f"not sent: {exc}")
    try:
        if parts.scheme == "https":
            context = runner.ssl_context(sandbox, _ca_file(sandbox, session, to_party))
            connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=options.connect_timeout_s,
                                                     context=context)
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=options.connect_timeout_s)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return HttpResult(error="tls", detail=f"the sandbox's TLS client could not be set up: {exc}")
    create = connection._create_connection
    if pinned is not None:  # TLS still checks the certificate against the host name (server_hostname)
        def create(address, *args):
            return socket.create_connection((str(pinned), address[1]), *args)
    bound_s = options.connect_timeout_s + options.response_timeout_s  # the whole send, within its lease
    cutoff = _Cutoff(create)
    connection._create_connection = cutoff.create_connection
    deadline = time.monotonic() + bound_s
    timer = threading.Timer(bound_s, cutoff.fire)
    timer.daemon = True
    timer.name = f"spine-send-cutoff-{threading.current_thread().name}"
    timer.start()
    try:
        connection.connect()
        connection.sock.settimeout(options.response_timeout_s)
        connection.putrequest("POST", path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        data = _read(response, options.max_response_bytes, deadline)
        timer.cancel()
        if cutoff.fired:  # the answer ended because the cutoff shut the connection, not because it was whole
            raise TimeoutError
        return HttpResult(response.status, list(response.getheaders()), data)
    except (OSError, http.client.HTTPException) as exc:  # TimeoutError and ssl.SSLError are OSErrors
        if cutoff.fired:
            return HttpResult(error="timeout", detail=f"no whole answer within {bound_s:g} s (the connect and "
                              "response timeouts): the connection was closed")
        if isinstance(exc, TimeoutError):
            return HttpResult(error="timeout", detail=f"no answer within {options.response_timeout_s:g} s")
        if isinstance(exc, ssl.SSLError):
            return HttpResult(error="tls", detail=f"TLS handshake with {parts.hostname} failed: {exc}")
        return HttpResult(error="connection", detail=f"{type(exc).__name__}: {exc}")
    finally:
        timer.cancel()
        connection.close()
        cutoff.close()


class _Cutoff:
    """The bound on a whole send. Socket timeouts bound each read, write and TLS handshake step, but a peer that
    trickles bytes could keep a send going for ever; at the bound the timer shuts the connection's socket down,
    which wakes the sending thread wherever it waits on it. It shuts down a duplicate of the socket, its own to
    close, so it never reaches a descriptor the system has since given to another connection."""

    def __init__(self, create):
        self._create = create
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.fired = False

    def create_connection(self, *args) -> socket.socket:
        sock = self._create(*args)
        with self._lock:
            self._socket = sock.dup()
            if self.fired:  # connected just after the bound
                self._shut()
        return sock

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shut()

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def _shut(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):  # already closed by the peer
                self._socket.shutdown(socket.SHUT_RDWR)


def _read(response: http.client.HTTPResponse, limit: int, deadline: float) -> bytes:
    chunks, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit]


def _ca_file(sandbox: Sandbox, session: str, to_party: str) -> str | None:
    try:
        from sandbox.services.sds import directory as sds

        registration = sds.directory(sandbox).registration(session, to_party)
    except Exception:  # no directory yet: the sandbox CA
        return None
    return getattr(registration, "ca_file", None) or None
