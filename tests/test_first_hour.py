"""The first hour with `spine-sandbox serve` and the CLI: start-up failures are one line and exit 1, a taken port
is refused, "ready" means listening, the CLI reads the server's data dir, `exchanges show` shows the messages, and
long URLs and headers reach the app (docs/running.md)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from sandbox.app import create_app
from sandbox.cli import main
from sandbox.healthcheck import probe
from sandbox.journal.redaction import redacted
from sandbox.local_server import LocalServer, free_port
from sandbox.settings import Settings
from sandbox.web.limits import MAX_HEADER_BYTES, MAX_URL_BYTES
from tests.conftest import ROOT, TEST_POPULATION, pds_headers
from tests.test_crash_restart import workers_of

PATIENT = "/personal-demographics/FHIR/R4/Patient/9000000009"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    return {**env, "SANDBOX_POPULATION": str(TEST_POPULATION), "SANDBOX_WORKERS": "1", **extra}


def serve_fails(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run `serve` expecting it to refuse: exit 1, one "spine-sandbox: ..." line, no traceback, never "ready"."""
    done = subprocess.run([sys.executable, "-m", "sandbox.cli", "serve", *args], cwd=ROOT, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and " ready in " not in output and "listening on" not in output, output
    # At most the progress line before it ("Spine Sandbox 0.1.0: checking configuration…"), then the one sentence.
    lines = [line for line in output.splitlines() if not line.startswith("Spine Sandbox ")]
    assert len(lines) == 1 and lines[0].startswith("spine-sandbox: "), output
    return lines[0]


# --- 1. a port already taken ---------------------------------------------------------------------------------
def test_a_port_another_server_holds_with_so_reuseport_is_refused(tmp_path):
    """Granian's own workers bind with SO_REUSEPORT; another such listener must not make the sandbox share."""
    with socket.socket() as other:
        if hasattr(socket, "SO_REUSEPORT"):
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        line = serve_fails("--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert line == (f"spine-sandbox: port {port} on 127.0.0.1 is already in use (another sandbox?); choose another "
                    f"with --port or SANDBOX_PORT")
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_a_second_sandbox_on_the_same_port_is_refused_and_the_first_keeps_every_request(tmp_path):
    settings = Settings.load(environ={}, data_dir=tmp_path / "first", population=TEST_POPULATION)
    with LocalServer(settings) as first:
        line = serve_fails("--port", str(first.settings.port), "--data-dir", str(tmp_path / "second"))
        assert "is already in use" in line
        answered = [requests.get(first.url + PATIENT, headers=pds_headers(), timeout=10) for _ in range(6)]
        assert all(r.status_code == 200 for r in answered)
        # Nothing else listens there: a new SO_REUSEPORT listener cannot join the sandbox's socket either.
        with socket.socket() as intruder:
            if hasattr(socket, "SO_REUSEPORT"):
                intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            with pytest.raises(OSError):
                intruder.bind(("127.0.0.1", first.settings.port))
        journal = requests.get(first.url + "/_sandbox/exchanges", params={"limit": 50}, timeout=10).json()
    ids = {e["id"] for e in journal["exchanges"]}
    assert {r.headers["X-Sandbox-Exchange"] for r in answered} <= ids


@pytest.mark.skipif(sys.platform != "linux", reason="one socket per worker is Linux's SO_REUSEPORT balancing")
def test_two_workers_share_the_connections_and_a_later_so_reuseport_listener_gets_none(tmp_path):
    settings = Settings.load(environ={}, data_dir=tmp_path / "data", population=TEST_POPULATION)
    with LocalServer(settings, workers=2) as server:
        port = server.settings.port
        line = serve_fails("--port", str(port), "--data-dir", str(tmp_path / "second"))
        assert "is already in use" in line  # a second sandbox is refused, whatever the first binds with
        with socket.socket() as intruder:  # another program of this user may join the port's SO_REUSEPORT group…
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            intruder.bind(("127.0.0.1", port))
            intruder.listen()
            intruder.setblocking(False)
            clients = [requests.Session() for _ in range(24)]  # each its own connection, kept open
            try:
                answered = [c.get(server.url + PATIENT, headers=pds_headers(), timeout=10) for c in clients]
                accepting = _processes_holding_connections(server.process.pid, port)
            finally:
                for client in clients:
                    client.close()
            with pytest.raises(BlockingIOError):
                intruder.accept()  # …but no connection is ever handed to it
    assert all(r.status_code == 200 for r in answered)
    assert len(accepting) == 2  # both workers took some (at random: each does with odds 1 - 2**-23)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="pinning workers to CPUs needs Linux's sched_setaffinity and two CPUs")
@pytest.mark.parametrize("pin", [True, False], ids=["pinned", "SANDBOX_PIN_WORKERS=0"])
def test_with_a_worker_for_each_cpu_each_worker_and_its_respawn_run_on_a_cpu_of_their_own(tmp_path, pin):
    """Pinned, each worker's threads share one CPU under the batch policy; unpinned, the scheduler places them."""
    two = set(sorted(os.sched_getaffinity(0))[:2])
    settings = Settings.load(environ={}, data_dir=tmp_path / "data", population=TEST_POPULATION, pin_workers=pin)
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, two)  # the server may use two CPUs, as on the CI machine: it inherits this
    try:
        server = LocalServer(settings, workers=2).start()
    finally:
        os.sched_setaffinity(0, mine)
    try:
        workers = workers_of(server.process.pid)
        placed = {worker: _cpus_of_threads(worker) for worker in workers}
        policies = {worker: _policies_of_threads(worker) for worker in workers}
        answered = [requests.get(server.url + PATIENT, headers=pds_headers(), timeout=10) for _ in range(4)]
        banner = server.log_tail(40)
        if pin:
            victim = next(iter(workers))
            os.kill(victim, signal.SIGKILL)  # Granian forks a worker in its place, which runs where it ran
            deadline = time.monotonic() + 30
            while not (respawned := workers_of(server.process.pid) - workers) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert respawned, "the killed worker was not replaced"
            replacement = respawned.pop()
            assert _cpus_of_threads(replacement) == placed[victim]
            assert _policies_of_threads(replacement) == {os.SCHED_BATCH}
        assert _cpus_of_threads(server.process.pid) == [two]  # the parent, which only watches, stays free
        assert _policies_of_threads(server.process.pid) == {os.SCHED_OTHER}
    finally:
        server.stop()
    assert all(r.status_code == 200 for r in answered)
    assert len(workers) == 2
    if pin:  # every thread of a worker (its requests', Granian's, the journal's) on one CPU, a different one each
        assert all(len(sets) == 1 and len(sets[0]) == 1 for sets in placed.values())
        assert sorted(min(sets[0]) for sets in placed.values()) == sorted(two)
        assert list(policies.values()) == [{os.SCHED_BATCH}, {os.SCHED_BATCH}]  # no preempting each other
        assert f"2 x 2 threads, each on a CPU of its own ({', '.join(map(str, sorted(two)))})" in banner
    else:
        assert list(placed.values()) == [[two], [two]]
        assert list(policies.values()) == [{os.SCHED_OTHER}, {os.SCHED_OTHER}]
        assert "2 x 2 threads\n" in banner + "\n" and "a CPU of its own" not in banner


