"""Spine Sandbox for a supplier's own pytest suite (registered through the `pytest11` entry point).

Fixtures
    spine          the sandbox in-process (mock_spine): `requests` calls to the NHS environment hosts are answered
                   by it; each test gets its own sandbox session; .findings, .failures, .exchanges, .report()
    spine_server   the real server on a free loopback port, for clients that do not use `requests`: .url, and
                   .headers to send so the test's traffic lands in the test's own session
    spine_settings the run's Settings (seed, population, scenario folders); override it in a conftest.py
Marker
    @pytest.mark.spine(base_urls=[...], pass_through=True, production=True): mock_spine() options for one test
Options
    --spine-plan PLAN   the assurance plan the run is measured against
    --spine-report DIR  write the run's assurance report into DIR at the end (every session the fixtures opened)

Nothing heavy is imported until a fixture is used, so installing the package costs other test suites nothing.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sandbox.evidence import SessionEvidence

if TYPE_CHECKING:
    from flask import Flask

    from sandbox.local_server import LocalServer
    from sandbox.runtime import Sandbox
    from sandbox.settings import Settings

SERVER_SESSION = "default"  # where the server journals traffic that names no session


@dataclass
class SpineRun:
    """One test run's sandbox: one configuration and journal, one app and server at most, many sessions."""

    plan: str | None
    report_dir: Path | None
    settings: Settings | None = None
    sessions: list[str] = field(default_factory=list)
    server_used: bool = False
    report: dict | None = None
    report_files: list[Path] = field(default_factory=list)
    error: str | None = None  # why there is no report
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    _app: Flask | None = None
    _server: LocalServer | None = None

    def session_for(self, nodeid: str) -> str:
        """A session id a reader of the report can trace back to the test: number, run, then the test's name. The
        run id keeps runs apart where spine_settings points several runs at one journal."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", nodeid.rsplit("/", 1)[-1]).strip("-.")
        session = f"t{len(self.sessions) + 1:04d}-{self.run_id}-{slug}"[:64].rstrip("-.")
        self.sessions.append(session)
        return session

    def app(self) -> Flask:
        if self._app is None:
            from sandbox.app import create_app

            self._app = create_app(self.settings)
        return self._app

    def server(self) -> LocalServer:
        if self._server is None:
            from sandbox.local_server import LocalServer

            self._server = LocalServer(self.settings).start()
            self.server_used = True
        return self._server

    def stop_server(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def write_report(self) -> None:
        from sandbox import session_report

        sessions = self.sessions + ([SERVER_SESSION] if self.server_used else [])
        self.report = session_report.build_report(self.app().extensions["sandbox"], sessions, plan=self.plan)
        self.report_files = session_report.write_report(self.report, self.report_dir)


_RUN = pytest.StashKey[SpineRun]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("spine-sandbox", "Spine Sandbox (a local mock of the NHS Spine)")
    group.addoption("--spine-plan", metavar="PLAN",
                    help="assurance plan (a name from the scenario folders' plans/, or a YAML file) the run is "
                         "measured against")
    group.addoption("--spine-report", metavar="DIR", type=Path,
                    help="write the run's assurance report into DIR when the tests finish")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spine(base_urls=(), pass_through=False, production=False): options for "
                                       "the in-process Spine Sandbox (the spine fixture) in this test")
    config.stash[_RUN] = SpineRun(plan=config.getoption("spine_plan"), report_dir=config.getoption("spine_report"))


@pytest.fixture(scope="session")
def spine_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The run's configuration: defaults, a fresh data directory. Override in conftest.py to change the seed,
    population or scenario folders; SANDBOX_* variables of the shell are deliberately not read."""
    from sandbox.settings import Settings

    return Settings.load(environ={}, data_dir=tmp_path_factory.mktemp("spine-sandbox"))


@pytest.fixture(scope="session")
def _spine_run(request: pytest.FixtureRequest, spine_settings: Settings) -> SpineRun:
    run = request.config.stash[_RUN]
    run.settings = spine_settings
    if run.plan:
        from sandbox.session_report import PlanError, load_plan

        try:
            load_plan(run.app().extensions["sandbox"], run.plan)
        except PlanError as exc:
            run.error = f"--spine-plan: {exc}"
            pytest.exit(run.error, returncode=pytest.ExitCode.USAGE_ERROR)
    yield run
    run.stop_server()


@pytest.fixture
def spine(request: pytest.FixtureRequest, _spine_run: SpineRun):
    """The sandbox in-process for this test, in a session of its own."""
    from sandbox.inprocess import MockSpine

    marker = request.node.get_closest_marker("spine")
    options = dict(marker.kwargs) if marker else {}
    with MockSpine(app=_spine_run.app(), session=_spine_run.session_for(request.node.nodeid), plan=_spine_run.plan,
                   **options) as mock:
        yield mock


@dataclass
class ServerSession(SessionEvidence):
    """The real server, seen from one test: its URL, the headers that put the test's traffic in its session, and
    that session's exchanges, findings and failures (the server's journal is the run's journal)."""

    url: str
    session: str
    app: Flask

    @property
    def sandbox(self) -> Sandbox:
        return self.app.extensions["sandbox"]

    @property
    def headers(self) -> dict[str, str]:
        from sandbox.web.sessions import SESSION_HEADER

        return {SESSION_HEADER: self.session}


@pytest.fixture
def spine_server(request: pytest.FixtureRequest, _spine_run: SpineRun) -> ServerSession:
    """The real server (started once per run, on a free port) and this test's session on it."""
    server = _spine_run.server()
    return ServerSession(server.url, _spine_run.session_for(request.node.nodeid), _spine_run.app())


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is None or run.report_dir is None or run.settings is None or run.error:
        return
    run.write_report()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is None or run.report_dir is None:
        return
    terminalreporter.section("Spine Sandbox")
    if run.report is None:
        why = run.error or "no test used the spine or spine_server fixture"
        terminalreporter.write_line(f"no report written to {run.report_dir}: {why}")
        return
    totals = run.report["totals"]
    terminalreporter.write_line(
        f"verdict {run.report['verdict']}: {totals['exchanges']} exchanges in {len(run.report['sessions'])} sessions, "
        f"findings fail={totals['fail']} warning={totals['warning']} pass={totals['pass']}"
        + (f", plan {run.report['plan']['id']}" if run.report.get("plan") else ""))
    for path in run.report_files:
        terminalreporter.write_line(f"report: {path}")
