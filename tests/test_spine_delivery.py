"""What the sandbox sends over Spine core messaging: a real supplier MHS on loopback that acknowledges, drops,
delays, refuses (NACK) or acknowledges wrongly, and the sandbox's queue, retries, outcomes, journal and control API.
The supplier's acknowledgements are built by the tests' own MHS helpers (tests/mhs_client.py), not the sandbox's."""

from __future__ import annotations

import http.server
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest

from sandbox.app import create_app
from sandbox.messaging import ebxml
from sandbox.runtime import Sandbox
from sandbox.services.spine import delivery, outbox, reliability
from sandbox.services.spine.control import control as spine_control
from tests.conftest import ROOT
from tests.mhs_client import ebxml_envelope, parse_ebxml

SPINE = "YES-0000806"
SUPPLIER = "A91424-9199121"
INTERACTION = "MCCI_IN010000UK13"
SERVICE = "urn:nhs:names:services:psis"
FAST = {"connect_timeout_s": 1.0, "response_timeout_s": 0.5, "lease_margin_s": 0.5, "poll_s": 0.05}


# --- a supplier's MHS on loopback ---------------------------------------------------------------------------------
@dataclass
class Got:
    at: float
    headers: dict[str, str]
    body: bytes
    message_id: str | None


@dataclass
class Supplier:
    """Answers each POST by the next behaviour in `plan` (the last one repeats): ack, ack-wrong-ref, nack, accept
    (202, no ack), error (500), drop (closes the connection), slow (answers after `slow_s`)."""

    plan: list[str] = field(default_factory=lambda: ["ack"])
    slow_s: float = 1.5
    received: list[Got] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/reliablemessaging/inbound"

    def start(self) -> Supplier:
        supplier = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                envelope, _ = parse_ebxml(self.headers.get("Content-Type", ""), body)
                message_id = envelope.findtext(".//{*}MessageData/{*}MessageId")
                with supplier.lock:
                    supplier.received.append(Got(time.time(), {k.lower(): v for k, v in self.headers.items()},
                                                 body, message_id))
                    n = len(supplier.received)
                    behaviour = supplier.plan[min(n, len(supplier.plan)) - 1]
                if behaviour == "drop":
                    self.close_connection = True
                    return
                if behaviour == "slow":
                    time.sleep(supplier.slow_s)
                    behaviour = "ack"
                if behaviour == "error":
                    return self._answer(500, b"internal error", "text/plain")
                if behaviour == "accept":
                    return self._answer(202, b"", "text/plain")
                if behaviour == "nack":
                    return self._answer(500, nack(message_id).encode(), "text/xml; charset=UTF-8")
                ref = message_id if behaviour == "ack" else str(uuid.uuid4()).upper()
                return self._answer(200, ack(ref).encode(), "text/xml; charset=UTF-8")

            def _answer(self, status: int, body: bytes, content_type: str):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the sandbox gave up waiting (slow): nobody is listening any more
                    pass
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True, name="test-supplier").start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def count(self) -> int:
        with self.lock:
            return len(self.received)


def ack(ref: str) -> str:
    return ebxml_envelope(from_party=SUPPLIER, to_party=SPINE, cpa_id="S1001A1630", conversation_id=ref,
                          service="urn:oasis:names:tc:ebxml-msg:service", action="Acknowledgment",
                          message_id=str(uuid.uuid4()).upper(), ref_to=ref, manifest=False, acknowledgment_of=ref)


def nack(ref: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/'
            'envelope/" xmlns:eb="http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd">'
            '<SOAP:Header><eb:MessageHeader SOAP:mustUnderstand="1" eb:version="2.0">'
            f"<eb:From><eb:PartyId>{SUPPLIER}</eb:PartyId></eb:From><eb:To><eb:PartyId>{SPINE}</eb:PartyId></eb:To>"
            f"<eb:CPAId>S1001A1630</eb:CPAId><eb:ConversationId>{ref}</eb:ConversationId>"
            "<eb:Service>urn:oasis:names:tc:ebxml-msg:service</eb:Service><eb:Action>MessageError</eb:Action>"
            f"<eb:MessageData><eb:MessageId>{uuid.uuid4()}</eb:MessageId><eb:Timestamp>2026-01-01T00:00:00Z"
            f"</eb:Timestamp><eb:RefToMessageId>{ref}</eb:RefToMessageId></eb:MessageData></eb:MessageHeader>"
            '<eb:ErrorList SOAP:mustUnderstand="1" eb:version="2.0" eb:highestSeverity="Error">'
            '<eb:Error eb:errorCode="ValueNotRecognized" eb:severity="Error" '
            'eb:codeContext="urn:oasis:names:tc:ebxml-msg:service:errors"><eb:Description xml:lang="en-GB">'
            "501319:Unknown eb:CPAId</eb:Description></eb:Error></eb:ErrorList></SOAP:Header><SOAP:Body/>"
            "</SOAP:Envelope>")