def _cpus_of_threads(pid: int) -> list[set[int]]:
    """The distinct CPU sets the threads of process `pid` may run on."""
    found: list[set[int]] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            cpus = os.sched_getaffinity(int(task.name))
            if cpus not in found:
                found.append(cpus)
    return found


def _policies_of_threads(pid: int) -> set[int]:
    """The scheduling policies the threads of process `pid` run under."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            found.add(os.sched_getscheduler(int(task.name)))
    return found


def _processes_holding_connections(parent: int, port: int) -> set[int]:
    """The child processes of `parent` holding an established TCP connection on local `port` (Linux /proc)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # 01: ESTABLISHED
                    established.add(f"socket:[{fields[9]}]")
    holding = set()
    for child in workers_of(parent):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in established for fd in Path(f"/proc/{child}/fd").iterdir()):
                holding.add(child)
    return holding


# --- 2. every start-up failure is one line ---------------------------------------------------------------------
@pytest.mark.parametrize("args, env, expected", [
    (["--port", "99999"], {}, "port 99999 is out of range: it must be 1..65535; set it with --port or SANDBOX_PORT"),
    (["--host", "10.255.255.1"], {}, "10.255.255.1 is not an address of this machine"),
    (["--population", "5000000"], {}, "population 5000000 is out of range: it must be 1..3500000"),
    ([], {"SANDBOX_PORT": "nine"}, "SANDBOX_PORT='nine' is not a valid whole number"),
    ([], {"SANDBOX_TLS": "maybe"}, "SANDBOX_TLS='maybe' is not a valid yes/no value"),
    ([], {"SANDBOX_AUTH": "loose"}, "SANDBOX_AUTH='loose' is not one of strict, lenient, off"),
], ids=["port-out-of-range", "foreign-host", "population-too-large", "bad-port-variable", "bad-tls-variable",
        "bad-auth-variable"])
