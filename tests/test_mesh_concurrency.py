"""Concurrent writers to one MESH message, against a real server with two worker processes: chunks of several
messages uploaded at once, and one message acknowledged by many requests at once. None is lost to a version conflict
(no 500), and every message ends complete, with the right bytes."""

from __future__ import annotations

import os
import random
import threading

import pytest
import requests

from sandbox.local_server import LocalServer
from sandbox.services.mesh.auth import make_token
from tests.conftest import TEST_POPULATION

MESSAGES = 6
CHUNKS = 8  # per message: chunk 1 to /outbox, then 2..8 all at once
V2 = "application/vnd.mesh.v2+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from sandbox.settings import Settings

    settings = Settings.load(environ={}, data_dir=tmp_path_factory.mktemp("mesh-concurrency") / "data",
                             population=TEST_POPULATION)
    live = LocalServer(settings, workers=2).start()
    yield live
    live.stop()


def call(server, method: str, mailbox: str, path: str, headers: dict | None = None, data: bytes | None = None):
    headers = {"Authorization": make_token(mailbox, "password", "TestKey"), "Accept": V2, **(headers or {})}
    return requests.request(method, f"{server.url}/messageexchange/{mailbox}{path}", headers=headers, data=data,
                            timeout=60)


def run_together(jobs: list, threads: int = 16) -> list:
    """Every job, `threads` at a time, all threads starting at the same moment (a barrier); results in job order."""
    results: list = [None] * len(jobs)
    barrier = threading.Barrier(threads)

    def worker(first: int) -> None:
        barrier.wait(timeout=30)
        for i in range(first, len(jobs), threads):
            try:
                results[i] = jobs[i]()
            except Exception as exc:  # noqa: BLE001 - shown by the assertion on the results
                results[i] = exc

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def test_concurrent_chunks_and_acknowledgements_all_succeed(server):
    payloads: dict[str, list[bytes]] = {}
    for _ in range(MESSAGES):
        chunks = [os.urandom(32 * 1024) for _ in range(CHUNKS)]
        first = call(server, "POST", "X26ABC1", "/outbox", {"Mex-To": "X26ABC2", "Mex-WorkflowID": "CONCURRENT",
                                                            "Mex-Chunk-Range": f"1:{CHUNKS}",
                                                            "Content-Type": "application/octet-stream"}, chunks[0])
        assert first.status_code == 202, first.text
        payloads[first.json()["message_id"]] = chunks

    uploads = [(message_id, number) for message_id in payloads for number in range(2, CHUNKS + 1)]
    random.Random(14).shuffle(uploads)  # chunks of every message interleaved, many out of order

    def upload(message_id: str, number: int):
        return lambda: call(server, "POST", "X26ABC1", f"/outbox/{message_id}/{number}",
                            {"Mex-Chunk-Range": f"{number}:{CHUNKS}", "Content-Type": "application/octet-stream"},
                            payloads[message_id][number - 1])

    answers = run_together([upload(m, n) for m, n in uploads])
    assert [a.status_code for a in answers] == [202] * len(uploads), [a.text for a in answers if a.status_code != 202]

    stored = {m["message_id"]: m for m in requests.get(f"{server.url}/_sandbox/mesh/messages", timeout=10)
              .json()["messages"]}
    for message_id, chunks in payloads.items():
        assert stored[message_id]["status"] == "accepted"
        assert stored[message_id]["chunks"] == f"{CHUNKS}/{CHUNKS}"
        got = b""
        for number in range(1, CHUNKS + 1):
            path = f"/inbox/{message_id}" + (f"/{number}" if number > 1 else "")
            response = call(server, "GET", "X26ABC2", path)
            assert response.status_code == (200 if number == CHUNKS else 206)
            got += response.content
        assert got == b"".join(chunks)

    acks = [lambda m=message_id: call(server, "PUT", "X26ABC2", f"/inbox/{m}/status/acknowledged")
            for message_id in payloads for _ in range(8)]
    answers = run_together(acks)
    assert [a.status_code for a in answers] == [200] * len(acks), [a.text for a in answers if a.status_code != 200]
    for message_id in payloads:
        status = call(server, "GET", "X26ABC1", f"/outbox/tracking?messageID={message_id}").json()["status"]
        assert status == "acknowledged"
    inbox = call(server, "GET", "X26ABC2", "/inbox").json()
    assert not set(inbox["messages"]) & set(payloads)