# --- fixtures and helpers -------------------------------------------------------------------------------------
@pytest.fixture
def supplier():
    mhs = Supplier().start()
    yield mhs
    mhs.stop()


def build(settings, **options) -> Sandbox:
    """A sandbox whose delivery worker the test starts (delivery.start) when it wants it."""
    sandbox = Sandbox.build(settings)
    delivery.stop(sandbox)  # the one the spine service's start hook started
    delivery.configure(sandbox, **{**FAST, **options})
    return sandbox


@pytest.fixture
def spine(settings):
    sandbox = build(settings)
    delivery.start(sandbox)
    yield sandbox
    sandbox.store.close()


def message(session: str, endpoint: str, *, reliable: bool = True, retries: int = 2, interval: float = 0.3,
            due_in: float = 0.0) -> delivery.Delivery:
    message_id = str(uuid.uuid4()).upper()
    hl7 = (f'<MCCI_IN010000UK13 xmlns="urn:hl7-org:v3"><id root="{message_id}"/>'
           '<interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="MCCI_IN010000UK13"/>'
           "</MCCI_IN010000UK13>").encode()
    content_type, body = ebxml.build_message(
        from_party=SPINE, to_party=SUPPLIER, cpa_id="S1001A1630", conversation_id=message_id, service=SERVICE,
        action=INTERACTION, message_id=message_id, hl7=hl7, duplicate_elimination=reliable, ack_requested=reliable,
        sync_reply=True)
    return delivery.Delivery(
        session=session, to_party=SUPPLIER, endpoint=endpoint, interaction=INTERACTION, message_id=message_id,
        conversation_id=message_id, content_type=content_type, body=body, reliable=reliable, retries=retries,
        retry_interval_s=interval, persist_s=300, due_at=time.time() + due_in)


