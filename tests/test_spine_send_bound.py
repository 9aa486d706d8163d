"""A delivery's send is bounded as a whole, not only step by step: a supplier's MHS that trickles its answer a byte
at a time (each byte well inside the socket timeout) is cut off at the connect and response timeouts, and the
attempt says so; and a send stuck off the network past its lease (a thread on a lock) is reported in the log."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field

import pytest

from sandbox.services.spine import delivery, sending
from tests.test_spine_delivery import build, finished, message, wait_for

TRICKLE_EVERY_S = 0.05
TRICKLE_AT_MOST = 2000  # bytes: the trickler stops by itself after this many (100 s), whatever the client does


@dataclass
class Trickler:
    """An MHS that reads the request, then sends its status line and one endless header a byte at a time, until the
    client closes the connection (or TRICKLE_AT_MOST bytes)."""

    listener: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    sent: int = 0
    cut_off: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/reliablemessaging/inbound"

    def start(self) -> Trickler:
        self.listener.settimeout(10)
        threading.Thread(target=self._serve, daemon=True, name="test-trickler").start()
        return self

    def _serve(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(10)
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                connection.sendall(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
                while self.sent < TRICKLE_AT_MOST and not self.stop.wait(TRICKLE_EVERY_S):
                    connection.sendall(b"a")
                    self.sent += 1
            except OSError:  # the client shut the connection
                self.cut_off.set()


@pytest.fixture
def trickler():
    mhs = Trickler().start()
    yield mhs
    mhs.stop.set()
    mhs.listener.close()


def test_an_mhs_that_trickles_its_answer_is_cut_off_at_the_connect_and_response_timeouts(settings, trickler):
    spine = build(settings, connect_timeout_s=1.0, response_timeout_s=2.0)
    delivery.start(spine)
    try:
        delivery_id = delivery.enqueue(spine, message("s-trickle", trickler.url, reliable=False))

        record = finished(spine, "s-trickle", delivery_id)

        [attempt] = record["attempts"]
        assert attempt["error"] == "timeout", attempt
        assert attempt["detail"].startswith("timeout: no whole answer within 3 s"), attempt["detail"]
        assert record["status"] == "failed"  # express: sent once
        assert wait_for(trickler.cut_off.is_set, what="the trickling MHS to see its connection closed")
        assert trickler.sent < TRICKLE_AT_MOST
    finally:
        spine.close()


def test_a_send_stuck_past_its_lease_is_reported_once(settings, monkeypatch, caplog):
    release = threading.Event()
    entered = []

    def stuck(sandbox, runner, record, version):  # a thread held on a lock, off the network
        entered.append(record["id"])
        release.wait(30)

    monkeypatch.setattr(sending, "attempt", stuck)
    spine = build(settings, connect_timeout_s=0.1, response_timeout_s=0.1, lease_margin_s=0.1)
    caplog.set_level(logging.ERROR, logger="sandbox.services.spine.worker")
    delivery.start(spine)
    try:
        delivery_id = delivery.enqueue(spine, message("s-stuck", "http://127.0.0.1:9/inbound"))

        # The lease ends, the delivery is claimed again by a new thread (stuck too), and each is reported once.
        wait_for(lambda: len(entered) >= 2, what="the delivery to be claimed again after its lease")
        reports = wait_for(lambda: [r for r in caplog.records if delivery_id in r.getMessage()],
                           what="the stuck send to be reported")
        assert "is stuck outside the network" in reports[0].getMessage()
        assert "past its 0.3 s lease" in reports[0].getMessage()
        first_thread = reports[0].getMessage().split("(thread ")[1].split(",")[0]
        assert sum(f"(thread {first_thread}," in r.getMessage() for r in caplog.records) == 1
    finally:
        release.set()
        spine.close()
