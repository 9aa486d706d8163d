"""CI mode: `spine-sandbox run --plan P -- <command>` and its exit codes (0 pass, 3 fail, 4 incomplete,
5 the command failed)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from html import escape as html_escape

import pytest
from click.testing import CliRunner

from sandbox.assurance.ci import base_url_variable
from sandbox.cli import main
from tests.conftest import ROOT, TEST_POPULATION

PLAN = """
id: ci-small
title: Retrieve one patient
services: [pds]
scenarios: [pds-get-patient-exists]
requirements: [PDS-HDR-001, PDS-GET-001]
"""
CLIENT = """
import json, os, sys, uuid, urllib.request
numbers = sys.argv[1:]
for number in numbers:
    request = urllib.request.Request(os.environ["PDS_BASE_URL"] + "/Patient/" + number, headers={
        "X-Request-ID": str(uuid.uuid4()), "X-Sandbox-Session": os.environ["SPINE_SANDBOX_SESSION"],
        "Authorization": "Bearer my-oauth-token"})
    try:
        urllib.request.urlopen(request, timeout=10).read()
    except urllib.error.HTTPError:
        pass
names = ("SPINE_SANDBOX_URL", "PDS_BASE_URL", "SPINE_SANDBOX_SESSION", "SPINE_SANDBOX_SESSION_TOKEN",
         "SPINE_SANDBOX_PLAN")
with open("seen.json", "w") as out:
    json.dump({n: os.environ.get(n) for n in names}, out)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A supplier's checkout: a plan folder and a client script; runs happen inside it."""
    (tmp_path / "extra" / "plans").mkdir(parents=True)
    (tmp_path / "extra" / "plans" / "ci-small.yaml").write_text(PLAN)
    (tmp_path / "client.py").write_text(CLIENT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    # `run` without --data-dir signs with the default data dir's key: this test's own, not the real home's.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SANDBOX_REPORT_SIGNING_KEY", raising=False)
    return tmp_path


def run(project, *command: str, plan: str = "ci-small", extra: tuple[str, ...] = ()):
    args = ["run", "--plan", plan, "--scenarios", str(project / "extra"), "--population", str(TEST_POPULATION),
            "--report-dir", str(project / "reports"), "--supplier", "Acme", "--system", "PAS 1.2", *extra,
            "--", *command]
    return CliRunner().invoke(main, args)


def test_base_url_variables_are_derived_from_service_names():
    assert base_url_variable("pds") == "PDS_BASE_URL"
    assert base_url_variable("e-rs") == "E_RS_BASE_URL"


def test_pass_exits_0_and_writes_every_report_as_a_real_process(project):
    completed = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "run", "--plan", "ci-small", "--scenarios", str(project / "extra"),
         "--population", str(TEST_POPULATION), "--report-dir", "reports", "--", sys.executable, "client.py",
         "9000000009"], cwd=project, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("## Spine Sandbox assurance: ✅ PASS")
    assert sorted(p.name for p in (project / "reports").iterdir()) == ["junit.xml", "report.html", "report.json",
                                                                      "report.manifest.json", "summary.md"]
    seen = json.loads((project / "seen.json").read_text())
    assert seen["PDS_BASE_URL"] == seen["SPINE_SANDBOX_URL"] + "/personal-demographics/FHIR/R4"
    assert seen["SPINE_SANDBOX_URL"].startswith("http://127.0.0.1:")
    assert seen["SPINE_SANDBOX_SESSION"].startswith("sess-") and seen["SPINE_SANDBOX_SESSION_TOKEN"].startswith("sst_")
    assert seen["SPINE_SANDBOX_PLAN"] == "ci-small"
    report = json.loads((project / "reports" / "report.json").read_text())
    assert report["metadata"]["session"] == seen["SPINE_SANDBOX_SESSION"] and report["verdict"] == "pass"
    assert "SPINE_SANDBOX_SESSION_TOKEN" not in completed.stderr  # the token is never echoed to CI logs


def test_fail_exits_3(project):
    result = run(project, sys.executable, "client.py", "9000000009", "9000000000")
    assert result.exit_code == 3, result.output
    assert "## Spine Sandbox assurance: ❌ FAIL" in result.output and "`PDS-GET-001`" in result.output


def test_incomplete_exits_4(project):
    result = run(project, sys.executable, "client.py")
    assert result.exit_code == 4, result.output
    assert "INCOMPLETE" in result.output and "### Steps not exercised" in result.output