def wait_for(check, timeout: float = 10.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def finished(sandbox, session, delivery_id) -> dict:
    """The delivery's record once it is finished and the journal holds what it concluded (the record is written
    first, then each attempt's exchange, and the outcome's when it was given up)."""
    def journaled(record: dict) -> bool:
        attempts = all(sandbox.store.journal.exchange(a["exchange"]) is not None for a in record["attempts"])
        outcome = record["status"] != "given-up" or any(
            e.operation == "delivery-outcome" for e in sandbox.store.journal.related(session, f"spine:delivery:{delivery_id}",
                                                                             limit=50))
        return attempts and outcome

    return wait_for(lambda: (r := delivery.get(sandbox, session, delivery_id))["status"] in delivery.FINISHED
                    and journaled(r) and r, what=f"delivery {delivery_id} to finish")


def findings(sandbox, session) -> list[tuple[str, str, str]]:
    """(requirement, outcome, operation) of every finding the session's spine exchanges carry."""
    found = []
    for exchange in sandbox.store.journal.iter_exchanges(session):
        if exchange.service == "spine":
            found.extend((f.requirement, str(f.outcome), exchange.operation) for f in exchange.findings)
    return found


def attempts_journaled(sandbox, session) -> list:
    return [e for e in sandbox.store.journal.iter_exchanges(session) if e.service == "spine" and e.operation == "deliver"]


def control_client(sandbox):
    app = create_app(sandbox.settings, sandbox=sandbox)
    if not any(rule.rule.startswith("/_sandbox/spine/deliveries") for rule in app.url_map.iter_rules()):
        app.register_blueprint(spine_control, url_prefix="/_sandbox/spine", name="spine-control")
    return app.test_client()


# --- outcomes -------------------------------------------------------------------------------------------------
def test_an_acknowledgement_in_the_http_response_delivers_and_is_journaled(spine, supplier):
    sent = message("s-ack", supplier.url)
    delivery_id = delivery.enqueue(spine, sent)

    record = finished(spine, "s-ack", delivery_id)

    assert record["status"] == "delivered" and len(record["attempts"]) == 1
    assert record["attempts"][0]["http_status"] == 200 and record["attempts"][0]["result"] == "ack"
    got = supplier.received[0]
    assert got.message_id == sent.message_id
    assert got.headers["soapaction"] == f"{SERVICE}/{INTERACTION}"  # as live Spine sends it: service/interaction
    assert got.headers["content-type"].startswith("multipart/related;")
    assert 'type="text/xml"' in got.headers["content-type"] and "start=" in got.headers["content-type"]
    assert got.body == sent.body
    [exchange] = attempts_journaled(spine, "s-ack")
    assert exchange.request.body == sent.body and exchange.request.path == supplier.url
    assert exchange.response.status == 200 and sent.message_id.encode() in exchange.response.body
    assert ("SPINE-REL-101", "pass", "deliver") in findings(spine, "s-ack")
    assert ("SPINE-REL-104", "pass", "deliver") in findings(spine, "s-ack")


def test_unacknowledged_messages_are_retried_at_the_interval_up_to_the_count_then_given_up(spine, supplier):
    supplier.plan = ["error", "drop", "accept"]
    delivery_id = delivery.enqueue(spine, message("s-retry", supplier.url, retries=2, interval=0.3))

    record = finished(spine, "s-retry", delivery_id)

    assert record["status"] == "given-up"
    assert supplier.count() == 3  # the first send and two retries, no more
    times = [g.at for g in supplier.received]
    assert all(later - earlier >= 0.3 for earlier, later in zip(times, times[1:], strict=False))
    assert [a["http_status"] for a in record["attempts"]] == [500, None, 202]
    assert record["attempts"][1]["error"] == "connection"
    assert len(attempts_journaled(spine, "s-retry")) == 3
    assert ("SPINE-REL-101", "fail", "delivery-outcome") in findings(spine, "s-retry")
    time.sleep(0.4)
    assert supplier.count() == 3


def test_a_slow_supplier_times_out_and_the_message_is_sent_again(spine, supplier):
    supplier.plan = ["slow", "ack"]
    delivery_id = delivery.enqueue(spine, message("s-slow", supplier.url, interval=0.2))

    record = finished(spine, "s-slow", delivery_id)

    assert record["status"] == "delivered"
    assert [a["error"] for a in record["attempts"]] == ["timeout", None]
    assert ("SPINE-REL-101", "warning", "deliver") in findings(spine, "s-slow")  # acknowledged only at attempt 2
    assert ("SPINE-REL-103", "pass", "deliver") in findings(spine, "s-slow")  # the re-send was acknowledged


def test_a_nack_fails_the_delivery_and_is_never_retried(spine, supplier):
    supplier.plan = ["nack"]
    delivery_id = delivery.enqueue(spine, message("s-nack", supplier.url, interval=0.1))

    record = finished(spine, "s-nack", delivery_id)

    assert record["status"] == "failed"
    assert "ValueNotRecognized" in record["outcome"]["detail"]
    client = control_client(spine)
    client.post("/_sandbox/spine/flush?session=s-nack", json={"wait": 1})
    time.sleep(0.3)
    assert supplier.count() == 1
    assert ("SPINE-REL-104", "fail", "deliver") in findings(spine, "s-nack")


def test_an_acknowledgement_with_the_wrong_ref_does_not_count(spine, supplier):
    supplier.plan = ["ack-wrong-ref", "ack"]
    delivery_id = delivery.enqueue(spine, message("s-wrong", supplier.url, interval=0.2))

    record = finished(spine, "s-wrong", delivery_id)

    assert record["status"] == "delivered" and len(record["attempts"]) == 2
    assert record["attempts"][0]["result"] == "no-ack"
    assert ("SPINE-REL-102", "fail", "deliver") in findings(spine, "s-wrong")


def test_an_acknowledgement_posted_later_completes_the_delivery(spine, supplier):
    supplier.plan = ["accept"]  # 202 now, the acknowledgement later
    sent = message("s-later", supplier.url, interval=60)
    delivery_id = delivery.enqueue(spine, sent)
    wait_for(lambda: delivery.get(spine, "s-later", delivery_id)["attempts"], what="the first attempt")
    assert delivery.get(spine, "s-later", delivery_id)["status"] == "in-flight"

    header = ebxml.parse("text/xml", ack(sent.message_id).encode()).header
    assert delivery.acknowledged(spine, "s-later", header) is True

    record = delivery.get(spine, "s-later", delivery_id)
    assert record["status"] == "delivered" and record["answers"][-1]["how"] == "posted"
    assert supplier.count() == 1
    assert ("SPINE-REL-101", "pass", "delivery-outcome") in findings(spine, "s-later")


def test_a_second_acknowledgement_and_an_unknown_one_are_findings(spine, supplier):
    sent = message("s-twice", supplier.url)
    delivery_id = delivery.enqueue(spine, sent)
    finished(spine, "s-twice", delivery_id)

    assert delivery.acknowledged(spine, "s-twice", ebxml.parse("text/xml", ack(sent.message_id).encode()).header)
    assert not delivery.acknowledged(spine, "s-twice",
                                     ebxml.parse("text/xml", ack("not-a-message-we-sent").encode()).header)

    assert delivery.get(spine, "s-twice", delivery_id)["acks"] == 2
    fails = [f for f in findings(spine, "s-twice") if f[:2] == ("SPINE-REL-102", "fail")]
    assert len(fails) == 1  # the second acknowledgement; the unknown one names no delivery of ours to record on


def test_a_nack_posted_later_fails_the_delivery(spine, supplier):
    supplier.plan = ["accept"]
    sent = message("s-nack-later", supplier.url, interval=60)
    delivery_id = delivery.enqueue(spine, sent)
    wait_for(lambda: delivery.get(spine, "s-nack-later", delivery_id)["attempts"], what="the first attempt")

    assert delivery.acknowledged(spine, "s-nack-later", ebxml.parse("text/xml", nack(sent.message_id).encode()).header)

    assert delivery.get(spine, "s-nack-later", delivery_id)["status"] == "failed"
    assert ("SPINE-REL-104", "fail", "delivery-outcome") in findings(spine, "s-nack-later")


def test_express_messages_are_sent_once(spine, supplier):
    supplier.plan = ["accept", "error"]
    accepted = delivery.enqueue(spine, message("s-express", supplier.url, reliable=False))
    assert finished(spine, "s-express", accepted)["status"] == "delivered"
    refused = delivery.enqueue(spine, message("s-express", supplier.url, reliable=False))
    assert finished(spine, "s-express", refused)["status"] == "failed"

    control_client(spine).post("/_sandbox/spine/flush?session=s-express", json={"wait": 1})

    assert supplier.count() == 2
    assert ("SPINE-REL-106", "pass", "deliver") in findings(spine, "s-express")
    assert ("SPINE-REL-106", "fail", "deliver") in findings(spine, "s-express")


# --- durability and exactly-once ------------------------------------------------------------------------------
def test_queued_deliveries_survive_a_restart(settings, supplier):
    first = build(settings)  # no worker: this process "dies" before sending
    delivery_id = delivery.enqueue(first, message("s-restart", supplier.url))
    first.store.close()
    assert supplier.count() == 0

    second = build(settings)
    try:
        delivery.start(second)
        assert finished(second, "s-restart", delivery_id)["status"] == "delivered"
        assert supplier.count() == 1
    finally:
        second.store.close()


def test_a_killed_workers_delivery_is_sent_after_its_lease(spine, supplier):
    delivery.stop(spine)
    other = build(spine.settings)
    delivery_id = delivery.enqueue(spine, message("s-lease", supplier.url))  # nobody's worker is running
    claimed = outbox.claim(spine.store, "s-lease", delivery_id, time.time(), 0.6, "a-worker-that-died")
    assert claimed is not None and claimed[0] == "send"
    lease_until = claimed[1]["lease_until"]
    try:
        delivery.start(other)
        assert finished(other, "s-lease", delivery_id)["status"] == "delivered"
        assert supplier.count() == 1
        assert supplier.received[0].at >= lease_until  # not while the dead worker's lease lasted
    finally:
        other.store.close()


def test_two_workers_with_their_own_stores_send_each_message_exactly_once(settings, supplier):
    first, second = build(settings), build(settings)
    try:
        ids = [delivery.enqueue(first, message("s-once", supplier.url)) for _ in range(20)]
        delivery.start(second)
        delivery.start(first)  # the two race for every message
        for delivery_id in ids:
            finished(second, "s-once", delivery_id)
        time.sleep(0.2)
        sent = [g.message_id for g in supplier.received]
        assert len(sent) == 20 and len(set(sent)) == 20
    finally:
        first.store.close()
        second.store.close()


WORKER = textwrap.dedent("""
    import sys, time
    from sandbox.runtime import Sandbox
    from sandbox.settings import Settings
    from sandbox.services.spine import delivery
    sandbox = Sandbox.build(Settings.load(environ={}, data_dir=sys.argv[1], population=2000))
    delivery.configure(sandbox, poll_s=0.05, response_timeout_s=2, connect_timeout_s=1, lease_margin_s=1)
    delivery.start(sandbox)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(r["status"] in delivery.FINISHED for r in delivery.deliveries(sandbox, "s-procs")):
            break
        time.sleep(0.05)
    sandbox.store.close()
""")


def test_two_worker_processes_send_each_message_exactly_once(settings, supplier):
    sandbox = build(settings)
    ids = [delivery.enqueue(sandbox, message("s-procs", supplier.url)) for _ in range(20)]
    sandbox.store.close()

    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(settings.data_dir)], cwd=ROOT) for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=60) == 0

    sent = [g.message_id for g in supplier.received]
    assert len(sent) == 20 and len(set(sent)) == 20
    check = build(settings)
    try:
        assert {delivery.get(check, "s-procs", i)["status"] for i in ids} == {"delivered"}
    finally:
        check.store.close()


