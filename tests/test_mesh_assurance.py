"""MESH assurance: the mesh-sending and mesh-receiving plans, sessions bound to MESH mailboxes (so a client that
sends no session header, such as the official mesh-client, lands in the plan's session), and `spine-sandbox run`
with the official mesh-client end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from sandbox.app import create_app
from sandbox.cli import main
from sandbox.journal.store import ExchangeFilter
from sandbox.retention import purge
from sandbox.services.mesh import mailboxes
from sandbox.services.mesh.auth import make_token
from sandbox.settings import Settings
from tests.conftest import ROOT, TEST_POPULATION
from tests.mesh_helpers import Mesh
from tests.plan_helpers import assert_certified

SENDING, RECEIVING = "mesh-sending", "mesh-receiving"


def new_session(client, plan: str, *mailbox_ids: str) -> str:
    made = client.post("/_sandbox/sessions", json={"plan": plan, "supplier": "Acme Health", "system": "Acme MESH 1",
                                                   "mailboxes": list(mailbox_ids)})
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.get_json()["mailboxes"] == list(mailbox_ids)
    return made.get_json()["session"]


def journaled(sandbox, session: str) -> list[tuple[str, int]]:
    rows = sandbox.store.journal.exchanges(ExchangeFilter(session=session), limit=1000)
    return [(r["operation"], r["status"]) for r in reversed(rows)]


def cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def one_line_error(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("spine-sandbox: "), result.output
    return lines[0]


# --- the plans ----------------------------------------------------------------------------------------------------
def test_the_mesh_plans_load_with_mesh_scenarios_and_requirements(sandbox):
    for plan_id in (SENDING, RECEIVING):
        plan = sandbox.plans.get(plan_id)
        assert plan is not None and plan.services == ("mesh",)
        assert all(sandbox.scenarios.get(step.scenario).service == "mesh" and step.note for step in plan.steps)
        assert all(req.startswith("MESH-") for req in plan.all_requirements)
    assert sandbox.plans.get(SENDING).scenario_ids == ("mesh-handshake", "mesh-send-message", "mesh-send-chunk",
                                                       "mesh-track-message", "mesh-throttled-once",
                                                       "mesh-unavailable-once")
    assert sandbox.plans.get(RECEIVING).scenario_ids == ("mesh-handshake", "mesh-list-inbox", "mesh-download-message",
                                                         "mesh-download-chunk", "mesh-acknowledge-message",
                                                         "mesh-undelivered-report")


def test_a_well_behaved_sender_meets_the_sending_plan_with_no_session_header(client, sandbox):
    session = new_session(client, SENDING, "X26ABC1")
    alice = Mesh(client, "X26ABC1")  # no X-Sandbox-Session: the binding routes it
    assert alice.handshake().status_code == 200
    message_id = alice.send_id(workflow="TEST_WORKFLOW", **{"Mex-LocalID": "batch-1"})
    chunked = alice.send_id(workflow="TEST_WORKFLOW", data=b"part one", **{"Mex-Chunk-Range": "1:2"})
    assert alice.chunk(chunked, 2, 2, b"part two").status_code == 202
    assert alice.track(message_id).get_json()["status"] == "accepted"
    for workflow, status, wait in (("SANDBOX_THROTTLED", 429, 2), ("SANDBOX_UNAVAILABLE", 503, 1)):
        refused = alice.send(workflow=workflow)
        assert refused.status_code == status and refused.headers["Retry-After"] == str(wait)
        time.sleep(wait + 0.1)
        assert alice.send(workflow=workflow).status_code == 202  # once per session: the retry goes through
    assert_certified(client, session)
    assert journaled(sandbox, "default") == []


def test_a_well_behaved_receiver_meets_the_receiving_plan(client, sandbox):
    session = new_session(client, RECEIVING, "X26ABC1", "X26ABC2")  # the receiver, and the peer that sends to it
    receiver, peer = Mesh(client, "X26ABC1"), Mesh(client, "X26ABC2")
    whole = peer.send_id(to="X26ABC1", workflow="TEST_WORKFLOW_ACK")
    chunked = peer.send_id(to="X26ABC1", workflow="TEST_WORKFLOW_ACK", data=b"one", **{"Mex-Chunk-Range": "1:2"})
    assert peer.chunk(chunked, 2, 2, b"two").status_code == 202
    assert receiver.handshake().status_code == 200
    assert set(receiver.inbox().get_json()["messages"]) == {whole, chunked}
    assert receiver.download(whole).status_code == 200
    assert receiver.download(chunked).status_code == 206 and receiver.download(chunked, 2).status_code == 200
    assert receiver.ack(whole).status_code == 200 and receiver.ack(chunked).status_code == 200
    client.post(f"/_sandbox/mesh/clock?session={session}", json={"advance": "5m"})
    assert receiver.inbox().get_json()["messages"] == []  # the next poll, five minutes on
    uncollected = receiver.send_id(to="X26ABC2", workflow="NEVER_COLLECTED")
    client.post(f"/_sandbox/mesh/clock?session={session}", json={"advance": "5d"})
    [report] = receiver.inbox().get_json()["messages"]
    downloaded = receiver.download(report)
    assert downloaded.headers["Mex-MessageType"] == "REPORT" and downloaded.headers["Mex-LinkedMsgID"] == uncollected
    assert receiver.ack(report).status_code == 200
    assert_certified(client, session)


# --- binding: where a bound mailbox's traffic lands ---------------------------------------------------------------
def test_only_the_bound_mailboxes_traffic_moves(client, sandbox):
    session = new_session(client, SENDING, "X26ABC1")
    assert Mesh(client, "X26ABC1").handshake().status_code == 200
    assert Mesh(client, "X26ABC3").handshake().status_code == 200  # not bound: the default session, as before
    assert Mesh(client, "X26ABC2", session="mine").handshake().status_code == 200
    assert journaled(sandbox, session) == [("handshake", 200)]
    assert journaled(sandbox, "default") == [("handshake", 200)]
    assert journaled(sandbox, "mine") == [("handshake", 200)]


def test_a_session_header_naming_another_session_is_refused_in_the_bound_session(client, sandbox):
    session = new_session(client, SENDING, "X26ABC1")
    refused = Mesh(client, "X26ABC1", session="mine").handshake()
    assert refused.status_code == 400
    assert f"names another session than {session}, which MESH mailbox X26ABC1 is bound to" in \
        refused.get_json()["detail"][0]["msg"]
    assert journaled(sandbox, session) == [("unrouted", 400)] and journaled(sandbox, "mine") == []
    assert Mesh(client, "X26ABC1", session=session).handshake().status_code == 200  # naming its own session is fine


def test_a_wrong_password_lands_in_the_bound_session_and_is_refused_there(client, sandbox):
    session = new_session(client, SENDING, "X26ABC1")
    wrong = Mesh(client, "X26ABC1").call("GET", "/inbox", token=make_token("X26ABC1", "not-it", "TestKey"))
    assert wrong.status_code == 403 and journaled(sandbox, session) == [("list-inbox", 403)]


def test_a_mailbox_is_bound_to_one_live_session_at_a_time(client, sandbox):
    first = new_session(client, SENDING, "X26ABC1")
    taken = client.post("/_sandbox/sessions", json={"plan": RECEIVING, "supplier": "B", "system": "S",
                                                    "mailboxes": ["X26ABC2", "x26abc1"]})
    assert taken.status_code == 409
    assert taken.get_json()["message"].startswith(f"MESH mailbox X26ABC1 is bound to session {first} (plan "
                                                  f"mesh-sending, Acme Health, Acme MESH 1)")
    assert f"`spine-sandbox sessions release {first}` frees it" in taken.get_json()["message"]
    assert [s["session"] for s in client.get("/_sandbox/sessions").get_json()["sessions"]] == [first]
    assert mailboxes.bound_session(sandbox.store, "X26ABC2") is None  # all or none

    released = client.delete(f"/_sandbox/sessions/{first}/mailboxes").get_json()
    assert released == {"session": first, "released": ["X26ABC1"]}
    assert Mesh(client, "X26ABC1").handshake().status_code == 200
    assert journaled(sandbox, "default") == [("handshake", 200)]  # free: where it went before the binding
    second = new_session(client, RECEIVING, "X26ABC1")
    assert mailboxes.bound_session(sandbox.store, "x26abc1") == second


def test_purging_a_session_frees_its_mailboxes(client, sandbox):
    session = new_session(client, SENDING, "X26ABC1")
    assert purge(sandbox, 0)[0] == [session]
    assert mailboxes.bound_session(sandbox.store, "X26ABC1") is None
    assert new_session(client, SENDING, "X26ABC1")


@pytest.mark.parametrize("body, status, message", [
    ({"plan": SENDING, "mailboxes": ["X26NOPE"]}, 400, "no MESH mailbox 'X26NOPE' in this sandbox (mailboxes: "
                                                       "X26ABC1, X26ABC2, X26ABC3; `spine-sandbox mesh mailboxes`)"),
    ({"plan": "pds-healthcare-worker", "mailboxes": ["X26ABC1"]}, 400, "plan pds-healthcare-worker does not cover "
                                                                        "MESH, so it takes no --mailbox"),
    ({"plan": SENDING, "mailboxes": "X26ABC1"}, 400, "field 'mailboxes' must be"),
    ({"plan": SENDING, "mailboxes": [7]}, 400, "field 'mailboxes' must be a list of MESH mailbox ids"),
])
def test_binding_errors_on_the_control_api_are_clear(client, body, status, message):
    refused = client.post("/_sandbox/sessions", json={"supplier": "A", "system": "S", **body})
    assert refused.status_code == status and message in refused.get_json()["message"]
    assert client.get("/_sandbox/sessions").get_json()["sessions"] == []


def test_a_hosted_sandbox_binds_no_shared_mailbox_and_ignores_a_binding_made_outside_it(tmp_path):
    from sandbox.hosting import keys
    from sandbox.hosting.binding import ANONYMOUS_SESSION

    app = create_app(Settings.load(environ={}, data_dir=tmp_path / "data", population=TEST_POPULATION, hosted=True,
                                   admin_key="sbk_admin-key-for-the-mesh-binding-test-00"))
    try:
        client, sandbox = app.test_client(), app.extensions["sandbox"]
        _, key = keys.create_tenant(sandbox.store, "Alpha")
        refused = client.post("/_sandbox/sessions", headers={"X-Sandbox-Key": key}, json={
            "plan": SENDING, "supplier": "Alpha", "system": "S", "mailboxes": ["X26ABC1"]})
        assert refused.status_code == 400 and refused.get_json()["message"] == mailboxes.HOSTED_REFUSAL
        made = client.post("/_sandbox/sessions", headers={"X-Sandbox-Key": key},
                           json={"plan": SENDING, "supplier": "Alpha", "system": "S"}).get_json()["session"]
        mailboxes.bind(sandbox.store, made, ["X26ABC1"])  # as a local sandbox on the same data dir would have
        assert Mesh(client, "X26ABC1").handshake().status_code == 403  # proves nothing: no tenant's session
        assert journaled(sandbox, made) == [] and journaled(sandbox, ANONYMOUS_SESSION) == [("handshake", 403)]
    finally:
        app.extensions["sandbox"].close()


# --- the command line ---------------------------------------------------------------------------------------------
def test_sessions_create_binds_mailboxes_and_release_frees_them(settings):
    data = str(settings.data_dir)
    made = cli("sessions", "create", "--plan", SENDING, "--supplier", "Acme", "--system", "MESH job 1",
               "--mailbox", "X26ABC1", "--mailbox", "x26abc2", "--data-dir", data)
    assert made.exit_code == 0, made.output
    session = re.search(r"^Session (sess-[0-9a-f]+) for Acme", made.output, re.MULTILINE).group(1)
    assert f"MESH mailboxes bound to the session: X26ABC1, X26ABC2. Requests authenticated as them land in it with " \
           f"no header, until `spine-sandbox sessions release {session}`." in made.output

    taken = cli("sessions", "create", "--plan", RECEIVING, "--supplier", "Other", "--system", "S", "--mailbox",
                "X26ABC2", "--data-dir", data, "--json")
    assert one_line_error(taken).startswith(f"spine-sandbox: MESH mailbox X26ABC2 is bound to session {session} "
                                            "(plan mesh-sending, Acme, MESH job 1)")
    listed = json.loads(cli("sessions", "list", "--json", "--data-dir", data).output)
    assert [s["session"] for s in listed] == [session]  # the refused create left no session behind

    app = create_app(settings)
    try:
        client = app.test_client()
        assert Mesh(client, "X26ABC1").handshake().status_code == 200
        assert journaled(app.extensions["sandbox"], session) == [("handshake", 200)]
    finally:
        app.extensions["sandbox"].close()

    released = cli("sessions", "release", session, "--data-dir", data)
    assert released.output == f"Released X26ABC1, X26ABC2 from session {session}: their traffic no longer lands in it.\n"
    assert cli("sessions", "release", session, "--data-dir", data).output == \
        f"Session {session} has no MESH mailboxes bound.\n"
    again = json.loads(cli("sessions", "create", "--plan", RECEIVING, "--supplier", "Other", "--system", "S",
                           "--mailbox", "X26ABC2", "--data-dir", data, "--json").output)
    assert again["mailboxes"] == ["X26ABC2"] and again["session"] != session


@pytest.mark.parametrize("args, message", [
    (["--plan", SENDING, "--mailbox", "X26NOPE"], "spine-sandbox: no MESH mailbox 'X26NOPE' in this sandbox "
                                                  "(mailboxes: X26ABC1, X26ABC2, X26ABC3; `spine-sandbox mesh "
                                                  "mailboxes`)"),
    (["--plan", "pds-application-restricted", "--mailbox", "X26ABC1"],
     "spine-sandbox: plan pds-application-restricted does not cover MESH, so it takes no --mailbox (MESH plans: "
     "mesh-receiving, mesh-sending)"),
])
def test_sessions_create_and_run_refuse_a_mailbox_they_cannot_bind_in_one_line(tmp_path, args, message):
    data = str(tmp_path / "data")
    created = cli("sessions", "create", *args, "--supplier", "A", "--system", "S", "--data-dir", data, "--json")
    assert one_line_error(created) == message
    ran = cli("run", *args, "--population", str(TEST_POPULATION), "--data-dir", data, "--report-dir",
              str(tmp_path / "reports"), "--", sys.executable, "-c", "open('ran', 'w')")
    assert one_line_error(ran) == message
    assert not (tmp_path / "reports").exists() and not os.path.exists("ran")


def test_sessions_create_on_a_hosted_data_dir_refuses_mailboxes(tmp_path):
    data = tmp_path / "data"
    create_app(Settings.load(environ={}, data_dir=data, population=TEST_POPULATION, hosted=True)
               ).extensions["sandbox"].close()  # a hosted start leaves its admin key in the data dir
    refused = cli("sessions", "create", "--plan", SENDING, "--supplier", "A", "--system", "S", "--mailbox", "X26ABC1",
                  "--data-dir", str(data), "--json")
    assert one_line_error(refused) == f"spine-sandbox: {mailboxes.HOSTED_REFUSAL}"


HANDSHAKES = """
import os, sys, urllib.request
from sandbox.services.mesh.auth import make_token
for mailbox in sys.argv[1:]:
    request = urllib.request.Request(os.environ["MESH_BASE_URL"] + "/" + mailbox, method="POST", headers={
        "Authorization": make_token(mailbox, "password", "TestKey"), "mex-ClientVersion": "job==1",
        "mex-OSName": "Linux", "mex-OSVersion": "6"})
    urllib.request.urlopen(request, timeout=10).read()