def test_start_up_failures_are_one_actionable_line(tmp_path, args, env, expected):
    port = [] if "--port" in args or "SANDBOX_PORT" in env else ["--port", str(free_port())]
    line = serve_fails(*args, *port, "--data-dir", str(tmp_path / "data"), env=_env(**env))
    assert expected in line


def test_a_data_dir_or_tls_dir_that_cannot_be_made_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = serve_fails("--port", str(free_port()), "--data-dir", str(blocker / "data"))
    assert line == (f"spine-sandbox: cannot use the data dir {blocker / 'data'}: Not a directory; choose a writable "
                    f"folder with --data-dir or SANDBOX_DATA_DIR")
    line = serve_fails("--port", str(free_port()), "--data-dir", str(tmp_path / "data"), "--tls", "--tls-dir",
                       str(blocker / "tls"))
    assert line.startswith(f"spine-sandbox: cannot write the TLS certificates in {blocker / 'tls'}: ")
    assert line.endswith("choose a writable folder with --tls-dir or SANDBOX_TLS_DIR")


def test_ready_is_printed_once_listening_and_names_the_default_data_dir_the_cli_then_reads(tmp_path):
    """No --data-dir and no SANDBOX_DATA_DIR: serve and the CLI both use $XDG_DATA_HOME/spine-sandbox."""
    port = free_port()
    env = _env(XDG_DATA_HOME=str(tmp_path / "xdg"))
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "sandbox.cli", "serve", "--port", str(port)], cwd=ROOT,
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "ready in" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)
        healthy, seen = probe("127.0.0.1", port, timeout=2)  # the moment "ready" shows, it answers
        assert healthy, seen
        banner = log.read_text()
        assert f"listening on http://127.0.0.1:{port}" in banner
        data_dir = tmp_path / "xdg" / "spine-sandbox"
        assert f"Data dir (--data-dir, SANDBOX_DATA_DIR)      {data_dir}" in banner
        answered = requests.get(f"http://127.0.0.1:{port}{PATIENT}", headers=pds_headers(), timeout=10)
        exchange = answered.headers["X-Sandbox-Exchange"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    cli_env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "SANDBOX_DATA_DIR": None}
    listed = CliRunner().invoke(main, ["exchanges", "list"], env=cli_env)
    assert listed.exit_code == 0 and exchange in listed.output, listed.output


# --- 3. the CLI and the data dir ---------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["exchanges", "list"], ["exchanges", "show", "01ABC"], ["sessions", "list"],
                                     ["sessions", "show", "sess-1"], ["report", "sess-1"],
                                     ["attest", "sess-1", "PDS-GET-003", "--verdict", "pass", "--by", "A", "--note",
                                      "n"]])
def test_read_commands_refuse_a_data_dir_without_sandbox_data(tmp_path, command):
    typo = tmp_path / "dtaa"
    result = CliRunner().invoke(main, [*command, "--data-dir", str(typo)],
                                env={"XDG_DATA_HOME": str(tmp_path / "xdg"), "SANDBOX_DATA_DIR": None})
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"spine-sandbox: no sandbox data in {typo} (no journal.sqlite3 there); ")
    assert "`spine-sandbox serve` prints the data dir it uses in its banner" in result.output
    assert len(result.output.splitlines()) == 1 and not typo.exists()  # no new, empty journal