EXIT_2 = (sys.executable, "-c", "import sys; sys.exit(2)")
KILLED = (sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
SLEEPS = (sys.executable, "-c", "import time; time.sleep(30)")


@pytest.mark.parametrize("command, outcome, message", [
    (EXIT_2, {"outcome": "exited", "exit_status": 2, "signal": None, "error": None},
     f"`{shlex.join(EXIT_2)}` exited with status 2"),
    (KILLED, {"outcome": "killed by a signal", "exit_status": None, "signal": "SIGKILL (9)", "error": None},
     f"`{shlex.join(KILLED)}` was killed by signal SIGKILL (9)"),
    (("/no/such/command",), {"outcome": "not started", "exit_status": None, "signal": None,
                             "error": "not found (No such file or directory: /no/such/command)"},
     "`/no/such/command` could not be started: not found (No such file or directory: /no/such/command)"),
    (("./client.py",), {"outcome": "not started", "exit_status": None, "signal": None,
                        "error": "not executable (Permission denied: ./client.py)"},
     "`./client.py` could not be started: not executable (Permission denied: ./client.py)"),
    (SLEEPS, {"outcome": "stopped", "exit_status": None, "signal": None,
              "error": "did not finish within 1 s and was stopped"},
     f"`{shlex.join(SLEEPS)}` did not finish within 1 s and was stopped"),
])
def test_a_failing_supplier_command_exits_5_and_is_recorded_in_every_report(project, command, outcome, message):
    result = run(project, *command, extra=("--timeout", "1"))
    assert result.exit_code == 5, result.output
    assert f"The supplier command {message}." in result.output
    reports = project / "reports"
    report = json.loads((reports / "report.json").read_text())
    assert report["command"] == {"argv": list(command), **outcome, "summary": message}
    assert report["verdict"] == "fail"  # a failing test command fails the run, whatever evidence it left
    assert report["verdict_reasons"][0] == f"test command failed: {message}"
    assert f"❌ Test command: {message}" in (reports / "summary.md").read_text()
    assert "## Spine Sandbox assurance: ❌ FAIL" in result.output
    junit = ET.parse(reports / "junit.xml").getroot()
    [case] = [c for c in junit.iter("testcase") if c.get("classname") == "ci-small.command"]
    assert case.find("failure").get("message") == message and junit.get("failures") == "1"
    html = (reports / "report.html").read_text()
    assert 'id="command"' in html and html_escape(" ".join(command)) in html and outcome["outcome"] in html
    verified = CliRunner().invoke(main, ["verify", str(reports)])  # trusting this machine's sandbox key
    assert verified.exit_code == 0, verified.output  # the fail verdict re-derives from the report's own record


def test_a_command_that_passes_is_recorded_too(project):
    result = run(project, sys.executable, "client.py", "9000000009")
    assert result.exit_code == 0, result.output
    report = json.loads((project / "reports" / "report.json").read_text())
    assert report["command"]["outcome"] == "exited" and report["command"]["exit_status"] == 0
    assert report["verdict"] == "pass"
    assert "✅ Test command: `" in result.output


def test_github_step_summary_gets_the_markdown(project, monkeypatch):
    summary = project / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run(project, sys.executable, "client.py", "9000000009")
    assert summary.read_text().startswith("## Spine Sandbox assurance: ✅ PASS")


def test_an_unknown_plan_is_a_clear_error(project):
    result = run(project, "true", plan="nope")
    assert result.exit_code == 1 and "no assurance plan 'nope'" in result.output


@pytest.mark.slow
def test_the_example_client_meets_the_application_restricted_plan(tmp_path):
    """Every step of a real plan, run by the example client: incomplete until the assessor attests, then pass."""
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "run", "--plan", "pds-application-restricted", "--data-dir", str(data),
         "--population", str(TEST_POPULATION), "--report-dir", str(tmp_path / "ci"), "--",
         sys.executable, str(ROOT / "examples" / "pds-client" / "conformance_steps.py")], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 4, completed.stdout + completed.stderr
    report = json.loads((tmp_path / "ci" / "report.json").read_text())
    assert report["verdict_reasons"] == ["awaiting attestation: PDS-GET-003"]
    session = report["metadata"]["session"]
    cli = [sys.executable, "-m", "sandbox.cli"]
    subprocess.run([*cli, "attest", session, "PDS-GET-003", "--verdict", "pass", "--by", "A. Assessor", "--note",
                    "Withheld fields are not stored.", "--data-dir", str(data)], cwd=ROOT, env=env, check=True)
    subprocess.run([*cli, "report", session, "--out-dir", str(tmp_path / "final"), "--data-dir", str(data)],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    final = json.loads((tmp_path / "final" / "report.json").read_text())
    assert final["verdict"] == "pass", final["verdict_reasons"]
    verified = subprocess.run([*cli, "verify", str(tmp_path / "final"), "--data-dir", str(data)], cwd=ROOT, env=env,
                              capture_output=True, text=True)
    assert verified.returncode == 0 and "signature valid" in verified.stdout
    assert final["requirements"][-1]["attestation"]["note"] == "Withheld fields are not stored."