"""


def test_run_binds_every_free_mailbox_of_a_mesh_plan_by_default(settings, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "handshakes.py").write_text(HANDSHAKES)
    data = str(settings.data_dir)
    held = json.loads(cli("sessions", "create", "--plan", SENDING, "--supplier", "A", "--system", "S", "--mailbox",
                          "X26ABC3", "--data-dir", data, "--json").output)["session"]
    ran = cli("run", "--plan", RECEIVING, "--population", str(TEST_POPULATION), "--data-dir", data, "--report-dir",
              "reports", "--", sys.executable, "handshakes.py", "X26ABC1", "X26ABC2", "X26ABC3",
              env={"PYTHONPATH": str(ROOT)})
    assert ran.exit_code == 4, ran.output
    assert "MESH mailboxes bound to the session: X26ABC1, X26ABC2\n" in ran.output  # X26ABC3 is held elsewhere
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["metadata"]["span"]["exchanges"] == 2 and report["steps"][0]["exercised"]
    app = create_app(settings)
    try:
        assert journaled(app.extensions["sandbox"], held) == [("handshake", 200)]
        assert mailboxes.bound_session(app.extensions["sandbox"].store, "X26ABC1") is None  # ended with the run
    finally:
        app.extensions["sandbox"].close()


# --- end to end: `spine-sandbox run` with the official mesh-client ------------------------------------------------
MESH_JOB = '''
"""A small MESH sending job, as a supplier's system runs it, with the official mesh-client."""
import os
import time

