"""The official MESH client (`mesh-client` from PyPI) against a live sandbox: the whole cycle, chunking,
compression, refused tokens, mutual TLS, and state that survives a restart."""

from __future__ import annotations

import time
import warnings

import pytest
import requests

from tests.conftest import LiveServer, free_port

mesh_client = pytest.importorskip("mesh_client")

KEY = b"TestKey"


def client(url: str, mailbox: str, **kwargs):
    kwargs.setdefault("shared_key", KEY)
    kwargs.setdefault("max_retries", 0)
    return mesh_client.MeshClient(url, mailbox, "password", **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("mesh") / "data", free_port()).wait()
    yield live
    live.stop()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def test_full_cycle_with_the_official_client(server):
    with client(server.url, "X26ABC1") as alice, client(server.url, "X26ABC2") as bob:
        assert alice.handshake() == b"hello"
        message_id = alice.send_message("X26ABC2", b"Hello from Alice", workflow_id="TEST_WORKFLOW",
                                        local_id="cycle-1", filename="hello.txt", subject="Greeting")
        assert message_id in bob.list_messages()
        message = bob.retrieve_message(message_id)
        assert message.read() == b"Hello from Alice"
        assert (message.sender, message.workflow_id, message.filename, message.local_id, message.message_type) == \
            ("X26ABC1", "TEST_WORKFLOW", "hello.txt", "cycle-1", "DATA")
        message.acknowledge()
        assert message_id not in bob.list_messages()
        tracked = alice.track_message(message_id)
        assert tracked["status"] == "acknowledged" and tracked["local_id"] == "cycle-1"
        assert alice.lookup_endpoint("X26", "TEST_WORKFLOW")["results"][0]["mailbox_id"] == "X26ABC2"


def test_a_message_larger_than_one_chunk(server):
    data = bytes(range(256)) * 4096  # 1 MiB
    with client(server.url, "X26ABC1", max_chunk_size=300_000) as alice, client(server.url, "X26ABC2") as bob:
        message_id = alice.send_message("X26ABC2", data, workflow_id="BULK")
        assert alice.track_message(message_id)["status"] == "accepted"
        with bob.retrieve_message(message_id) as message:  # acknowledges on a clean exit
            assert message.read() == data
        assert message_id not in bob.list_messages()


def test_compression(server):
    data = b"compressible line of text\n" * 20_000
    with client(server.url, "X26ABC1", transparent_compress=True, max_chunk_size=200_000) as alice, \
            client(server.url, "X26ABC2") as bob:
        message_id = alice.send_message("X26ABC2", data, workflow_id="ZIPPED")
        tracked = requests.get(f"{server.url}/_sandbox/mesh/messages").json()["messages"]
        stored = next(m for m in tracked if m["message_id"] == message_id)
        assert stored["bytes"] < len(data) // 10  # held compressed, as sent
        message = bob.retrieve_message(message_id)
        assert message.read() == data
        message.acknowledge()


def test_a_replayed_token_is_refused(server):
    generator = mesh_client.AuthTokenGenerator(KEY, "X26ABC1", "password")
    token = generator()
    url = f"{server.url}/messageexchange/X26ABC1/inbox"
    assert requests.get(url, headers={"Authorization": token}).status_code == 200
    replay = requests.get(url, headers={"Authorization": token})
    assert replay.status_code == 403
    assert "Duplicated Authentication Token" in replay.json()["errorDescription"]


def test_a_wrong_shared_key_is_refused(server):
    with client(server.url, "X26ABC1", shared_key=b"NotTheKey") as wrong, pytest.raises(requests.HTTPError) as error:
        wrong.handshake()
    assert error.value.response.status_code == 403


def test_the_client_backs_off_after_503(server):
    with client(server.url, "X26ABC2", max_retries=2) as bob:
        bob._session.headers["X-Sandbox-Scenario"] = "mesh-unavailable"
        started = time.monotonic()
        with pytest.raises(requests.exceptions.RetryError):
            bob.list_messages()
        assert time.monotonic() - started >= 2  # two retries, each after Retry-After: 1
    journal = requests.get(f"{server.url}/_sandbox/exchanges?requirement=MESH-ERR-001").json()["exchanges"]
    assert journal and all(e["findings"]["fail"] == 0 for e in journal if e["status"] == 503)


def test_state_survives_a_restart(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    first = LiveServer(data_dir, port).wait()
    try:
        with client(first.url, "X26ABC1") as alice:
            message_id = alice.send_message("X26ABC2", b"kept", workflow_id="DURABLE")
    finally:
        first.stop()
    second = LiveServer(data_dir, port).wait()
    try:
        with client(second.url, "X26ABC2") as bob:
            assert bob.retrieve_message(message_id).read() == b"kept"
    finally:
        second.stop()


def test_mutual_tls_with_client_certificates(tmp_path):
    tls_dir, port = tmp_path / "tls", free_port()
    live = LiveServer(tmp_path / "data", port, extra_env={"SANDBOX_TLS_DIR": str(tls_dir)}, args=["--tls"])
    url = f"https://localhost:{port}"
    ca = str(tls_dir / "ca.crt")
    own = (str(tls_dir / "clients" / "X26ABC1.crt"), str(tls_dir / "clients" / "X26ABC1.key"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/_sandbox/health", verify=ca, cert=own, timeout=1)
                break
            except (requests.ConnectionError, OSError):
                if time.monotonic() > deadline or live.process.poll() is not None:
                    raise
                time.sleep(0.2)
        with client(url, "X26ABC1", cert=own, verify=ca) as alice:
            assert alice.handshake() == b"hello"
            message_id = alice.send_message("X26ABC2", b"over mutual TLS", workflow_id="SECURE")
        bob_cert = (str(tls_dir / "clients" / "X26ABC2.crt"), str(tls_dir / "clients" / "X26ABC2.key"))
        with client(url, "X26ABC2", cert=bob_cert, verify=ca) as bob:
            assert bob.retrieve_message(message_id).read() == b"over mutual TLS"
        with client(url, "X26ABC1", verify=ca) as no_cert, pytest.raises(requests.exceptions.ConnectionError):
            no_cert.handshake()
    finally:
        live.stop()