# --- duplicate elimination (what suppliers send) --------------------------------------------------------------
def test_a_duplicate_reliable_message_gets_the_first_answer(spine):
    from sandbox.web import current
    from sandbox.web.pipeline import ExchangeContext

    first = reliability.StoredAnswer(202, "text/xml", b"<first-answer/>", (("SOAPAction", "x"),), "EX1")
    assert reliability.duplicate(spine, "s-dup", SUPPLIER, "M-1", 300) is None
    reliability.remember(spine, "s-dup", SUPPLIER, "M-1", 300, first, body=b"message")
    reliability.remember(spine, "s-dup", SUPPLIER, "M-1", 300,
                         reliability.StoredAnswer(500, "text/plain", b"later answer"), body=b"message")

    context = ExchangeContext("EX2", time.time(), time.perf_counter(), None, session="s-dup")
    current.set_exchange(context)
    try:
        again = reliability.duplicate(spine, "s-dup", SUPPLIER, "M-1", 300, body=b"message")
        changed = reliability.duplicate(spine, "s-dup", SUPPLIER, "M-1", 300, body=b"other content")
    finally:
        current.set_exchange(None)

    assert (again.status, again.content_type, again.body, again.exchange_id) == (202, "text/xml", b"<first-answer/>",
                                                                                  "EX1")
    assert changed.body == b"<first-answer/>"
    assert [(f.requirement, str(f.outcome)) for f in context.findings] == [("SPINE-REL-105", "pass"),
                                                                          ("SPINE-REL-105", "warning")]
    assert reliability.duplicate(spine, "s-dup", "another-party", "M-1", 300) is None  # keyed by the From party
    assert reliability.duplicate(spine, "other-session", SUPPLIER, "M-1", 300) is None