def test_the_hint_points_at_the_default_data_dir_when_it_has_data_and_empty_answers_name_the_journal(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "SANDBOX_DATA_DIR": None}
    default = tmp_path / "xdg" / "spine-sandbox"
    made = CliRunner().invoke(main, ["sessions", "create", "--plan", "pds-application-restricted", "--supplier", "A",
                                     "--system", "B 1"], env=env)
    assert made.exit_code == 0, made.output
    assert f"no journal in {default} yet, so a new one is made there" in made.output
    assert f"data dir {default} (the server must use the same one)" in made.output
    wrong = CliRunner().invoke(main, ["sessions", "list", "--data-dir", str(tmp_path / "other")], env=env)
    assert wrong.exit_code == 1
    assert f"the default data dir {default} has one: leave out --data-dir and SANDBOX_DATA_DIR" in wrong.output
    nothing = CliRunner().invoke(main, ["exchanges", "list"], env=env)
    assert nothing.exit_code == 0
    assert nothing.output == f"No exchanges in the journal at {default / 'journal.sqlite3'}.\n"
    missing = CliRunner().invoke(main, ["exchanges", "show", "01NOPE"], env=env)
    assert missing.exit_code == 1 and f"no exchange '01NOPE' in the journal at {default}" in missing.output
    unknown = CliRunner().invoke(main, ["sessions", "show", "sess-nope"], env=env)
    assert unknown.exit_code == 1 and f"(looked in the journal at {default / 'journal.sqlite3'})" in unknown.output


def test_settings_default_data_dir_is_the_same_for_every_command(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("SANDBOX_DATA_DIR", raising=False)
    assert Settings.load().data_dir == tmp_path / "spine-sandbox"
    monkeypatch.setenv("XDG_DATA_HOME", "")  # set but empty: the XDG default, not the current folder
    assert Settings.load().data_dir == Path.home() / ".local" / "share" / "spine-sandbox"


# --- 4. exchanges show ---------------------------------------------------------------------------------------------
def test_exchanges_show_prints_request_response_and_findings(tmp_path):
    settings = Settings.load(environ={}, data_dir=tmp_path / "data", population=TEST_POPULATION)
    app = create_app(settings)
    try:
        client = app.test_client()
        headers = pds_headers(Authorization="Bearer tokn-abcdefghijklmnopqrstuvwxyz")
        got = client.get(PATIENT + "?_summary=count", headers=headers)
        binary = client.post("/personal-demographics/FHIR/R4/Patient", data=bytes(range(256)) * 4,
                             headers={**pds_headers(), "Content-Type": "application/octet-stream"})
    finally:
        app.extensions["sandbox"].close()
    shown = CliRunner().invoke(main, ["exchanges", "show", got.headers["X-Sandbox-Exchange"], "--data-dir",
                                      str(settings.data_dir)])
    assert shown.exit_code == 0, shown.output
    text = shown.output
    request, response = text.split("--- request")[1].split("--- response")
    response, findings = response.split("--- findings")
    assert f"GET {PATIENT}?_summary=count" in request
    assert f"x-request-id: {headers['X-Request-ID']}".lower() in request.lower()
    assert f"Authorization: Bearer {redacted('tokn-abcdefghijklmnopqrstuvwxyz')}" in request
    assert "abcdefghij" not in text
    assert response.splitlines()[1] == "200 OK"
    assert '"resourceType": "Patient"' in response and "Content-Type: application/fhir+json" in response
    assert "PDS-" in findings
    binary_shown = CliRunner().invoke(main, ["exchanges", "show", binary.headers["X-Sandbox-Exchange"],
                                             "--data-dir", str(settings.data_dir)])
    assert "(binary body: 1024 bytes, sha256 " in binary_shown.output
    as_json = CliRunner().invoke(main, ["exchanges", "show", got.headers["X-Sandbox-Exchange"], "--json",
                                        "--data-dir", str(settings.data_dir)])
    assert as_json.exit_code == 0 and '"query_string": "_summary=count"' in as_json.output


# --- 5. HTTP limits, through the real server ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = Settings.load(environ={}, data_dir=tmp_path_factory.mktemp("limits"), population=TEST_POPULATION)
    with LocalServer(settings) as running:
        yield running


def _raw(server: LocalServer, head: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.settings.port), timeout=10) as conn:
        conn.sendall(head)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def _journaled(server: LocalServer, exchange: str) -> dict:
    found = requests.get(f"{server.url}/_sandbox/exchanges/{exchange}", timeout=10)
    assert found.status_code == 200, found.text
    return found.json()