from mesh_client import MeshClient
from urllib3.exceptions import ResponseError


def send(mesh, *args, **kwargs):
    """mesh-client never re-sends a message itself (a retried POST /outbox could deliver it twice): a 429 or 503 on a
    send reaches us as ResponseError, and we wait (MESH's Retry-After is at most 2 s here) and send it again."""
    for wait in (2, 4, 8):
        try:
            return mesh.send_message(*args, **kwargs)
        except ResponseError:
            time.sleep(wait)
    return mesh.send_message(*args, **kwargs)


with MeshClient(os.environ["SPINE_SANDBOX_URL"], "X26ABC1", "password", shared_key=b"TestKey",
                max_chunk_size=100_000) as mesh:
    mesh.handshake()
    small = send(mesh, "X26ABC2", b"hello", workflow_id="TEST_WORKFLOW", local_id="job-1")
    large = send(mesh, "X26ABC2", bytes(range(256)) * 1000, workflow_id="TEST_WORKFLOW")
    assert [mesh.track_message(m)["status"] for m in (small, large)] == ["accepted", "accepted"]
    send(mesh, "X26ABC2", b"busy", workflow_id="SANDBOX_THROTTLED")
    send(mesh, "X26ABC2", b"down", workflow_id="SANDBOX_UNAVAILABLE")