def test_a_message_past_the_persist_duration_is_new_again(spine):
    reliability.remember(spine, "s-persist", SUPPLIER, "M-2", 0.1, reliability.StoredAnswer(200, "text/xml", b"a"))
    assert reliability.duplicate(spine, "s-persist", SUPPLIER, "M-2", 0.1) is not None
    time.sleep(0.15)
    assert reliability.duplicate(spine, "s-persist", SUPPLIER, "M-2", 0.1) is None
    assert reliability.forget_expired(spine, "s-persist") == 1


# --- the control API ------------------------------------------------------------------------------------------
def test_the_control_api_lists_shows_flushes_and_retries(spine, supplier):
    client = control_client(spine)
    supplier.plan = ["accept"]
    sent = message("s-control", supplier.url, retries=1, interval=3600)  # an hour between retries
    delivery_id = delivery.enqueue(spine, sent)
    wait_for(lambda: delivery.get(spine, "s-control", delivery_id)["attempts"], what="the first attempt")

    listed = client.get("/_sandbox/spine/deliveries?session=s-control").get_json()
    [row] = listed["deliveries"]
    assert (row["id"], row["status"], row["to_party"], row["endpoint"], row["interaction"]) == (
        delivery_id, "in-flight", SUPPLIER, supplier.url, INTERACTION)
    assert row["attempts"][0]["http_status"] == 202 and row["attempts"][0]["at"]

    shown = client.get(f"/_sandbox/spine/deliveries/{delivery_id}",
                       headers={"X-Sandbox-Session": "s-control"}).get_json()
    assert shown["message"]["body"] == sent.body.decode() and shown["message"]["soap_action"] == f"{SERVICE}/{INTERACTION}"

    flushed = client.post("/_sandbox/spine/flush?session=s-control", json={"wait": 5}).get_json()
    assert flushed["settled"] is True and supplier.count() == 2  # the retry went now, not in an hour
    assert client.post("/_sandbox/spine/clock?session=s-control", json={"advance": "1h", "wait": 5}).status_code == 200
    assert delivery.get(spine, "s-control", delivery_id)["status"] == "given-up"

    supplier.plan = ["ack"]
    retried = client.post(f"/_sandbox/spine/deliveries/{delivery_id}/retry?session=s-control")
    assert retried.status_code == 202
    assert finished(spine, "s-control", delivery_id)["status"] == "delivered"
    assert supplier.count() == 3

    assert client.get("/_sandbox/spine/deliveries/nope?session=s-control").status_code == 404
    assert client.post("/_sandbox/spine/clock?session=s-control", json={"advance": "soon"}).status_code == 400


