"""A full disk under the real server: answers keep coming (503 with Retry-After, in each service's own shape), no
worker dies, nothing is answered with an exchange id the journal does not have, and once space returns the server
recovers by itself. The data dir is a small tmpfs mounted for the test (we run as root; skipped where mount is not
permitted)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import requests

from sandbox.local_server import LocalServer
from sandbox.services.mesh.auth import make_token
from sandbox.settings import Settings
from tests.conftest import PDS_BASE, TEST_POPULATION, pds_headers
from tests.test_crash_restart import workers_of

MESH = "/messageexchange"
MESH_V2 = "application/vnd.mesh.v2+json"


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as error:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test: {error}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file until the disk has no room left."""
    filler = folder / "filler"
    block = b"\0" * (64 * 1024)
    with open(filler, "wb", buffering=0) as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(block)
        with contextlib.suppress(OSError):  # the last few pages
            while True:
                out.write(b"\0" * 512)
    with pytest.raises(OSError) as full:
        (folder / "probe").write_bytes(b"\0" * 8192)
    assert full.value.errno == errno.ENOSPC
    return filler


def pds_get(url: str, number: str = "9000000009") -> requests.Response:
    return requests.get(f"{url}{PDS_BASE}/Patient/{number}", headers=pds_headers(), timeout=20)


def mesh_send(url: str, size: int) -> requests.Response:
    headers = {"Authorization": make_token("X26ABC1", "password", "TestKey"), "Accept": MESH_V2,
               "Mex-To": "X26ABC2", "Mex-WorkflowID": "TEST_WORKFLOW", "Content-Type": "application/octet-stream",
               "Mex-LocalID": uuid.uuid4().hex}
    return requests.post(f"{url}{MESH}/X26ABC1/outbox", headers=headers, data=os.urandom(size), timeout=20)


def is_journaled(url: str, exchange_id: str) -> bool:
    return requests.get(f"{url}/_sandbox/exchanges/{exchange_id}", timeout=20).status_code == 200


def test_a_full_disk_is_answered_503_in_the_services_shape_and_recovered_from(small_disk, tmp_path):
    settings = Settings.load(environ={}, data_dir=small_disk, population=TEST_POPULATION)
    server = LocalServer(settings, workers=2)
    server.log_path = tmp_path / "server.log"  # the log stays off the full disk
    server.start(timeout=60)
    try:
        workers = workers_of(server.process.pid)
        assert pds_get(server.url).status_code == 200 and mesh_send(server.url, 1000).status_code == 202

        filler = fill(small_disk)
        answers = []
        for n in range(15):
            answers.append(("pds", pds_get(server.url)))
            answers.append(("mesh", mesh_send(server.url, 20_000 + n)))
        statuses = [response.status_code for _, response in answers]
        assert set(statuses) <= {200, 202, 503}, statuses  # never a 500, and never no answer at all
        refused = [(service, r) for service, r in answers if r.status_code == 503]
        assert refused, f"the full disk refused nothing: {statuses}"
        for service, response in refused:
            assert response.headers["Retry-After"].isdigit()
            body = response.json()
            if service == "pds":
                assert body["resourceType"] == "OperationOutcome"
                assert "disk is full" in body["issue"][0]["diagnostics"]
            else:
                assert body["detail"][0]["code"] and "disk is full" in body["detail"][0]["msg"]
        # An answer names an exchange only when the journal has it; one that could not be journaled says so instead.
        named = [r.headers["X-Sandbox-Exchange"] for _, r in answers if "X-Sandbox-Exchange" in r.headers]
        unnamed = [r for _, r in answers if "X-Sandbox-Exchange" not in r.headers]
        for response in unnamed:
            assert response.status_code == 503 and response.headers["X-Sandbox-Journal"].startswith("not journaled")
            assert response.json().get("internal_id") is None  # MESH quotes the exchange id there, when there is one
        # No worker died (a write through a memory map onto a full disk used to kill them with SIGBUS).
        assert server.process.poll() is None and workers_of(server.process.pid) == workers
        assert requests.get(server.url + "/_sandbox/health", timeout=10).ok

        filler.unlink()
        time.sleep(1.5)  # the journal tries a new spool file a second after a failed one
        after = [pds_get(server.url), mesh_send(server.url, 20_000), pds_get(server.url, "9000000017")]
        assert [r.status_code for r in after] == [200, 202, 200], [r.text[:300] for r in after]
        named += [r.headers["X-Sandbox-Exchange"] for r in after]
        missing = [exchange_id for exchange_id in named if not is_journaled(server.url, exchange_id)]
        assert not missing, f"answered with exchange ids the journal does not have: {missing}"
        assert workers_of(server.process.pid) == workers
    finally:
        server.stop(timeout=5)


def test_a_server_killed_on_a_full_disk_starts_again_and_recovers_when_space_returns(small_disk, tmp_path):
    settings = Settings.load(environ={}, data_dir=small_disk, population=TEST_POPULATION)
    server = LocalServer(settings, workers=2)
    server.log_path = tmp_path / "server.log"
    server.start(timeout=60)
    answered = [mesh_send(server.url, 1000).headers["X-Sandbox-Exchange"]]
    filler = fill(small_disk)
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    server.start(timeout=60)  # on the same, still full, data dir
    try:
        full = [pds_get(server.url), mesh_send(server.url, 20_000)]
        assert {r.status_code for r in full} <= {200, 202, 503}
        answered += [r.headers["X-Sandbox-Exchange"] for r in full if "X-Sandbox-Exchange" in r.headers]
        filler.unlink()
        time.sleep(1.5)
        after = [pds_get(server.url), mesh_send(server.url, 1000)]
        assert [r.status_code for r in after] == [200, 202]
        answered += [r.headers["X-Sandbox-Exchange"] for r in after]
        assert [exchange_id for exchange_id in answered if not is_journaled(server.url, exchange_id)] == []
    finally:
        server.stop(timeout=5)


def test_session_state_on_a_full_disk_fails_with_enospc_and_the_process_lives(small_disk):
    """Session state is written through LMDB's memory map where disk space can be reserved ahead: a change the disk
    has no room for fails like a write() (ENOSPC), where an unreserved page would have killed the process (SIGBUS).
    In a child process, so that a SIGBUS shows as its exit rather than the end of the test run."""
    script = textwrap.dedent("""
        import os, sys
        from sandbox.journal.state import LmdbState
        state = LmdbState(sys.argv[1])
        written = 0
        try:
            while True:
                state.put_blob("s", f"blob-{written}", os.urandom(256 * 1024))
                written += 1
        except OSError as error:
            print(written, error.errno, len(state.get_blob("s", "blob-0") or b""))
        state.close()
    """)
    done = subprocess.run([sys.executable, "-c", script, str(small_disk / "state.lmdb")], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]  # -7 would be SIGBUS
    written, code, first = map(int, done.stdout.split())
    assert written > 4 and code == errno.ENOSPC and first == 256 * 1024