'''


@pytest.mark.skipif(importlib.util.find_spec("mesh_client") is None, reason="mesh-client is not installed")
def test_run_with_the_official_mesh_client_bound_by_its_mailbox(tmp_path):
    (tmp_path / "mesh_job.py").write_text(MESH_JOB)
    data = tmp_path / "data"
    completed = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "run", "--plan", SENDING, "--mailbox", "X26ABC1", "--data-dir",
         str(data), "--population", str(TEST_POPULATION), "--report-dir", "reports", "--supplier", "Acme",
         "--system", "MESH job 1", "--", sys.executable, "mesh_job.py"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 4, completed.stdout + completed.stderr  # incomplete: two manual requirements
    assert "MESH mailboxes bound to the session: X26ABC1" in completed.stderr

    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["verdict"] == "incomplete" and report["command"]["exit_status"] == 0
    assert report["metadata"]["span"]["exchanges"] >= 10 and report["summary"]["findings"]["fail"] == 0
    assert [(s["scenario"], s["exercised"]) for s in report["steps"]] == [
        (step, True) for step in ("mesh-handshake", "mesh-send-message", "mesh-send-chunk", "mesh-track-message",
                                  "mesh-throttled-once", "mesh-unavailable-once")]
    verdicts = {r["id"]: r["verdict"] for r in report["requirements"]}
    assert {v for k, v in verdicts.items() if k not in ("MESH-HSK-002", "MESH-TLS-001")} == {"pass"}
    assert verdicts["MESH-HSK-002"] == verdicts["MESH-TLS-001"] == "manual"

    # The run's session ended with the run: its mailbox is free for the next session on the same data dir.
    again = cli("sessions", "create", "--plan", SENDING, "--supplier", "Acme", "--system", "MESH job 2",
                "--mailbox", "X26ABC1", "--data-dir", str(data), "--json")
    assert again.exit_code == 0 and json.loads(again.output)["mailboxes"] == ["X26ABC1"]