def test_durations_read_as_the_cpa_writes_them():
    assert delivery.duration_seconds("PT1M", 0) == 60
    assert delivery.duration_seconds("PT5M", 0) == 300
    assert delivery.duration_seconds("PT0.5S", 0) == 0.5
    assert delivery.duration_seconds("P1DT1H", 0) == 90000
    assert delivery.duration_seconds("nonsense", 7) == 7


# --- https: the sandbox's own client certificate, the supplier's CA -------------------------------------------
def test_https_endpoints_get_the_sandboxs_client_certificate(spine, supplier):
    import ssl

    from sandbox.web import tls

    folder = spine.settings.tls_path
    server_cert = tls.server_pair(folder)  # the supplier's server certificate, from the sandbox CA (its CA file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(server_cert.cert), str(server_cert.key))
    context.load_verify_locations(str(tls.authority(folder).cert))
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: the sandbox must present a certificate the CA signed
    supplier.server.socket = context.wrap_socket(supplier.server.socket, server_side=True)
    endpoint = supplier.url.replace("http://", "https://")

    delivery_id = delivery.enqueue(spine, message("s-tls", endpoint))

    record = finished(spine, "s-tls", delivery_id)
    assert record["status"] == "delivered", record["attempts"]
    assert supplier.count() == 1


def test_the_session_report_shows_what_the_sandbox_sent(spine, supplier):
    supplier.plan = ["error"]
    delivery_id = delivery.enqueue(spine, message("s-report", supplier.url, retries=0, interval=0.1))
    assert finished(spine, "s-report", delivery_id)["status"] == "given-up"
    client = control_client(spine)

    report = client.get("/_sandbox/sessions/s-report/report?plan=spine-async-reliable")
    html = client.get("/_sandbox/sessions/s-report/report?plan=spine-async-reliable&format=html")

    assert report.status_code == 200 and html.status_code == 200, report.data[:400]
    [judged] = [r for r in report.get_json()["requirements"] if r["id"] == "SPINE-REL-101"]
    assert judged["verdict"] == "fail" and "SPINE-REL-101" in html.get_data(as_text=True)
    sent = client.get("/_sandbox/exchanges?session=s-report&service=spine&operation=deliver").get_json()
    assert sent["count"] == 1 and sent["exchanges"][0]["status"] == 500
