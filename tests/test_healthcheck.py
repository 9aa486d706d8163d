"""`python -m sandbox.healthcheck`, the container's HEALTHCHECK, and the LocalServer that tests and benchmarks use."""

from __future__ import annotations

import subprocess
import sys

from sandbox.healthcheck import probe
from sandbox.local_server import LocalServer, free_port
from tests.conftest import ROOT, TEST_POPULATION


def test_probe_reads_the_status_line(live_server):
    assert probe("127.0.0.1", live_server.port) == (True, "HTTP/1.0 200 OK")


def test_probe_says_why_when_nothing_answers():
    port = free_port()
    healthy, seen = probe("127.0.0.1", port, timeout=0.5)
    assert not healthy
    assert seen.startswith(f"no answer from 127.0.0.1:{port}/_sandbox/health:")


def test_command_exit_code_follows_health_and_reads_sandbox_port(live_server):
    def run(port):
        return subprocess.run([sys.executable, "-m", "sandbox.healthcheck"], cwd=ROOT, capture_output=True,
                              text=True, env={"SANDBOX_PORT": str(port), "PATH": "/usr/bin:/bin"})

    up, down = run(live_server.port), run(free_port())
    assert (up.returncode, up.stdout.strip()) == (0, "HTTP/1.0 200 OK")
    assert down.returncode == 1 and "no answer" in down.stdout


def test_local_server_starts_healthy_and_stops_gracefully(settings):
    server = LocalServer(settings.replace(population=TEST_POPULATION)).start()
    assert probe("127.0.0.1", server.settings.port)[0]
    assert server.stop() == 0  # SIGTERM: Granian drains its workers and exits cleanly
    assert "Granian shutdown completed" in server.log_tail()
    assert not probe("127.0.0.1", server.settings.port, timeout=0.5)[0]


def test_health_is_503_while_the_database_does_not_answer(client, app, monkeypatch):
    """A load balancer takes a replica whose database is gone out of rotation: health reads the database once."""
    assert client.get("/_sandbox/health").get_json()["database"] == "ok"

    def gone(*args):
        raise OSError("connection to server at db.internal failed: password=hunter2")

    monkeypatch.setattr(app.extensions["sandbox"].store.state, "get", gone)
    answer = client.get("/_sandbox/health")
    assert answer.status_code == 503
    assert answer.get_json()["status"] == "unavailable"
    assert answer.get_json()["database"] == "not answering (OSError); see the sandbox's log"
    assert "hunter2" not in answer.get_data(as_text=True)