def test_a_url_within_the_live_limit_is_answered(server):
    answered = requests.get(server.url + PATIENT, params={"x": "a" * (MAX_URL_BYTES - 200)},
                            headers=pds_headers(), timeout=10)
    assert answered.status_code == 200


def test_a_15_kb_url_reaches_the_app_and_gets_the_services_own_414(server):
    answered = requests.get(server.url + PATIENT, params={"x": "a" * 15_000}, headers=pds_headers(), timeout=10)
    assert answered.status_code == 414
    outcome = answered.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "INVALID_VALUE" and issue["code"] == "too-long"
    assert f"accepts at most {MAX_URL_BYTES} bytes" in issue["diagnostics"]
    recorded = _journaled(server, answered.headers["X-Sandbox-Exchange"])
    assert recorded["response"]["status"] == 414 and len(recorded["request"]["query_string"]) == 15_002


def test_a_60_kb_header_reaches_the_app_and_gets_the_services_own_431(server):
    answered = requests.get(server.url + PATIENT, headers=pds_headers(**{"X-Big": "b" * 60_000}), timeout=10)
    assert answered.status_code == 431
    assert f"accepts at most {MAX_HEADER_BYTES} bytes of headers" in answered.json()["issue"][0]["diagnostics"]
    recorded = _journaled(server, answered.headers["X-Sandbox-Exchange"])
    assert recorded["response"]["status"] == 431
    assert any(name.lower() == "x-big" and len(value) == 60_000 for name, value in recorded["request"]["headers"])


def test_other_services_refuse_in_their_own_shape(server):
    answered = requests.post(server.url + "/oauth2/token", data={"grant_type": "client_credentials"},
                             headers={"X-Big": "b" * 30_000}, timeout=10)
    assert answered.status_code == 431 and answered.json()["error"] == "invalid_request"


def test_beyond_what_the_http_parser_takes_the_answer_is_defined(server):
    status, _, body = _raw(server, f"GET {PATIENT}?x={'a' * 70_000} HTTP/1.1\r\nHost: x\r\nConnection: close"
                                   f"\r\n\r\n".encode())
    assert (status, body) == (414, b"")
    status, _, body = _raw(server, f"GET {PATIENT} HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 200_000}\r\n"
                                   f"Connection: close\r\n\r\n".encode())
    assert (status, body) == (431, b"")
    many = "".join(f"X-H{i}: v\r\n" for i in range(101))
    status, _, body = _raw(server, f"GET {PATIENT} HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n".encode())
    assert (status, body) == (431, b"")
    assert requests.get(server.url + "/_sandbox/health", timeout=10).ok  # and the server carries on


def test_every_service_refuses_a_long_head_in_its_own_shape_and_journals_it(tmp_path):
    settings = Settings.load(environ={}, data_dir=tmp_path / "data", population=TEST_POPULATION)
    app = create_app(settings)
    try:
        client = app.test_client()
        big = {"X-Big": "b" * (MAX_HEADER_BYTES + 100)}
        mesh = client.get("/messageexchange/X26ABC1/inbox", headers={**big, "Accept": "application/vnd.mesh.v2+json"})
        assert mesh.status_code == 431 and "accepts at most" in mesh.get_json()["detail"][0]["msg"]
        spine = client.post("/sync-service", data=b"<x/>", headers=big)
        assert spine.status_code == 431 and b"SOAP:Fault" in spine.get_data()
        sds = client.get("/spine-directory/FHIR/R4/Device", query_string={"x": "a" * (MAX_URL_BYTES + 1)})
        assert sds.status_code == 414 and sds.get_json()["resourceType"] == "OperationOutcome"
        store = app.extensions["sandbox"].store
        for answered in (mesh, spine, sds):
            assert store.journal.exchange(answered.headers["X-Sandbox-Exchange"]).response.status == answered.status_code
    finally:
        app.extensions["sandbox"].close()
