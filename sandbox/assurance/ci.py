"""CI mode: start the sandbox on a free port, run the supplier's command against a fresh plan-bound session,
write every report format, and turn the verdict into an exit code a pipeline can gate on."""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from werkzeug.serving import make_server

from sandbox.assurance import binding
from sandbox.assurance.model import Progress
from sandbox.assurance.reports import make_report, write_reports
from sandbox.assurance.sessions import find_plan
from sandbox.assurance.signing import signing_key
from sandbox.assurance.verdicts import (
    EXITED,
    FAIL,
    INCOMPLETE,
    KILLED,
    NOT_STARTED,
    PASS,
    STOPPED,
    command_failed,
)
from sandbox.runtime import Sandbox

# Documented in docs/assurance.md (CI mode: exit codes); 1 and 2 are click's: the sandbox could not start, or bad
# usage.
EXIT_CODES = {PASS: 0, FAIL: 3, INCOMPLETE: 4}
EXIT_COMMAND_FAILED = 5
URL_VARIABLE = "SPINE_SANDBOX_URL"
SESSION_VARIABLE = "SPINE_SANDBOX_SESSION"
TOKEN_VARIABLE = "SPINE_SANDBOX_SESSION_TOKEN"
PLAN_VARIABLE = "SPINE_SANDBOX_PLAN"


@dataclass(frozen=True)
class CommandResult:
    """How the supplier's test command ended; recorded in the report (`command`), where a failure fails the run."""

    argv: tuple[str, ...]
    outcome: str  # EXITED, KILLED (by a signal), NOT_STARTED, STOPPED (time-out or interrupted run)
    exit_status: int | None = None
    signal: str | None = None  # e.g. SIGKILL
    error: str | None = None  # why it could not be started, or why it was stopped

    @property
    def summary(self) -> str:
        """The command and how it ended, in words: `pytest -q` exited with status 2."""
        command = shlex.join(self.argv)
        if self.outcome == EXITED:
            return f"`{command}` exited with status {self.exit_status}"
        if self.outcome == KILLED:
            return f"`{command}` was killed by signal {self.signal}"
        if self.outcome == NOT_STARTED:
            return f"`{command}` could not be started: {self.error}"
        return f"`{command}` {self.error}"

    def to_report(self) -> dict:
        return {"argv": list(self.argv), "outcome": self.outcome, "exit_status": self.exit_status,
                "signal": self.signal, "error": self.error, "summary": self.summary}

    @property
    def failed(self) -> bool:
        return command_failed(self.to_report())

    @property
    def problem(self) -> str:
        """Empty when the command ran and exited 0; otherwise one sentence for the CI log."""
        return f"The supplier command {self.summary}." if self.failed else ""


@dataclass
class RunResult:
    verdict: str
    exit_code: int
    command_status: int | None  # None: the command could not be started, was stopped or was killed by a signal
    command_problem: str
    report: dict
    files: dict[str, Path]
    markdown: str
    command: CommandResult | None = None


def base_url_variable(service_name: str) -> str:
    """PDS_BASE_URL for pds, MESH_BASE_URL for mesh, …: derived from the service's name, never listed here."""
    return re.sub(r"[^A-Z0-9]+", "_", service_name.upper()).strip("_") + "_BASE_URL"


def environment_for(sandbox: Sandbox, base: str, session: str, token: str, plan: str) -> dict[str, str]:
    env = {URL_VARIABLE: base, SESSION_VARIABLE: session, TOKEN_VARIABLE: token, PLAN_VARIABLE: plan}
    for service in sandbox.services.values():
        if service.base_paths:
            env[base_url_variable(service.name)] = base + service.base_paths[0]
    return env


def run_plan(sandbox: Sandbox, plan_id: str, command: Sequence[str], report_dir: Path, *, supplier: str,
             system: str, timeout: float | None = None, say: Callable[[str], None] = print,
             progress: Progress | None = None, key: Ed25519PrivateKey | None = None,
             mailboxes: Sequence[str] = ()) -> RunResult:
    """`key` signs the reports; by default the sandbox's own (signing.signing_key). `mailboxes`: MESH mailboxes bound
    to the run's session while the command runs, so a client that sends no session header lands in it; by default,
    for a plan that covers MESH, every mailbox of the configuration that no other session holds."""
    from sandbox.app import create_app

    plan = find_plan(sandbox.plans, plan_id)
    hosted = sandbox.settings.hosted
    mailboxes = binding.checked(sandbox, plan, mailboxes or binding.defaults(sandbox, plan, hosted), hosted)
    key = key or signing_key(sandbox.settings)  # before the command runs: a bad key is a set-up error
    app = create_app(sandbox.settings, sandbox=sandbox)
    say("Building the synthetic population index…")
    sandbox.population.index()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the supplier's output is what CI logs should show
    server = make_server("127.0.0.1", 0, app, threaded=True)  # port 0: the OS picks a free port, no race
    base = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, name="sandbox-server", daemon=True).start()
    record = None
    try:
        record, token, bound = binding.create_bound_session(sandbox, plan.id, supplier, system, mailboxes, hosted)
        env = environment_for(sandbox, base, record.id, token, plan.id)
        say(f"Spine Sandbox at {base}, session {record.id}, plan {plan.id}")
        if bound:
            say(f"  MESH mailboxes bound to the session: {', '.join(bound)}")
        for name, value in env.items():
            if name != TOKEN_VARIABLE:
                say(f"  {name}={value}")
        say(f"Running: {shlex.join(command)}")
        ended = _run_command(command, {**os.environ, **env}, timeout)
    finally:
        server.shutdown()
        server.server_close()
        if record is not None:  # the session ends with the run: its mailboxes are free for the next one
            binding.release(sandbox.store, record.id, sandbox.services.values())
    problem = ended.problem
    if problem:
        say(problem)
    report = make_report(sandbox, record.id, progress=progress, command=ended.to_report(), key=key)
    files = write_reports(report, report_dir, key, progress=progress)
    markdown = files["markdown"].read_text(encoding="utf-8")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:  # GitHub Actions shows this file on the job's page
        with open(summary_file, "a", encoding="utf-8") as out:
            out.write(markdown + "\n")
    code = EXIT_COMMAND_FAILED if problem else EXIT_CODES[report["verdict"]]
    return RunResult(report["verdict"], code, ended.exit_status, problem, report, files, markdown, ended)


def _run_command(command: Sequence[str], env: dict[str, str], timeout: float | None) -> CommandResult:
    argv = tuple(command)
    try:
        # Its own process group, so a timeout or a cancelled CI job stops everything it started.
        process = subprocess.Popen(list(command), env=env, start_new_session=True)
    except OSError as exc:
        return CommandResult(argv, NOT_STARTED, error=_start_error(exc))
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        status = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(process)
        return CommandResult(argv, STOPPED, error=f"did not finish within {timeout:g} s and was stopped")
    except KeyboardInterrupt:
        _stop(process)
        return CommandResult(argv, STOPPED, error="was stopped when the run was interrupted")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if status < 0:  # Popen's way of saying a signal ended it
        return CommandResult(argv, KILLED, signal=_signal_name(-status))
    return CommandResult(argv, EXITED, exit_status=status)


def _start_error(exc: OSError) -> str:
    kind = {FileNotFoundError: "not found", PermissionError: "not executable"}.get(type(exc))
    detail = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
    return f"{kind} ({detail})" if kind else detail


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)


def _stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
